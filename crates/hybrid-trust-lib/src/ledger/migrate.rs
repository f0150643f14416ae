//! `hybrid-trust state migrate --to URL|DIR [--dry-run]`: copies every tenant record, the audit
//! log and the reminder records (they live in the records) from the current state to another
//! store, either way between a state dir and a database. A target that already holds tenants is
//! refused before anything is written; into a database everything goes in one transaction.

use super::db::ImportError;
use crate::ledger::{LedgerError, LedgerStore};
use crate::state::StateError;
use crate::state::pg::PgState;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One side of a migration.
pub enum Side {
    Dir(PathBuf),
    Db(Arc<PgState>),
}

impl Side {
    pub fn name(&self) -> String {
        match self {
            Side::Dir(d) => d.display().to_string(),
            Side::Db(pg) => pg.db().to_string(),
        }
    }

    fn store(&self) -> LedgerStore {
        match self {
            Side::Dir(d) => LedgerStore::in_dir(d),
            Side::Db(pg) => LedgerStore::in_db(pg.clone()),
        }
    }

    fn audit_lines(&self) -> Result<Vec<String>, MigrateError> {
        match self {
            Side::Db(pg) => pg.audit_lines().map_err(MigrateError::State),
            Side::Dir(d) => {
                let path = d.join("audit.log");
                match std::fs::read_to_string(&path) {
                    Ok(s) => Ok(s
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_string)
                        .collect()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                    Err(source) => Err(MigrateError::Ledger(LedgerError::Read { path, source })),
                }
            }
        }
    }
}

/// What was (or, in a dry run, would be) copied.
#[derive(Debug, Serialize)]
pub struct Counts {
    pub dry_run: bool,
    pub from: String,
    pub to: String,
    pub tenants: usize,
    pub audit_entries: usize,
    pub reminders: usize,
}

impl Counts {
    pub fn text(&self) -> String {
        format!(
            "{} {} tenant record(s), {} audit entr{} and {} reminder record(s) from {} to {}\n",
            if self.dry_run { "would copy" } else { "copied" },
            self.tenants,
            self.audit_entries,
            if self.audit_entries == 1 { "y" } else { "ies" },
            self.reminders,
            self.from,
            self.to
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target holds tenants already (exit 2).
    #[error("the target {target} already holds {tenants} tenant(s); nothing was copied")]
    NotEmpty { target: String, tenants: usize },
    /// The source has records that cannot be read (exit 1): they would be lost.
    #[error(
        "{count} tenant record(s) in {source_name} cannot be read (first: {first}); nothing was copied"
    )]
    Damaged {
        source_name: String,
        count: usize,
        first: String,
        hint: String,
    },
    #[error("the target is the current state ({0}); nothing was copied")]
    Same(String),
    #[error(transparent)]
    State(StateError),
    #[error(transparent)]
    Ledger(LedgerError),
}

impl MigrateError {
    pub fn hint(&self) -> String {
        match self {
            MigrateError::NotEmpty { .. } => "migrate into an empty state dir or database (a new schema: ?schema=NAME), or remove what the target holds first".into(),
            MigrateError::Damaged { hint, .. } => format!("mend them first: {hint}"),
            MigrateError::Same(_) => "name another state dir or database with --to".into(),
            MigrateError::State(e) => e.hint(),
            MigrateError::Ledger(e) => e.hint(),
        }
    }

    pub fn is_usage(&self) -> bool {
        matches!(self, MigrateError::NotEmpty { .. } | MigrateError::Same(_))
    }
}

/// Copies everything from `from` to `to` (or counts it, with `dry_run`).
pub fn migrate(from: &Side, to: &Side, dry_run: bool) -> Result<Counts, MigrateError> {
    if let (Side::Dir(a), Side::Dir(b)) = (from, to)
        && same_dir(a, b)
    {
        return Err(MigrateError::Same(a.display().to_string()));
    }
    if let (Side::Db(a), Side::Db(b)) = (from, to)
        && a.db() == b.db()
    {
        return Err(MigrateError::Same(a.db().to_string()));
    }
    let ledger = from.store().load().map_err(MigrateError::Ledger)?;
    if let Some(first) = ledger.damaged.first() {
        return Err(MigrateError::Damaged {
            source_name: from.name(),
            count: ledger.damaged.len(),
            first: first.error.clone(),
            hint: first.hint.clone(),
        });
    }
    let audit = from.audit_lines()?;
    let counts = Counts {
        dry_run,
        from: from.name(),
        to: to.name(),
        tenants: ledger.tenants.len(),
        audit_entries: audit.len(),
        reminders: ledger.tenants.iter().map(|t| t.reminders_sent.len()).sum(),
    };
    let not_empty = |tenants: usize| MigrateError::NotEmpty {
        target: to.name(),
        tenants,
    };
    match to {
        Side::Db(pg) => {
            let n = pg.tenant_count().map_err(MigrateError::State)?;
            if n > 0 {
                return Err(not_empty(n as usize));
            }
            if !dry_run {
                pg.import(&ledger.tenants, audit).map_err(|e| match e {
                    ImportError::NotEmpty { tenants, .. } => not_empty(tenants),
                    ImportError::State(e) => MigrateError::State(e),
                    ImportError::Ledger(e) => MigrateError::Ledger(e),
                })?;
            }
        }
        Side::Dir(dir) => {
            let store = LedgerStore::in_dir(dir);
            let there = store.load().map_err(MigrateError::Ledger)?;
            let n = there.tenants.len() + there.damaged.len();
            if n > 0 {
                return Err(not_empty(n));
            }
            if !dry_run {
                crate::paths::ensure_private_dir(dir).map_err(|source| {
                    MigrateError::Ledger(LedgerError::Write {
                        path: dir.clone(),
                        source,
                    })
                })?;
                let mut guard = store
                    .lock(Duration::from_secs(60))
                    .map_err(MigrateError::Ledger)?;
                if !guard.ledger.tenants.is_empty() {
                    return Err(not_empty(guard.ledger.tenants.len()));
                }
                guard.ledger.tenants = ledger.tenants;
                append_lines(&dir.join("audit.log"), &audit)?;
                guard.commit().map_err(MigrateError::Ledger)?;
            }
        }
    }
    Ok(counts)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn append_lines(path: &Path, lines: &[String]) -> Result<(), MigrateError> {
    use std::io::Write as _;
    if lines.is_empty() {
        return Ok(());
    }
    let err = |source| {
        MigrateError::Ledger(LedgerError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(err)?;
    let mut buf = Vec::new();
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    f.write_all(&buf).map_err(err)?;
    f.sync_all().map_err(err)
}
