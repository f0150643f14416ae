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
//! own set of the keys it holds and a second holder here waits on that set. Waits share one
//! poller ([`POLL`]). Reads and records use a pool of at most [`MAX_CONNECTIONS`] other
//! connections: a record is a short transaction of its own, under a transaction-level lock on
//! the record's key (and shared on the ledger, which a whole-ledger change takes exclusively),
//! reading the row afresh: no lost update even between hosts. A closed connection is dropped and
//! a read retried once on a new one (a restarted server).
//!
//! The client (`tokio-postgres`) runs on a small runtime of its own ([`runtime`]). Every call is
//! async ([`PgState::run`] awaits the client's task from whatever runtime the caller is on); the
//! synchronous faces ([`PgState::block`]) wait for the same future on their own thread.

use super::tls::Connector;
use super::{SslMode, StateError, StateUrl};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Every schema step, in order (numbered SQL in `src/state/migrations/`).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// The connections a process opens for reads and records (besides its one lock connection):
/// a `renew --all` at `--concurrency 1000` queues its records on these, pipelined, instead of
/// opening a connection per tenant (each a SCRAM handshake, and a server's `max_connections`
/// is 100 by default). All are kept idle for reuse.
const MAX_CONNECTIONS: usize = 8;

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

/// Waits for `fut` on this thread (parked between wake-ups): the synchronous face of the async
/// calls. It needs no runtime (the futures it waits for run on [`runtime`]), and unlike a
/// runtime's own `block_on` it may be called from inside another runtime's task (blocking that
/// task's thread meanwhile, as a synchronous call does).
pub(crate) fn wait<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    // Outside tokio's cooperative budget: called from a task of another runtime, a task handle
    // would otherwise answer "not yet" forever once that task's budget is spent (this loop never
    // yields to the scheduler that would refill it).
    let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

pub(crate) struct Inner {
    pub(crate) url: StateUrl,
    pub(crate) db: String,
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<Connector>,
    pub(crate) idle: Mutex<Vec<Pooled>>,
    /// One permit per connection in use ([`MAX_CONNECTIONS`]).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) host: String,
    /// The connection every lock of this process is held on (session-level advisory locks:
    /// one session holds any number), made on first use and again after it was lost.
    pub(crate) locker: tokio::sync::Mutex<Option<Arc<LockConn>>>,
    /// The keys this process holds or is taking: the server's advisory locks are re-entrant
    /// within a session, so two holders in this process are kept apart here.
    pub(crate) held: Mutex<std::collections::HashSet<i64>>,
    /// The locks this process waits for, tried together by one poller ([`Inner::poll_waiting`]).
    pub(crate) waiting: Mutex<Waiting>,
}

/// Where the poller hands a lock it took to its waiter.
type Handover = tokio::sync::oneshot::Sender<Arc<LockConn>>;

/// Who waits for which lock key, and whether the poller runs.
#[derive(Default)]
pub(crate) struct Waiting {
    by_key: std::collections::HashMap<i64, Vec<(u64, Handover)>>,
    next: u64,
    polling: bool,
    /// When and why the poller's last try failed; cleared when one succeeds or the poller
    /// ends. A wait that ends reports it only if it came during the wait.
    failing: Option<(std::time::Instant, StateError)>,
}

/// How often the poller tries every awaited lock (one query for all of them).
const POLL: Duration = Duration::from_millis(50);

/// A connection in use for reads and records, holding one of the process's [`MAX_CONNECTIONS`]
/// slots (given back with it to [`Inner::put`], or freed when it is dropped after an error).
pub(crate) struct Conn {
    pooled: Pooled,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// A pooled connection and the statements prepared on it (the server parses and plans each
/// once per connection, not once per call).
pub(crate) struct Pooled {
    client: Client,
    statements: Mutex<std::collections::HashMap<&'static str, tokio_postgres::Statement>>,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.pooled.client
    }
}

impl Conn {
    /// `sql` prepared on this connection (once: kept with it in the pool).
    pub(crate) async fn statement(
        &self,
        sql: &'static str,
        types: &[Type],
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        let kept = self
            .pooled
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned();
        if let Some(st) = kept {
            return Ok(st);
        }
        let st = self.pooled.client.prepare_typed(sql, types).await?;
        self.pooled
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sql, st.clone());
        Ok(st)
    }
}

/// The connection the locks are held on, and its server process.
pub(crate) struct LockConn {
    client: Client,
    pid: i32,
    /// Its statements, prepared once: take one key, take many, give one back, give many back.
    try_lock: tokio_postgres::Statement,
    try_many: tokio_postgres::Statement,
    unlock: tokio_postgres::Statement,
    unlock_many: tokio_postgres::Statement,
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
                    let _ = conn.client.query(&conn.unlock, &[&key]).await;
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

    /// A connection: an idle one that is still open, else a new one; waits while all
    /// [`MAX_CONNECTIONS`] are in use.
    pub(crate) async fn get(&self) -> Result<Conn, StateError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StateError::Query {
                db: self.db.clone(),
                reason: "the connection pool was closed".into(),
            })?;
        loop {
            let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match c {
                Some(c) if !c.client.is_closed() => {
                    return Ok(Conn {
                        pooled: c,
                        _slot: slot,
                    });
                }
                Some(_) => continue,
                None => {
                    let client = self.connect().await?;
                    return Ok(Conn {
                        pooled: Pooled {
                            client,
                            statements: Mutex::default(),
                        },
                        _slot: slot,
                    });
                }
            }
        }
    }

    /// Gives a connection back for reuse (a closed one is dropped).
    pub(crate) fn put(&self, c: Conn) {
        if c.pooled.client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_CONNECTIONS {
            idle.push(c.pooled);
        }
    }

    /// The lock connection: the one kept, else a new one. `stale` is a connection the caller
    /// found lost: it is replaced only if it is still the one kept (or the kept one is closed),
    /// so a thousand callers that saw one loss make one new connection, not a thousand.
    async fn lock_conn(&self, stale: Option<&Arc<LockConn>>) -> Result<Arc<LockConn>, StateError> {
        let mut slot = self.locker.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.client.is_closed()
            && !stale.is_some_and(|s| Arc::ptr_eq(s, c))
        {
            return Ok(c.clone());
        }
        let client = self.connect().await?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let prepare = |sql| client.prepare_typed(sql, &[Type::INT8]);
        let (try_lock, unlock) = futures_util::future::try_join(
            prepare("SELECT pg_try_advisory_lock($1)"),
            prepare("SELECT pg_advisory_unlock($1)"),
        )
        .await
        .map_err(|e| self.err(e))?;
        let prepare_many = |sql| client.prepare_typed(sql, &[Type::INT8_ARRAY]);
        let (try_many, unlock_many) = futures_util::future::try_join(
            prepare_many("SELECT k FROM unnest($1::int8[]) AS k WHERE pg_try_advisory_lock(k)"),
            prepare_many("SELECT pg_advisory_unlock(k) FROM unnest($1::int8[]) AS k"),
        )
        .await
        .map_err(|e| self.err(e))?;
        let c = Arc::new(LockConn {
            client,
            pid,
            try_lock,
            try_many,
            unlock,
            unlock_many,
        });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// One try for `key` on the lock connection (again on a new one when it was found closed):
    /// the connection when taken, `None` when another session holds it.
    async fn try_lock(&self, key: i64) -> Result<Option<Arc<LockConn>>, StateError> {
        let mut stale: Option<Arc<LockConn>> = None;
        loop {
            let retried = stale.is_some();
            let conn = self.lock_conn(stale.as_ref()).await?;
            match conn.client.query_one(&conn.try_lock, &[&key]).await {
                Ok(row) if row.get::<_, bool>(0) => return Ok(Some(conn)),
                Ok(_) => return Ok(None),
                Err(e) if !retried && lost(&e) => stale = Some(conn),
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// One try for `key` now: the lock connection when taken; `None` when another holder here
    /// or another session has it.
    async fn try_take(&self, key: i64) -> Result<Option<Arc<LockConn>>, StateError> {
        if !self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
        {
            return Ok(None);
        }
        match self.try_lock(key).await {
            Ok(Some(conn)) => Ok(Some(conn)),
            r => {
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                r
            }
        }
    }

    /// Joins the waiters for `key` (starting the poller if none runs): the receiver gets the
    /// lock connection once the poller took the lock for this waiter.
    fn wait_for(
        self: &Arc<Self>,
        key: i64,
    ) -> (u64, tokio::sync::oneshot::Receiver<Arc<LockConn>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.next += 1;
        let ticket = w.next;
        w.by_key.entry(key).or_default().push((ticket, tx));
        if !w.polling {
            w.polling = true;
            let me = self.clone();
            tokio::spawn(async move { me.poll_waiting().await });
        }
        (ticket, rx)
    }

    /// Leaves the waiters for `key` (the wait timed out).
    fn stop_waiting(&self, key: i64, ticket: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = w.by_key.get_mut(&key) {
            v.retain(|(t, _)| *t != ticket);
            if v.is_empty() {
                w.by_key.remove(&key);
            }
        }
    }

    /// Every [`POLL`], tries every awaited key that no holder here has, in ONE query on the
    /// lock connection, and hands each lock taken to its first waiter still waiting (or gives
    /// it back). A thousand tenants waiting for another host cost one query per tick, not a
    /// thousand. Ends when nobody waits.
    async fn poll_waiting(self: Arc<Self>) {
        loop {
            tokio::time::sleep(POLL).await;
            let keys: Vec<i64> = {
                let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                w.by_key.retain(|_, v| {
                    v.retain(|(_, tx)| !tx.is_closed());
                    !v.is_empty()
                });
                if w.by_key.is_empty() {
                    w.polling = false;
                    w.failing = None;
                    return;
                }
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                w.by_key
                    .keys()
                    .copied()
                    .filter(|k| held.insert(*k))
                    .collect()
            };
            if keys.is_empty() {
                continue;
            }
            let taken = match self.lock_conn(None).await {
                Ok(conn) => match conn.client.query(&conn.try_many, &[&keys]).await {
                    Ok(rows) => Some((
                        conn,
                        rows.iter()
                            .map(|r| r.get::<_, i64>(0))
                            .collect::<std::collections::HashSet<i64>>(),
                    )),
                    Err(e) => {
                        if lost(&e) {
                            // The next tick tries on a new connection (the locks went with it).
                            let _ = self.lock_conn(Some(&conn)).await;
                        } else if conn
                            .client
                            .query(&conn.unlock_many, &[&keys])
                            .await
                            .is_err()
                        {
                            // Failed part-way (session locks ignore a rollback), and giving back
                            // what it took failed too: those keys stay marked held here (never
                            // taken twice on this connection); the server frees them with it.
                            self.fail(self.err(e));
                            continue;
                        }
                        self.fail(self.err(e));
                        None
                    }
                },
                Err(e) => {
                    self.fail(e);
                    None
                }
            };
            if taken.is_some() {
                self.waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .failing = None;
            }
            let Some((conn, taken)) = taken else {
                // Nothing taken this tick: every key is free for the next.
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                for k in &keys {
                    held.remove(k);
                }
                continue;
            };
            for k in keys {
                if !taken.contains(&k) {
                    self.held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&k);
                    continue;
                }
                let mut given = false;
                loop {
                    let next = {
                        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                        let v = w.by_key.get_mut(&k);
                        let next = v.and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
                        if w.by_key.get(&k).is_some_and(Vec::is_empty) {
                            w.by_key.remove(&k);
                        }
                        next
                    };
                    match next {
                        Some((_, tx)) => {
                            if tx.send(conn.clone()).is_ok() {
                                given = true;
                                break;
                            }
                        }
                        None => break,
                    }
                }
                if !given {
                    // Its waiters gave up meanwhile: given back, then free here.
                    let _ = conn.client.query(&conn.unlock, &[&k]).await;
                    self.held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&k);
                }
            }
        }
    }

    /// Notes why the poller's try failed, for the waits that end meanwhile.
    fn fail(&self, e: StateError) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing = Some((std::time::Instant::now(), e));
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

const UPSERT: &str = "INSERT INTO tenants (key, domain, tenant_id, seq, record, updated_at, updated_by) \
     SELECT k, d, i, s, r::jsonb, now(), $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[]) AS x(k, d, i, s, r) \
     ON CONFLICT (key) DO UPDATE SET domain = EXCLUDED.domain, tenant_id = EXCLUDED.tenant_id, \
     seq = EXCLUDED.seq, record = EXCLUDED.record, updated_at = now(), updated_by = EXCLUDED.updated_by";
const UPSERT_TYPES: &[Type] = &[
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT,
];
const DELETE: &str = "DELETE FROM tenants WHERE key = ANY($1)";

/// The columns of `rows`, as the upsert takes them.
type Columns = (
    Vec<String>,
    Vec<String>,
    Vec<Option<String>>,
    Vec<i64>,
    Vec<String>,
);

fn columns(rows: Vec<Row>) -> Columns {
    let mut c: Columns = Default::default();
    for (k, d, i, s, r) in rows {
        c.0.push(k);
        c.1.push(d);
        c.2.push(i);
        c.3.push(s);
        c.4.push(r);
    }
    c
}

/// Writes `rows` and removes `deletes` in the open transaction of `tx`, one statement after the
/// other.
pub(crate) async fn write_rows(
    tx: &Conn,
    rows: Vec<Row>,
    deletes: Vec<String>,
    host: &str,
) -> Result<(), tokio_postgres::Error> {
    if !rows.is_empty() {
        let st = tx.statement(UPSERT, UPSERT_TYPES).await?;
        let (k, d, i, s, r) = columns(rows);
        tx.execute(&st, &[&k, &d, &i, &s, &r, &host]).await?;
    }
    if !deletes.is_empty() {
        let st = tx.statement(DELETE, &[Type::TEXT_ARRAY]).await?;
        tx.execute(&st, &[&deletes]).await?;
    }
    Ok(())
}

/// [`write_rows`], then COMMIT, in one round trip (once the statements are prepared on this
/// connection; the first use prepares them one after the other): both are prepared first, then
/// the upsert, the delete and the COMMIT are sent in that order before any answer is awaited (a
/// request goes out when its future is first polled, and `try_join3` polls in order). A failed
/// write aborts the transaction, so the COMMIT after it rolls back; its error is returned.
pub(crate) async fn write_rows_and_commit(
    tx: &Conn,
    rows: Vec<Row>,
    deletes: Vec<String>,
    host: &str,
) -> Result<(), tokio_postgres::Error> {
    let upsert = match rows.is_empty() {
        true => None,
        false => Some((tx.statement(UPSERT, UPSERT_TYPES).await?, columns(rows))),
    };
    let delete = match deletes.is_empty() {
        true => None,
        false => Some(tx.statement(DELETE, &[Type::TEXT_ARRAY]).await?),
    };
    let write = async {
        if let Some((st, (k, d, i, s, r))) = &upsert {
            tx.execute(st, &[k, d, i, s, r, &host]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let remove = async {
        if let Some(st) = &delete {
            tx.execute(st, &[&deletes]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    futures_util::future::try_join3(write, remove, tx.batch_execute("COMMIT")).await?;
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
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            locker: tokio::sync::Mutex::new(None),
            held: Mutex::new(std::collections::HashSet::new()),
            waiting: Mutex::new(Waiting::default()),
            host,
        });
        let state = PgState { inner };
        let i = state.inner.clone();
        state.block(async move {
            let mut c = i.connect().await?;
            i.ensure_schema(&mut c).await?;
            i.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Pooled {
                    client: c,
                    statements: Mutex::default(),
                });
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
    /// another runtime). A synchronous caller inside an async task blocks that task: the paths a
    /// run takes for many tenants at once use the `_async` forms, which await instead.
    pub(crate) fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StateError>> + Send + 'static,
    ) -> Result<T, StateError> {
        wait(self.run(fut))
    }

    /// Runs `fut` on the client's runtime and awaits it from whatever runtime (or none) the
    /// caller is on: the caller's task is free meanwhile, so a `renew --all` keeps hundreds of
    /// tenants' database round trips (and the server's commits) in flight at once.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StateError>> + Send + 'static,
    ) -> Result<T, StateError> {
        let failed = |reason: String| StateError::Query {
            db: self.inner.db.clone(),
            reason,
        };
        let rt = runtime().map_err(failed)?;
        rt.spawn(fut)
            .await
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
        wait(self.lock_async(purpose, what, timeout))
    }

    /// [`PgState::lock`], awaited. A `timeout` of zero tries once: [`StateError::Busy`] at once
    /// when another session holds it (so a run can do its other tenants first).
    pub async fn lock_async(
        &self,
        purpose: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<PgLock, StateError> {
        let i = self.inner.clone();
        let key = i.lock_key(purpose, what);
        let label = format!("{purpose} {what}").trim().to_string();
        // The lock is made in the client's task: a caller that gives up (dropped) leaves it in
        // the task's output, which is dropped, and so unlocked.
        self.run(async move {
            // A wait that ends: busy, unless the poller could not reach the database (or failed)
            // during it, which is then the error.
            let busy = |i: &Inner, l: String, secs: u64, since: std::time::Instant| match &i
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .failing
            {
                Some((at, e)) if *at >= since => e.clone(),
                _ => StateError::Busy {
                    db: i.db.clone(),
                    what: l,
                    secs,
                },
            };
            let since = std::time::Instant::now();
            let conn = match i.try_take(key).await? {
                Some(conn) => conn,
                None if timeout.is_zero() => {
                    return Err(StateError::Busy {
                        db: i.db.clone(),
                        what: label,
                        secs: 0,
                    });
                }
                // A short wait (a test's, a quick check) tries on its own every 10 ms: the
                // poller's first tick could come after it ended.
                None if timeout < POLL * 2 => {
                    let start = std::time::Instant::now();
                    loop {
                        if start.elapsed() >= timeout {
                            return Err(StateError::Busy {
                                db: i.db.clone(),
                                what: label,
                                secs: timeout.as_secs(),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if let Some(conn) = i.try_take(key).await? {
                            break conn;
                        }
                    }
                }
                None => {
                    let (ticket, mut rx) = i.wait_for(key);
                    match tokio::time::timeout(timeout, &mut rx).await {
                        Ok(Ok(conn)) => conn,
                        Ok(Err(_)) => {
                            return Err(StateError::Query {
                                db: i.db.clone(),
                                reason: "the lock poller stopped".into(),
                            });
                        }
                        Err(_) => {
                            i.stop_waiting(key, ticket);
                            // Taken for this waiter just as the wait ended: kept (the poller
                            // gives back a lock it can no longer hand over).
                            rx.close();
                            match rx.try_recv() {
                                Ok(conn) => conn,
                                Err(_) => {
                                    return Err(busy(&i, label, timeout.as_secs(), since));
                                }
                            }
                        }
                    }
                }
            };
            Ok(PgLock {
                backend_pid: conn.pid,
                conn,
                key,
                inner: i.clone(),
                what: label,
            })
        })
        .await
    }

    /// The lowest free run slot (0 to 63) and its lock, held until dropped: the runs of the
    /// moment number themselves, so each can start its fleet elsewhere. `None` when all are taken
    /// or the database does not answer (the run then starts at the beginning).
    pub async fn run_slot(&self) -> Option<(PgLock, usize)> {
        for slot in 0..64 {
            match self
                .lock_async("run", &slot.to_string(), Duration::ZERO)
                .await
            {
                Ok(l) => return Some((l, slot)),
                Err(StateError::Busy { .. }) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Appends one audit line (the JSON a state dir's audit.log would hold).
    pub fn append_audit(&self, line: String) -> Result<(), StateError> {
        self.append_audit_lines(vec![line])
    }

    /// [`PgState::append_audit`], awaited.
    pub async fn append_audit_async(&self, line: String) -> Result<(), StateError> {
        self.run(self.audit_task(vec![line])).await
    }

    fn append_audit_lines(&self, lines: Vec<String>) -> Result<(), StateError> {
        self.block(self.audit_task(lines))
    }

    fn audit_task(
        &self,
        lines: Vec<String>,
    ) -> impl Future<Output = Result<(), StateError>> + Send + 'static {
        let i = self.inner.clone();
        async move {
            // One retry on a new connection when the kept one was closed (a restarted server);
            // the loop ends only by returning.
            let mut retried = false;
            loop {
                let c = i.get().await?;
                let st = c
                    .statement(
                        "INSERT INTO audit_log (host, entry) SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS x(e, n) ORDER BY n",
                        &[Type::TEXT, Type::TEXT_ARRAY],
                    )
                    .await;
                let r = match st {
                    Ok(st) => c.execute(&st, &[&i.host, &lines]).await,
                    Err(e) => Err(e),
                };
                match r {
                    Ok(_) => {
                        i.put(c);
                        return Ok(());
                    }
                    // Not sent when the connection was found closed: safe to send again.
                    Err(e) if !retried && e.is_closed() => retried = true,
                    Err(e) => return Err(i.err(e)),
                }
            }
        }
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
