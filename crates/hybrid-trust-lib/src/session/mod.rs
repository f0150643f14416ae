//! A tenant session: everything one run needs to change one tenant, built once per tenant per
//! run (docs/design.md, "The library owns the workflows"): the cloud, the token provider, the HTTP
//! client (and with them the Graph client), the audit log, the ledger, the tenant lock and the
//! clock. The write workflows are functions over it: [`keys`] (upload, remove), [`names`]
//! (service principal names) and [`renewal`] (re-window, roll, finish a roll). The command line
//! builds a session from its flags, passes a confirmation callback, and prints what comes back.

pub mod confirm;
pub mod exchange;
pub mod keys;
pub mod names;
pub mod onboard;
pub mod remind_all;
pub mod renew_all;
pub mod renewal;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::credential::{Change, CredentialError};
use crate::graph::Graph;
use crate::http::HttpClient;
use crate::ids::TenantId;
use crate::ledger::{LedgerError, LedgerStore, TenantRecord};
use crate::lock::{LockError, TenantLock};
use crate::sts::TokenProvider;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a run waits for another run's tenant lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a run waits for another run's ledger lock.
pub const LEDGER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a session workflow can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Credential(Box<CredentialError>),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Renewal(String),
    /// A renewal whose first step is done on Graph and recorded, and whose later step (retiring
    /// the windows the new one supersedes) could not be finished: what Graph holds is said.
    #[error("incomplete: {0}")]
    Incomplete(String),
    /// The user's request cannot be carried out as asked (exit 2, nothing changed).
    #[error("{0}")]
    Usage(String),
}

impl From<CredentialError> for SessionError {
    fn from(e: CredentialError) -> Self {
        SessionError::Credential(Box::new(e))
    }
}

impl SessionError {
    pub fn hint(&self) -> String {
        match self {
            SessionError::Credential(e) => e.hint(),
            SessionError::Ledger(e) => e.hint(),
            SessionError::Lock(crate::lock::LockError::State(e)) => e.hint(),
            SessionError::Lock(_) => "wait for the other run to finish".into(),
            SessionError::Usage(_) => "nothing was changed".into(),
            SessionError::Incomplete(_) => {
                "nothing to do: the new key is in place and recorded; the windows it supersedes stay until they end (hybrid-trust credential list shows what the tenant holds)".into()
            }
            SessionError::Renewal(_) => {
                "each failure is recorded in the ledger and reported by remind; fix the cause and run renew again".into()
            }
        }
    }
    /// Whether the user's own answer or input caused it (exit 2), not the run (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, SessionError::Usage(_))
            || matches!(self, SessionError::Credential(e) if matches!(**e, CredentialError::Declined))
            || matches!(
                self,
                SessionError::Ledger(LedgerError::DateOutOfRange { .. })
            )
    }
}

/// One tenant, for one run.
pub struct Session {
    pub cloud: Cloud,
    /// The tenant as the user named it (domain or GUID).
    pub name: String,
    /// The tenant id, once known (from the name, the ledger, or a token's `tid`).
    pub tenant_id: Option<String>,
    pub tokens: Arc<TokenProvider>,
    pub http: HttpClient,
    pub audit: AuditLog,
    pub ledger: LedgerStore,
    pub state_dir: PathBuf,
    pub clock: Clock,
    /// Plan only: nothing is written to the tenant or the ledger.
    pub dry_run: bool,
    lock: Option<TenantLock>,
    /// How long [`Session::lock`] waits ([`Session::with_lock_wait`]).
    lock_wait: Duration,
    /// The team's database (`--state-url`): its ledger, audit log and tenant locks.
    db: Option<Arc<crate::state::pg::PgState>>,
}

impl Session {
    pub fn new(
        cloud: Cloud,
        name: &str,
        tokens: Arc<TokenProvider>,
        http: HttpClient,
        state_dir: PathBuf,
        clock: Clock,
        dry_run: bool,
    ) -> Session {
        Session {
            cloud,
            name: name.to_string(),
            tenant_id: TenantId::parse(name).map(String::from),
            tokens,
            audit: AuditLog::in_dir(&state_dir),
            ledger: LedgerStore::in_dir(&state_dir),
            http,
            state_dir,
            clock,
            dry_run,
            lock: None,
            lock_wait: LOCK_TIMEOUT,
            db: None,
        }
    }

    /// This session on the team's database (`--state-url`): the ledger, the audit log and the
    /// tenant lock there, shared by every host; `None` keeps the state dir's.
    pub fn with_db(mut self, db: Option<Arc<crate::state::pg::PgState>>) -> Session {
        if let Some(pg) = &db {
            self.ledger = LedgerStore::in_db(pg.clone());
            self.audit = AuditLog::in_db(pg.clone());
        }
        self.db = db;
        self
    }

    /// A session for `tenant` signed in as `credential`, its tokens and its HTTP retries on
    /// `clock` (so a moved clock signs assertions and ages tokens at its own now, and on
    /// simulated time a retry's wait is simulated too): the demo's, and the tests' that drive
    /// the library against the emulator.
    #[allow(clippy::too_many_arguments)]
    pub fn signed_in(
        cloud: Cloud,
        http: HttpClient,
        tenant: &str,
        credential: crate::sts::AdminCredential,
        state_dir: PathBuf,
        clock: Clock,
        dry_run: bool,
    ) -> Session {
        let http = http.with_clock(clock);
        let tokens =
            TokenProvider::new(http.clone(), cloud.clone(), tenant, credential).with_clock(clock);
        Session::new(
            cloud,
            tenant,
            Arc::new(tokens),
            http,
            state_dir,
            clock,
            dry_run,
        )
    }

    pub fn graph(&self) -> Graph<'_> {
        Graph::new(&self.http, &self.cloud, &self.tokens)
    }

    /// Who makes the changes, for the audit log.
    pub fn actor(&self) -> String {
        self.tokens.actor()
    }

    /// A change to one application's service principal in this tenant.
    pub fn change<'a>(
        &'a self,
        graph: &'a Graph<'a>,
        app_id: &'a str,
        actor: &'a str,
    ) -> Change<'a> {
        Change {
            graph,
            holder: crate::credential::Holder::ServicePrincipal,
            first_form: crate::graph::resend::ResendForm::Full,
            tenant: self.tenant_id.as_deref().unwrap_or(&self.name),
            app_id,
            actor,
            audit: &self.audit,
            dry_run: self.dry_run,
            clock: self.clock,
        }
    }

    /// Learns the tenant id: the ledger's record, else the `tid` of an admin token (one token
    /// request, which the rest of the run reuses). Stays `None` when neither answers (the
    /// workflow then fails on its own first request).
    pub async fn resolve_tenant_id(&mut self) -> Option<String> {
        if self.tenant_id.is_none() {
            self.tenant_id = self
                .ledger
                .tenant_async(&self.name, None)
                .await
                .ok()
                .flatten()
                .and_then(|t| t.tenant_id);
        }
        if self.tenant_id.is_none() {
            self.tenant_id = self
                .tokens
                .token(&self.cloud.graph_scope())
                .await
                .ok()
                .and_then(|t| crate::sts::unverified_claim(t.expose(), "tid"))
                .and_then(|t| TenantId::parse(&t).map(String::from));
        }
        self.tenant_id.clone()
    }

    /// Takes the per-tenant lock, keyed by the tenant id (resolved first), so that every run
    /// changing one tenant takes the same lock whichever name it was given. Held until the
    /// session is dropped. A dry run changes nothing and takes no lock (it still learns the id).
    pub async fn lock(&mut self) -> Result<(), SessionError> {
        if self.lock.is_some() {
            return Ok(());
        }
        if self.dry_run {
            self.resolve_tenant_id().await;
            return Ok(());
        }
        let key = match self.resolve_tenant_id().await {
            Some(id) => id,
            None => self
                .ledger
                .tenant_async(&self.name, None)
                .await
                .ok()
                .flatten()
                .map(|t| t.domain)
                .unwrap_or_else(|| self.name.to_ascii_lowercase()),
        };
        self.lock = Some(match &self.db {
            Some(pg) => TenantLock::acquire_db_async(pg, &key, self.lock_wait).await?,
            None => TenantLock::acquire_async(&self.state_dir, &key, self.lock_wait).await?,
        });
        Ok(())
    }

    /// How long [`Session::lock`] waits for another run holding the tenant ([`LOCK_TIMEOUT`]
    /// unless set); zero tries once, so `renew --all` can do its free tenants first.
    pub fn with_lock_wait(mut self, wait: Duration) -> Session {
        self.lock_wait = wait;
        self
    }

    /// Applies `f` to this tenant's ledger record (found by name or id, created if missing)
    /// under the ledger lock.
    pub async fn record<T>(
        &self,
        apps: &[String],
        f: impl FnOnce(&mut TenantRecord) -> T,
    ) -> Result<T, LedgerError> {
        self.record_named(&self.name, apps, f).await
    }

    /// [`Session::record`] for the record `name` (a domain) names, found by it or by this
    /// session's tenant id; so a record made by domain learns the id.
    pub async fn record_named<T>(
        &self,
        name: &str,
        apps: &[String],
        f: impl FnOnce(&mut TenantRecord) -> T,
    ) -> Result<T, LedgerError> {
        if let Some(l) = &self.lock {
            l.check().map_err(|e| LedgerError::State(Box::new(e)))?;
        }
        let id = self.tenant_id.as_deref();
        let now = self.clock.now();
        self.ledger
            .update_async(name, id, LEDGER_TIMEOUT, |l| {
                f(l.tenant_entry_for(name, id, &self.cloud.name, apps, now))
            })
            .await
    }
}
