//! Where the tool's shared state lives: the local state dir (the default) or, with
//! `--state-url postgres://…` (`HYBRID_TRUST_STATE_URL`, `[state] url`), a PostgreSQL database a
//! team shares (issue 26). This module owns the URL (parsed, checked, shown without secrets), the
//! password's sources (`PGPASSWORD`, a passfile, the keyring; never the URL) and the errors of a
//! database that is unreachable, refuses the password or has a newer schema. [`pg`] is the store
//! itself (records, audit log, locks), [`tls`] its rustls connector, [`migrate`] the copy between
//! the two stores (`hybrid-trust state migrate`). The ledger, audit log and locks dispatch to
//! [`pg::PgState`] when one is given; the rest of the tool does not know which store it has.
//!
//! # Locks and connections (PostgreSQL)
//!
//! - **What is locked.** The same three locks as in a state dir: one per tenant (keyed by the
//!   tenant id), held by a change from its plan through the Graph read, the PATCH, the
//!   read-back and the record; the reminders lock (one `remind` run at a time for the whole
//!   team, from reading the records to the last mark); the whole-ledger lock (migration,
//!   removal). Each is a session-level advisory lock whose 64-bit key is a hash of the schema,
//!   the lock's kind and its name ([`pg`]), so two teams' schemas in one database never meet.
//! - **Where they are held.** Every lock of a process is held on ONE connection, its lock
//!   connection (a session holds any number of advisory locks). A `renew --all` over 1,000
//!   tenants at `--concurrency 1000` holds up to 1,000 tenant locks on that one connection.
//!   Advisory locks are re-entrant within a session, so the process keeps its own set of the
//!   keys it holds and a second holder in the same process waits on that set, not the server.
//!   Taking a lock is one `pg_try_advisory_lock`; a wait joins the process's one poller, which
//!   every 50 ms tries every awaited key in ONE query (`… unnest($1) … WHERE
//!   pg_try_advisory_lock(k)`) and hands each key taken to its waiter. Never a blocking
//!   `pg_advisory_lock`, so a wait cannot hang on the server and is bounded; a thousand tenants
//!   waiting for another host cost one query per tick, not a thousand. A wait that ends just as
//!   its key is taken keeps it; one that ended before gets nothing, and the poller gives the key
//!   back.
//! - **Sharing a fleet.** `renew --all` tries each tenant's lock once (a zero wait): a tenant
//!   another run holds waits beside the free ones (up to the usual five minutes) and is decided
//!   again under its lock. Runs of the moment take a run slot (advisory locks `run 0`…`run 63`)
//!   and start their fleet at the slot's spread (0, n/2, n/4, 3n/4, …), so two hosts meet in the
//!   middle instead of contending for the same tenants in the same order.
//! - **Releasing.** Dropping the lock unlocks it on the server, then forgets the key. When the
//!   lock connection ends (`kill -9`, a lost network, a restarted server), the server frees every
//!   lock it held: a dead host blocks nobody. A holder checks its connection before it records
//!   ([`pg::PgLock::check`]); if the lock went with the connection, the run stops with one error
//!   line and writes nothing as if it still held the tenant; the next run reads Graph and
//!   reconciles, as after a crash with files.
//! - **Reads and records** use other connections: a pool of at most 8, all kept idle for reuse
//!   with their prepared statements (a closed one is dropped and a read retried once on a new
//!   one); a caller past the eighth waits its turn, so `--concurrency 1000` never opens 1,000
//!   connections (each a SCRAM handshake; servers allow 100 by default). A record is one short
//!   transaction: a shared transaction-level lock on the ledger, an exclusive one on the
//!   record's key, the row read afresh, the caller's change applied, the changed rows written
//!   and committed (the write and the COMMIT pipelined). So no update is lost even between
//!   hosts, and a whole-ledger change (which takes the ledger lock exclusively) waits for records
//!   in flight.
//! - **How many connections.** One lock connection plus at most 8: 9 per host, whatever the
//!   fleet or `--concurrency`; two hosts need 18.
//! - **Async.** The client runs on a two-thread runtime of its own ([`pg`]). The workflows
//!   (sessions, `renew --all`) await it, so hundreds of tenants' round trips and the server's
//!   commits overlap; the synchronous calls (status, migrate, tests) wait for the same futures on
//!   their own thread. A caller on any runtime, or none, can use the store.

pub mod pg;
pub mod tls;

use crate::secret::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// How the connection is protected (libpq's `sslmode`, the three values that mean something
/// here; `prefer`/`allow` would fall back to plain text without saying so, and are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (a loopback or otherwise protected network).
    Disable,
    /// TLS, the server's certificate not checked (protects against listening, not against a
    /// server in the middle).
    Require,
    /// TLS, the certificate checked against `sslrootcert` (or the platform's roots) and the host.
    VerifyFull,
}

/// A parsed state URL: `postgres://user@host:port/db?sslmode=…&sslrootcert=…&schema=…`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// The schema the tables live in (default `hybrid_trust`): the role needs only this one.
    pub schema: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// What the state database can fail with. No message holds a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The URL is malformed or names an option this tool does not know (exit 2).
    #[error("the state URL {url} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    /// A password written into the URL (exit 2): it would end up in shell history, `ps` and logs.
    #[error("the state URL {url} holds a password; it was not used")]
    PasswordInUrl { url: String },
    #[error("cannot reach the state database {db}: {reason}")]
    Unreachable { db: String, reason: String },
    #[error("the state database {db} refused the password for user {user}")]
    Auth { db: String, user: String },
    #[error("the state database {db} needs a password for user {user} and none was found")]
    NoPassword { db: String, user: String },
    #[error("TLS to the state database {db} failed: {reason}")]
    Tls { db: String, reason: String },
    #[error(
        "the state database {db} has schema version {found}, newer than this hybrid-trust understands ({known})"
    )]
    TooNew { db: String, found: i32, known: i32 },
    #[error("the state database {db} failed: {reason}")]
    Query { db: String, reason: String },
    #[error("the state database {db}: the lock on {what} was lost with its connection")]
    LockLost { db: String, what: String },
    #[error("another hybrid-trust run holds the lock on {what} in {db} for more than {secs} s")]
    Busy { db: String, what: String, secs: u64 },
}

impl StateError {
    /// The fix, one line.
    pub fn hint(&self) -> String {
        match self {
            StateError::BadUrl { .. } => "write it as postgres://USER@HOST:PORT/DB?sslmode=disable|require|verify-full[&sslrootcert=CA.pem][&schema=NAME]".into(),
            StateError::PasswordInUrl { .. } => "remove the password from the URL and put it in PGPASSWORD, a passfile (PGPASSFILE or ~/.pgpass) or the keyring (hybrid-trust state remember-password)".into(),
            StateError::Unreachable { .. } => "check that the server is running and that --state-url (HYBRID_TRUST_STATE_URL, [state] url) names it, then run the command again: a change this run made and could not record is found and reconciled by the next run".into(),
            StateError::Auth { .. } | StateError::NoPassword { .. } => "set PGPASSWORD, or a line HOST:PORT:DB:USER:PASSWORD in ~/.pgpass (PGPASSFILE, mode 0600), or store it with hybrid-trust state remember-password; nothing was changed".into(),
            StateError::Tls { .. } => "check sslmode and sslrootcert in the state URL (verify-full needs the server's CA and its host name in the certificate); nothing was changed".into(),
            StateError::TooNew { .. } => "upgrade hybrid-trust on this host: another host has moved the team's state to a newer schema".into(),
            StateError::Query { .. } => "check the server's log and that the role owns its schema; run the command again (a change in flight is found and reconciled by the next run)".into(),
            StateError::LockLost { .. } => "run the command again once the database is back: the next run reads Graph and reconciles what this one did".into(),
            StateError::Busy { .. } => "wait for the other run to finish".into(),
        }
    }

    /// Whether the user's input is at fault (exit 2), not the run (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StateError::BadUrl { .. } | StateError::PasswordInUrl { .. }
        )
    }
}

/// This host's name, as the team's records say who sent a reminder or wrote a record:
/// `HYBRID_TRUST_HOST_NAME`, else the kernel's host name.
pub fn host_name() -> String {
    if let Ok(h) = std::env::var("HYBRID_TRUST_HOST_NAME")
        && !h.trim().is_empty()
    {
        return h.trim().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn bad(url: &str, reason: impl Into<String>) -> StateError {
    StateError::BadUrl {
        url: crate::secret::redact_url(url),
        reason: reason.into(),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Whether `s` is a state URL (rather than a state dir) as `state migrate --to` takes either.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl StateUrl {
    pub fn parse(s: &str) -> Result<StateUrl, StateError> {
        let u = url::Url::parse(s).map_err(|e| bad(s, e.to_string()))?;
        if !matches!(u.scheme(), "postgres" | "postgresql") {
            return Err(bad(
                s,
                format!("the scheme is {}, not postgres", u.scheme()),
            ));
        }
        if u.password().is_some() {
            return Err(StateError::PasswordInUrl {
                url: crate::secret::redact_url(s),
            });
        }
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad(s, "no host (a Unix socket is not supported)")),
        };
        let user = match decode(u.username()) {
            u if !u.is_empty() => u,
            _ => std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .map_err(|_| bad(s, "no user: write postgres://USER@HOST/DB"))?,
        };
        let dbname = match decode(u.path().trim_start_matches('/')) {
            d if !d.is_empty() => d,
            _ => user.clone(),
        };
        let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1");
        let mut out = StateUrl {
            port: u.port().unwrap_or(5432),
            host,
            user,
            dbname,
            schema: "hybrid_trust".into(),
            // Safe by default: a server elsewhere is checked; loopback needs no TLS.
            sslmode: if loopback {
                SslMode::Disable
            } else {
                SslMode::VerifyFull
            },
            sslrootcert: None,
            connect_timeout: Duration::from_secs(10),
        };
        for (k, v) in u.query_pairs() {
            match &*k {
                "sslmode" => {
                    out.sslmode = match &*v {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(bad(
                                s,
                                format!("sslmode={other} (use disable, require or verify-full)"),
                            ));
                        }
                    }
                }
                "sslrootcert" => out.sslrootcert = Some(PathBuf::from(&*v)),
                "schema" => {
                    let ok = !v.is_empty()
                        && v.len() <= 63
                        && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                        && v.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !ok {
                        return Err(bad(s, format!("schema={v} (lowercase letters, digits, _)")));
                    }
                    out.schema = v.into_owned();
                }
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad(s, format!("connect_timeout={v} (seconds)")))?;
                    out.connect_timeout = Duration::from_secs(secs.clamp(1, 600));
                }
                "password" => {
                    return Err(StateError::PasswordInUrl {
                        url: crate::secret::redact_url(s),
                    });
                }
                other => return Err(bad(s, format!("unknown option {other}"))),
            }
        }
        if out.sslrootcert.is_some() && out.sslmode != SslMode::VerifyFull {
            return Err(bad(s, "sslrootcert is only used with sslmode=verify-full"));
        }
        Ok(out)
    }

    /// The database as messages name it: no password (there is none), no query but the schema.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let schema = if self.schema == "hybrid_trust" {
            String::new()
        } else {
            format!("?schema={}", self.schema)
        };
        format!(
            "postgres://{}@{host}:{}/{}{schema}",
            self.user, self.port, self.dbname
        )
    }

    /// The keyring entry of this database's password.
    pub fn keyring_entry(&self) -> String {
        format!(
            "state-password:{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }

    /// The password, from `PGPASSWORD`, then the passfile (`PGPASSFILE`, else `~/.pgpass`),
    /// then the keyring; `None` when none has one (a server with `trust` needs none).
    pub fn password(&self) -> Option<SecretString> {
        if let Ok(p) = std::env::var("PGPASSWORD")
            && !p.is_empty()
        {
            return Some(SecretString::new(p));
        }
        if let Some(p) = self.passfile_password() {
            return Some(p);
        }
        let store = crate::keyring::SecretStore::open().ok()?;
        store.get(&self.keyring_entry()).ok().flatten()
    }

    fn passfile_password(&self) -> Option<SecretString> {
        let path = match std::env::var_os("PGPASSFILE") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // As libpq: a passfile others can read is ignored.
            let meta = std::fs::metadata(&path).ok()?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "the passfile {} is readable by others (chmod 0600 it): ignored",
                    path.display()
                );
                return None;
            }
        }
        let text = crate::paths::read_limited(&path, 1 << 20, "a passfile").ok()?;
        let text = String::from_utf8(text).ok()?;
        let text = zeroize::Zeroizing::new(text);
        let port = self.port.to_string();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields = split_passfile_line(line);
            if fields.len() != 5 {
                continue;
            }
            let want = [&self.host, &port, &self.dbname, &self.user];
            if fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f.as_str() == "*" || f.as_str() == w.as_str())
            {
                return Some(SecretString::new(fields[4].clone()));
            }
        }
        None
    }
}

/// One passfile line's fields: `:` separates, `\` escapes `:` and `\`.
fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_shown_without_secrets() {
        let u = StateUrl::parse("postgres://ht@db.example:6543/team?sslmode=require&schema=uc")
            .unwrap();
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, 6543);
        assert_eq!(u.sslmode, SslMode::Require);
        assert_eq!(u.display(), "postgres://ht@db.example:6543/team?schema=uc");
        let far = StateUrl::parse("postgres://ht@db.example/team").unwrap();
        assert_eq!(far.sslmode, SslMode::VerifyFull, "checked by default");
        let e = StateUrl::parse("postgres://ht:s3cret@db.example/team").unwrap_err();
        assert!(matches!(e, StateError::PasswordInUrl { .. }));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = StateUrl::parse("postgres://ht@db.example/team?password=s3cret").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        for bad in [
            "postgres://ht@h/db?sslmode=prefer",
            "postgres://ht@h/db?frobnicate=1",
            "postgres://ht@h/db?schema=Bad;drop",
            "mysql://ht@h/db",
        ] {
            let e = StateUrl::parse(bad).unwrap_err();
            assert!(e.is_usage(), "{bad}: {e}");
        }
    }

    #[test]
    fn passfile_lines_escape_colons() {
        assert_eq!(
            split_passfile_line(r"h:5432:*:u:pa\:ss\\w"),
            vec!["h", "5432", "*", "u", r"pa:ss\w"]
        );
    }
}
