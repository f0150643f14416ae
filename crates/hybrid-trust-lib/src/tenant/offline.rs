//! Recording a tenant in the ledger, or forgetting it, without touching the network (`tenant
//! add`, `tenant remove`: fleets onboarded elsewhere). Nothing here changes the tenant itself.

use crate::audit::{AuditEntry, AuditError, AuditLog};
use crate::ledger::{CertRecord, CredentialRecord, LedgerError, LedgerStore, TenantRecord};
use crate::status::{TenantStatus, Thresholds};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What `tenant add` records.
#[derive(Debug, Default)]
pub struct OfflineTenant {
    /// The on-prem certificate in use (its public part).
    pub cert: Option<CertRecord>,
    /// The end of the key credential already on the tenant, when known (needs `cert`).
    pub credential_end: Option<DateTime<Utc>>,
    /// Reminder recipients for this tenant.
    pub notify: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("--notify {address:?} is not an address mail can be delivered to: {reason}")]
pub struct BadAddress {
    pub address: String,
    pub reason: String,
}

impl BadAddress {
    pub fn hint(&self) -> &'static str {
        "give a plain address such as uc-admins@fabrikam.com (nothing was recorded)"
    }
}

impl OfflineTenant {
    /// Refuses a recipient that is not a plain address the mail channels take (the channels'
    /// own check, [`crate::notify::mailbox`]): what is recorded is what they can deliver to.
    pub fn check(&self) -> Result<(), BadAddress> {
        for n in &self.notify {
            let reason = match crate::notify::mailbox(n) {
                _ if !n.contains('@') || n.contains(char::is_whitespace) => {
                    Some("not an email address".to_string())
                }
                Ok(m) if m.name.is_some() || m.email.to_string() != *n => {
                    Some("give the address alone, without a name or <>".to_string())
                }
                Ok(_) => None,
                Err(why) => Some(why),
            };
            if let Some(reason) = reason {
                return Err(BadAddress {
                    address: n.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Records this in `rec`: the certificate, a credential per target application ending at
    /// `credential_end` (or the certificate's end, when sooner), the recipients not yet there,
    /// and a history line. Returns the tenant's status now.
    pub fn record(&self, rec: &mut TenantRecord, now: DateTime<Utc>) -> TenantStatus {
        if let Some(c) = &self.cert {
            if let Some(e) = self.credential_end {
                for app in &rec.app_ids.clone() {
                    rec.record_credential(CredentialRecord {
                        app_id: app.clone(),
                        key_id: None,
                        thumbprint_sha1: c.thumbprint_sha1.clone(),
                        start: c.not_before,
                        end: e.min(c.not_after),
                        recorded_at: now,
                    });
                }
            }
            rec.cert = Some(c.clone());
        }
        for n in &self.notify {
            if !rec.notify.contains(n) {
                rec.notify.push(n.clone());
            }
        }
        rec.log(now, "tenant add", "recorded without network");
        crate::status::evaluate(rec, now, Thresholds::default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Removes the tenant `name` from the ledger and notes it in the audit log. `false`: the ledger
/// has no such tenant (and nothing was written to the audit log).
pub fn forget(
    store: &LedgerStore,
    audit: &AuditLog,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, ForgetError> {
    let removed = store.update(name, None, Duration::from_secs(60), |l| {
        let before = l.tenants.len();
        l.tenants.retain(|t| !t.is(name));
        before != l.tenants.len()
    })?;
    if removed {
        audit.append(&AuditEntry {
            ts: now,
            actor: "local",
            action: "tenant.remove",
            tenant: name,
            app_id: "",
            service_principal_id: "",
            before: None,
            after: None,
            before_names: None,
            after_names: None,
            note: "removed from the ledger; nothing changed in the tenant",
        })?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn cert(now: DateTime<Utc>) -> CertRecord {
        CertRecord {
            thumbprint_sha1: "C018A043066A6F5CEC76253A1D3CAE84C0E2F730".into(),
            subject: "CN=sfb.contoso.com".into(),
            not_before: now - TimeDelta::days(10),
            not_after: now + TimeDelta::days(100),
            der_base64: String::new(),
        }
    }

    #[test]
    fn add_records_a_credential_per_app_capped_at_the_certificate() {
        let now = crate::clock::Clock::System.now();
        let apps = vec![
            crate::microsoft::SFB_APP_ID.to_string(),
            "teams".to_string(),
        ];
        let mut rec = TenantRecord::new("contoso.com", "global", apps, now);
        rec.notify.push("a@contoso.com".into());
        let add = OfflineTenant {
            cert: Some(cert(now)),
            credential_end: Some(now + TimeDelta::days(400)),
            notify: vec!["a@contoso.com".into(), "b@contoso.com".into()],
        };
        add.check().unwrap();
        let status = add.record(&mut rec, now);
        assert_eq!(rec.credentials.len(), 2);
        assert!(rec.credentials.iter().all(|c| c.end == cert(now).not_after));
        assert_eq!(rec.notify, ["a@contoso.com", "b@contoso.com"]);
        assert_eq!(rec.history.last().unwrap().action, "tenant add");
        assert_eq!(status.domain, "contoso.com");
        // Without an end, the certificate is recorded but no credential is guessed.
        let mut rec = TenantRecord::new("fabrikam.com", "global", vec!["x".into()], now);
        let add = OfflineTenant {
            cert: Some(cert(now)),
            ..OfflineTenant::default()
        };
        add.record(&mut rec, now);
        assert!(rec.credentials.is_empty() && rec.cert.is_some());
    }

    #[test]
    fn a_recipient_must_be_an_address() {
        for bad in [
            "uc-admins",
            "a b@contoso.com",
            r#""<script>alert(9)</script>"@fabrikam.com"#,
            "<ops@contoso.com>",
            "ops@",
        ] {
            let add = OfflineTenant {
                notify: vec![bad.into()],
                ..OfflineTenant::default()
            };
            let e = add.check().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "--notify {bad:?} is not an address mail can be delivered to: "
                )),
                "{e}"
            );
        }
        let good = OfflineTenant {
            notify: vec![
                "uc-admins@contoso.com".into(),
                "o'neil+ops@contoso.com".into(),
            ],
            ..OfflineTenant::default()
        };
        good.check().unwrap();
    }

    #[test]
    fn forget_removes_the_record_and_audits_only_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::in_dir(dir.path());
        let audit = AuditLog::in_dir(dir.path());
        let now = crate::clock::Clock::System.now();
        assert!(!forget(&store, &audit, "contoso.com", now).unwrap());
        assert!(!audit.path().exists());
        let mut g = store.lock(Duration::from_secs(5)).unwrap();
        g.ledger.tenant_entry("contoso.com", "global", &[], now);
        g.commit().unwrap();
        assert!(forget(&store, &audit, "CONTOSO.com", now).unwrap());
        assert!(store.load().unwrap().tenants.is_empty());
        let log = std::fs::read_to_string(audit.path()).unwrap();
        assert!(log.contains("tenant.remove"), "{log}");
    }
}
