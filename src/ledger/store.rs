//! Reading and writing the ledger: an exclusive lock (`ledger.lock`, `std::fs::File::lock`)
//! around every read-modify-write, atomic replacement (temp file in the same directory, fsync,
//! rename, fsync of the directory), mode 0600, and the previous good copy kept as
//! `ledger.json.bak`. A ledger that does not parse is never overwritten: the error names it and
//! the last good copy. Older formats are migrated on load.

use super::{FORMAT, Ledger};
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
}

impl LedgerError {
    pub fn hint(&self) -> String {
        match self {
            LedgerError::Corrupt { backup: Some(b), .. } => format!("restore the last good copy: cp {} <ledger>, or move the damaged file away", b.display()),
            LedgerError::Corrupt { .. } => "move the damaged file away; tenants can be added again with hybrid-trust tenant add".into(),
            LedgerError::TooNew { .. } => "upgrade hybrid-trust".into(),
            LedgerError::Read { .. } | LedgerError::Write { .. } => "check the state dir's permissions (--state-dir)".into(),
            LedgerError::Busy { .. } => "wait for the other run to finish".into(),
            LedgerError::DateOutOfRange { path, backup, .. } => format!(
                "correct that date in {} (was it edited by hand?){}",
                path.display(),
                backup.as_ref().map_or(String::new(), |b| format!(", or restore the last good copy {}", b.display()))
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LedgerStore {
    path: PathBuf,
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
    let ledger: Ledger = match format {
        1 => serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?,
        f if f > FORMAT => {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found: f,
            });
        }
        f => return Err(corrupt(format!("unknown format {f}"))),
    };
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

fn backup_path(path: &Path) -> Option<PathBuf> {
    Some(path.with_file_name(format!("{}.bak", path.file_name()?.to_string_lossy())))
}

/// Holds the ledger lock for a read-modify-write.
pub struct LedgerGuard {
    _lock: File,
    store: LedgerStore,
    pub ledger: Ledger,
}

impl LedgerGuard {
    /// Writes the ledger and releases the lock.
    pub fn commit(self) -> Result<(), LedgerError> {
        self.store.write(&self.ledger)
    }
}

impl LedgerStore {
    pub fn in_dir(state_dir: &Path) -> LedgerStore {
        LedgerStore {
            path: state_dir.join("ledger.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the ledger (an empty one if there is none yet).
    pub fn load(&self) -> Result<Ledger, LedgerError> {
        match std::fs::read(&self.path) {
            Ok(b) => parse(&b, &self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::empty()),
            Err(source) => Err(LedgerError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Locks, loads, and hands back the ledger for changes; `commit` writes it.
    pub fn lock(&self, timeout: Duration) -> Result<LedgerGuard, LedgerError> {
        let lock_path = self.path.with_file_name("ledger.lock");
        let werr = |source| LedgerError::Write {
            path: lock_path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            crate::paths::ensure_private_dir(dir).map_err(werr)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(werr)?;
        let start = Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LedgerError::Busy {
                        path: lock_path,
                        secs: timeout.as_secs(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(werr(e)),
            }
        }
        let ledger = self.load()?;
        Ok(LedgerGuard {
            _lock: f,
            store: self.clone(),
            ledger,
        })
    }

    /// Atomic replacement; the current file (known good: it parsed) becomes the backup.
    fn write(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let werr = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::paths::ensure_private_dir(dir).map_err(werr)?;
        let mut bytes =
            serde_json::to_vec_pretty(ledger).map_err(|e| werr(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        // The current file parsed, so it is the last good copy: keep it before replacing it.
        if let (true, Some(bak)) = (self.path.exists(), backup_path(&self.path))
            && std::fs::read(&self.path)
                .ok()
                .is_some_and(|b| parse(&b, &self.path).is_ok())
        {
            crate::paths::write_atomic(&bak, &std::fs::read(&self.path).map_err(werr)?, 0o600)
                .map_err(werr)?;
        }
        crate::paths::write_atomic(&self.path, &bytes, 0o600).map_err(werr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, defect 4: a ledger date past the calendar crashed every `status`; it is now
    /// refused on load, naming the tenant, the field and the date.
    #[test]
    fn a_date_outside_years_1_to_9999_is_refused_with_where_it_is() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ledger/v1.json");
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
