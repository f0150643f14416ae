//! Facts about Microsoft's first-party applications that this trust involves, in one place with
//! their sources (docs/protocol.md §4, §6): which service principal holds the on-prem key, which
//! Teams-era applications Microsoft also asks for it, and which one must never get it.

/// Skype for Business Online: the service principal whose `Verify` key credential lets Entra
/// check the assertions the Front Ends sign with the OAuthTokenIssuer certificate, and the
/// `-ServiceName` of `Set-CsOAuthConfiguration`. Source: SFBDOCS
/// `deploy/integrate-with-exchange-server/oauth-with-online-and-on-premises.md`; Microsoft says
/// this app "will be deprecated in near future" (same page, 2025-06-26).
pub const SFB_APP_ID: &str = "00000004-0000-0ff1-ce00-000000000000";

/// Teams Calendar Scheduler Service, a Teams-era target for the same certificate (same page,
/// 2025-06-26).
pub const TEAMS_CALENDAR_APP_ID: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";

/// Cloud Voicemail, a Teams-era target for the same certificate (same page, 2025-06-26).
pub const CLOUD_VOICEMAIL_APP_ID: &str = "db7de2b5-2149-435e-8043-e080dd50afae";

/// The applications the on-prem certificate may be uploaded to.
pub const KNOWN_TARGETS: &[&str] = &[SFB_APP_ID, TEAMS_CALENDAR_APP_ID, CLOUD_VOICEMAIL_APP_ID];

/// Office 365 Exchange Online: the on-prem `microsoft.exchange` partner application's identifier,
/// and never a target. Exchange hybrid moved off this shared first-party principal (Exchange Team
/// blog 2025-04-18, "Exchange Server Security Changes for Hybrid Deployments"; CVE-2025-53786),
/// and EWS calls through it are blocked since October 2025: a key on it lets whoever holds the
/// private key act as Exchange Online.
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// Why an application is refused as a target.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("refusing to add a key to Exchange Online's shared service principal ({EXCHANGE_APP_ID})")]
pub struct RefusedTarget;

impl RefusedTarget {
    pub fn hint(&self) -> &'static str {
        "Exchange hybrid moved to its own application (April 2025) and EWS through the shared principal is blocked since October 2025; Skype for Business Server needs the key on 00000004-0000-0ff1-ce00-000000000000 only"
    }
}

/// Refuses the applications that must never hold the on-prem key.
pub fn check_target(app_id: &str) -> Result<(), RefusedTarget> {
    if app_id.eq_ignore_ascii_case(EXCHANGE_APP_ID) {
        Err(RefusedTarget)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_is_refused_and_the_known_targets_are_not() {
        assert_eq!(check_target(EXCHANGE_APP_ID), Err(RefusedTarget));
        assert_eq!(
            check_target(&EXCHANGE_APP_ID.to_ascii_uppercase()),
            Err(RefusedTarget)
        );
        for t in KNOWN_TARGETS {
            assert_eq!(check_target(t), Ok(()));
        }
    }
}
