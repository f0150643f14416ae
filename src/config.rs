//! The TOML settings file (CONTRACT.md): reminder thresholds and channels, renewal policy.
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
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Reminders {
    pub thresholds_days: Vec<i64>,
    pub email: Vec<EmailChannel>,
    pub webhook: Vec<WebhookChannel>,
    /// Also print due reminders on stdout (for cron mail).
    pub stdout: bool,
}

impl Default for Reminders {
    fn default() -> Self {
        Reminders {
            thresholds_days: vec![60, 30, 14, 7, 3, 1],
            email: Vec::new(),
            webhook: Vec::new(),
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
            if e.to.is_empty() || !e.from.contains('@') || e.to.iter().any(|t| !t.contains('@')) {
                return Err("an email channel needs from and at least one to address".into());
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
        if self.renewal.horizon_days < 1 || self.renewal.horizon_days > 300 {
            return Err("renewal.horizon_days must be between 1 and 300".into());
        }
        Ok(())
    }
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
smtp_url = "smtp://127.0.0.1:2525"
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
            "[[reminders.webhook]]\nurl = \"ftp://x\"",
            "[[reminders.webhook]]\nurl = \"http://hooks.example.com/x\"",
            "[[reminders.webhook]]\nurl = \"http://localhost.example.com/x\"",
            "[[reminders.webhook]]\nurl = \"https://x\"\nformat = \"discord\"",
        ] {
            let r: Result<Settings, _> = toml::from_str(bad);
            assert!(r.is_err() || r.unwrap().validate().is_err(), "{bad}");
        }
    }
}
