//! `verify --trust exchange`: a token for Exchange Online as the Exchange hybrid's dedicated
//! application, signed with the Auth Certificate (docs/protocol.md §5.1), and what it shows: the
//! `roles` granted, with a finding when `full_access_as_app` (what Exchange hybrid's EWS calls
//! need) is missing, and when the certificate is not the one the export says Exchange signs with.

use super::TokenFacts;
use serde::Serialize;

/// The app role Exchange hybrid's dedicated application holds on Exchange Online.
pub const FULL_ACCESS_AS_APP: &str = "full_access_as_app";

/// What to do when the role is missing.
pub const GRANT_HINT: &str = "grant the application full_access_as_app on Office 365 Exchange Online: run Microsoft's ConfigureExchangeHybridApplication.ps1 -FullyConfigureExchangeHybridApplication, or in the Entra admin center add the application permission full_access_as_app (Office 365 Exchange Online) and grant admin consent";

/// One thing found wrong, with its fix.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub severity: &'static str,
    pub message: String,
    pub fix: String,
}

/// What `verify --trust exchange` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeProven {
    pub tenant: String,
    pub trust: &'static str,
    pub app_id: String,
    pub thumbprint: crate::ids::Thumbprint,
    pub token_issued: bool,
    pub roles: Vec<String>,
    pub token: TokenFacts,
    pub findings: Vec<Finding>,
}

impl ExchangeProven {
    /// The report of a token issued to `app_id` with the certificate `thumbprint`; `current` is
    /// the export's current Auth Certificate when one was given.
    pub fn new(
        tenant: &str,
        app_id: &str,
        thumbprint: &crate::ids::Thumbprint,
        token: TokenFacts,
        current: Option<&str>,
    ) -> ExchangeProven {
        let mut findings = Vec::new();
        if !token.roles.iter().any(|r| r == FULL_ACCESS_AS_APP) {
            findings.push(Finding {
                severity: "error",
                message: format!(
                    "the token has no {FULL_ACCESS_AS_APP} role (roles: {}): Exchange hybrid's free/busy, MailTips and archive calls will be refused",
                    if token.roles.is_empty() {
                        "none".to_string()
                    } else {
                        token.roles.join(", ")
                    }
                ),
                fix: GRANT_HINT.to_string(),
            });
        }
        if let Some(c) = current
            && !c.eq_ignore_ascii_case(thumbprint)
        {
            findings.push(Finding {
                severity: "warning",
                message: format!(
                    "this certificate ({thumbprint}) is not the one the export says Exchange signs with ({c})"
                ),
                fix: "verify with the current Auth Certificate's PFX (Get-AuthConfig's CurrentCertificateThumbprint)".to_string(),
            });
        }
        ExchangeProven {
            tenant: tenant.to_string(),
            trust: "exchange",
            app_id: app_id.to_string(),
            thumbprint: thumbprint.clone(),
            token_issued: true,
            roles: token.roles.clone(),
            token,
            findings,
        }
    }

    /// The finding that fails the run (the role missing), if any.
    pub fn error(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.severity == "error")
    }

    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "token issued to the Exchange hybrid application {} in {} with certificate {}\n  roles: {}\n",
            self.app_id,
            self.tenant,
            self.thumbprint,
            if self.roles.is_empty() {
                "(none)".to_string()
            } else {
                self.roles.join(", ")
            }
        );
        for f in &self.findings {
            let _ = writeln!(s, "  {}: {}\n    fix: {}", f.severity, f.message, f.fix);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(roles: &[&str]) -> TokenFacts {
        TokenFacts {
            appid: Some("a".into()),
            appidacr: Some("2".into()),
            aud: Some("https://outlook.office365.com".into()),
            exp: None,
            iss: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            tid: None,
        }
    }

    #[test]
    fn a_token_without_full_access_as_app_is_a_finding_with_the_fix() {
        let ok = ExchangeProven::new(
            "t",
            "a",
            &"AB".into(),
            facts(&["full_access_as_app"]),
            Some("ab".repeat(20).as_str()),
        );
        assert!(ok.findings.is_empty() && ok.error().is_none());
        let bad = ExchangeProven::new("t", "a", &"AB".into(), facts(&[]), None);
        let e = bad.error().unwrap();
        assert!(
            e.message
                .contains("no full_access_as_app role (roles: none)")
        );
        assert!(e.fix.contains("-FullyConfigureExchangeHybridApplication"));
        let other = ExchangeProven::new(
            "t",
            "a",
            &"AB".into(),
            facts(&["full_access_as_app"]),
            Some("CD"),
        );
        assert_eq!(other.findings.len(), 1);
        assert!(other.error().is_none());
    }
}
