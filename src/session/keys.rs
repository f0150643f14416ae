//! Uploading and removing key credentials on a tenant's target applications: under the tenant
//! lock, one [`Change`](crate::credential::Change) per application (read, plan, confirm, read
//! again, PATCH, read back), then the ledger records what is on Graph now.

use super::{Session, SessionError};
use crate::cert::Certificate;
use crate::credential::{Confirm, Outcome};
use crate::graph::{self, KeyCredential, KeyPlan, PlanError, WindowError};
use crate::ledger::CertRecord;
use chrono::{DateTime, Utc};

/// A change to the keys of a service principal.
pub enum KeyOp {
    /// Add the certificate as a `Verify` key (the key, and the certificate for the ledger).
    Upload(Box<(KeyCredential, CertRecord)>),
    /// Remove the `Verify` keys of the certificate with this thumbprint.
    Remove(String),
}

impl KeyOp {
    /// An upload of `cert` for the window from `start` to `end` (each, when not given, the
    /// earliest and latest allowed: [`graph::window`]), with a warning for people when the
    /// certificate's own end is what ends the key.
    pub fn upload(
        cert: &Certificate,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(KeyOp, Option<String>), WindowError> {
        let (ws, we) = graph::window(cert.not_before, cert.not_after, start, end, now)?;
        let warning = (we == cert.not_after && end.is_none()).then(|| {
            format!(
                "warning: the certificate expires on {} ({} days), so the key ends then too: plan the roll to a new certificate (hybrid-trust renew --new-cert)",
                cert.not_after.format("%Y-%m-%d"),
                (cert.not_after - now).num_days()
            )
        });
        let new = graph::new_key(cert, ws, we);
        Ok((
            KeyOp::Upload(Box::new((new, CertRecord::from_cert(cert)))),
            warning,
        ))
    }

    pub fn plan(
        &self,
        existing: &[KeyCredential],
        now: DateTime<Utc>,
    ) -> Result<KeyPlan, PlanError> {
        match self {
            KeyOp::Upload(b) => graph::plan_upload(existing, b.0.clone(), now),
            KeyOp::Remove(tp) => graph::plan_remove(existing, tp, now),
        }
    }
    fn note(&self) -> &'static str {
        match self {
            KeyOp::Upload(..) => "credential upload",
            KeyOp::Remove(_) => "credential remove",
        }
    }
}

/// What each application's key change came to.
pub type AppOutcomes = Vec<(String, Outcome)>;

impl Session {
    /// Applies `op` to each application under the tenant lock and records the result in the
    /// ledger (not in a dry run). `confirm` is asked for each application's plan.
    pub async fn change_keys(
        &mut self,
        apps: &[String],
        op: &KeyOp,
        confirm: &mut Confirm<'_>,
    ) -> Result<AppOutcomes, SessionError> {
        // The tenant id before the lock: one tenant, one lock and one ledger record, whether this
        // run names it by domain or by GUID.
        self.lock().await?;
        let actor = self.actor();
        let g = self.graph();
        let mut results = Vec::new();
        for app in apps {
            let sp_id = g
                .find_service_principal(app)
                .await
                .map_err(crate::credential::CredentialError::Graph)?;
            let clock = self.clock;
            let outcome = self
                .change(&g, app, &actor)
                .keys(
                    &sp_id,
                    |existing| op.plan(existing, clock.now()),
                    confirm,
                    op.note(),
                )
                .await?;
            results.push((app.clone(), outcome));
        }
        if !self.dry_run {
            let now = self.clock.now();
            self.record(apps, |rec| {
                for (app, outcome) in &results {
                    let (plan, applied) = match outcome {
                        Outcome::Applied { plan, .. } => (plan, true),
                        Outcome::Unchanged { plan, .. } => (plan, false),
                        Outcome::Planned { .. } => continue,
                    };
                    match op {
                        KeyOp::Upload(b) => rec.record_upload(app, plan, &b.1, applied, now),
                        KeyOp::Remove(tp) => rec.record_removal(app, tp, applied, now),
                    }
                    rec.forget_expired(app, &plan.dropped_expired, now);
                }
            })?;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn cert(days: i64) -> Certificate {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["sfb.contoso.com".into()]).unwrap();
        let now = ::time::OffsetDateTime::now_utc();
        p.not_before = now - ::time::Duration::days(1);
        p.not_after = now + ::time::Duration::days(days);
        Certificate::from_der(p.self_signed(&kp).unwrap().der()).unwrap()
    }

    #[test]
    fn an_upload_warns_when_the_certificate_ends_the_key() {
        let now = crate::clock::Clock::System.now();
        let short = cert(100);
        let (op, warning) = KeyOp::upload(&short, None, None, now).unwrap();
        let KeyOp::Upload(b) = &op else {
            panic!("an upload")
        };
        assert_eq!(b.0.end_date_time, Some(short.not_after));
        assert_eq!(b.1.thumbprint_sha1, short.thumbprint_sha1());
        let w = warning.unwrap();
        let days = format!("({} days)", (short.not_after - now).num_days());
        assert!(w.contains(&days) && w.contains("renew --new-cert"), "{w}");
        // A chosen end, or a certificate that outlives the longest window: no warning.
        let end = now + TimeDelta::days(50);
        assert!(
            KeyOp::upload(&short, None, Some(end), now)
                .unwrap()
                .1
                .is_none()
        );
        assert!(
            KeyOp::upload(&cert(800), None, None, now)
                .unwrap()
                .1
                .is_none()
        );
        // A window the certificate cannot give is refused.
        let late = now + TimeDelta::days(200);
        assert!(KeyOp::upload(&short, Some(late), None, now).is_err());
    }
}
