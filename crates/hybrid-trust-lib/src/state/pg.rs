//! The team's state in PostgreSQL (issue 26): tenant records (JSONB of the file ledger's own
//! record), the audit log, and the locks, shared by every host that names the same URL.
//!
//! Locks and connections (the design in full is in [`crate::state`]'s docs). Every lock of a
//! process (a tenant's, the reminders', the whole ledger's) is a session-level
//! `pg_try_advisory_lock` on ONE connection, the process's lock connection ([`PgLock`]): a
//! session holds any number of advisory locks, so a `renew --all` over 1,000 tenants at
//! `--concurrency 1000` holds its 1,000 tenant locks on one connection, not 1,000. The server
//! frees them all when that connection ends, so a host killed mid-change (`kill -9`, a lost
//! network) frees its tenants; a holder checks the connection before it records
//! ([`PgLock::check`]). Advisory locks are re-entrant within a session, so the process keeps its
//! own set of the keys it holds and a second holder here waits on that set. Reads and records
//! use a small pool of other connections (kept idle up to [`MAX_IDLE`]): a record is a short
//! transaction of its own, under a transaction-level lock on the record's key (and shared on
//! the ledger, which a whole-ledger change takes exclusively), reading the row afresh: no lost
//! update even between hosts. A closed connection is dropped and a read retried once on a new
//! one (a restarted server).
//!
//! The client (`tokio-postgres`) runs on a small runtime of its own ([`runtime`]): the ledger's
//! callers are synchronous (as the file store is), and they may be on any runtime or none.

use super::tls::Connector;
use super::{SslMode, StateError, StateUrl};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Every schema step, in order (numbered SQL in `src/state/migrations/`).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

/// The runtime the database client runs on (never dropped: a runtime may not be dropped on
/// another runtime's thread).
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hybrid-trust-pg")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

pub(crate) struct Inner {
    pub(crate) url: StateUrl,
    pub(crate) db: String,
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<Connector>,
    pub(crate) idle: Mutex<Vec<Client>>,
    pub(crate) host: String,
    /// The connection every lock of this process is held on (session-level advisory locks:
    /// one session holds any number), made on first use and again after it was lost.
    pub(crate) locker: tokio::sync::Mutex<Option<Arc<LockConn>>>,
    /// The keys this process holds or is taking: the server's advisory locks are re-entrant
    /// within a session, so two holders in this process are kept apart here.
    pub(crate) held: Mutex<std::collections::HashSet<i64>>,
}

/// The connection the locks are held on, and its server process.
pub(crate) struct LockConn {
    client: Client,
    pid: i32,
}

/// An open state database.
pub struct PgState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgState({})", self.inner.db)
    }
}

/// A lock held on this process's lock connection, released on drop (or when the connection
/// ends).
pub struct PgLock {
    /// The server process of the connection holding it.
    pub backend_pid: i32,
    conn: Arc<LockConn>,
    key: i64,
    inner: Arc<Inner>,
    what: String,
}

impl std::fmt::Debug for PgLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLock({} in {})", self.what, self.inner.db)
    }
}

impl PgLock {
    /// Whether the connection that holds the lock is still open (a server restart ends it, and
    /// with it the lock).
    pub fn held(&self) -> bool {
        !self.conn.client.is_closed()
    }

    /// Fails when the lock was lost with its connection.
    pub fn check(&self) -> Result<(), StateError> {
        if self.held() {
            Ok(())
        } else {
            Err(StateError::LockLost {
                db: self.inner.db.clone(),
                what: self.what.clone(),
            })
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let (conn, inner, key) = (self.conn.clone(), self.inner.clone(), self.key);
        let forget = move |inner: &Inner| {
            inner
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        };
        if conn.client.is_closed() {
            forget(&inner);
            return;
        }
        match runtime() {
            // Unlocked on the server before this process may take the key again (a second
            // pg_try_advisory_lock in the session would count twice).
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = conn
                        .client
                        .execute("SELECT pg_advisory_unlock($1)", &[&key])
                        .await;
                    forget(&inner);
                });
            }
            Err(_) => forget(&inner),
        }
    }
}

/// A record to write: key, domain, tenant id, seq, the record's JSON.
pub(crate) type Row = (String, String, Option<String>, i64, String);

pub(crate) fn lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

impl Inner {
    pub(crate) fn err(&self, e: tokio_postgres::Error) -> StateError {
        use tokio_postgres::error::SqlState;
        let db = self.db.clone();
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return StateError::Busy {
                db,
                what: "a tenant record".into(),
                secs: 0,
            };
        }
        if let Some(code) = e.code()
            && (*code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        {
            return StateError::Auth {
                db,
                user: self.url.user.clone(),
            };
        }
        let text = e.to_string();
        let full = match std::error::Error::source(&e) {
            Some(s) => format!("{text}: {s}"),
            None => text.clone(),
        };
        if full.contains("password missing") {
            return StateError::NoPassword {
                db,
                user: self.url.user.clone(),
            };
        }
        if let Some(d) = e.as_db_error() {
            // The server shutting down, restarting or not yet up: it is not there.
            if [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(d.code())
            {
                return StateError::Unreachable {
                    db,
                    reason: d.message().to_string(),
                };
            }
            return StateError::Query {
                db,
                reason: d.message().to_string(),
            };
        }
        let reason = match std::error::Error::source(&e) {
            Some(s) => format!("{text}: {s}"),
            None => text,
        };
        if reason.contains("TLS") || reason.contains("certificate") {
            StateError::Tls { db, reason }
        } else if lost(&e) || e.is_closed() || reason.contains("connect") {
            StateError::Unreachable { db, reason }
        } else {
            StateError::Query { db, reason }
        }
    }

    async fn connect(&self) -> Result<Client, StateError> {
        let r = match &self.tls {
            None => self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(c, conn)| {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    c
                }),
            Some(tls) => self.config.connect(tls.clone()).await.map(|(c, conn)| {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                c
            }),
        };
        r.map_err(|e| self.err(e))
    }

    /// A connection: an idle one that is still open, else a new one.
    pub(crate) async fn get(&self) -> Result<Client, StateError> {
        loop {
            let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match c {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    pub(crate) fn put(&self, c: Client) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// The lock connection: the one kept, else a new one (the old one lost with its locks).
    async fn lock_conn(&self, fresh: bool) -> Result<Arc<LockConn>, StateError> {
        let mut slot = self.locker.lock().await;
        if let Some(c) = slot.as_ref()
            && !fresh
            && !c.client.is_closed()
        {
            return Ok(c.clone());
        }
        let client = self.connect().await?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let c = Arc::new(LockConn { client, pid });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// One try for `key` on the lock connection (again on a new one when it was found closed):
    /// the connection when taken, `None` when another session holds it.
    async fn try_lock(&self, key: i64) -> Result<Option<Arc<LockConn>>, StateError> {
        let mut retried = false;
        loop {
            let conn = self.lock_conn(retried).await?;
            match conn
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
            {
                Ok(row) if row.get::<_, bool>(0) => return Ok(Some(conn)),
                Ok(_) => return Ok(None),
                Err(e) if !retried && lost(&e) => retried = true,
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// The advisory lock key of `what` in this schema.
    pub(crate) fn lock_key(&self, purpose: &str, what: &str) -> i64 {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [self.url.schema.as_str(), purpose, what] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        i64::from_be_bytes(b)
    }

    /// Makes the schema or brings it up to [`SCHEMA_VERSION`]; refuses a newer one.
    async fn ensure_schema(&self, c: &mut Client) -> Result<(), StateError> {
        let schema = &self.url.schema;
        let key = self.lock_key("schema", "");
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .await
            .map_err(|e| self.err(e))?;
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[schema],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        if !exists {
            // The name is checked (lowercase letters, digits, _) when the URL is parsed.
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL)"
        ))
        .await
        .map_err(|e| self.err(e))?;
        let found: i32 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
                &[],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                db: self.db.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {sql}"))
                .await
                .map_err(|e| self.err(e))?;
            let by = format!(
                "hybrid-trust {} on {}",
                env!("CARGO_PKG_VERSION"),
                self.host
            );
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.schema_version (version, applied_by) VALUES ($1, $2)"
                ),
                &[v, &by],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    pub(crate) fn pseudo_path(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{}#tenants/{key}", self.db))
    }
}

/// `hybrid-trust HOST` in printable ASCII, as the server keeps it (at most 63 bytes).
fn application_name(host: &str) -> String {
    let mut s: String = format!("hybrid-trust {host}")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    s.truncate(63);
    s
}

pub(crate) async fn write_rows(
    tx: &Client,
    rows: Vec<Row>,
    deletes: Vec<String>,
    host: &str,
) -> Result<(), tokio_postgres::Error> {
    if !rows.is_empty() {
        let mut keys = Vec::new();
        let mut domains = Vec::new();
        let mut ids = Vec::new();
        let mut seqs = Vec::new();
        let mut records = Vec::new();
        for (k, d, i, s, r) in rows {
            keys.push(k);
            domains.push(d);
            ids.push(i);
            seqs.push(s);
            records.push(r);
        }
        tx.execute(
            "INSERT INTO tenants (key, domain, tenant_id, seq, record, updated_at, updated_by) \
             SELECT k, d, i, s, r::jsonb, now(), $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[]) AS x(k, d, i, s, r) \
             ON CONFLICT (key) DO UPDATE SET domain = EXCLUDED.domain, tenant_id = EXCLUDED.tenant_id, \
             seq = EXCLUDED.seq, record = EXCLUDED.record, updated_at = now(), updated_by = EXCLUDED.updated_by",
            &[&keys, &domains, &ids, &seqs, &records, &host],
        )
        .await?;
    }
    if !deletes.is_empty() {
        tx.execute("DELETE FROM tenants WHERE key = ANY($1)", &[&deletes])
            .await?;
    }
    Ok(())
}

impl PgState {
    /// Connects (the password from its sources), makes or checks the schema.
    pub fn open(url: &StateUrl) -> Result<Arc<PgState>, StateError> {
        PgState::open_with(url, url.password())
    }

    /// [`PgState::open`] with the password given (a library caller's, or a test's).
    pub fn open_with(
        url: &StateUrl,
        password: Option<crate::secret::SecretString>,
    ) -> Result<Arc<PgState>, StateError> {
        let db = url.display();
        let host = super::host_name();
        let mut config = tokio_postgres::Config::new();
        config
            .host(&url.host)
            .port(url.port)
            .user(&url.user)
            .dbname(&url.dbname)
            // pg_stat_activity and pg_locks say which host holds what ("hybrid-trust HOST").
            .application_name(application_name(&host))
            .connect_timeout(url.connect_timeout)
            .options(format!("-c search_path={}", url.schema))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(p) = password {
            config.password(p.expose().as_bytes());
        }
        let tls = match url.sslmode {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            mode => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(
                    Connector::new(mode == SslMode::VerifyFull, url.sslrootcert.as_deref())
                        .map_err(|reason| StateError::Tls {
                            db: db.clone(),
                            reason,
                        })?,
                )
            }
        };
        let inner = Arc::new(Inner {
            url: url.clone(),
            db,
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            locker: tokio::sync::Mutex::new(None),
            held: Mutex::new(std::collections::HashSet::new()),
            host,
        });
        let state = PgState { inner };
        let i = state.inner.clone();
        state.block(async move {
            let mut c = i.connect().await?;
            i.ensure_schema(&mut c).await?;
            i.put(c);
            Ok(())
        })?;
        Ok(Arc::new(state))
    }

    /// The database as messages name it (no secret).
    pub fn db(&self) -> &str {
        &self.inner.db
    }

    /// This host's name, as records and the audit log say who wrote them.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Runs `fut` on the client's runtime and waits for it (from any thread, in or out of
    /// another runtime).
    pub(crate) fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StateError>> + Send + 'static,
    ) -> Result<T, StateError> {
        let failed = |reason: String| StateError::Query {
            db: self.inner.db.clone(),
            reason,
        };
        let rt = runtime().map_err(failed)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| failed("the database task stopped".into()))?
    }

    pub(crate) fn query_error(&self, reason: String) -> StateError {
        StateError::Query {
            db: self.inner.db.clone(),
            reason,
        }
    }

    pub(crate) fn write(&self, rows: Vec<Row>, deletes: Vec<String>) -> Result<(), StateError> {
        let i = self.inner.clone();
        self.block(async move {
            let c = i.get().await?;
            let r = async {
                c.batch_execute("BEGIN").await?;
                write_rows(&c, rows, deletes, &i.host).await?;
                c.batch_execute("COMMIT").await
            }
            .await;
            if r.is_err() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            i.put(c);
            r.map_err(|e| i.err(e))
        })
    }

    /// Takes the lock `purpose`/`what` (session-level, on this process's lock connection),
    /// waiting up to `timeout` for another holder (another run here or on another host).
    pub fn lock(&self, purpose: &str, what: &str, timeout: Duration) -> Result<PgLock, StateError> {
        let i = self.inner.clone();
        let key = i.lock_key(purpose, what);
        let label = format!("{purpose} {what}").trim().to_string();
        let l = label.clone();
        let conn = self.block(async move {
            let start = Instant::now();
            loop {
                let mine = i.held.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
                if mine {
                    match i.try_lock(key).await {
                        Ok(Some(conn)) => return Ok(conn),
                        Ok(None) => {}
                        Err(e) => {
                            i.held
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&key);
                            return Err(e);
                        }
                    }
                    i.held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
                if start.elapsed() >= timeout {
                    return Err(StateError::Busy {
                        db: i.db.clone(),
                        what: l,
                        secs: timeout.as_secs(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })?;
        Ok(PgLock {
            backend_pid: conn.pid,
            conn,
            key,
            inner: self.inner.clone(),
            what: label,
        })
    }

    /// Appends one audit line (the JSON a state dir's audit.log would hold).
    pub fn append_audit(&self, line: String) -> Result<(), StateError> {
        self.append_audit_lines(vec![line])
    }

    fn append_audit_lines(&self, lines: Vec<String>) -> Result<(), StateError> {
        let i = self.inner.clone();
        self.block(async move {
            // One retry on a new connection when the kept one was closed (a restarted server);
                // the loop ends only by returning.
                let mut retried = false;
                loop {
                let c = i.get().await?;
                match c
                    .execute(
                        "INSERT INTO audit_log (host, entry) SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS x(e, n) ORDER BY n",
                        &[&i.host, &lines],
                    )
                    .await
                {
                    Ok(_) => {
                        i.put(c);
                        return Ok(());
                    }
                    // Not sent when the connection was found closed: safe to send again.
                    Err(e) if !retried && e.is_closed() => retried = true,
                    Err(e) => return Err(i.err(e)),
                }
            }
        })
    }

    /// Every audit line, oldest first.
    pub fn audit_lines(&self) -> Result<Vec<String>, StateError> {
        let i = self.inner.clone();
        self.block(async move {
            let c = i.get().await?;
            let rows = c
                .query("SELECT entry FROM audit_log ORDER BY id", &[])
                .await
                .map_err(|e| i.err(e))?;
            i.put(c);
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// How many tenant rows there are (damaged ones too).
    pub fn tenant_count(&self) -> Result<i64, StateError> {
        let i = self.inner.clone();
        self.block(async move {
            let c = i.get().await?;
            let n = c
                .query_one("SELECT count(*) FROM tenants", &[])
                .await
                .map_err(|e| i.err(e))?
                .get(0);
            i.put(c);
            Ok(n)
        })
    }
}
