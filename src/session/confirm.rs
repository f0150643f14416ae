//! Confirming a roll (issue 16): the record that the Front Ends now sign with the new
//! certificate, from the admin's word after the EffectiveDate, from saved
//! `Get-CsCertificate -Type OAuthTokenIssuer` output (the `--current DIR` convention of
//! `onprem script`), or from `verify` with the new certificate after the EffectiveDate. The
//! ledger records which, and the audit log gets a line. No network: only the ledger changes;
//! the next `renew` retires the old key.

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
    /// `verify` got a token with the new certificate (thumbprint given).
    Verify(&'a str),
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
    #[error("verify used {used}, not the pending roll's certificate {wanted}")]
    OtherCertificate { used: String, wanted: String },
}

/// Reads `EffectiveDate` as Windows prints it in the common formats (en-US `M/d/yyyy h:mm:ss tt`,
/// ISO, `dd.MM.yyyy HH:mm:ss`, `dd/MM/yyyy HH:mm:ss`), as UTC. `None` when unknown: then the
/// ledger's EffectiveDate decides.
fn parse_effective(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    [
        "%m/%d/%Y %I:%M:%S %p",
        "%Y-%m-%d %H:%M:%S",
        "%d.%m.%Y %H:%M:%S",
        "%d/%m/%Y %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|n| n.and_utc())
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
    let from = o
        .get("EffectiveDate")
        .and_then(parse_effective)
        .or(effective);
    match (from, o.get("EffectiveDate")) {
        (Some(f), shown) if f > now => Err(EvidenceError::NotYetEffective {
            wanted: wanted.to_string(),
            effective: shown.map_or_else(|| f.to_rfc3339(), str::to_string),
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
            (Evidence::Verify(used), Some(new)) => {
                if !used.eq_ignore_ascii_case(new) {
                    return Err(SessionError::Usage(
                        EvidenceError::OtherCertificate {
                            used: used.to_string(),
                            wanted: new.clone(),
                        }
                        .to_string(),
                    ));
                }
                ConfirmedBy::Verify
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
                "{e}; save it on a Front End: Get-CsCertificate -Type OAuthTokenIssuer | Format-List > Get-CsCertificate.txt"
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

/// After `verify` obtained a token with certificate `thumbprint`: confirms the tenant's pending
/// roll when that is its new certificate and its EffectiveDate has passed. `Ok(None)` when there
/// is nothing to confirm (no roll pending, another certificate, or before the EffectiveDate:
/// Entra accepting the new key says nothing about what the Front Ends sign with before then).
pub fn after_verify(
    store: &LedgerStore,
    audit: &AuditLog,
    tenant: &str,
    thumbprint: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<RollConfirmation>, SessionError> {
    let due = store.tenant(tenant, None)?.is_some_and(|t| {
        t.next_cert
            .as_ref()
            .is_some_and(|n| n.thumbprint_sha1.eq_ignore_ascii_case(thumbprint))
            && t.roll_effective.is_some_and(|e| e <= now)
    });
    if !due {
        return Ok(None);
    }
    confirm_roll(
        store,
        audit,
        tenant,
        Evidence::Verify(thumbprint),
        actor,
        now,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onprem::current::parse_format_list;
    use chrono::TimeZone as _;

    fn current(text: &str) -> Current {
        Current {
            certificates: Some(parse_format_list(text)),
            ..Current::default()
        }
    }

    #[test]
    fn saved_output_confirms_only_the_new_thumbprint_once_effective() {
        let now = Utc.with_ymd_and_hms(2027, 3, 2, 0, 0, 0).unwrap();
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
        assert!(shows_current(&odd, new, Some(now + chrono::TimeDelta::days(1)), now).is_err());
        assert!(matches!(
            shows_current(&Current::default(), new, None, now),
            Err(EvidenceError::NoCertificates)
        ));
    }
}
