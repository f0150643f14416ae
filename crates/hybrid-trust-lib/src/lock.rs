//! A per-tenant advisory lock (`locks/<tenant>.lock` in the state dir, `std::fs::File::lock`) so
//! that processes on this machine change one tenant one at a time. Graph has no ETag for
//! keyCredentials; across machines the read-back check in `credential` catches lost updates.
//! Also the reminders lock (`locks/remind/run.lock`, [`TenantLock::reminders`]): one `remind`
//! run at a time plans, sends and records, so overlapping runs deliver each reminder once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TenantLock {
    _file: Option<File>,
    /// The lock in the team's database (`--state-url`): a session-level advisory lock on a
    /// connection kept for it ([`crate::state::pg::PgLock`]).
    pg: Option<crate::state::pg::PgLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another hybrid-trust run holds {path} for more than {secs} s")]
    Busy { path: PathBuf, secs: u64 },
    #[error(transparent)]
    State(crate::state::StateError),
}

impl LockError {
    /// Another run (here or on another host) holds the lock: a run with other tenants to do
    /// does them first and comes back.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            LockError::Busy { .. } | LockError::State(crate::state::StateError::Busy { .. })
        )
    }
}

fn safe_name(tenant: &str) -> String {
    tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl TenantLock {
    /// The tenant's lock in the team's database: every host naming the same URL waits for it.
    pub fn acquire_db(
        pg: &crate::state::pg::PgState,
        tenant: &str,
        timeout: Duration,
    ) -> Result<TenantLock, LockError> {
        crate::state::pg::wait(Self::acquire_db_async(pg, tenant, timeout))
    }

    /// [`TenantLock::acquire_db`], awaited (the caller's task is free while it waits).
    pub async fn acquire_db_async(
        pg: &crate::state::pg::PgState,
        tenant: &str,
        timeout: Duration,
    ) -> Result<TenantLock, LockError> {
        Ok(TenantLock {
            _file: None,
            pg: Some(
                pg.lock_async("tenant", &safe_name(tenant), timeout)
                    .await
                    .map_err(LockError::State)?,
            ),
        })
    }

    /// The team's reminders lock: one `remind` run at a time across every host.
    pub fn reminders_db(
        pg: &crate::state::pg::PgState,
        timeout: Duration,
    ) -> Result<TenantLock, LockError> {
        Ok(TenantLock {
            _file: None,
            pg: Some(pg.lock("remind", "", timeout).map_err(LockError::State)?),
        })
    }

    /// The database server process holding a database lock (to end it in a test).
    pub fn backend_pid(&self) -> Option<i32> {
        self.pg.as_ref().map(|l| l.backend_pid)
    }

    /// Fails when a database lock was lost with its connection (a restarted server): what the
    /// change records must not be written as if it still held the tenant.
    pub fn check(&self) -> Result<(), crate::state::StateError> {
        match &self.pg {
            Some(l) => l.check(),
            None => Ok(()),
        }
    }

    pub fn acquire(
        state_dir: &Path,
        tenant: &str,
        timeout: Duration,
    ) -> Result<TenantLock, LockError> {
        let dir = state_dir.join("locks");
        let path = dir.join(format!("{}.lock", safe_name(tenant)));
        Self::acquire_in(&dir, path, timeout)
    }

    /// [`TenantLock::acquire`], awaited: tried at once, then again every 50 ms (the caller's
    /// task free meanwhile) until `timeout`.
    pub async fn acquire_async(
        state_dir: &Path,
        tenant: &str,
        timeout: Duration,
    ) -> Result<TenantLock, LockError> {
        let start = Instant::now();
        loop {
            match Self::acquire(state_dir, tenant, Duration::ZERO) {
                Err(LockError::Busy { path, .. }) => {
                    let elapsed = start.elapsed();
                    if elapsed >= timeout {
                        return Err(LockError::Busy {
                            path,
                            secs: timeout.as_secs(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(50).min(timeout - elapsed)).await;
                }
                r => return r,
            }
        }
    }

    /// The reminders lock of a state dir: its own file (in a folder no tenant's lock file can be
    /// named like), so holding it never makes `renew` wait.
    pub fn reminders(state_dir: &Path, timeout: Duration) -> Result<TenantLock, LockError> {
        let dir = state_dir.join("locks").join("remind");
        let path = dir.join("run.lock");
        Self::acquire_in(&dir, path, timeout)
    }

    fn acquire_in(dir: &Path, path: PathBuf, timeout: Duration) -> Result<TenantLock, LockError> {
        crate::paths::ensure_private_dir(dir).map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(TenantLock {
                        _file: Some(file),
                        pg: None,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LockError::Busy {
                        path,
                        secs: timeout.as_secs(),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(LockError::Open { path, source });
                }
            }
        }
    }
}
