//! Recording what a command changed in the ledger (and the audit log for offline changes).

use super::{Context, Failure};
use crate::ledger::{LedgerStore, TenantRecord};
use std::time::Duration;

/// Exit 1, except for a date out of range: the user's own file holds bad input (exit 2).
fn ledger_failure(e: crate::ledger::LedgerError) -> Failure {
    let hint = e.hint();
    match e {
        crate::ledger::LedgerError::DateOutOfRange { .. } => Failure::input(e, Some(hint)),
        _ => Failure::runtime(e, Some(hint)),
    }
}

impl Context {
    pub fn ledger_store(&self) -> Result<LedgerStore, Failure> {
        Ok(LedgerStore::in_dir(&self.state_dir()?))
    }

    /// Applies `f` to the tenant's record (created if missing) under the ledger lock.
    pub fn record<T>(
        &self,
        tenant: &str,
        apps: &[String],
        f: impl FnOnce(&mut TenantRecord) -> T,
    ) -> Result<T, Failure> {
        self.record_for(tenant, None, apps, f)
    }

    /// [`Context::record`] for a tenant whose id is known: the record is found by the name or by
    /// the id, so a tenant named by domain in one run and by GUID in another has one record.
    pub fn record_for<T>(
        &self,
        tenant: &str,
        tenant_id: Option<&str>,
        apps: &[String],
        f: impl FnOnce(&mut TenantRecord) -> T,
    ) -> Result<T, Failure> {
        let store = self.ledger_store()?;
        let mut guard = store
            .lock(Duration::from_secs(60))
            .map_err(ledger_failure)?;
        let cloud = self.cloud_name();
        let rec = guard
            .ledger
            .tenant_entry_for(tenant, tenant_id, &cloud, apps, self.clock.now());
        let out = f(rec);
        guard.commit().map_err(ledger_failure)?;
        Ok(out)
    }

    /// Loads the ledger (read-only).
    pub fn ledger(&self) -> Result<crate::ledger::Ledger, Failure> {
        self.ledger_store()?.load().map_err(ledger_failure)
    }

    pub fn cloud_name(&self) -> String {
        self.cloud()
            .map(|c| c.name)
            .unwrap_or_else(|_| "global".to_string())
    }
}

pub fn failure(e: crate::ledger::LedgerError) -> Failure {
    ledger_failure(e)
}

impl Context {
    /// The settings file: `--config` (must exist), or the platform default (optional).
    pub fn settings(&self) -> Result<crate::config::Settings, Failure> {
        let (path, explicit) = match &self.global.config {
            Some(p) => (p.clone(), true),
            None => match crate::paths::default_config_file() {
                Some(p) => (p, false),
                None => return Ok(crate::config::Settings::default()),
            },
        };
        crate::config::Settings::load(&path, explicit).map_err(|e| {
            Failure::input(
                e,
                Some("fix the settings file (see README: reminders)".to_string()),
            )
        })
    }
}

impl Context {
    /// The tenant id (GUID) of `name`: itself when it is one, the ledger's record, or else the
    /// `tid` claim of an admin token for the tenant (one token request, which the run reuses).
    /// `None` when none of these answers (the command then fails on its own first request).
    pub fn tenant_id_of(&self, name: &str) -> Option<String> {
        if let Some(id) = guid(name) {
            return Some(id);
        }
        if let Some(id) = self
            .ledger()
            .ok()
            .and_then(|l| l.tenant(name).and_then(|t| t.tenant_id.clone()))
        {
            return Some(id);
        }
        let cloud = self.cloud().ok()?;
        let tokens = self.token_provider(&cloud, name).ok()?;
        let rt = super::runtime().ok()?;
        rt.block_on(tokens.token(&cloud.graph_scope()))
            .ok()
            .and_then(|t| crate::sts::unverified_claim(t.expose(), "tid"))
            .and_then(|t| guid(&t))
    }

    /// The per-tenant lock, keyed by the tenant id whenever it is known (give the id from
    /// [`Context::tenant_id_of`]), else by the ledger's record for the name, so that every command
    /// touching one tenant takes the same lock whichever name it was given.
    pub fn tenant_lock(&self, name: &str) -> Result<crate::lock::TenantLock, Failure> {
        let state = self.state_dir()?;
        let key = guid(name).unwrap_or_else(|| {
            self.ledger()
                .ok()
                .and_then(|l| {
                    l.tenant(name)
                        .map(|t| t.tenant_id.clone().unwrap_or_else(|| t.domain.clone()))
                })
                .unwrap_or_else(|| name.to_ascii_lowercase())
        });
        crate::lock::TenantLock::acquire(&state, &key, std::time::Duration::from_secs(300))
            .map_err(|e| Failure::runtime(e, Some("wait for the other run to finish".to_string())))
    }
}

/// `s` as a lowercase GUID, when it is one.
fn guid(s: &str) -> Option<String> {
    (s.len() == 36)
        .then(|| uuid::Uuid::parse_str(s).ok())
        .flatten()
        .map(|u| u.to_string())
}
