//! Uploading, removing and pruning key credentials on a tenant's target applications: under the
//! tenant lock, one [`Change`](crate::credential::Change) per application (read, plan, confirm,
//! read again, PATCH, read back), then the ledger records what is on Graph now, including the
//! kept keys Graph changed when it took them anew (a new keyId, its own window: see
//! [`crate::graph::resend`]). Also: listing keys with the foreign ones marked
//! ([`crate::credential::foreign`]), and creating a missing target service principal
//! (`--create-service-principal`) after confirmation.

use super::{Session, SessionError};
use crate::audit::AuditEntry;
use crate::cert::Certificate;
use crate::credential::foreign::{self, Prune};
use crate::credential::report::KeyListing;
use crate::credential::{AppOutcomes, Approval, Confirm, CredentialError, Outcome};
use crate::graph::{
    self, GraphError, KeyCredential, KeyPlan, PlanError, ServicePrincipal, WindowError,
};
use crate::ledger::{CertRecord, TenantRecord};
use chrono::{DateTime, Utc};

/// A change to the keys of a service principal.
pub enum KeyOp {
    /// Add the certificate as a `Verify` key (the key, and the certificate for the ledger).
    Upload(Box<(KeyCredential, CertRecord)>),
    /// Remove the `Verify` keys of the certificate with this thumbprint.
    Remove(crate::ids::Thumbprint),
    /// The same, also when its certificate is newer than the ledger's current one
    /// (`credential remove --force`; [`foreign::check_removable`]).
    RemoveForced(crate::ids::Thumbprint),
    /// Remove the foreign or the expired keys (`credential prune`), never a protected one.
    Prune(Prune),
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

    /// The plan for application `app`, from its keys as read and the tenant's ledger record.
    pub fn plan(
        &self,
        existing: &[KeyCredential],
        rec: Option<&TenantRecord>,
        app: &str,
        now: DateTime<Utc>,
    ) -> Result<KeyPlan, PlanError> {
        match self {
            KeyOp::Upload(b) => graph::plan_upload(existing, b.0.clone(), now),
            KeyOp::Remove(tp) | KeyOp::RemoveForced(tp) => {
                let force = matches!(self, KeyOp::RemoveForced(_));
                foreign::check_removable(rec, app, tp, existing, force, now)?;
                graph::plan_remove(existing, tp, now)
            }
            KeyOp::Prune(what) => foreign::plan_prune(existing, rec, app, *what, now),
        }
    }
    fn note(&self) -> &'static str {
        match self {
            KeyOp::Upload(..) => "credential upload",
            KeyOp::Remove(_) | KeyOp::RemoveForced(_) => "credential remove",
            KeyOp::Prune(Prune::Foreign) => "credential prune --foreign",
            KeyOp::Prune(Prune::Expired) => "credential prune --expired",
        }
    }
}

/// A confirmation for creating a missing service principal (the application id).
pub type ConfirmCreate<'c> = dyn FnMut(&str) -> Approval + 'c;

/// Nobody to ask: creating a missing service principal was not asked for.
pub fn no_create(_: &str) -> Approval {
    Approval::Refused
}

/// Updates the ledger's records of kept keys that Graph changed (a new keyId, its own window).
fn record_graph_changes(rec: &mut TenantRecord, app: &str, outcome: &Outcome) {
    if let Outcome::Applied { resend, .. } = outcome {
        record_kept_changes(rec, app, &resend.changed);
    }
}

/// Updates the ledger's records of `app`'s kept keys that Graph changed (a new keyId, its own
/// window), so that the ledger holds the windows the tenant holds.
pub(crate) fn record_kept_changes(
    rec: &mut TenantRecord,
    app: &str,
    changed: &[crate::graph::resend::KeptChange],
) {
    for c in changed.iter().filter(|c| !c.lost) {
        let (Some(tp), Some(after)) = (&c.thumbprint_sha1, &c.after_key) else {
            continue;
        };
        let b = &c.before_key;
        for r in rec.credentials.iter_mut().filter(|r| {
            r.app_id == app
                && r.thumbprint_sha1 == *tp
                && ((r.key_id.is_some() && r.key_id == b.key_id)
                    || (Some(r.start.timestamp()) == b.start_date_time.map(|d| d.timestamp())
                        && Some(r.end.timestamp()) == b.end_date_time.map(|d| d.timestamp())))
        }) {
            r.key_id = after.key_id.clone();
            if let (Some(s), Some(e)) = (after.start_date_time, after.end_date_time) {
                r.start = s;
                r.end = e;
            }
        }
    }
}

impl Session {
    /// Applies `op` to each application under the tenant lock and records the result in the
    /// ledger (not in a dry run). `confirm` is asked for each application's plan.
    pub async fn change_keys(
        &mut self,
        apps: &[String],
        op: &KeyOp,
        confirm: &mut Confirm<'_>,
    ) -> Result<AppOutcomes, SessionError> {
        self.change_keys_creating(apps, op, confirm, &mut no_create)
            .await
    }

    /// This tenant's ledger record, if this host has one (found by name or id: one record
    /// read, whatever the fleet's size).
    pub async fn ledger_record(&self) -> Option<TenantRecord> {
        self.ledger
            .tenant_async(&self.name, self.tenant_id.as_deref())
            .await
            .ok()
            .flatten()
    }

    /// [`Session::change_keys`], creating a target application's missing service principal
    /// (`POST /servicePrincipals {"appId"}`) when `create` approves it (a dry run shows it
    /// instead: the plan is made from no keys). Without approval, a missing one is the error
    /// [`GraphError::NoServicePrincipal`], whose hint says how to create it.
    pub async fn change_keys_creating(
        &mut self,
        apps: &[String],
        op: &KeyOp,
        confirm: &mut Confirm<'_>,
        create: &mut ConfirmCreate<'_>,
    ) -> Result<AppOutcomes, SessionError> {
        // The tenant id before the lock: one tenant, one lock and one ledger record, whether this
        // run names it by domain or by GUID.
        self.lock().await?;
        let rec = self.ledger_record().await;
        if matches!(op, KeyOp::Prune(Prune::Foreign))
            && rec.as_ref().is_none_or(|r| r.cert.is_none())
        {
            return Err(SessionError::Usage(format!(
                "tenant {} has no certificate in this host's ledger, so every key would count as foreign: refusing to prune (record it first: hybrid-trust tenant add {} --cert CERT, or remove keys one by one with credential remove)",
                self.name, self.name
            )));
        }
        let actor = self.actor();
        let g = self.graph();
        let mut failed: Option<CredentialError> = None;
        let mut results = Vec::new();
        for app in apps {
            let sp_id = match g.find_service_principal(app).await {
                Ok(id) => id,
                Err(GraphError::NoServicePrincipal { app_id }) => {
                    if create(app) == Approval::Refused {
                        return Err(CredentialError::Graph(GraphError::NoServicePrincipal {
                            app_id,
                        })
                        .into());
                    }
                    if self.dry_run {
                        // Shown, not done: the plan as it would be on a new, empty principal.
                        let sp = ServicePrincipal {
                            id: "(to be created)".into(),
                            app_id: app.clone(),
                            display_name: None,
                            key_credentials: vec![],
                            service_principal_names: vec![],
                            account_enabled: None,
                            raw_keys: vec![],
                        };
                        let plan = op
                            .plan(&[], rec.as_ref(), app, self.clock.now())
                            .map_err(CredentialError::Plan)?;
                        results.push((app.clone(), Outcome::Planned { plan, sp }));
                        continue;
                    }
                    self.create_service_principal(&g, app, &actor).await?
                }
                Err(e) => return Err(CredentialError::Graph(e).into()),
            };
            let clock = self.clock;
            let r = rec.as_ref();
            match self
                .change(&g, app, &actor)
                .keys(
                    &sp_id,
                    |existing| op.plan(existing, r, app, clock.now()),
                    confirm,
                    op.note(),
                )
                .await
            {
                Ok(outcome) => results.push((app.clone(), outcome)),
                // The applications changed before this one are recorded all the same: the
                // ledger never forgets (nor keeps) a window Graph has (or no longer has).
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !self.dry_run && !results.is_empty() {
            let now = self.clock.now();
            self.record(apps, |rec| {
                for (app, outcome) in &results {
                    let (plan, applied) = match outcome {
                        Outcome::Applied { plan, .. } => (plan, true),
                        Outcome::Unchanged { plan, .. } => (plan, false),
                        Outcome::Planned { .. } => continue,
                    };
                    record_graph_changes(rec, app, outcome);
                    match op {
                        KeyOp::Upload(b) => rec.record_upload(app, plan, &b.1, applied, now),
                        KeyOp::Remove(tp) | KeyOp::RemoveForced(tp) => {
                            rec.record_removal(app, tp, applied, now)
                        }
                        KeyOp::Prune(what) => {
                            rec.forget_expired(app, &plan.removed, now);
                            if applied {
                                let tps: Vec<String> = plan
                                    .removed
                                    .iter()
                                    .map(|k| {
                                        k.thumbprint().map_or_else(|| "?".to_string(), String::from)
                                    })
                                    .collect();
                                rec.log(
                                    now,
                                    "credential prune",
                                    format!(
                                        "{app}: removed {} key(s): {}",
                                        what.name(),
                                        tps.join(", ")
                                    ),
                                );
                            }
                        }
                    }
                    rec.forget_expired(app, &plan.dropped_expired, now);
                }
            })
            .await?;
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(results),
        }
    }

    /// Creates `app`'s service principal (audited first), then finds it (Graph may take a moment
    /// to list a new object).
    async fn create_service_principal(
        &self,
        g: &graph::Graph<'_>,
        app: &str,
        actor: &str,
    ) -> Result<String, SessionError> {
        self.audit
            .append_async(&AuditEntry {
                ts: self.clock.now(),
                actor,
                action: "servicePrincipal.create",
                tenant: self.tenant_id.as_deref().unwrap_or(&self.name),
                app_id: app,
                service_principal_id: "",
                before: None,
                after: None,
                before_names: None,
                after_names: None,
                note: "credential upload --create-service-principal: POST /servicePrincipals {\"appId\"}",
            }).await
            .map_err(CredentialError::Audit)?;
        match g.create_service_principal(app).await {
            Ok(id) => return Ok(id),
            // Lost answer, or another admin created it meanwhile: look it up.
            Err(e)
                if e.maybe_applied()
                    || e.code() == Some("Request_MultipleObjectsWithSameKeyValue") => {}
            Err(e) => return Err(CredentialError::Graph(e).into()),
        }
        let mut last = None;
        for attempt in 0..3u64 {
            match g.find_service_principal(app).await {
                Ok(id) => return Ok(id),
                Err(e) => last = Some(e),
            }
            self.clock
                .sleep(std::time::Duration::from_millis(500 * (attempt + 1)))
                .await;
        }
        Err(
            CredentialError::Graph(last.unwrap_or(GraphError::NoServicePrincipal {
                app_id: app.to_string(),
            }))
            .into(),
        )
    }

    /// `credential list`: the keys of `app`, each marked foreign or not against this tenant's
    /// ledger record.
    pub async fn list_keys(&mut self, app: &str) -> Result<KeyListing, GraphError> {
        let rec = self.ledger_record().await;
        let sp = {
            let g = self.graph();
            let id = g.find_service_principal(app).await?;
            g.read_service_principal(&id).await?
        };
        let tid = self.resolve_tenant_id().await;
        let rec = match rec {
            Some(r) => Some(r),
            None => self.ledger_record().await,
        };
        Ok(KeyListing::new(
            &self.name,
            app,
            &sp,
            tid,
            rec.as_ref(),
            self.clock.now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn cert(days: i64) -> Certificate {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["sfb.contoso.com".into()]).unwrap();
        let now = ::time::OffsetDateTime::from_unix_timestamp(
            crate::clock::Clock::System.now().timestamp(),
        )
        .unwrap();
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
