//! Delivering reminders: a [`Notifier`] trait with email (SMTP through lettre: plain, STARTTLS
//! or implicit TLS, AUTH with a password from the environment or the keyring), webhooks (generic
//! JSON, a Teams Workflows Adaptive Card, Slack blocks) and stdout. Messages say which tenant,
//! what expires, when, and the exact command to renew. Microsoft Graph `sendMail` as an app
//! ([`graph_mail`]) for senders in Exchange Online, where SMTP AUTH with a password is going away
//! (an SMTP refusal `5.7.30` says so and points there).

pub mod graph_mail;

pub use graph_mail::GraphMail;

use crate::config::{EmailChannel, WebhookChannel, WebhookFormat};
use crate::http::HttpClient;
use crate::remind::Digest;
use crate::remind::digest::{command, subject};
use crate::secret::SecretString;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("email to {to} via {server} failed: {detail}")]
    Email {
        server: String,
        to: String,
        detail: String,
    },
    #[error("mail from {from} through Microsoft Graph failed: {detail}")]
    GraphMail { from: String, detail: String },
    #[error("webhook {url} failed: {detail}")]
    Webhook { url: String, detail: String },
    #[error("channel {0} is misconfigured: {1}")]
    Config(String, String),
}

/// Something that delivers reminders.
pub trait Notifier: Send + Sync {
    /// A stable name, used to record what was sent (never contains a secret or a query string).
    fn id(&self) -> String;
    /// Sends one digest to `recipients` (empty: the channel's own).
    fn send<'a>(&'a self, msg: &'a Digest, recipients: &'a [String]) -> SendFuture<'a>;
}

/// Prints reminders for people: on stdout, or on stderr when stdout carries `--output json`.
pub struct Stdout {
    pub to_stderr: bool,
    /// Makes the text safe for a terminal (the CLI printer's escaping of control characters:
    /// a failure's detail may quote a server).
    pub terminal_safe: fn(&str) -> String,
}

impl Notifier for Stdout {
    fn id(&self) -> String {
        "stdout".into()
    }
    fn send<'a>(&'a self, msg: &'a Digest, _: &'a [String]) -> SendFuture<'a> {
        Box::pin(async move {
            let line = (self.terminal_safe)(&format!("{}\n{}", msg.subject(), msg.text()));
            if self.to_stderr {
                eprintln!("{line}");
            } else {
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Ok(())
        })
    }
}

pub struct Webhook {
    pub channel: WebhookChannel,
    pub http: HttpClient,
}

/// The payload for each webhook format: the most urgent entry's facts at the top (as a single
/// reminder always had them), and every entry of the digest.
pub fn webhook_payload(format: WebhookFormat, d: &Digest) -> serde_json::Value {
    let ends = |m: &crate::remind::Due| {
        m.ends
            .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let Some(m) = d.entries.first() else {
        // Only Microsoft's dated changes: the subject and the text, in each format's shape.
        return match format {
            WebhookFormat::Json => {
                json!({"event": "hybrid-trust.reminder", "entries": [], "advisories": d.advisories, "summary": d.subject(), "text": d.text()})
            }
            WebhookFormat::Teams => {
                json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": [
                    {"type": "TextBlock", "text": d.subject(), "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": d.text(), "wrap": true},
                ]}}]})
            }
            WebhookFormat::Slack => json!({"text": d.subject(), "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": d.text()}},
            ]}),
        };
    };
    match format {
        WebhookFormat::Json => json!({
            "event": "hybrid-trust.reminder",
            "kind": m.kind,
            "tenant": m.tenant,
            "tenant_id": m.tenant_id,
            "app_id": m.app_id,
            "thumbprint_sha1": m.thumbprint_sha1,
            "ends": m.ends,
            "days_left": m.days_left,
            "threshold_days": m.threshold_days,
            "summary": d.subject(),
            "text": d.text(),
            "command": command(m),
            "advisories": d.advisories,
            "entries": d.entries.iter().map(|e| json!({
                "kind": e.kind,
                "tenant": e.tenant,
                "tenant_id": e.tenant_id,
                "state": e.state,
                "ends": e.ends,
                "days_left": e.days_left,
                "summary": subject(e),
                "detail": e.detail,
                "action": e.action,
                "commands": crate::remind::digest::commands(e),
            })).collect::<Vec<_>>(),
        }),
        // A Teams Workflows ("Post to a channel when a webhook request is received") message
        // with an Adaptive Card attachment: a heading, then one fact set per entry.
        WebhookFormat::Teams => {
            let mut body = vec![
                json!({"type": "TextBlock", "text": d.subject(), "weight": "Bolder", "size": "Medium", "wrap": true}),
            ];
            for e in &d.entries {
                body.push(json!({"type": "FactSet", "separator": true, "facts": [
                    {"title": "Tenant", "value": e.tenant},
                    {"title": "Ends", "value": ends(e)},
                    {"title": "Days left", "value": e.days_left.map(|d| d.to_string()).unwrap_or_default()},
                    {"title": "Certificate", "value": e.thumbprint_sha1},
                ]}));
                body.push(json!({"type": "TextBlock", "text": format!("{}: {}", subject(e).trim_start_matches("[hybrid-trust] "), e.action), "wrap": true}));
                body.push(json!({"type": "TextBlock", "text": format!("Renew: `{}`", command(e)), "wrap": true}));
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                    },
                }],
            })
        }
        WebhookFormat::Slack => {
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": d.subject()}}),
            ];
            for e in &d.entries {
                blocks.push(json!({"type": "section", "fields": [
                    {"type": "mrkdwn", "text": format!("*Tenant*\n{}", e.tenant)},
                    {"type": "mrkdwn", "text": format!("*Ends*\n{}", ends(e))},
                ]}));
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{}\nRenew: `{}`", e.action, command(e))}}));
            }
            json!({"text": d.subject(), "blocks": blocks})
        }
    }
}

impl Notifier for Webhook {
    fn id(&self) -> String {
        // Never the query string (Teams workflow URLs carry their signature there) nor a
        // password; stable across versions: it keys what the ledger records as sent.
        let url = crate::secret::redact_url(&self.channel.url);
        format!("webhook:{}", crate::secret::without_query(&url))
    }
    fn send<'a>(&'a self, msg: &'a Digest, _: &'a [String]) -> SendFuture<'a> {
        Box::pin(async move {
            let body = webhook_payload(self.channel.format, msg);
            let url = &self.channel.url;
            let fail = |detail: String| NotifyError::Webhook {
                url: crate::secret::redact_url(url),
                detail,
            };
            // Only the status line counts: a 200 whose body drips or is huge was delivered, and
            // reading that body must not turn it into a failure that posts it again tomorrow.
            let resp = self
                .http
                .send_for_status(|c| c.post(url).json(&body), false)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if resp.is_success() {
                Ok(())
            } else {
                Err(fail(format!("HTTP {}", resp.status)))
            }
        })
    }
}

pub struct Email {
    pub channel: EmailChannel,
    pub password: Option<SecretString>,
    /// SMTP AUTH `XOAUTH2`: where the Exchange Online token comes from.
    pub oauth: Option<SmtpOAuth>,
}

/// The token source of an email channel with `oauth` (SASL XOAUTH2, as Exchange Online
/// documents for SMTP with OAuth: `user=<mailbox>^Aauth=Bearer <token>^A^A`, the token for
/// `https://outlook.office365.com/.default` with the `SMTP.SendAsApp` role;
/// <https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth>).
pub struct SmtpOAuth {
    pub tokens: crate::sts::TokenProvider,
    pub scope: String,
}

impl Email {
    fn server(&self) -> String {
        let url = crate::secret::redact_url(&self.channel.smtp_url);
        crate::secret::without_query(&url).to_string()
    }
}

impl Email {
    /// The XOAUTH2 token, when the channel signs in with OAuth; the error is the detail.
    async fn token(&self) -> Result<Option<crate::secret::SecretString>, String> {
        let Some(o) = &self.oauth else {
            return Ok(None);
        };
        let t = o.tokens.token(&o.scope).await.map_err(|e| {
            with_hint(
                format!(
                    "no Exchange Online token for SMTP: {}",
                    crate::error_chain(&e)
                ),
                &e.hint(),
            )
        })?;
        Ok(Some(crate::secret::SecretString::new(
            t.expose().to_string(),
        )))
    }

    /// The SMTP transport for this channel: TLS mode from the URL, the extra CA, credentials
    /// (the XOAUTH2 `token`, or the password). `fail` turns a detail into the caller's error.
    fn transport(
        &self,
        fail: &dyn Fn(String) -> NotifyError,
        token: Option<&crate::secret::SecretString>,
    ) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, NotifyError> {
        use lettre::transport::smtp::authentication::{Credentials, Mechanism};
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let url = url::Url::parse(&self.channel.smtp_url).map_err(|e| fail(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| fail("no host".into()))?
            .to_string();
        let mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls_params = || -> Result<TlsParameters, NotifyError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(ca) = &self.channel.ca_file {
                let pem =
                    crate::paths::read_limited(ca, crate::paths::MAX_SETTINGS_FILE, "a CA file")
                        .map_err(|e| fail(format!("ca_file {}: {e}", ca.display())))?;
                b = b.add_root_certificate(
                    Certificate::from_pem(&pem).map_err(|e| fail(e.to_string()))?,
                );
            }
            b.build_rustls().map_err(|e| fail(e.to_string()))
        };
        let plain = url.scheme() == "smtp" && mode.as_deref() != Some("starttls");
        if plain && (token.is_some() || self.channel.username.is_some() || self.password.is_some())
        {
            // The settings refuse this already; a channel built another way must not either.
            return Err(NotifyError::Config(
                self.id(),
                "a password or token over SMTP without TLS: use smtps:// or ?tls=starttls".into(),
            ));
        }
        let (tls, default_port) = match (url.scheme(), mode.as_deref()) {
            ("smtps", _) => (Tls::Wrapper(tls_params()?), 465),
            ("smtp", Some("starttls")) => (Tls::Required(tls_params()?), 587),
            ("smtp", None | Some("none")) => (Tls::None, 25),
            (s, m) => {
                return Err(NotifyError::Config(
                    self.id(),
                    format!("unsupported {s} with tls={m:?}"),
                ));
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            // Each read waits at most this (the message as a whole: `send`'s deadline).
            .timeout(Some(
                self.channel
                    .timeout()
                    .min(std::time::Duration::from_secs(30)),
            ));
        if let Some(token) = token {
            // XOAUTH2's `user` is the bare address: `from` may carry a display name.
            let user = match &self.channel.username {
                Some(u) => u.clone(),
                None => mailbox(&self.channel.from)
                    .map(|m| m.email.to_string())
                    .map_err(|e| NotifyError::Config(self.id(), format!("from: {e}")))?,
            };
            b = b
                .credentials(Credentials::new(user, token.expose().to_string()))
                .authentication(vec![Mechanism::Xoauth2]);
        } else if let Some(user) = &self.channel.username {
            let pw = self.password.as_ref().ok_or_else(|| {
                NotifyError::Config(
                    self.id(),
                    "a username without a password (password_env or password_keyring)".into(),
                )
            })?;
            b = b.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
        }
        Ok(b.build())
    }

    /// Connects, and signs in when the channel has a username, without sending anything: proves
    /// a password before it is stored.
    pub async fn check_login(&self) -> Result<(), NotifyError> {
        let fail = |detail: String| NotifyError::Email {
            server: self.server(),
            to: "(sign-in check)".into(),
            detail,
        };
        within(self.channel.timeout(), fail, async {
            let token = self.token().await.map_err(fail)?;
            let transport = self.transport(&fail, token.as_ref())?;
            match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(fail("the server closed the connection".into())),
                Err(e) => Err(fail(smtp_detail(&crate::error_chain(&e)))),
            }
        })
        .await
    }
}

/// `work` with an overall deadline: lettre's timeout applies to each read, and a server that
/// trickles one line at a time resets it for ever; past `limit` the message is a failure (the
/// connection is dropped with the future), recorded and retried on the next run.
async fn within<F, E>(limit: std::time::Duration, fail: E, work: F) -> Result<(), NotifyError>
where
    F: Future<Output = Result<(), NotifyError>>,
    E: Fn(String) -> NotifyError,
{
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(fail(format!(
            "the server did not finish the message within {} s (timeout_secs)",
            limit.as_secs()
        )))
    })
}

impl Notifier for Email {
    fn id(&self) -> String {
        format!("email:{}", self.server())
    }
    fn send<'a>(&'a self, msg: &'a Digest, recipients: &'a [String]) -> SendFuture<'a> {
        Box::pin(async move {
            use lettre::AsyncTransport;
            let to = addressees(&self.channel.to, recipients);
            let fail = |detail: String| NotifyError::Email {
                server: self.server(),
                to: to.join(","),
                detail,
            };
            let email = message(&self.channel.from, &to, msg).map_err(fail)?;
            within(self.channel.timeout(), fail, async {
                let token = self.token().await.map_err(fail)?;
                let transport = self.transport(&fail, token.as_ref())?;
                transport
                    .send(email)
                    .await
                    .map_err(|e| fail(smtp_detail(&crate::error_chain(&e))))?;
                Ok(())
            })
            .await
        })
    }
}

/// The recipients of one digest: the tenant-specific ones, or the channel's own.
fn addressees(own: &[String], given: &[String]) -> Vec<String> {
    if given.is_empty() {
        own.to_vec()
    } else {
        given.to_vec()
    }
}

/// A recipient (or sender) as every mail channel takes it: what lettre parses as a mailbox
/// (`user@domain`, or `Name <user@domain>`), whose address has a plain local part (RFC 5322
/// dot-atom: letters, digits and ``!#$%&'*+-/=?^_`{|}~``, dots between). A quoted local part
/// (`"<script>…"@contoso.com`) is valid RFC 5322, but Exchange Online and Microsoft Graph refuse
/// it, so no channel could deliver to it. The one check for addresses: the channels build their
/// messages with it, and the settings and `tenant add --notify` record only what it accepts.
/// The error is the reason, for a message.
pub fn mailbox(addr: &str) -> Result<lettre::message::Mailbox, String> {
    let parsed: lettre::message::Mailbox = addr
        .parse()
        .map_err(|e| format!("not an email address ({e})"))?;
    let local = parsed.email.user();
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if !local
        .split('.')
        .all(|part| !part.is_empty() && part.chars().all(atext))
    {
        return Err(format!(
            "its mailbox name {local:?} is not a plain one (letters, digits, dots and -_+ and the like; no quotes)"
        ));
    }
    Ok(parsed)
}

/// A digest as one mail message, for SMTP and Microsoft Graph alike: plain text first, the HTML
/// digest second (RFC 2046 §5.1.4: the richest alternative last), so a reader without HTML
/// still gets every fact.
pub(crate) fn message(from: &str, to: &[String], d: &Digest) -> Result<lettre::Message, String> {
    use lettre::message::MultiPart;
    let mut b = lettre::Message::builder()
        .from(mailbox(from).map_err(|e| format!("from {from}: {e}"))?)
        .subject(d.subject());
    for r in to {
        b = b.to(mailbox(r).map_err(|e| format!("to {r}: {e}"))?);
    }
    b.multipart(MultiPart::alternative_plain_html(d.text(), d.html()))
        .map_err(|e| e.to_string())
}

/// `detail`, then `; hint` when there is one.
pub(crate) fn with_hint(detail: String, hint: &str) -> String {
    if hint.is_empty() {
        detail
    } else {
        format!("{detail}; {hint}")
    }
}

/// An SMTP failure's detail, with what to do when the server is Exchange Online refusing a
/// password: `550 5.7.30 Basic authentication is not supported for Client Submission` (MC786329,
/// docs/protocol.md §4.9).
pub fn smtp_detail(detail: &str) -> String {
    if detail.contains("5.7.30") {
        format!(
            "{detail} (Exchange Online no longer accepts a password for SMTP AUTH: send reminders with a [[reminders.graph_mail]] channel, Microsoft Graph sendMail with Mail.Send; see the README, \"Reminders through Microsoft Graph\")"
        )
    } else {
        detail.to_string()
    }
}

/// A channel that cannot be built from the settings: `usage` when the settings or environment
/// are at fault (exit 2), else the machine (the keyring, TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChannelError {
    pub message: String,
    pub hint: String,
    pub usage: bool,
}

fn channel_error(message: impl Into<String>, hint: impl Into<String>, usage: bool) -> ChannelError {
    ChannelError {
        message: message.into(),
        hint: hint.into(),
        usage,
    }
}

/// [`channels_in`] for the global cloud (Microsoft Graph mail goes to `graph.microsoft.com`).
pub fn channels(
    s: &crate::config::Settings,
    json: bool,
    terminal_safe: fn(&str) -> String,
) -> Result<Vec<Box<dyn Notifier>>, ChannelError> {
    let cloud = crate::cloud::National::Global.cloud();
    channels_in(s, json, terminal_safe, &cloud, crate::clock::Clock::System)
}

/// The identity a graph_mail channel signs in with: a secret from the environment, a certificate
/// (its password from the environment), or the login stored by `hybrid-trust login`.
fn app_identity(
    g: crate::config::AppSignIn<'_>,
    who: &str,
) -> Result<crate::sts::AdminCredential, ChannelError> {
    use crate::sts::{AdminCredential, AssertionAlg};
    let client_id = || g.client_id.unwrap_or_default().to_string();
    if let Some(var) = &g.client_secret_env {
        let secret = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                channel_error(
                    format!("the variable {var} (client_secret_env of {who}) is not set"),
                    format!("export {var} with the sending app's client secret"),
                    true,
                )
            })?;
        return Ok(AdminCredential::Secret {
            client_id: client_id(),
            secret: SecretString::new(secret),
        });
    }
    if let Some(path) = g.client_cert {
        let pw_var = g.client_cert_password_env;
        let loaded = crate::cert::load_file(path, &mut || match &pw_var {
            None => Ok(None),
            Some(v) => Ok(std::env::var(v).ok().map(SecretString::new)),
        })
        .map_err(|e| {
            channel_error(
                format!("client_cert of {who}: {}", crate::error_chain(&e)),
                e.hint()
                    .unwrap_or("check client_cert and client_cert_password_env"),
                true,
            )
        })?;
        let key = loaded.key.ok_or_else(|| {
            channel_error(
                format!("client_cert {} of {who} has no private key", path.display()),
                "give the sending app's certificate with its private key (PFX, or PEM with the key)",
                true,
            )
        })?;
        return Ok(AdminCredential::Certificate {
            client_id: client_id(),
            cert: Box::new(loaded.leaf),
            key,
            alg: AssertionAlg::Rs256,
        });
    }
    let stored = crate::login::stored_credential(g.tenant).map_err(|e| {
        let usage = e.is_usage();
        channel_error(format!("{who}: {e}"), e.hint().unwrap_or_default(), usage)
    })?;
    stored.ok_or_else(|| {
        channel_error(
            format!("{who} has no identity to send with"),
            format!(
                "set client_id with client_secret_env or client_cert, or store a login: hybrid-trust login --tenant {} --client-id ID --client-secret-env VAR",
                g.tenant
            ),
            true,
        )
    })
}

/// The channels of the settings' `[reminders]`: each email channel with its password (from the
/// environment or the keyring), each Microsoft Graph mail channel with its identity and a token
/// provider in `cloud` (on `clock`'s running time), the webhooks on one HTTP client, and stdout
/// when configured or when nothing else is (on stderr when stdout carries JSON; `terminal_safe`
/// escapes it).
pub fn channels_in(
    s: &crate::config::Settings,
    json: bool,
    terminal_safe: fn(&str) -> String,
    cloud: &crate::cloud::Cloud,
    clock: crate::clock::Clock,
) -> Result<Vec<Box<dyn Notifier>>, ChannelError> {
    let mut out: Vec<Box<dyn Notifier>> = Vec::new();
    for g in &s.reminders.graph_mail {
        let cred = app_identity(
            g.sign_in(),
            &format!("the graph_mail channel from {}", g.from),
        )?;
        let http = HttpClient::for_cloud(cloud).map_err(|e| {
            let usage = matches!(e, crate::http::HttpError::Setting { .. });
            channel_error(e.to_string(), e.hint(), usage)
        })?;
        let tokens = crate::sts::TokenProvider::new(http.clone(), cloud.clone(), &g.tenant, cred)
            .with_clock(clock);
        out.push(Box::new(GraphMail {
            channel: g.clone(),
            graph_url: cloud.graph_url.clone(),
            scope: cloud.graph_scope(),
            tokens,
            http,
        }));
    }
    for e in &s.reminders.email {
        let password = match (&e.password_env, e.password_keyring, &e.username) {
            (Some(var), _, _) => Some(SecretString::new(std::env::var(var).map_err(|_| {
                channel_error(
                    format!("the SMTP password variable {var} (password_env) is not set"),
                    format!("export {var}, or use password_keyring"),
                    true,
                )
            })?)),
            (None, true, Some(user)) => {
                let store = crate::keyring::SecretStore::open()
                    .map_err(|e| channel_error(e.to_string(), e.hint(), false))?;
                let pw = store
                    .get(&format!("smtp:{user}"))
                    .map_err(|e| channel_error(e.to_string(), "unlock the keyring", false))?;
                Some(pw.ok_or_else(|| {
                    channel_error(
                        format!("no SMTP password for {user} in {}", store.describe()),
                        "store it with: hybrid-trust remind --remember-smtp-password --smtp-password-env VAR",
                        true,
                    )
                })?)
            }
            _ => None,
        };
        let oauth = match &e.oauth {
            None => None,
            Some(o) => {
                let shown = crate::secret::redact_url(&e.smtp_url);
                let cred =
                    app_identity(o.sign_in(), &format!("the email channel {shown} (oauth)"))?;
                let http = HttpClient::for_cloud(cloud).map_err(|e| {
                    let usage = matches!(e, crate::http::HttpError::Setting { .. });
                    channel_error(e.to_string(), e.hint(), usage)
                })?;
                Some(SmtpOAuth {
                    tokens: crate::sts::TokenProvider::new(http, cloud.clone(), &o.tenant, cred)
                        .with_clock(clock),
                    scope: cloud.exchange_scope(),
                })
            }
        };
        out.push(Box::new(Email {
            channel: e.clone(),
            password,
            oauth,
        }));
    }
    if !s.reminders.webhook.is_empty() {
        // One client for every webhook; they are not the cloud's hosts, so no cloud CA.
        let http = HttpClient::new(None).map_err(|e| {
            let usage = matches!(e, crate::http::HttpError::Setting { .. });
            channel_error(e.to_string(), e.hint(), usage)
        })?;
        for w in &s.reminders.webhook {
            out.push(Box::new(Webhook {
                channel: w.clone(),
                http: http.clone(),
            }));
        }
    }
    if s.reminders.stdout || out.is_empty() {
        out.push(Box::new(Stdout {
            to_stderr: json,
            terminal_safe,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_online_password_refusal_points_to_graph_mail() {
        let d = smtp_detail(
            "permanent error (550): 5.7.30 Basic authentication is not supported for Client Submission.",
        );
        assert!(d.contains("[[reminders.graph_mail]]"), "{d}");
        assert_eq!(
            smtp_detail("permanent error (550): 5.1.1 unknown"),
            "permanent error (550): 5.1.1 unknown"
        );
    }
}
