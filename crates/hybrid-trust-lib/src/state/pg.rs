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
use crate::ledger::store::{self, Damaged, LedgerError, key_of};
use crate::ledger::{FORMAT, Ledger, TenantRecord};
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
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
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

struct Inner {
    url: StateUrl,
    db: String,
    config: tokio_postgres::Config,
    tls: Option<Connector>,
    idle: Mutex<Vec<Client>>,
    host: String,
    /// The connection every lock of this process is held on (session-level advisory locks:
    /// one session holds any number), made on first use and again after it was lost.
    locker: tokio::sync::Mutex<Option<Arc<LockConn>>>,
    /// The keys this process holds or is taking: the server's advisory locks are re-entrant
    /// within a session, so two holders in this process are kept apart here.
    held: Mutex<std::collections::HashSet<i64>>,
}

/// The connection the locks are held on, and its server process.
struct LockConn {
    client: Client,
    pid: i32,
}

/// An open state database.
pub struct PgState {
    inner: Arc<Inner>,
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
type Row = (String, String, Option<String>, i64, String);

fn lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

impl Inner {
    fn err(&self, e: tokio_postgres::Error) -> StateError {
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
    async fn get(&self) -> Result<Client, StateError> {
        loop {
            let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match c {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    fn put(&self, c: Client) {
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
    fn lock_key(&self, purpose: &str, what: &str) -> i64 {
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

    fn pseudo_path(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("{}#tenants/{key}", self.db))
    }

    /// The key of the record `name` or `tenant_id` names (the name's own key when none).
    async fn find_key(
        &self,
        c: &impl tokio_postgres::GenericClient,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Result<String, tokio_postgres::Error> {
        let own = key_of(name);
        let name_l = name.to_ascii_lowercase();
        let id_l = tenant_id.unwrap_or("").to_ascii_lowercase();
        let row = c
            .query_opt(
                "SELECT key FROM tenants WHERE key = $1 OR lower(tenant_id) = $2 \
                 OR ($3 <> '' AND lower(tenant_id) = $3) ORDER BY (key = $1) DESC, seq LIMIT 1",
                &[&own, &name_l, &id_l],
            )
            .await?;
        Ok(row.map_or(own, |r| r.get(0)))
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

fn row_of(t: &TenantRecord) -> Result<Row, serde_json::Error> {
    let v = serde_json::json!({"format": FORMAT, "tenant": t});
    Ok((
        key_of(&t.domain),
        t.domain.clone(),
        t.tenant_id.clone(),
        t.seq,
        serde_json::to_string(&v)?,
    ))
}

async fn write_rows(
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

/// What changed between two ledgers: the rows to write, the keys to remove.
fn changes(before: &Ledger, after: &Ledger) -> Result<(Vec<Row>, Vec<String>), LedgerError> {
    let mut rows = Vec::new();
    for t in &after.tenants {
        if !before.tenants.contains(t) {
            rows.push(row_of(t).map_err(|e| LedgerError::Write {
                path: PathBuf::from(&t.domain),
                source: std::io::Error::other(e),
            })?);
        }
    }
    let deletes = before
        .tenants
        .iter()
        .map(|old| key_of(&old.domain))
        .filter(|k| !after.tenants.iter().any(|t| key_of(&t.domain) == *k))
        .collect();
    Ok((rows, deletes))
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
    fn block<T: Send + 'static>(
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

    /// Every tenant, in the order they were added; rows that do not parse are left out and
    /// listed as damaged (as the file store does).
    pub fn load(&self) -> Result<Ledger, LedgerError> {
        let i = self.inner.clone();
        let rows = self
            .block(async move {
                // One retry on a new connection when the kept one was closed (a restarted server);
                // the loop ends only by returning.
                let mut retried = false;
                loop {
                    let c = i.get().await?;
                    match c
                        .query(
                            "SELECT key, domain, record::text FROM tenants ORDER BY seq, domain",
                            &[],
                        )
                        .await
                    {
                        Ok(rows) => {
                            i.put(c);
                            return Ok(rows
                                .into_iter()
                                .map(|r| {
                                    (
                                        r.get::<_, String>(0),
                                        r.get::<_, String>(1),
                                        r.get::<_, String>(2),
                                    )
                                })
                                .collect::<Vec<_>>());
                        }
                        Err(e) if !retried && lost(&e) => retried = true,
                        Err(e) => return Err(i.err(e)),
                    }
                }
            })
            .map_err(LedgerError::from)?;
        let (mut tenants, mut damaged) = (Vec::new(), Vec::new());
        for (key, domain, text) in rows {
            match self.parse(&key, &text) {
                Ok(t) => tenants.extend(t),
                Err(e) => damaged.push(self.damaged(&key, &domain, &e)),
            }
        }
        Ok(Ledger {
            format: FORMAT,
            tenants,
            damaged,
        })
    }

    fn parse(&self, key: &str, text: &str) -> Result<Option<TenantRecord>, LedgerError> {
        Ok(store::parse(text.as_bytes(), &self.inner.pseudo_path(key))?
            .tenants
            .into_iter()
            .next())
    }

    fn damaged(&self, key: &str, domain: &str, e: &LedgerError) -> Damaged {
        Damaged {
            path: self.inner.pseudo_path(key),
            tenant: domain.to_string(),
            error: e.to_string(),
            hint: match e {
                LedgerError::TooNew { .. } => e.hint(),
                _ => format!(
                    "mend the row (SELECT record FROM {}.tenants WHERE key = '{key}'), or remove it and record the tenant again with hybrid-trust tenant add {domain}",
                    self.inner.url.schema
                ),
            },
            bad_input: matches!(e, LedgerError::DateOutOfRange { .. }),
        }
    }

    /// One tenant's record, found by `name` (domain or id) or `tenant_id`.
    pub fn tenant(
        &self,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<TenantRecord>, LedgerError> {
        let i = self.inner.clone();
        let (n, id) = (name.to_string(), tenant_id.map(str::to_string));
        let row = self.block(async move {
            // One retry on a new connection when the kept one was closed (a restarted server);
            // the loop ends only by returning.
            let mut retried = false;
            loop {
                let c = i.get().await?;
                let r = async {
                    let key = i.find_key(&c, &n, id.as_deref()).await?;
                    let row = c
                        .query_opt("SELECT record::text FROM tenants WHERE key = $1", &[&key])
                        .await?;
                    Ok::<_, tokio_postgres::Error>(row.map(|r| (key, r.get::<_, String>(0))))
                }
                .await;
                match r {
                    Ok(v) => {
                        i.put(c);
                        return Ok(v);
                    }
                    Err(e) if !retried && lost(&e) => retried = true,
                    Err(e) => return Err(i.err(e)),
                }
            }
        })?;
        let Some((key, text)) = row else {
            return Ok(None);
        };
        Ok(self
            .parse(&key, &text)?
            .filter(|t| t.is(name) || tenant_id.is_some_and(|id| t.is(id))))
    }

    /// [`crate::ledger::LedgerStore::update`]: one transaction, the record's key locked, the
    /// row read afresh, `f` applied, what changed written; nothing is written if any step fails.
    pub fn update<T>(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        timeout: Duration,
        f: impl FnOnce(&mut Ledger) -> T,
    ) -> Result<T, LedgerError> {
        type Fetched = Result<(String, Option<String>), StateError>;
        let (rec_tx, rec_rx) = std::sync::mpsc::sync_channel::<Fetched>(1);
        let (chg_tx, chg_rx) = tokio::sync::oneshot::channel::<(Vec<Row>, Vec<String>)>();
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Result<(), StateError>>(1);
        let i = self.inner.clone();
        let (n, id) = (name.to_string(), tenant_id.map(str::to_string));
        let ledger_key = i.lock_key("ledger", "");
        let timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        let rt = runtime().map_err(|reason| self.query_error(reason))?;
        rt.spawn(async move {
            let mut attempt = 0;
            let (c, key, text) = loop {
                let c = match i.get().await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = rec_tx.send(Err(e));
                        return;
                    }
                };
                let r = async {
                    c.batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = {timeout_ms}"))
                        .await?;
                    c.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ledger_key])
                        .await?;
                    let key = i.find_key(&c, &n, id.as_deref()).await?;
                    c.execute(
                        "SELECT pg_advisory_xact_lock($1)",
                        &[&i.lock_key("record", &key)],
                    )
                    .await?;
                    let row = c
                        .query_opt("SELECT record::text FROM tenants WHERE key = $1", &[&key])
                        .await?;
                    Ok::<_, tokio_postgres::Error>((key, row.map(|r| r.get::<_, String>(0))))
                }
                .await;
                match r {
                    Ok((key, text)) => break (c, key, text),
                    Err(e) if attempt == 0 && lost(&e) => attempt += 1,
                    Err(e) => {
                        let _ = c.batch_execute("ROLLBACK").await;
                        i.put(c);
                        let _ = rec_tx.send(Err(i.err(e)));
                        return;
                    }
                }
            };
            let _ = rec_tx.send(Ok((key, text)));
            let r = match chg_rx.await {
                // The caller gave up (a record it could not read): nothing is written.
                Err(_) => c.batch_execute("ROLLBACK").await.map_err(|e| i.err(e)),
                Ok((rows, deletes)) => {
                    let r = async {
                        write_rows(&c, rows, deletes, &i.host).await?;
                        c.batch_execute("COMMIT").await
                    }
                    .await;
                    if r.is_err() {
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    r.map_err(|e| i.err(e))
                }
            };
            i.put(c);
            let _ = done_tx.send(r);
        });
        let (key, text) = rec_rx
            .recv()
            .map_err(|_| self.query_error("the database task stopped".into()))??;
        let before = Ledger {
            format: FORMAT,
            tenants: match &text {
                Some(t) => self.parse(&key, t)?.into_iter().collect(),
                None => Vec::new(),
            },
            damaged: Vec::new(),
        };
        let mut ledger = before.clone();
        let out = f(&mut ledger);
        let (rows, deletes) = changes(&before, &ledger)?;
        if chg_tx.send((rows, deletes)).is_err() {
            return Err(self.query_error("the database task stopped".into()).into());
        }
        done_rx
            .recv()
            .map_err(|_| self.query_error("the database task stopped".into()))??;
        Ok(out)
    }

    fn query_error(&self, reason: String) -> StateError {
        StateError::Query {
            db: self.inner.db.clone(),
            reason,
        }
    }

    /// Writes what changed between two ledgers in one transaction (a whole-ledger change).
    pub fn write_changes(&self, before: &Ledger, after: &Ledger) -> Result<(), LedgerError> {
        let (rows, deletes) = changes(before, after)?;
        self.write(rows, deletes).map_err(LedgerError::from)
    }

    fn write(&self, rows: Vec<Row>, deletes: Vec<String>) -> Result<(), StateError> {
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

    /// `state migrate` into this database: every record and audit line in one transaction,
    /// refused (nothing written) when it already holds a tenant.
    pub fn import(&self, tenants: &[TenantRecord], audit: Vec<String>) -> Result<(), ImportError> {
        let mut rows = Vec::with_capacity(tenants.len());
        for t in tenants {
            rows.push(row_of(t).map_err(|e| ImportError::State(self.query_error(e.to_string())))?);
        }
        let i = self.inner.clone();
        let ledger_key = i.lock_key("ledger", "");
        self.block(async move {
            let c = i.get().await?;
            let r = async {
                c.batch_execute("BEGIN").await?;
                c.execute("SELECT pg_advisory_xact_lock($1)", &[&ledger_key])
                    .await?;
                let n: i64 = c
                    .query_one("SELECT count(*) FROM tenants", &[])
                    .await?
                    .get(0);
                if n > 0 {
                    return Ok(Some(n));
                }
                write_rows(&c, rows, Vec::new(), &i.host).await?;
                c.execute(
                    "INSERT INTO audit_log (host, entry) SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS x(e, n) ORDER BY n",
                    &[&i.host, &audit],
                )
                .await?;
                c.batch_execute("COMMIT").await?;
                Ok(None)
            }
            .await;
            if !matches!(r, Ok(None)) {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            i.put(c);
            match r {
                Ok(None) => Ok(Ok(())),
                Ok(Some(n)) => Ok(Err(ImportError::NotEmpty {
                    target: i.db.clone(),
                    tenants: n as usize,
                })),
                Err(e) => Err(i.err(e)),
            }
        })
        .map_err(ImportError::State)?
    }
}

/// Why `state migrate` could not copy into a target.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the target {target} already holds {tenants} tenant(s); nothing was copied")]
    NotEmpty { target: String, tenants: usize },
    #[error(transparent)]
    State(StateError),
    #[error(transparent)]
    Ledger(LedgerError),
}

impl From<StateError> for LedgerError {
    fn from(e: StateError) -> Self {
        LedgerError::State(Box::new(e))
    }
}
