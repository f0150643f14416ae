//! The Microsoft Graph mail channel (`[[reminders.graph_mail]]`): sends a digest as the mailbox
//! `from` with `POST /users/{from}/sendMail`, signed in as an app that holds `Mail.Send`
//! (application permission), because Exchange Online turns SMTP AUTH with a password off
//! (docs/protocol.md §4.9, MC786329).
//!
//! The message goes as MIME (Graph's documented form: the base64 of the whole message with
//! `Content-Type: text/plain`, <https://learn.microsoft.com/graph/api/user-sendmail>), a
//! `multipart/alternative` with the plain text first and the HTML digest second, so a reader
//! without HTML still gets every fact. Graph answers 202 Accepted. Its refusals are mapped to
//! what to do: `ErrorAccessDenied` (no `Mail.Send`, or an access policy that leaves the mailbox
//! out), `MailboxNotEnabledForRESTAPI` (the user has no Exchange Online mailbox),
//! `ErrorInvalidUser` (no such user).

use super::{NotifyError, SendFuture};
use crate::config::GraphMailChannel;
use crate::http::HttpClient;
use crate::remind::Digest;
use crate::sts::TokenProvider;
use base64::Engine as _;

pub struct GraphMail {
    pub channel: GraphMailChannel,
    pub graph_url: String,
    pub scope: String,
    pub tokens: TokenProvider,
    pub http: HttpClient,
}

/// The digest as a MIME message (the same message the SMTP channel sends: [`super::message`]).
pub fn mime(from: &str, to: &[String], d: &Digest) -> Result<Vec<u8>, String> {
    Ok(super::message(from, to, d)?.formatted())
}

/// What to do about a Graph refusal of `sendMail`, by its error code.
fn explain(code: &str, from: &str, tenant: &str) -> &'static str {
    let _ = (from, tenant);
    match code {
        "ErrorAccessDenied" | "Authorization_RequestDenied" => {
            "grant the app the Mail.Send application permission (admin consent) and make sure its application access policy or RBAC scope includes the sender mailbox (README, \"Reminders through Microsoft Graph\")"
        }
        "MailboxNotEnabledForRESTAPI" | "MailboxNotSupportedForRESTAPI" => {
            "the sender has no Exchange Online mailbox: pick a licensed mailbox (a shared mailbox works) as from"
        }
        "ErrorInvalidUser" | "Request_ResourceNotFound" | "ResourceNotFound" => {
            "from must be a user or shared mailbox of the sending tenant (its UPN or primary SMTP address)"
        }
        "InvalidAuthenticationToken" => "check the channel's tenant and client_id",
        _ => "check the channel's from, tenant and app permissions",
    }
}

impl GraphMail {
    fn fail(&self, detail: String) -> NotifyError {
        NotifyError::GraphMail {
            from: self.channel.from.clone(),
            detail,
        }
    }
}

impl super::Notifier for GraphMail {
    fn id(&self) -> String {
        format!("graph-mail:{}", self.channel.from.to_ascii_lowercase())
    }

    fn send<'a>(&'a self, msg: &'a Digest, recipients: &'a [String]) -> SendFuture<'a> {
        Box::pin(async move {
            let to = super::addressees(&self.channel.to, recipients);
            let body = mime(&self.channel.from, &to, msg).map_err(|e| self.fail(e))?;
            let body = base64::engine::general_purpose::STANDARD.encode(body);
            let token = self.tokens.token(&self.scope).await.map_err(|e| {
                self.fail(super::with_hint(
                    format!("no token for the sending app: {}", crate::error_chain(&e)),
                    &e.hint(),
                ))
            })?;
            let mut url = url::Url::parse(&self.graph_url).map_err(|e| self.fail(e.to_string()))?;
            url.path_segments_mut()
                .map_err(|_| self.fail("graph_url cannot take a path".into()))?
                .pop_if_empty()
                .extend(["v1.0", "users", &self.channel.from, "sendMail"]);
            let resp = self
                .http
                .send(
                    |c| {
                        c.post(url.clone())
                            .bearer_auth(token.expose())
                            .header("content-type", "text/plain")
                            .body(body.clone())
                    },
                    false,
                )
                .await
                .map_err(|e| self.fail(crate::error_chain(&e)))?;
            if resp.status == 202 || resp.is_success() {
                return Ok(());
            }
            let err: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            let code = err["error"]["code"].as_str().unwrap_or("");
            let message = err["error"]["message"].as_str().unwrap_or("");
            let shown = crate::terminal::display_safe(&format!("{code}: {message}")).into_owned();
            Err(self.fail(format!(
                "HTTP {} {shown}; {}",
                resp.status,
                explain(code, &self.channel.from, &self.channel.tenant)
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remind::{Due, Kind};

    fn digest() -> Digest {
        Digest::new(vec![Due {
            tenant: "contoso.com".into(),
            tenant_id: None,
            kind: Kind::Expiry,
            credential: "a/b/c".into(),
            app_id: "00000004-0000-0ff1-ce00-000000000000".into(),
            thumbprint_sha1: "AB".into(),
            ends: None,
            days_left: Some(10),
            threshold_days: 14,
            covers: vec![14],
            detail: "the key".into(),
            state: "due".into(),
            action: "renew".into(),
            roll: None,
        }])
    }

    #[test]
    fn the_message_carries_text_and_html_alternatives() {
        let m = mime(
            "noreply@contoso.com",
            &["a@contoso.com".to_string()],
            &digest(),
        )
        .unwrap();
        let s = String::from_utf8_lossy(&m);
        assert!(s.contains("multipart/alternative"), "{s}");
        let (plain, html) = (
            s.find("Content-Type: text/plain").unwrap(),
            s.find("Content-Type: text/html").unwrap(),
        );
        assert!(plain < html, "plain text first, HTML preferred last");
        assert!(s.contains("To: a@contoso.com"));
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert!(explain("ErrorAccessDenied", "f", "t").contains("Mail.Send"));
        assert!(
            explain("MailboxNotEnabledForRESTAPI", "f", "t").contains("no Exchange Online mailbox")
        );
        assert!(explain("ErrorInvalidUser", "f", "t").contains("from must be"));
    }
}
