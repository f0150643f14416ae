//! The TOML settings file (docs/contract.md): reminder thresholds and channels, renewal policy.
//! Unknown keys are refused (a typo must not silently disable a reminder). No secret is ever in
//! the file: an SMTP password comes from `password_env` or the keyring.

use crate::secret::redact_url;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub reminders: Reminders,
    pub renewal: Renewal,
    pub advisories: AdvisorySettings,
    pub state: StateSettings,
}

/// `[state]`: where a team keeps its shared state (`url = "postgres://…"`, as `--state-url`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    pub url: Option<String>,
}

/// `[advisories]`: Microsoft's dated changes ([`crate::advisories`]) the admin has dealt with;
/// they are no longer shown or reminded. Ids must be known (a typo must not hide nothing).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdvisorySettings {
    pub acknowledged: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Reminders {
    pub thresholds_days: Vec<i64>,
    pub email: Vec<EmailChannel>,
    pub webhook: Vec<WebhookChannel>,
    /// Microsoft Graph `sendMail` as an app with `Mail.Send` (`[[reminders.graph_mail]]`).
    pub graph_mail: Vec<GraphMailChannel>,
    /// Also print due reminders on stdout (for cron mail).
    pub stdout: bool,
}

impl Default for Reminders {
    fn default() -> Self {
        Reminders {
            thresholds_days: vec![60, 30, 14, 7, 3, 1],
            email: Vec::new(),
            webhook: Vec::new(),
            graph_mail: Vec::new(),
            stdout: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=starttls`, or `smtps://host:port`.
    pub smtp_url: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Read the password from the OS keyring entry `smtp:<username>`.
    #[serde(default)]
    pub password_keyring: bool,
    /// Extra CA (PEM) to trust for the SMTP server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The longest one message may take, from connecting to the server's last answer, in whole
    /// seconds (1 to 3600; default [`EmailChannel::DEFAULT_TIMEOUT_SECS`]). A server that
    /// trickles its answers cannot hold a run past it: the message is a failure, retried on the
    /// next run.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// SMTP AUTH with OAuth (SASL `XOAUTH2`) instead of a password: the app signs in to
    /// `tenant` and presents an Exchange Online token for the mailbox `username` (default:
    /// `from`). What Exchange Online still accepts once password SMTP AUTH is off.
    #[serde(default)]
    pub oauth: Option<SmtpOAuth>,
}

impl EmailChannel {
    pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

    /// The deadline of one message (`timeout_secs`, or the default).
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(Self::DEFAULT_TIMEOUT_SECS))
    }
}

/// `oauth = { tenant, client_id, client_secret_env | client_cert [, client_cert_password_env] }`
/// of an email channel: the app that gets the token for SMTP (`SMTP.SendAsApp` on Office 365
/// Exchange Online; README, "SMTP with OAuth").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpOAuth {
    pub tenant: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_password_env: Option<String>,
}

/// How an app signs in to send mail, whichever channel holds the settings: a secret from the
/// environment, a certificate, or (with neither) the login stored for `tenant`.
#[derive(Debug, Clone, Copy)]
pub struct AppSignIn<'a> {
    pub tenant: &'a str,
    pub client_id: Option<&'a str>,
    pub client_secret_env: Option<&'a str>,
    pub client_cert: Option<&'a std::path::Path>,
    pub client_cert_password_env: Option<&'a str>,
}

impl SmtpOAuth {
    pub fn sign_in(&self) -> AppSignIn<'_> {
        AppSignIn {
            tenant: &self.tenant,
            client_id: self.client_id.as_deref(),
            client_secret_env: self.client_secret_env.as_deref(),
            client_cert: self.client_cert.as_deref(),
            client_cert_password_env: self.client_cert_password_env.as_deref(),
        }
    }
}

impl GraphMailChannel {
    pub fn sign_in(&self) -> AppSignIn<'_> {
        AppSignIn {
            tenant: &self.tenant,
            client_id: self.client_id.as_deref(),
            client_secret_env: self.client_secret_env.as_deref(),
            client_cert: self.client_cert.as_deref(),
            client_cert_password_env: self.client_cert_password_env.as_deref(),
        }
    }
}

impl AppSignIn<'_> {
    /// The same checks for every channel that signs in as an app; `who` names the channel.
    fn validate(&self, who: &str) -> Result<(), String> {
        if crate::tenant::TenantRef::parse(self.tenant).is_err() {
            return Err(format!(
                "{who} needs tenant = the sender's tenant id or domain, not {:?}",
                self.tenant
            ));
        }
        if self.client_secret_env.is_some() && self.client_cert.is_some() {
            return Err(format!(
                "{who} has both client_secret_env and client_cert: keep one"
            ));
        }
        if (self.client_secret_env.is_some() || self.client_cert.is_some())
            && self
                .client_id
                .is_none_or(|c| crate::ids::AppId::parse(c).is_none())
        {
            return Err(format!(
                "{who} needs client_id = the sending app's application (client) id, a GUID"
            ));
        }
        if self.client_cert_password_env.is_some() && self.client_cert.is_none() {
            return Err(format!(
                "{who} has client_cert_password_env without client_cert"
            ));
        }
        Ok(())
    }
}

/// `[[reminders.graph_mail]]` (docs/contract.md): sends as `from` (a mailbox in the sender's own
/// tenant) with `POST /users/{from}/sendMail`, signed in as the app `client_id` of `tenant` with
/// a secret from `client_secret_env`, a certificate `client_cert` (its password from
/// `client_cert_password_env`), or, with neither, the login stored by `hybrid-trust login`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GraphMailChannel {
    pub from: String,
    pub to: Vec<String>,
    /// The sender's tenant (id or verified domain).
    pub tenant: String,
    /// The app that sends; with a stored login it may be left out.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_password_env: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Teams,
    Slack,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Renewal {
    pub horizon_days: i64,
}

impl Default for Renewal {
    fn default() -> Self {
        Renewal { horizon_days: 30 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the settings file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Settings {
    /// Reads `path`; a missing file at the default location means the defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Settings, ConfigError> {
        let read =
            crate::paths::read_limited(path, crate::paths::MAX_SETTINGS_FILE, "a settings file")
                .and_then(|b| {
                    String::from_utf8(b).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")
                    })
                });
        let text = match read {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Settings::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Settings::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses and validates a settings document (TOML); the reason when it is not valid.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let s: Settings = toml::from_str(text).map_err(|e| e.message().to_string())?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        let r = &self.reminders;
        if r.thresholds_days.is_empty() || r.thresholds_days.iter().any(|d| *d < 0 || *d > 3650) {
            return Err("reminders.thresholds_days must list days between 0 and 3650".into());
        }
        for e in &r.email {
            let shown = redact_url(&e.smtp_url);
            let u = url::Url::parse(&e.smtp_url)
                .map_err(|_| format!("smtp_url {shown:?} is not a URL"))?;
            if !matches!(u.scheme(), "smtp" | "smtps") || u.host_str().is_none() {
                return Err(format!(
                    "smtp_url {shown:?} must be smtp://host:port or smtps://host:port"
                ));
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err("put no credentials in smtp_url: use username and password_env".into());
            }
            // One tls value, one of two: the check below and the transport must read the same.
            let tls: Vec<String> = u
                .query_pairs()
                .filter(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned())
                .collect();
            if tls.len() > 1 || tls.first().is_some_and(|v| v != "starttls" && v != "none") {
                return Err(format!(
                    "smtp_url {shown:?} may have one tls=starttls or tls=none, no other"
                ));
            }
            if e.to.is_empty() {
                return Err("an email channel needs from and at least one to address".into());
            }
            for (key, a) in std::iter::once(("from", &e.from)).chain(e.to.iter().map(|t| ("to", t)))
            {
                crate::mailbox::mailbox(a).map_err(|why| {
                    format!("the email channel {shown} has {key} {a:?}: {why}; give a plain address such as uc-admins@contoso.com")
                })?;
            }
            if e.timeout_secs.is_some_and(|t| !(1..=3600).contains(&t)) {
                return Err(format!(
                    "the email channel {shown} has timeout_secs outside 1 to 3600"
                ));
            }
            let tls_on = u.scheme() == "smtps" || tls.first().is_some_and(|v| v == "starttls");
            if e.oauth.is_none()
                && !tls_on
                && (e.password_env.is_some() || e.password_keyring || e.username.is_some())
            {
                // Even on loopback (docs/contract.md): AUTH PLAIN over plain text gives the password to
                // anything on the path, and a local relay is one hop of many.
                return Err(format!(
                    "the email channel {shown} would send its password in clear: use smtps://host:465 or smtp://host:587?tls=starttls"
                ));
            }
            if let Some(o) = &e.oauth {
                let who = format!("the email channel {shown} (oauth)");
                if e.password_env.is_some() || e.password_keyring {
                    return Err(format!(
                        "{who} also has a password (password_env or password_keyring): keep one"
                    ));
                }
                if u.scheme() == "smtp" && tls.first().is_none_or(|v| v != "starttls") {
                    return Err(format!(
                        "{who} would send its token in clear: use smtps:// or ?tls=starttls"
                    ));
                }
                o.sign_in().validate(&who)?;
            }
        }
        for w in &r.webhook {
            let shown = redact_url(&w.url);
            let u = url::Url::parse(&w.url)
                .map_err(|_| format!("webhook url {shown:?} is not a URL"))?;
            // Reminders say which tenant lapses when: not for cleartext beyond this machine.
            let http_ok = u.scheme() == "http" && crate::cloud::is_loopback(&u);
            if (u.scheme() != "https" && !http_ok) || u.host_str().is_none() {
                return Err(format!(
                    "webhook url {shown:?} must be https (plain http only on loopback: 127.0.0.1, ::1, localhost)"
                ));
            }
        }
        for g in &r.graph_mail {
            if !is_address(&g.from) {
                return Err(format!(
                    "a graph_mail channel needs from = the sender's mailbox (user@domain), not {:?}",
                    g.from
                ));
            }
            if g.to.is_empty() || g.to.iter().any(|t| !is_address(t)) {
                return Err(format!(
                    "the graph_mail channel from {} needs to = [\"someone@domain\", ...]",
                    g.from
                ));
            }
            g.sign_in()
                .validate(&format!("the graph_mail channel from {}", g.from))?;
        }
        for id in &self.advisories.acknowledged {
            if crate::advisories::find(id).is_none() {
                let known: Vec<&str> = crate::advisories::ADVISORIES.iter().map(|a| a.id).collect();
                return Err(format!(
                    "advisories.acknowledged names an unknown advisory {id:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
        if self.renewal.horizon_days < 1 || self.renewal.horizon_days > 300 {
            return Err("renewal.horizon_days must be between 1 and 300".into());
        }
        Ok(())
    }
}

/// A plain `local@domain` address (no display name, no spaces) that the mail channels take
/// ([`crate::mailbox::mailbox`]).
fn is_address(a: &str) -> bool {
    let mut parts = a.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None)
        if !l.is_empty() && d.contains('.') && !a.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>'))
        && crate::mailbox::mailbox(a).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_parses() {
        let t = r#"
[reminders]
thresholds_days = [60, 30, 14, 7, 3, 1]
[[reminders.email]]
smtp_url = "smtp://127.0.0.1:2525?tls=starttls"
from = "hybrid-trust@contoso.com"
to = ["uc-admins@contoso.com"]
username = "bot"
password_env = "SMTP_PASSWORD"
[[reminders.webhook]]
url = "https://example.invalid/hook"
format = "teams"
"#;
        let s: Settings = toml::from_str(t).unwrap();
        s.validate().unwrap();
        assert_eq!(
            s.reminders.email[0].password_env.as_deref(),
            Some("SMTP_PASSWORD")
        );
        assert_eq!(s.reminders.webhook[0].format, WebhookFormat::Teams);
        assert_eq!(s.renewal.horizon_days, 30);
    }

    #[test]
    fn graph_mail_channels_and_acknowledged_advisories_parse() {
        let s = Settings::parse(
            r#"
[advisories]
acknowledged = ["ews-retired"]
[[reminders.graph_mail]]
from = "noreply@contoso.com"
to = ["uc-admins@contoso.com"]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_cert = "/etc/hybrid-trust/mailer.pfx"
client_cert_password_env = "MAILER_PFX_PASSWORD"
[[reminders.graph_mail]]
from = "noreply@contoso.com"
to = ["uc-admins@contoso.com"]
tenant = "contoso.onmicrosoft.com"
"#,
        )
        .unwrap();
        assert_eq!(s.reminders.graph_mail.len(), 2);
        assert_eq!(s.advisories.acknowledged, vec!["ews-retired".to_string()]);
        let e = Settings::parse("[advisories]\nacknowledged = [\"nope\"]").unwrap_err();
        assert!(
            e.contains("unknown advisory \"nope\"") && e.contains("ews-retired"),
            "{e}"
        );
    }

    /// Issue 24, item 5: a password (from the environment or the keyring, or a username that
    /// needs one) over SMTP without TLS is refused, on loopback too; with TLS it is accepted.
    #[test]
    fn an_smtp_password_without_tls_is_refused_even_on_loopback() {
        let channel = |url: &str, auth: &str| {
            format!(
                "[[reminders.email]]\nsmtp_url = \"{url}\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\n{auth}"
            )
        };
        for url in [
            "smtp://127.0.0.1:2526",
            "smtp://localhost:25",
            "smtp://mail.contoso.com:25?tls=none",
        ] {
            for auth in [
                "username = \"bot\"\npassword_env = \"SMTP_PASSWORD\"\n",
                "username = \"bot\"\npassword_keyring = true\n",
                "password_env = \"SMTP_PASSWORD\"\n",
                "username = \"bot\"\n",
            ] {
                let e = Settings::parse(&channel(url, auth)).unwrap_err();
                assert!(
                    e.contains("would send its password in clear")
                        && e.contains("smtps://")
                        && e.contains("?tls=starttls"),
                    "{url} {auth}: {e}"
                );
            }
            // No password at all: plain SMTP stays possible (a relay that takes mail unsigned).
            Settings::parse(&channel(url, "")).unwrap();
        }
        for url in [
            "smtps://127.0.0.1:2526",
            "smtp://127.0.0.1:2526?tls=starttls",
        ] {
            Settings::parse(&channel(url, "username = \"bot\"\npassword_env = \"P\"\n")).unwrap();
        }
    }

    /// Issue 28, item 4: an address no mail channel can deliver to is refused where it is
    /// recorded, with the channels' own parser.
    #[test]
    fn undeliverable_addresses_are_refused_in_the_settings() {
        let bad = r#""<script>alert(9)</script>"@fabrikam.com"#;
        let email = format!(
            "[[reminders.email]]\nsmtp_url = \"smtps://mail.contoso.com\"\nfrom = \"a@contoso.com\"\nto = [{bad:?}]\n"
        );
        let e = Settings::parse(&email).unwrap_err();
        assert!(
            e.contains("<script>") && e.contains("give a plain address such as"),
            "{e}"
        );
        let graph = format!(
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [{bad:?}]\ntenant = \"contoso.com\"\n"
        );
        assert!(Settings::parse(&graph).is_err());
    }

    #[test]
    fn an_email_timeout_is_between_1_and_3600_seconds() {
        let with = |t: &str| {
            Settings::parse(&format!(
                "[[reminders.email]]\nsmtp_url = \"smtps://mail.contoso.com\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\n{t}"
            ))
        };
        assert_eq!(
            with("").unwrap().reminders.email[0].timeout(),
            std::time::Duration::from_secs(120)
        );
        assert_eq!(
            with("timeout_secs = 5").unwrap().reminders.email[0].timeout(),
            std::time::Duration::from_secs(5)
        );
        for bad in ["timeout_secs = 0", "timeout_secs = 3601"] {
            assert!(with(bad).unwrap_err().contains("timeout_secs"), "{bad}");
        }
    }

    #[test]
    fn webhooks_are_https_or_loopback() {
        for good in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/x",
            "http://[::1]:8080/x",
            "http://LOCALHOST/x",
        ] {
            Settings::parse(&format!("[[reminders.webhook]]\nurl = \"{good}\"")).unwrap();
        }
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        for bad in [
            "[reminders]\nthreshold_days = [1]",
            "[reminders]\nthresholds_days = []",
            "[[reminders.email]]\nsmtp_url = \"http://x\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "[[reminders.email]]\nsmtp_url = \"smtp://u:p@x:25\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "[[reminders.email]]\nsmtp_url = \"smtp://x:25?tls=none&tls=starttls\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "[[reminders.email]]\nsmtp_url = \"smtp://x:25?tls=STARTTLS\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "[[reminders.email]]\nsmtp_url = \"smtp://x:587?tls=none\"\nfrom = \"a@b\"\nto = [\"c@d\"]\noauth = { tenant = \"contoso.com\" }",
            "[[reminders.email]]\nsmtp_url = \"smtps://x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\npassword_env = \"P\"\noauth = { tenant = \"contoso.com\" }",
            "[[reminders.email]]\nsmtp_url = \"smtps://x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\noauth = { tenant = \"contoso.com\", client_secret_env = \"S\" }",
            "[[reminders.email]]\nsmtp_url = \"smtps://x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\noauth = { tenant = \"contoso.com\", password = \"inline\" }",
            "[[reminders.webhook]]\nurl = \"ftp://x\"",
            "[[reminders.webhook]]\nurl = \"http://hooks.example.com/x\"",
            "[[reminders.webhook]]\nurl = \"http://localhost.example.com/x\"",
            "[[reminders.webhook]]\nurl = \"https://x\"\nformat = \"discord\"",
            "[[reminders.graph_mail]]\nto = [\"a@b.com\"]\ntenant = \"contoso.com\"",
            "[[reminders.graph_mail]]\nfrom = \"nobody\"\nto = [\"a@b.com\"]\ntenant = \"contoso.com\"",
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = []\ntenant = \"contoso.com\"",
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@b.com\"]",
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@b.com\"]\ntenant = \"contoso.com\"\nclient_secret_env = \"X\"",
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@b.com\"]\ntenant = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\nclient_secret_env = \"X\"\nclient_cert = \"a.pfx\"",
            "[[reminders.graph_mail]]\nfrom = \"n@contoso.com\"\nto = [\"a@b.com\"]\ntenant = \"contoso.com\"\nclient_secret = \"inline\"",
            "[advisories]\nacknowledged = [\"ews-gone\"]",
        ] {
            let r: Result<Settings, _> = toml::from_str(bad);
            assert!(r.is_err() || r.unwrap().validate().is_err(), "{bad}");
        }
    }
}
