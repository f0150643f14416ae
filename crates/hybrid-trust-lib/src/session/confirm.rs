//! Confirming a roll (issue 16): the record that the Front Ends now sign with the new
//! certificate, from the admin's word after the EffectiveDate, or from saved
//! `Get-CsCertificate -Type OAuthTokenIssuer` output (the `--current DIR` convention of
//! `onprem script`) that shows the new certificate current. The ledger records which, and the
//! audit log gets a line. No network: only the ledger changes; the next `renew` retires the old
//! key.
//!
//! Nothing else confirms a roll (issue 24): a token from the new certificate's PFX on the admin's
//! machine proves what Entra accepts, not what the Front Ends sign with.
//!
//! Dates in saved output: `Get-CsCertificate | Format-List` prints a `DateTime` in the Front
//! End's local time with no offset, and the zone is not in the file. Such a date counts as past
//! only when it is past in every time zone (the local time plus 14 hours, UTC+14 being the
//! furthest zone ahead), and never earlier than the EffectiveDate the ledger recorded when the
//! roll script was written. A date with an offset (the roll script prints
//! `.ToUniversalTime().ToString('o')`) is taken as it says.

use super::{LEDGER_TIMEOUT, SessionError};
use crate::audit::{AuditEntry, AuditLog};
use crate::ledger::{ConfirmedBy, LedgerStore, RollConfirmation};
use crate::onprem::current::Current;
use chrono::{DateTime, NaiveDateTime, Utc};

/// What shows that the Front Ends sign with the new certificate.
pub enum Evidence<'a> {
    /// The admin says so (`renew --confirm-roll`).
    Admin,
    /// Saved `Get-CsCertificate` output.
    Output(&'a Current),
}

/// Why saved output does not show the roll done.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the saved output has no Get-CsCertificate.txt")]
    NoCertificates,
    #[error(
        "Get-CsCertificate.txt shows {shown} as the OAuthTokenIssuer certificate, not {wanted}"
    )]
    OtherThumbprint { shown: String, wanted: String },
    #[error("Get-CsCertificate.txt shows {wanted} effective only from {effective}")]
    NotYetEffective { wanted: String, effective: String },
}

/// How far ahead of UTC a local time can be: UTC+14 (Line Islands). A local time without an
/// offset is past everywhere once it is past there.
pub const LOCAL_TIME_MARGIN: chrono::TimeDelta = chrono::TimeDelta::hours(14);

/// Reads `EffectiveDate` as Windows prints it in the common formats (ISO 8601 with an offset, as
/// the roll script prints it; en-US `M/d/yyyy h:mm:ss tt`, ISO without an offset,
/// `dd.MM.yyyy HH:mm:ss`, `dd/MM/yyyy HH:mm:ss`, which are local times) as the latest UTC instant
/// it can stand for, and whether it was a local time. `None` when unknown: then the ledger's
/// EffectiveDate decides.
fn parse_effective(s: &str) -> Option<(DateTime<Utc>, bool)> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some((d.with_timezone(&Utc), false));
    }
    [
        "%m/%d/%Y %I:%M:%S %p",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%d.%m.%Y %H:%M:%S",
        "%d/%m/%Y %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .and_then(|n| n.and_utc().checked_add_signed(LOCAL_TIME_MARGIN))
    .map(|d| (d, true))
}

/// Whether saved output shows `wanted` as the current OAuthTokenIssuer certificate at `now`.
pub fn shows_current(
    c: &Current,
    wanted: &str,
    effective: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), EvidenceError> {
    let certs = c
        .certificates
        .as_ref()
        .ok_or(EvidenceError::NoCertificates)?;
    let issuer: Vec<_> = certs
        .iter()
        .filter(|o| {
            o.get("Use")
                .is_none_or(|u| u.eq_ignore_ascii_case("OAuthTokenIssuer"))
        })
        .collect();
    let Some(o) = issuer.iter().find(|o| {
        o.get("Thumbprint")
            .is_some_and(|t| t.eq_ignore_ascii_case(wanted))
    }) else {
        let shown = issuer
            .first()
            .and_then(|o| o.get("Thumbprint"))
            .unwrap_or("no certificate")
            .to_string();
        return Err(EvidenceError::OtherThumbprint {
            shown,
            wanted: wanted.to_string(),
        });
    };
    // The later of what the output shows and what the ledger recorded: the roll script set
    // the ledger's date, and a date read from output can only make it later.
    let shown = o.get("EffectiveDate");
    let read = shown.and_then(parse_effective);
    let from = read.map(|(d, _)| d).into_iter().chain(effective).max();
    match from {
        Some(f) if f > now => Err(EvidenceError::NotYetEffective {
            wanted: wanted.to_string(),
            effective: match (shown, read) {
                (Some(shown), Some((d, true))) if d == f => format!(
                    "{shown} (a local time without its zone: past in every time zone at {})",
                    f.format("%Y-%m-%d %H:%M UTC")
                ),
                _ => f.format("%Y-%m-%d %H:%M UTC").to_string(),
            },
        }),
        _ => Ok(()),
    }
}

/// Confirms the pending roll of `tenant` on `evidence`; records it in the ledger and the audit
/// log. Refused (nothing changes) when no roll is pending, when the admin or `verify` confirms
/// before the EffectiveDate, or when the output does not show the new certificate as current.
pub fn confirm_roll(
    store: &LedgerStore,
    audit: &AuditLog,
    tenant: &str,
    evidence: Evidence<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<RollConfirmation, SessionError> {
    store.update(tenant, None, LEDGER_TIMEOUT, |l| {
        let rec = l
            .tenant_mut(tenant)
            .ok_or_else(|| SessionError::Usage(format!("{tenant} is not in the ledger")))?;
        let domain = rec.domain.clone();
        let pending = rec.next_cert.as_ref().map(|n| n.thumbprint_sha1.clone());
        let by = match (&evidence, &pending) {
            (_, None) => ConfirmedBy::Admin,
            (Evidence::Admin, _) => ConfirmedBy::Admin,
            (Evidence::Output(c), Some(new)) => {
                shows_current(c, new, rec.roll_effective, now)
                    .map_err(|e| SessionError::Usage(format!("{domain}: {e}")))?;
                ConfirmedBy::OnpremOutput
            }
        };
        let c = rec
            .confirm_roll(by, now)
            .map_err(|e| SessionError::Usage(format!("{e}; {}", e.hint(&domain))))?;
        audit
            .append(&AuditEntry {
                ts: now,
                actor,
                action: "confirm-roll",
                tenant: &domain,
                app_id: "",
                service_principal_id: "",
                before: None,
                after: None,
                before_names: None,
                after_names: None,
                note: &format!(
                    "{} is current (confirmed by {}); previous {}",
                    c.thumbprint_sha1,
                    by.name(),
                    c.previous_thumbprint_sha1.as_deref().unwrap_or("-")
                ),
            })
            .map_err(|e| SessionError::Renewal(e.to_string()))?;
        Ok(c)
    })?
}

/// `renew --confirm-roll [--current DIR]`: the admin's word, or the saved output in `dir`, as
/// the local user.
pub fn confirm_with(
    store: &LedgerStore,
    audit: &AuditLog,
    tenant: &str,
    dir: Option<&std::path::Path>,
    now: DateTime<Utc>,
) -> Result<RollConfirmation, SessionError> {
    let saved = dir
        .map(Current::load_dir)
        .transpose()
        .map_err(|e| {
            SessionError::Usage(format!(
                "{e}; save it on a Front End: Get-CsCertificate -Type OAuthTokenIssuer | Format-List Thumbprint, @{{Name = 'EffectiveDate'; Expression = {{ if ($_.EffectiveDate) {{ $_.EffectiveDate.ToUniversalTime().ToString('o') }} }}}}, PreviousThumbprint, Use > Get-CsCertificate.txt"
            ))
        })?;
    let evidence = saved.as_ref().map_or(Evidence::Admin, Evidence::Output);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    confirm_roll(
        store,
        audit,
        tenant,
        evidence,
        &format!("local user {user}"),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onprem::current::parse_format_list;
    use chrono::{TimeDelta, TimeZone as _};

    fn current(text: &str) -> Current {
        Current {
            certificates: Some(parse_format_list(text)),
            ..Current::default()
        }
    }

    /// Issue 24, defect 2: `Get-CsCertificate | Format-List` on a Front End in US Pacific time
    /// prints `12/6/2026 1:41:49 PM` for 21:41:49 UTC. At 19:41 UTC (two hours before) the roll
    /// must not be confirmed; nor at 21:42 UTC, since the zone is not in the file (past in every
    /// zone only from 03:41 UTC the next day); nor ever before the ledger's own EffectiveDate.
    #[test]
    fn a_local_effective_date_is_past_only_when_past_in_every_time_zone() {
        let new = "C018A043066A6F5CEC76253A1D3CAE84C0E2F730";
        let pacific = current(&format!(
            "Thumbprint : {new}\r\nEffectiveDate : 12/6/2026 1:41:49 PM\r\nUse : OAuthTokenIssuer\r\n"
        ));
        let e = Utc.with_ymd_and_hms(2026, 12, 6, 21, 41, 49).unwrap();
        for (now, ok) in [
            (e - TimeDelta::hours(2), false),
            (e + TimeDelta::minutes(1), false),
            (Utc.with_ymd_and_hms(2026, 12, 7, 3, 41, 48).unwrap(), false),
            (Utc.with_ymd_and_hms(2026, 12, 7, 3, 41, 49).unwrap(), true),
        ] {
            assert_eq!(
                shows_current(&pacific, new, Some(e), now).is_ok(),
                ok,
                "{now}"
            );
        }
        // The ISO form with an offset that the roll script prints is taken as it says.
        let iso = current(&format!(
            "Thumbprint : {new}\r\nEffectiveDate : 2026-12-06T21:41:49.0000000Z\r\n"
        ));
        assert!(shows_current(&iso, new, Some(e), e - TimeDelta::seconds(1)).is_err());
        assert!(shows_current(&iso, new, Some(e), e).is_ok());
        let offset = current(&format!(
            "Thumbprint : {new}\r\nEffectiveDate : 2026-12-06T13:41:49-08:00\r\n"
        ));
        assert!(shows_current(&offset, new, Some(e), e - TimeDelta::seconds(1)).is_err());
        assert!(shows_current(&offset, new, Some(e), e).is_ok());
        // An output date earlier than the ledger's EffectiveDate never moves it earlier.
        let early = current(&format!(
            "Thumbprint : {new}\r\nEffectiveDate : 2026-12-01T00:00:00Z\r\n"
        ));
        assert!(shows_current(&early, new, Some(e), e - TimeDelta::hours(1)).is_err());
        // The refusal names the local time and when it is past everywhere.
        let msg = shows_current(&pacific, new, Some(e), e)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("1:41:49 PM") && msg.contains("2026-12-07 03:41 UTC"),
            "{msg}"
        );
    }

    #[test]
    fn saved_output_confirms_only_the_new_thumbprint_once_effective() {
        let now = Utc.with_ymd_and_hms(2027, 3, 2, 3, 0, 0).unwrap();
        let new = "C018A043066A6F5CEC76253A1D3CAE84C0E2F730";
        let done = current(&format!(
            "Issuer : CN=ca\r\nThumbprint : {new}\r\nEffectiveDate : 3/1/2027 12:00:00 PM\r\nPreviousThumbprint : AAAA\r\nUse : OAuthTokenIssuer\r\n"
        ));
        assert!(shows_current(&done, new, None, now).is_ok());
        let early = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            shows_current(&done, new, None, early),
            Err(EvidenceError::NotYetEffective { .. })
        ));
        let old = current("Thumbprint : AAAA\r\nUse : OAuthTokenIssuer\r\n");
        assert!(matches!(
            shows_current(&old, new, None, now),
            Err(EvidenceError::OtherThumbprint { .. })
        ));
        // A date in a format nobody can read: the ledger's EffectiveDate decides.
        let odd = current(&format!(
            "Thumbprint : {new}\r\nEffectiveDate : mardi 1 mars\r\n"
        ));
        assert!(shows_current(&odd, new, Some(early), now).is_ok());
        assert!(shows_current(&odd, new, Some(now + TimeDelta::days(1)), now).is_err());
        assert!(matches!(
            shows_current(&Current::default(), new, None, now),
            Err(EvidenceError::NoCertificates)
        ));
    }
}
