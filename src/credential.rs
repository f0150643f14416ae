//! Changing a service principal's keyCredentials or servicePrincipalNames safely, on top of
//! Graph's replace-semantics PATCH (PROTOCOL.md §1.4): read with `key`, plan the whole new array,
//! confirm, write the before/after to the audit log, PATCH, read back, and if another writer's
//! PATCH crossed ours (no ETag exists), merge again from what is there now.

use crate::audit::{AuditEntry, AuditLog};
use crate::graph::{Graph, GraphError, KeyCredential, KeyPlan, PlanError, ServicePrincipal};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

/// How many times a lost update is merged again before giving up.
pub const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(
        "the change did not stick after {0} attempts: another writer keeps changing this service principal"
    )]
    LostUpdate(u32),
    #[error("cancelled: nothing was changed")]
    Declined,
}

impl CredentialError {
    pub fn hint(&self) -> String {
        match self {
            CredentialError::Graph(g) => g.hint(),
            CredentialError::Plan(PlanError::KeyNotReturned { .. }) => "run again; if Graph keeps omitting `key`, report it (the tool will not drop a key it cannot re-send)".into(),
            CredentialError::Plan(PlanError::NoSuchKey(_)) => "list the keys with hybrid-trust credential list".into(),
            CredentialError::Plan(PlanError::WindowPassed(_)) => "run the command again: it plans a new window from now".into(),
            CredentialError::Audit(_) => "check that the state dir is writable (--state-dir)".into(),
            CredentialError::LostUpdate(_) => "find the other process or admin changing this application and run again when it is done".into(),
            CredentialError::Declined => "run again and answer y, or pass --yes".into(),
        }
    }
}

/// What `add_name` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOutcome {
    Added,
    Present,
    Planned,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Nothing to do.
    Unchanged { plan: KeyPlan, sp: ServicePrincipal },
    /// `--dry-run`: the plan, not applied.
    Planned { plan: KeyPlan, sp: ServicePrincipal },
    /// Applied and read back.
    Applied {
        plan: KeyPlan,
        before: ServicePrincipal,
        after: ServicePrincipal,
        attempts: u32,
    },
}

impl Outcome {
    /// The service principal as last read (after the change when one was applied).
    pub fn service_principal(&self) -> &ServicePrincipal {
        match self {
            Outcome::Unchanged { sp, .. } | Outcome::Planned { sp, .. } => sp,
            Outcome::Applied { after, .. } => after,
        }
    }
}

pub struct Change<'a> {
    pub graph: &'a Graph<'a>,
    pub tenant: &'a str,
    pub app_id: &'a str,
    pub actor: &'a str,
    pub audit: &'a AuditLog,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

/// A key's identity across a PATCH: its certificate and its window (keyIds may be regenerated),
/// to the second (whether Graph keeps a fraction of a second is unconfirmed).
fn identity(k: &KeyCredential) -> (Option<String>, Option<i64>, Option<i64>) {
    (
        k.thumbprint(),
        k.start_date_time.map(|t| t.timestamp()),
        k.end_date_time.map(|t| t.timestamp()),
    )
}

/// Whether `after` holds every key the plan keeps or adds, and none it removes.
pub fn plan_stuck(plan: &KeyPlan, after: &[KeyCredential]) -> bool {
    let have: Vec<_> = after.iter().map(identity).collect();
    let want: Vec<_> = plan.body().iter().map(identity).collect();
    let gone: Vec<_> = plan.removed.iter().map(identity).collect();
    want.iter().all(|t| have.contains(t)) && gone.iter().all(|t| !have.contains(t))
}

impl Change<'_> {
    /// Applies the key plan `make_plan` computes from the current keys. `confirm` sees the first
    /// plan (not a re-merge after a lost update, which only re-applies the same intent).
    pub async fn keys(
        &self,
        sp_id: &str,
        make_plan: impl Fn(&[KeyCredential]) -> Result<KeyPlan, PlanError>,
        confirm: &mut dyn FnMut(&ServicePrincipal, &KeyPlan) -> bool,
        note: &str,
    ) -> Result<Outcome, CredentialError> {
        let mut attempt = 0;
        let mut first: Option<ServicePrincipal> = None;
        loop {
            attempt += 1;
            let sp = self.graph.read_service_principal(sp_id).await?;
            let mut plan = make_plan(&sp.key_credentials)?;
            if !plan.changes() {
                return match first {
                    // A re-read after a crossed write found our change already there.
                    Some(before) if attempt > 1 => Ok(Outcome::Applied {
                        plan,
                        before,
                        after: sp,
                        attempts: attempt - 1,
                    }),
                    _ => Ok(Outcome::Unchanged { plan, sp }),
                };
            }
            if first.is_none() {
                if self.dry_run {
                    return Ok(Outcome::Planned { plan, sp });
                }
                if !confirm(&sp, &plan) {
                    return Err(CredentialError::Declined);
                }
                // The confirmation may have outlasted the planned start (a re-merge plans
                // again from its own moment).
                plan.start_no_earlier_than(Utc::now())?;
                first = Some(sp.clone());
            }
            let body = plan.body();
            self.audit.append(&AuditEntry {
                ts: Utc::now(),
                actor: self.actor,
                action: "keyCredentials.patch",
                tenant: self.tenant,
                app_id: self.app_id,
                service_principal_id: sp_id,
                before: Some(&sp.key_credentials),
                after: Some(&body),
                before_names: None,
                after_names: None,
                note,
            })?;
            match self
                .graph
                .patch_service_principal(sp_id, &json!({ "keyCredentials": body }))
                .await
            {
                Ok(()) => {}
                Err(e) if e.maybe_applied() => tracing::warn!(
                    "no answer to the PATCH ({e}); reading back to see whether it applied"
                ),
                Err(e) => return Err(e.into()),
            }
            let after = self.graph.read_service_principal(sp_id).await?;
            if plan_stuck(&plan, &after.key_credentials) {
                let before = first.unwrap_or(sp);
                return Ok(Outcome::Applied {
                    plan,
                    before,
                    after,
                    attempts: attempt,
                });
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(CredentialError::LostUpdate(attempt));
            }
            tracing::warn!(
                "the keys read back differ from what was sent: another writer crossed this change; merging again"
            );
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
        }
    }

    /// Adds `name` to the service principal names, keeping the others.
    pub async fn add_name(
        &self,
        sp_id: &str,
        name: &str,
        confirm: &mut dyn FnMut(&ServicePrincipal, &[String]) -> bool,
    ) -> Result<(NameOutcome, ServicePrincipal), CredentialError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sp = self.graph.read_service_principal(sp_id).await?;
            if sp
                .service_principal_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                return Ok((
                    if attempt > 1 {
                        NameOutcome::Added
                    } else {
                        NameOutcome::Present
                    },
                    sp,
                ));
            }
            let mut names = sp.service_principal_names.clone();
            names.push(name.to_string());
            if attempt == 1 {
                if self.dry_run {
                    return Ok((NameOutcome::Planned, sp));
                }
                if !confirm(&sp, &names) {
                    return Err(CredentialError::Declined);
                }
            }
            self.audit.append(&AuditEntry {
                ts: Utc::now(),
                actor: self.actor,
                action: "servicePrincipalNames.patch",
                tenant: self.tenant,
                app_id: self.app_id,
                service_principal_id: sp_id,
                before: None,
                after: None,
                before_names: Some(&sp.service_principal_names),
                after_names: Some(&names),
                note: "spn add",
            })?;
            match self
                .graph
                .patch_service_principal(sp_id, &json!({ "servicePrincipalNames": names }))
                .await
            {
                Ok(()) => {}
                Err(e) if e.maybe_applied() => {}
                Err(e) => return Err(e.into()),
            }
            let after = self.graph.read_service_principal(sp_id).await?;
            if names.iter().all(|n| {
                after
                    .service_principal_names
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(n))
            }) {
                return Ok((NameOutcome::Added, after));
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(CredentialError::LostUpdate(attempt));
            }
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
        }
    }
}
