//! Reading and writing the ledger (issue 19: a change costs the same with 10 or 10,000 tenants).
//!
//! Format 2 keeps one record file per tenant, as certbot keeps one renewal configuration per
//! lineage: `<state>/ledger/tenants/<domain>.json` (`{"format": 2, "tenant": {...}}`, readable by
//! a person), its last good copy `<domain>.json.bak`, a per-tenant lock `<domain>.lock`, and
//! `ledger/ids/<tenant id>` naming the file of a tenant found by its GUID. Changing one tenant
//! ([`LedgerStore::update`]) locks that tenant (and the ledger shared), reads and rewrites that
//! one file: atomic replacement (temp file, fsync, rename, fsync of the directory), mode 0600.
//! Whole-ledger changes ([`LedgerStore::lock`]) take the ledger lock exclusively and write only
//! the records that changed. A file that does not parse is never overwritten: the error names it
//! and its last good copy. A format-1 `ledger.json` is migrated on first use (and kept as
//! `ledger.json.v1`); `fixtures/ledger/v1.json` keeps loading.
//!
//! Why files and not an embedded database: the records stay plain JSON a person can read and
//! back up, no new dependency, and the kill -9 and concurrency guarantees are the ones the
//! atomic-write helper already gives; reading every tenant (`status --all`) stays O(n), which it
//! is by nature.

use super::{FORMAT, Ledger, TenantRecord};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the ledger {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ledger {path} is damaged ({reason}); it was left untouched")]
    Corrupt {
        path: PathBuf,
        reason: String,
        backup: Option<PathBuf>,
    },
    #[error(
        "the ledger {path} has format {found}, newer than this hybrid-trust understands ({FORMAT})"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("cannot write the ledger {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another hybrid-trust run holds the ledger lock {path} for more than {secs} s")]
    Busy { path: PathBuf, secs: u64 },
    /// A format-1 `ledger.json` next to a ledger that was migrated already (its own format-1
    /// file is kept as `ledger.json.v1`): put back by hand, or copied from another host.
    #[error(
        "a format-1 ledger {path} lies next to the migrated ledger {migrated}; it was left untouched"
    )]
    Leftover { path: PathBuf, migrated: PathBuf },
    /// Two entries of a format-1 ledger that would be one record (file names are the domain in
    /// lowercase): migrating would keep one of them silently, so nothing is migrated.
    #[error(
        "the ledger {path} holds two entries for one tenant, {first:?} and {second:?}, that differ; nothing was migrated"
    )]
    Duplicate {
        path: PathBuf,
        first: String,
        second: String,
    },
    /// A date outside the years 1..=9999 (`crate::dates`): bad input (exit 2), not damage.
    #[error(
        "the ledger {path} has an impossible date: tenant {tenant}, {field}: {date}; it was left untouched"
    )]
    DateOutOfRange {
        path: PathBuf,
        tenant: String,
        field: String,
        date: crate::dates::OutOfRange,
        backup: Option<PathBuf>,
    },
    /// The team's state database (`--state-url`) failed.
    #[error(transparent)]
    State(Box<crate::state::StateError>),
}

impl LedgerError {
    pub fn hint(&self) -> String {
        match self {
            LedgerError::Corrupt {
                path,
                backup: Some(b),
                ..
            } => format!(
                "restore its last good copy: cp {} {}, or remove it and record the tenant again with hybrid-trust tenant add {}",
                b.display(),
                path.display(),
                tenant_of(path)
            ),
            LedgerError::Corrupt { path, .. } => format!(
                "restore {} from a backup, or remove it and record the tenant again with hybrid-trust tenant add {}",
                path.display(),
                tenant_of(path)
            ),
            LedgerError::Leftover { path, migrated } => format!(
                "the tenants are in {}: move {} away (its migrated copy is ledger.json.v1)",
                migrated.display(),
                path.display()
            ),
            LedgerError::Duplicate { path, .. } => format!(
                "edit {}: keep one of the two entries (merge their credentials and notify lists into it by hand), then run the command again",
                path.display()
            ),
            LedgerError::TooNew { .. } => "upgrade hybrid-trust".into(),
            LedgerError::State(e) => e.hint(),
            LedgerError::Read { .. } | LedgerError::Write { .. } => {
                "check the state dir's permissions (--state-dir)".into()
            }
            LedgerError::Busy { .. } => "wait for the other run to finish".into(),
            LedgerError::DateOutOfRange { path, backup, .. } => format!(
                "correct that date in {} (was it edited by hand?){}",
                path.display(),
                backup.as_ref().map_or(String::new(), |b| format!(
                    ", or restore the last good copy {}",
                    b.display()
                ))
            ),
        }
    }
}

/// The tenant a record file is for, as a command line names it: its domain when the file name
/// is one, else `DOMAIN`.
fn tenant_of(path: &Path) -> String {
    let in_tenants = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "tenants");
    match path.file_stem().map(|s| s.to_string_lossy()) {
        Some(stem) if in_tenants && !stem.starts_with('_') => stem.into_owned(),
        _ => "DOMAIN".to_string(),
    }
}

/// A tenant record that could not be read (issue 24, item 7): the load of every other tenant
/// goes on without it; the commands report it with its fix. It is never overwritten.
#[derive(Debug, Clone, PartialEq)]
pub struct Damaged {
    /// The record's file.
    pub path: PathBuf,
    /// The tenant, as its file name gives it (`DOMAIN` when the name is a hashed one).
    pub tenant: String,
    /// What is wrong (one line, naming the file).
    pub error: String,
    /// How to fix it (restore the last good copy, or remove it and add the tenant again).
    pub hint: String,
    /// A hand edit put an impossible date in it (bad input, exit 2) rather than damage (exit 1).
    pub bad_input: bool,
}

impl Damaged {
    fn new(path: &Path, e: &LedgerError) -> Damaged {
        Damaged {
            path: path.to_path_buf(),
            tenant: tenant_of(path),
            error: e.to_string(),
            hint: e.hint(),
            bad_input: matches!(e, LedgerError::DateOutOfRange { .. }),
        }
    }
}

/// The ledger in a state dir: one record file per tenant (format 2, see the module docs).
#[derive(Debug, Clone)]
pub struct LedgerStore {
    /// `ledger.json`: the format-1 ledger, migrated on first use.
    legacy: PathBuf,
    /// `ledger/`: `FORMAT`, `lock`, `tenants/<key>.json` (+ `.bak`, `.lock`), `ids/<tenant id>`.
    dir: PathBuf,
    /// The team's database instead of the files (`--state-url`, [`crate::state::pg`]).
    pg: Option<std::sync::Arc<crate::state::pg::PgState>>,
}

/// Parses any format ever written and migrates it to the current one.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Ledger, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        path: path.to_path_buf(),
        reason,
        backup: backup_path(path).filter(|b| b.exists()),
    };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let format = v
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no format number".into()))? as u32;
    let mut ledger: Ledger = match format {
        1 => serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?,
        // A format-2 tenant file: `{"format": 2, "tenant": {...}}`.
        2 => {
            let t: TenantFile = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
            Ledger {
                format: 2,
                tenants: vec![t.tenant],
                damaged: Vec::new(),
            }
        }
        f if f > FORMAT => {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found: f,
            });
        }
        f => return Err(corrupt(format!("unknown format {f}"))),
    };
    ledger.format = FORMAT;
    match ledger.date_out_of_range() {
        None => Ok(ledger),
        Some((tenant, field, date)) => Err(LedgerError::DateOutOfRange {
            path: path.to_path_buf(),
            tenant,
            field,
            date,
            backup: backup_path(path).filter(|b| b.exists()),
        }),
    }
}

/// Two format-1 entries for one record file that hold the same record (the domain's case
/// aside): keeping one loses nothing.
fn same_record(a: &TenantRecord, b: &TenantRecord) -> bool {
    let mut b = b.clone();
    b.domain.clone_from(&a.domain);
    b.seq = a.seq;
    *a == b
}

/// One tenant's record file.
#[derive(serde::Serialize, serde::Deserialize)]
struct TenantFile {
    format: u32,
    tenant: TenantRecord,
}

fn backup_path(path: &Path) -> Option<PathBuf> {
    Some(path.with_file_name(format!("{}.bak", path.file_name()?.to_string_lossy())))
}

/// The file name of a tenant's record: its domain (a DNS name or a GUID), lowercase; anything
/// else (a hand-edited ledger) is made safe and kept apart by a hash.
pub fn key_of(domain: &str) -> String {
    let d = domain.to_ascii_lowercase();
    let safe = !d.is_empty()
        && !d.starts_with('.')
        && d.len() <= 200
        && d.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if safe {
        return d;
    }
    use sha1::Digest as _;
    let h: String = sha1::Sha1::digest(domain.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let clean: String = d
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .take(60)
        .collect();
    format!("_{}-{h}", clean.trim_start_matches('.'))
}

/// How long a read waits for another run's migration (or whole-ledger change) to finish.
const MIGRATION_WAIT: Duration = Duration::from_secs(60);

/// An open lock file, released on drop.
struct Held(#[allow(dead_code)] File);

fn acquire(path: &Path, shared: bool, timeout: Duration) -> Result<Held, LedgerError> {
    let werr = |source| LedgerError::Write {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(werr)?;
    let start = Instant::now();
    loop {
        let r = if shared {
            f.try_lock_shared()
        } else {
            f.try_lock()
        };
        match r {
            Ok(()) => return Ok(Held(f)),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::Busy {
                    path: path.to_path_buf(),
                    secs: timeout.as_secs(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(werr(e)),
        }
    }
}

/// Holds the whole ledger for a read-modify-write of several tenants (rare: migration, removal);
/// `commit` writes only the records that changed.
pub struct LedgerGuard {
    _lock: Option<Held>,
    _pg_lock: Option<crate::state::pg::PgLock>,
    store: LedgerStore,
    before: Ledger,
    pub ledger: Ledger,
}

impl LedgerGuard {
    /// Writes the changed records (and removes the removed ones), then releases the lock.
    pub fn commit(mut self) -> Result<(), LedgerError> {
        // Records without an order of their own (written by hand or by a script) keep the order
        // they have in this ledger.
        for (i, t) in self.ledger.tenants.iter_mut().enumerate() {
            if t.seq == 0 {
                t.seq = i as i64;
            }
        }
        self.store.write_changes(&self.before, &self.ledger)
    }
}

impl LedgerStore {
    pub fn in_dir(state_dir: &Path) -> LedgerStore {
        LedgerStore {
            legacy: state_dir.join("ledger.json"),
            dir: state_dir.join("ledger"),
            pg: None,
        }
    }

    /// The ledger in the team's database (`--state-url`).
    pub fn in_db(pg: std::sync::Arc<crate::state::pg::PgState>) -> LedgerStore {
        LedgerStore {
            legacy: PathBuf::new(),
            dir: PathBuf::from(pg.db()),
            pg: Some(pg),
        }
    }

    /// The database this ledger is in, when it is not in a state dir.
    pub fn db(&self) -> Option<&std::sync::Arc<crate::state::pg::PgState>> {
        self.pg.as_ref()
    }

    /// The ledger's directory (`<state dir>/ledger`).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn tenants_dir(&self) -> PathBuf {
        self.dir.join("tenants")
    }

    fn file(&self, key: &str) -> PathBuf {
        self.tenants_dir().join(format!("{key}.json"))
    }

    fn id_file(&self, id: &str) -> PathBuf {
        self.dir.join("ids").join(id.to_ascii_lowercase())
    }

    fn werr(&self, path: &Path) -> impl Fn(std::io::Error) -> LedgerError + use<> {
        let path = path.to_path_buf();
        move |source| LedgerError::Write {
            path: path.clone(),
            source,
        }
    }

    /// Whether there is a ledger at all (migrated, to migrate, or half-migrated); none is
    /// created by reading.
    fn exists(&self) -> bool {
        self.dir.join("FORMAT").exists() || self.legacy.exists() || self.kept_v1().exists()
    }

    /// Where a migrated format-1 ledger is kept.
    fn kept_v1(&self) -> PathBuf {
        self.legacy.with_file_name("ledger.json.v1")
    }

    /// Makes the per-tenant ledger, migrating a format-1 `ledger.json` first, under the
    /// exclusive ledger lock (issue 24, item 6). The steps, in an order where a crash after any
    /// prefix is finished by the next run:
    ///
    /// 1. every record is written from `ledger.json` (atomically each; a re-run writes them all
    ///    again from the same file);
    /// 2. `ledger.json` is renamed `ledger.json.v1` (and the directory fsynced);
    /// 3. `ledger/FORMAT` is written: the migration is done.
    ///
    /// On disk: `ledger.json` without `FORMAT` is a migration to do (again); `ledger.json.v1`
    /// without `ledger.json` nor `FORMAT` is one stopped between 2 and 3 (its records are all
    /// written: `FORMAT` is written); `ledger.json` next to `FORMAT` without `ledger.json.v1` is
    /// one that an earlier build (which wrote `FORMAT` before the rename) stopped before its
    /// rename: the rename is done. `ledger.json` next to both `FORMAT` and `ledger.json.v1` was put
    /// there after a migration: refused, untouched ([`LedgerError::Leftover`]).
    fn ensure(&self, timeout: Duration) -> Result<(), LedgerError> {
        let format = self.dir.join("FORMAT");
        // The common case, without a lock: `FORMAT` is written last, so a ledger that has it and
        // no `ledger.json` is migrated.
        if format.exists() && !self.legacy.exists() {
            return Ok(());
        }
        // A format-1 ledger that cannot be migrated as it is is refused before anything is made
        // (gone meanwhile: another run migrated it, which the locked check below sees).
        if self.legacy.exists() && !format.exists() {
            match self.read_legacy() {
                Err(LedgerError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                r => {
                    r?;
                }
            }
        }
        for d in [&self.dir, &self.tenants_dir(), &self.dir.join("ids")] {
            crate::paths::ensure_private_dir(d).map_err(self.werr(d))?;
        }
        let _lock = acquire(&self.dir.join("lock"), false, timeout)?;
        let kept = self.kept_v1();
        match (format.exists(), self.legacy.exists(), kept.exists()) {
            (true, false, _) => Ok(()),
            (true, true, true) => Err(LedgerError::Leftover {
                path: self.legacy.clone(),
                migrated: self.dir.clone(),
            }),
            // Stopped between the FORMAT and the rename by a build that wrote FORMAT first:
            // every record was written before FORMAT.
            (true, true, false) => self.keep_legacy(),
            (false, true, _) => {
                let old = self.read_legacy()?;
                for (i, t) in old.tenants.iter().enumerate() {
                    let mut t = t.clone();
                    t.seq = i as i64;
                    // A file left by an interrupted attempt is no last good copy of anything.
                    self.write_record(&t, false)?;
                }
                self.keep_legacy()?;
                self.write_format()
            }
            // Nothing to migrate (a new ledger), or stopped after the rename: the records are in.
            (false, false, _) => self.write_format(),
        }
    }

    /// Reads the format-1 ledger, refusing two entries that would share one record file
    /// (`contoso.com` and `Contoso.com`) unless they are the same record: then one is kept.
    fn read_legacy(&self) -> Result<Ledger, LedgerError> {
        let bytes = std::fs::read(&self.legacy).map_err(|source| LedgerError::Read {
            path: self.legacy.clone(),
            source,
        })?;
        let mut old = parse(&bytes, &self.legacy)?;
        let mut kept: Vec<TenantRecord> = Vec::with_capacity(old.tenants.len());
        for t in old.tenants.drain(..) {
            let key = key_of(&t.domain);
            match kept.iter().find(|k| key_of(&k.domain) == key) {
                None => kept.push(t),
                Some(k) if same_record(k, &t) => {}
                Some(k) => {
                    return Err(LedgerError::Duplicate {
                        path: self.legacy.clone(),
                        first: k.domain.clone(),
                        second: t.domain.clone(),
                    });
                }
            }
        }
        old.tenants = kept;
        Ok(old)
    }

    /// Step 2: `ledger.json` becomes `ledger.json.v1`, durably.
    fn keep_legacy(&self) -> Result<(), LedgerError> {
        let kept = self.kept_v1();
        std::fs::rename(&self.legacy, &kept).map_err(self.werr(&kept))?;
        if let Some(parent) = kept.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(self.werr(parent))?;
        }
        Ok(())
    }

    /// Step 3: the ledger is format 2.
    fn write_format(&self) -> Result<(), LedgerError> {
        let format = self.dir.join("FORMAT");
        crate::paths::write_atomic(&format, b"2\n", 0o600).map_err(self.werr(&format))
    }

    fn read_file(&self, path: &Path) -> Result<Option<TenantRecord>, LedgerError> {
        match std::fs::read(path) {
            Ok(b) => Ok(parse(&b, path)?.tenants.pop()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LedgerError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Reads every tenant (an empty ledger if there is none yet: nothing is created), in the
    /// order they were added. A record that cannot be read stops nothing: it is left out and
    /// listed in [`Ledger::damaged`] (issue 24, item 7), so one bad restore does not silence
    /// every other tenant's renewal and reminders.
    pub fn load(&self) -> Result<Ledger, LedgerError> {
        if let Some(pg) = &self.pg {
            return pg.load();
        }
        if !self.exists() {
            return Ok(Ledger::empty());
        }
        self.ensure(MIGRATION_WAIT)?;
        let dir = self.tenants_dir();
        let (mut tenants, mut damaged) = (Vec::new(), Vec::new());
        let entries = std::fs::read_dir(&dir).map_err(|source| LedgerError::Read {
            path: dir.clone(),
            source,
        })?;
        for e in entries {
            let p = e
                .map_err(|source| LedgerError::Read {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if p.extension().is_some_and(|x| x == "json") {
                match self.read_file(&p) {
                    Ok(t) => tenants.extend(t),
                    Err(e) => damaged.push(Damaged::new(&p, &e)),
                }
            }
        }
        tenants.sort_by(|a, b| (a.seq, &a.domain).cmp(&(b.seq, &b.domain)));
        damaged.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Ledger {
            format: FORMAT,
            tenants,
            damaged,
        })
    }

    /// One tenant's record, found by `name` (domain or id) or `tenant_id`, reading only its file
    /// (records are replaced atomically, so no lock is needed to read one).
    pub fn tenant(
        &self,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<TenantRecord>, LedgerError> {
        if let Some(pg) = &self.pg {
            return crate::state::pg::wait(pg.tenant_async(name, tenant_id));
        }
        if !self.exists() {
            return Ok(None);
        }
        self.ensure(MIGRATION_WAIT)?;
        let key = self.find_key(name, tenant_id);
        Ok(self
            .read_file(&self.file(&key))?
            .filter(|t| t.is(name) || tenant_id.is_some_and(|id| t.is(id))))
    }

    /// [`LedgerStore::tenant`], awaited: a database read leaves the caller's task free (a file
    /// is read at once).
    pub async fn tenant_async(
        &self,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<TenantRecord>, LedgerError> {
        match &self.pg {
            Some(pg) => pg.tenant_async(name, tenant_id).await,
            None => self.tenant(name, tenant_id),
        }
    }

    /// [`LedgerStore::update`], awaited: a database transaction leaves the caller's task free
    /// (files are written at once).
    pub async fn update_async<T>(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        timeout: Duration,
        f: impl FnOnce(&mut Ledger) -> T,
    ) -> Result<T, LedgerError> {
        match &self.pg {
            Some(pg) => pg.update_async(name, tenant_id, timeout, f).await,
            None => self.update(name, tenant_id, timeout, f),
        }
    }

    /// Locks the whole ledger (exclusive: every per-tenant change waits), loads it, and hands it
    /// back for changes; `commit` writes what changed.
    pub fn lock(&self, timeout: Duration) -> Result<LedgerGuard, LedgerError> {
        if let Some(pg) = &self.pg {
            let lock = pg.lock("ledger", "", timeout)?;
            let ledger = self.load()?;
            return Ok(LedgerGuard {
                _lock: None,
                _pg_lock: Some(lock),
                store: self.clone(),
                before: ledger.clone(),
                ledger,
            });
        }
        self.ensure(timeout)?;
        let lock = acquire(&self.dir.join("lock"), false, timeout)?;
        let ledger = self.load()?;
        Ok(LedgerGuard {
            _lock: Some(lock),
            _pg_lock: None,
            store: self.clone(),
            before: ledger.clone(),
            ledger,
        })
    }

    /// Changes the record of one tenant, found by `name` (domain or id) or by `tenant_id`, at a
    /// cost that does not depend on the fleet: `f` gets a ledger holding that record (or none:
    /// it may create it, e.g. with [`Ledger::tenant_entry_for`], or remove it); what it changed is
    /// written back under that tenant's lock (and a shared lock on the ledger).
    pub fn update<T>(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        timeout: Duration,
        f: impl FnOnce(&mut Ledger) -> T,
    ) -> Result<T, LedgerError> {
        if let Some(pg) = &self.pg {
            return crate::state::pg::wait(pg.update_async(name, tenant_id, timeout, f));
        }
        self.ensure(timeout)?;
        let _shared = acquire(&self.dir.join("lock"), true, timeout)?;
        let key = self.find_key(name, tenant_id);
        let _tenant = acquire(
            &self.tenants_dir().join(format!("{key}.lock")),
            false,
            timeout,
        )?;
        let before = Ledger {
            format: FORMAT,
            tenants: self.read_file(&self.file(&key))?.into_iter().collect(),
            damaged: Vec::new(),
        };
        let mut ledger = before.clone();
        let out = f(&mut ledger);
        self.write_changes(&before, &ledger)?;
        Ok(out)
    }

    /// The key of the record `name` or `tenant_id` names (the name's own key when none exists).
    fn find_key(&self, name: &str, tenant_id: Option<&str>) -> String {
        let own = key_of(name);
        if self.file(&own).exists() {
            return own;
        }
        for id in [Some(name), tenant_id].into_iter().flatten() {
            if let Ok(k) = std::fs::read_to_string(self.id_file(id)) {
                let k = k.trim().to_string();
                if !k.is_empty() && !k.contains(['/', '\\']) && self.file(&k).exists() {
                    return k;
                }
            }
        }
        own
    }

    /// Writes the records of `after` that differ from `before`, removes the ones it dropped.
    fn write_changes(&self, before: &Ledger, after: &Ledger) -> Result<(), LedgerError> {
        if let Some(pg) = &self.pg {
            return pg.write_changes(before, after);
        }
        for t in &after.tenants {
            if !before.tenants.contains(t) {
                self.write_record(t, true)?;
            }
        }
        for old in &before.tenants {
            let key = key_of(&old.domain);
            let kept = after.tenants.iter().any(|t| key_of(&t.domain) == key);
            if !kept {
                let p = self.file(&key);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.werr(&p)(e)),
                }
                let _ = std::fs::remove_file(backup_path(&p).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Atomic replacement of one tenant's file; with `backup`, the current one becomes its backup
    /// (a hard link, no copy: it is known good, since every change parsed it first); the tenant
    /// id points at it.
    fn write_record(&self, t: &TenantRecord, backup: bool) -> Result<(), LedgerError> {
        let path = self.file(&key_of(&t.domain));
        let werr = self.werr(&path);
        let mut bytes = serde_json::to_vec_pretty(&TenantFile {
            format: FORMAT,
            tenant: t.clone(),
        })
        .map_err(|e| werr(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        if let Some(bak) = backup_path(&path).filter(|_| backup)
            && path.exists()
        {
            // A crash between these leaves no backup, never no record.
            let _ = std::fs::remove_file(&bak);
            std::fs::hard_link(&path, &bak).map_err(self.werr(&bak))?;
        }
        crate::paths::write_atomic(&path, &bytes, 0o600).map_err(werr)?;
        if let Some(id) = &t.tenant_id
            && crate::ids::TenantId::parse(id).is_some()
        {
            let p = self.id_file(id);
            let key = key_of(&t.domain);
            if std::fs::read_to_string(&p).ok().as_deref() != Some(key.as_str()) {
                crate::paths::write_atomic(&p, key.as_bytes(), 0o600).map_err(self.werr(&p))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(domain: &str, id: Option<&str>) -> TenantRecord {
        let now = crate::clock::Clock::System.now();
        let mut t = TenantRecord::new(domain, "global", vec![], now);
        t.tenant_id = id.map(str::to_string);
        t
    }

    /// One file per tenant: a change reads and writes that tenant's file only; a record found by
    /// its GUID; a GUID-named record that learns its domain moves to its new file.
    #[test]
    fn one_tenant_changes_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::in_dir(dir.path());
        let id = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
        let t = Duration::from_secs(5);
        store
            .update(id, Some(id), t, |l| {
                l.tenant_entry_for(
                    id,
                    Some(id),
                    "global",
                    &[],
                    crate::clock::Clock::System.now(),
                );
            })
            .unwrap();
        assert!(store.file(id).exists());
        store
            .update("contoso.com", Some(id), t, |l| {
                let r =
                    l.tenant_entry_for("contoso.com", Some(id), "g", &[], rec("x", None).added_at);
                r.notify.push("a@contoso.com".into());
            })
            .unwrap();
        assert!(!store.file(id).exists() && store.file("contoso.com").exists());
        let found = store
            .update(id, None, t, |l| l.tenant(id).map(|r| r.notify.clone()))
            .unwrap();
        assert_eq!(found, Some(vec!["a@contoso.com".to_string()]));
        store
            .update("b.example", None, t, |l| {
                l.tenants.push(rec("b.example", None))
            })
            .unwrap();
        let before = std::fs::read(store.file("b.example")).unwrap();
        store
            .update("contoso.com", None, t, |l| l.tenants[0].notify.clear())
            .unwrap();
        assert_eq!(
            std::fs::read(store.file("b.example")).unwrap(),
            before,
            "untouched"
        );
        let l = store.load().unwrap();
        assert_eq!(l.tenants.len(), 2);
        assert_eq!(
            l.tenants[0].domain, "contoso.com",
            "in the order they were added"
        );
        // Removal removes the file.
        store
            .update("b.example", None, t, |l| l.tenants.clear())
            .unwrap();
        assert!(!store.file("b.example").exists());
        assert_eq!(key_of("../evil"), key_of("../evil"));
        assert!(!key_of("../evil").contains('/'));
    }

    /// A migration interrupted before `FORMAT` was written is done again from the old file.
    #[test]
    fn an_interrupted_migration_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ledger/v1.json");
        std::fs::copy(v1, dir.path().join("ledger.json")).unwrap();
        let store = LedgerStore::in_dir(dir.path());
        // As if killed after one record file: a stale, partial record is there.
        crate::paths::ensure_private_dir(&store.tenants_dir()).unwrap();
        std::fs::write(
            store.file("contoso.onmicrosoft.com"),
            b"{\"format\": 2, \"ten",
        )
        .unwrap();
        let l = store.load().unwrap();
        assert_eq!(l.tenants.len(), 2);
        assert_eq!(l.tenants[0].domain, "contoso.onmicrosoft.com");
        assert!(dir.path().join("ledger.json.v1").exists());
        assert!(
            !backup_path(&store.file("contoso.onmicrosoft.com"))
                .unwrap()
                .exists(),
            "the partial file is no last good copy"
        );
        // A format-1 file that appears next to the migrated ledger is refused, not ignored.
        std::fs::copy(v1, dir.path().join("ledger.json")).unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, LedgerError::Leftover { .. }), "{e:?}");
        assert!(e.hint().contains("move"), "{}", e.hint());
    }

    /// Issue 24, item 6: every decision of the migration is taken under the exclusive ledger
    /// lock. A ledger stopped between `FORMAT` and the rename (as earlier builds could leave it)
    /// is not judged while another run holds the lock (it may be that run's migration); once
    /// the lock is free, the migration is finished.
    #[test]
    fn the_migration_is_judged_and_finished_under_the_ledger_lock() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ledger/v1.json");
        let reference = tempfile::tempdir().unwrap();
        std::fs::copy(v1, reference.path().join("ledger.json")).unwrap();
        let want = LedgerStore::in_dir(reference.path()).load().unwrap();
        // Every record written, FORMAT written, ledger.json not renamed yet.
        std::fs::copy(v1, dir.path().join("ledger.json")).unwrap();
        let store = LedgerStore::in_dir(dir.path());
        for d in [store.tenants_dir(), store.dir.join("ids")] {
            crate::paths::ensure_private_dir(&d).unwrap();
        }
        for t in &want.tenants {
            store.write_record(t, false).unwrap();
        }
        std::fs::write(store.dir.join("FORMAT"), b"2\n").unwrap();
        let held = acquire(&store.dir.join("lock"), false, Duration::ZERO).unwrap();
        match store.lock(Duration::from_millis(20)) {
            Err(LedgerError::Busy { .. }) => {}
            other => panic!("judged without the lock: {:?}", other.map(|g| g.ledger)),
        }
        assert!(
            dir.path().join("ledger.json").exists(),
            "untouched meanwhile"
        );
        drop(held);
        let got = store.lock(Duration::from_secs(5)).unwrap();
        assert_eq!(got.ledger.tenants, want.tenants);
        assert!(!dir.path().join("ledger.json").exists());
        assert!(dir.path().join("ledger.json.v1").exists());
    }

    /// Issue 14, defect 4: a ledger date past the calendar crashed every `status`; it is now
    /// refused on load, naming the tenant, the field and the date.
    #[test]
    fn a_date_outside_years_1_to_9999_is_refused_with_where_it_is() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ledger/v1.json");
        let good = std::fs::read_to_string(dir).unwrap();
        let path = Path::new("ledger.json");
        assert!(parse(good.as_bytes(), path).is_ok());
        for (from, to, field) in [
            (
                "\"end\": \"2027-11-22T14:03:18Z\"",
                "\"end\": \"+262142-12-31T23:59:59Z\"",
                "credentials[0].end",
            ),
            (
                "\"not_after\": \"2126-10-29T13:44:43Z\"",
                "\"not_after\": \"-262143-01-01T00:00:00Z\"",
                "cert.not_after",
            ),
            (
                "\"sent_at\": \"2027-09-23T06:00:00Z\"",
                "\"sent_at\": \"+10000-01-01T00:00:00Z\"",
                "reminders_sent[0].sent_at",
            ),
            (
                "\"added_at\": \"2026-11-20T09:00:00Z\"",
                "\"added_at\": \"0000-12-31T23:59:59Z\"",
                "added_at",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            match parse(bad.as_bytes(), path) {
                Err(e @ LedgerError::DateOutOfRange { .. }) => {
                    let m = e.to_string();
                    assert!(m.contains(field), "{m}");
                    assert!(m.contains(crate::dates::OUT_OF_RANGE), "{m}");
                    assert!(!e.hint().is_empty());
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        // The ends of the range itself load.
        let edge = good
            .replacen("2027-11-22T14:03:18Z", "9999-12-31T23:59:59.9999999Z", 1)
            .replacen("2026-11-20T09:00:00Z", "0001-01-01T00:00:00Z", 1);
        assert!(parse(edge.as_bytes(), path).is_ok());
    }
}
