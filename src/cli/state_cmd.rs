//! `hybrid-trust state …` and where the run's state lives: the state dir, or the team's database
//! that `--state-url` (`HYBRID_TRUST_STATE_URL`, `[state] url`) names, opened once per run.

use super::{Context, Failure};
use hybrid_trust::ledger::migrate::{self, Side};
use hybrid_trust::state::pg::PgState;
use hybrid_trust::state::{StateError, StateUrl};
use std::sync::Arc;

#[derive(clap::Subcommand, Debug)]
pub enum StateCommand {
    /// Copy every tenant record, the audit log and the reminder records from the current state
    /// (--state-dir or --state-url) to another store; a target holding tenants is refused.
    #[command(
        after_help = "Examples:\n  hybrid-trust state migrate --to postgres://ht@db.example/uc?sslmode=verify-full\n  hybrid-trust --state-url postgres://ht@db.example/uc state migrate --to /var/lib/hybrid-trust"
    )]
    Migrate {
        /// The target: postgres://… or a state dir.
        #[arg(long, value_name = "URL|DIR")]
        to: String,
    },
    /// Store the state database's password (from PGPASSWORD, or asked) in the OS keyring.
    RememberPassword,
}

/// The failure of a state database: exit 2 for a bad URL, else 1; the hint says the fix.
pub fn state_failure(e: StateError) -> Failure {
    let hint = e.hint();
    if e.is_usage() {
        Failure::input(e, Some(hint))
    } else {
        Failure::runtime(e, Some(hint))
    }
}

impl Context {
    /// The state URL: the flag or environment, else `[state] url` in the settings file.
    fn state_url(&self) -> Result<Option<StateUrl>, Failure> {
        let raw = match &self.global.state_url {
            Some(u) if !u.trim().is_empty() => Some(u.clone()),
            _ => self.settings()?.state.url,
        };
        raw.map(|u| StateUrl::parse(&u).map_err(state_failure))
            .transpose()
    }

    /// The team's database, when the run has one (opened, its schema checked, once per run).
    pub fn state_db(&self) -> Result<Option<Arc<PgState>>, Failure> {
        if let Some(db) = self.state_db.get() {
            return Ok(db.clone());
        }
        let db = match self.state_url()? {
            None => None,
            Some(url) => Some(PgState::open(&url).map_err(state_failure)?),
        };
        Ok(self.state_db.get_or_init(|| db).clone())
    }

    /// The audit log: the team's database's, else the state dir's.
    pub fn audit_log(&self) -> Result<hybrid_trust::audit::AuditLog, Failure> {
        Ok(match self.state_db()? {
            Some(pg) => hybrid_trust::audit::AuditLog::in_db(pg),
            None => hybrid_trust::audit::AuditLog::in_dir(&self.state_dir()?),
        })
    }

    /// The reminders lock: the team's, else the state dir's.
    pub fn reminders_lock(
        &self,
    ) -> Result<Result<hybrid_trust::lock::TenantLock, hybrid_trust::lock::LockError>, Failure>
    {
        let timeout = hybrid_trust::session::remind_all::LOCK_TIMEOUT;
        Ok(match self.state_db()? {
            Some(pg) => hybrid_trust::session::remind_all::lock_db(&pg, timeout),
            None => hybrid_trust::session::remind_all::lock(&self.state_dir()?, timeout),
        })
    }
}

pub fn run(ctx: &Context, c: StateCommand) -> Result<u8, Failure> {
    match c {
        StateCommand::Migrate { to } => migrate_cmd(ctx, &to),
        StateCommand::RememberPassword => remember_password(ctx),
    }
}

fn migrate_cmd(ctx: &Context, to: &str) -> Result<u8, Failure> {
    let from = match ctx.state_db()? {
        Some(pg) => Side::Db(pg),
        None => Side::Dir(ctx.state_dir()?),
    };
    let target = if hybrid_trust::state::is_url(to) {
        let url = StateUrl::parse(to).map_err(state_failure)?;
        Side::Db(PgState::open(&url).map_err(state_failure)?)
    } else {
        Side::Dir(std::path::PathBuf::from(to))
    };
    let counts = migrate::migrate(&from, &target, ctx.global.dry_run).map_err(|e| {
        let hint = e.hint();
        if e.is_usage() {
            Failure::input(e, Some(hint))
        } else {
            Failure::runtime(e, Some(hint))
        }
    })?;
    ctx.printer.emit(&counts, || counts.text());
    Ok(0)
}

fn remember_password(ctx: &Context) -> Result<u8, Failure> {
    let Some(url) = ctx.state_url()? else {
        return Err(Failure::input(
            anyhow::anyhow!("no state database is named"),
            Some(
                "pass --state-url postgres://USER@HOST/DB (or set HYBRID_TRUST_STATE_URL)"
                    .to_string(),
            ),
        ));
    };
    let password = match std::env::var("PGPASSWORD") {
        Ok(p) if !p.is_empty() => hybrid_trust::secret::SecretString::new(p),
        _ => hybrid_trust::secret::SecretString::new(
            rpassword::prompt_password(format!("password for {}: ", url.display())).map_err(
                |e| {
                    Failure::input(
                        e,
                        Some("set PGPASSWORD, or run it on a terminal".to_string()),
                    )
                },
            )?,
        ),
    };
    let store = hybrid_trust::keyring::SecretStore::open().map_err(|e| {
        let h = e.hint().to_string();
        Failure::runtime(e, Some(h))
    })?;
    store.set(&url.keyring_entry(), &password).map_err(|e| {
        let h = e.hint().to_string();
        Failure::runtime(e, Some(h))
    })?;
    ctx.printer
        .emit(&serde_json::json!({"stored": url.keyring_entry()}), || {
            format!(
                "stored the password for {} in the {}\n",
                url.display(),
                store.describe()
            )
        });
    Ok(0)
}
