//! Uploading and removing key credentials on a tenant's target applications: under the tenant
//! lock, one [`Change`](crate::credential::Change) per application (read, plan, confirm, read
//! again, PATCH, read back), then the ledger records what is on Graph now.

use super::{Session, SessionError};
use crate::credential::{Confirm, Outcome};
use crate::graph::{self, KeyCredential, KeyPlan, PlanError};
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
