//! Recording what a command changed in the ledger (and the audit log for offline changes).

use super::{Context, Failure};
use hybrid_trust::ledger::{LedgerStore, TenantRecord};
use std::time::Duration;

/// Exit 1, except for a date out of range or two entries for one tenant: the user's own file
/// holds bad input (exit 2).
fn ledger_failure(e: hybrid_trust::ledger::LedgerError) -> Failure {
    let hint = e.hint();
    match e {
        hybrid_trust::ledger::LedgerError::DateOutOfRange { .. }
        | hybrid_trust::ledger::LedgerError::Duplicate { .. } => Failure::input(e, Some(hint)),
        _ => Failure::runtime(e, Some(hint)),
    }
}

impl Context {
    pub fn ledger_store(&self) -> Result<LedgerStore, Failure> {
        Ok(match self.state_db()? {
            Some(pg) => LedgerStore::in_db(pg),
            None => LedgerStore::in_dir(&self.state_dir()?),
        })
    }

    /// Applies `f` to the tenant's record (created if missing) under the ledger lock.
    pub fn record<T>(
        &self,
        tenant: &str,
        apps: &[String],
        f: impl FnOnce(&mut TenantRecord) -> T,
    ) -> Result<T, Failure> {
        let store = self.ledger_store()?;
        let cloud = self.cloud_name();
        let now = self.clock.now();
        store
            .update(tenant, None, Duration::from_secs(60), |l| {
                f(l.tenant_entry(tenant, &cloud, apps, now))
            })
            .map_err(ledger_failure)
    }

    /// Loads the ledger (read-only).
    pub fn ledger(&self) -> Result<hybrid_trust::ledger::Ledger, Failure> {
        self.ledger_store()?.load().map_err(ledger_failure)
    }

    pub fn cloud_name(&self) -> String {
        self.cloud()
            .map(|c| c.name)
            .unwrap_or_else(|_| "global".to_string())
    }
}

pub fn failure(e: hybrid_trust::ledger::LedgerError) -> Failure {
    ledger_failure(e)
}

/// The failure of a run that left damaged tenant records aside (issue 24, item 7), when there
/// are some: one line naming the first record's file, its fix as the hint; exit 2 when a hand
/// edit put an impossible date in it, else 1.
pub fn damaged_failure(damaged: &[hybrid_trust::ledger::Damaged]) -> Option<Failure> {
    let first = damaged.first()?;
    let line = match damaged.len() {
        1 => first.error.clone(),
        n => format!(
            "{n} tenant records are damaged and were left aside (first: {})",
            first.error
        ),
    };
    let hint = Some(first.hint.clone());
    Some(if first.bad_input {
        Failure::input(anyhow::anyhow!(line), hint)
    } else {
        Failure::runtime(anyhow::anyhow!(line), hint)
    })
}

impl Context {
    /// A tenant named on the command line that the ledger does not list: the error of its
    /// record when that record is damaged, else `missing` (not in the ledger).
    pub fn named_tenant_missing(&self, name: &str, missing: Failure) -> Failure {
        match self.ledger_store().map(|s| s.tenant(name, None)) {
            Ok(Err(e)) => ledger_failure(e),
            _ => missing,
        }
    }
}

impl Context {
    /// The settings file: `--config` (must exist), or the platform default (optional).
    pub fn settings(&self) -> Result<hybrid_trust::config::Settings, Failure> {
        let (path, explicit) = match &self.global.config {
            Some(p) => (p.clone(), true),
            None => match hybrid_trust::paths::default_config_file() {
                Some(p) => (p, false),
                None => return Ok(hybrid_trust::config::Settings::default()),
            },
        };
        hybrid_trust::config::Settings::load(&path, explicit).map_err(|e| {
            Failure::input(
                e,
                Some("fix the settings file (see README: reminders)".to_string()),
            )
        })
    }
}
