//! The append-only audit log (`audit.log` in the state dir): one JSON line per change, written
//! before the change is sent, with who, what, when, and the keyCredentials before and after (public
//! certificates only; never a secret). Mode 0600, fsynced per line.

use crate::graph::KeyCredential;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    pub ts: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub tenant: &'a str,
    pub app_id: &'a str,
    pub service_principal_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<&'a [KeyCredential]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<&'a [KeyCredential]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_names: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_names: Option<&'a [String]>,
    pub note: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit log {path}")]
pub struct AuditError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    /// The team's database instead of the file (`--state-url`).
    pg: Option<std::sync::Arc<crate::state::pg::PgState>>,
}

impl AuditLog {
    pub fn in_dir(state_dir: &Path) -> AuditLog {
        AuditLog {
            path: state_dir.join("audit.log"),
            pg: None,
        }
    }

    /// The audit log in the team's database (`--state-url`).
    pub fn in_db(pg: std::sync::Arc<crate::state::pg::PgState>) -> AuditLog {
        AuditLog {
            path: PathBuf::from(pg.db()),
            pg: Some(pg),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`AuditLog::append`], awaited: a database insert leaves the caller's task free (a file
    /// is appended at once).
    pub async fn append_async(&self, entry: &AuditEntry<'_>) -> Result<(), AuditError> {
        let Some(pg) = &self.pg else {
            return self.append(entry);
        };
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let line = serde_json::to_string(entry).map_err(|e| err(std::io::Error::other(e)))?;
        pg.append_audit_async(line)
            .await
            .map_err(|e| err(std::io::Error::other(format!("{e} ({})", e.hint()))))
    }

    pub fn append(&self, entry: &AuditEntry<'_>) -> Result<(), AuditError> {
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        if let Some(pg) = &self.pg {
            let line = serde_json::to_string(entry).map_err(|e| err(std::io::Error::other(e)))?;
            return pg
                .append_audit(line)
                .map_err(|e| err(std::io::Error::other(format!("{e} ({})", e.hint()))));
        }
        if let Some(dir) = self.path.parent() {
            crate::paths::ensure_private_dir(dir).map_err(err)?;
        }
        let mut line = serde_json::to_vec(entry).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            o.mode(0o600);
        }
        let mut f = o.open(&self.path).map_err(err)?;
        f.write_all(&line).map_err(err)?;
        f.sync_all().map_err(err)
    }
}
