//! What a command needs to reach a tenant, from the global flags: the admin identity for Microsoft
//! Graph (flags and environment first, docs/contract.md, then a stored login: [`hybrid_trust::login`]), the
//! token provider, the session, the state dir, and the confirmation. Secrets come from
//! environment variables or the keyring, never argv.

use super::{Context, Failure};
use hybrid_trust::cloud::Cloud;
use hybrid_trust::login::{AdminSettings, LoginError};
use hybrid_trust::secret::SecretString;
use hybrid_trust::sts::{AdminCredential, TokenProvider};

/// A login or admin identity failure: exit 2 for the user's own input, else exit 1.
pub fn login_failure(e: LoginError) -> Failure {
    let hint = e.hint();
    if e.is_usage() {
        Failure::input(e, hint)
    } else {
        Failure::runtime(e, hint)
    }
}

impl Context {
    /// The admin credential from flags/env, or the stored login for `tenant`.
    pub fn admin_credential(&self, tenant: &str) -> Result<AdminCredential, Failure> {
        let g = &self.global;
        if let Some(c) = self.cert_credential.get() {
            return Ok(c.clone());
        }
        let secret = match &g.client_secret_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                Failure::input(
                    anyhow::anyhow!(
                        "environment variable {var} (from --client-secret-env) is not set"
                    ),
                    Some(format!("export {var} with the admin app's client secret")),
                )
            })?),
            None => std::env::var("HYBRID_TRUST_CLIENT_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
        };
        let settings = AdminSettings {
            client_id: g.client_id.clone(),
            secret: secret.map(SecretString::new),
            cert: g.client_cert.clone(),
        };
        let pw = super::password::PasswordArgs {
            password_env: g.client_cert_password_env.clone(),
            password_file: None,
            password_keyring: false,
        };
        let cred = settings
            .credential(&mut || pw.get(), || {
                hybrid_trust::login::stored_credential(tenant)
            })
            .map_err(login_failure)?;
        if g.client_cert.is_some() && matches!(cred, AdminCredential::Certificate { .. }) {
            let _ = self.cert_credential.set(cred.clone());
        }
        Ok(cred)
    }

    /// The token provider for `tenant`, shared by every step of this run (one token per tenant
    /// and scope, not one per step).
    pub fn token_provider(
        &self,
        cloud: &Cloud,
        tenant: &str,
    ) -> Result<std::sync::Arc<TokenProvider>, Failure> {
        let key = format!("{}|{tenant}", cloud.login_url);
        if let Some(p) = self
            .providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let cred = self.admin_credential(tenant)?;
        let p = std::sync::Arc::new(
            TokenProvider::new(self.http(cloud)?, cloud.clone(), tenant, cred)
                .with_clock(self.clock),
        );
        self.providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, p.clone());
        Ok(p)
    }

    /// The library's session for one tenant: its cloud, token provider, HTTP client, state dir
    /// and the run's clock (one per tenant per run).
    pub fn session(&self, tenant: &str) -> Result<hybrid_trust::session::Session, Failure> {
        let cloud = self.cloud()?;
        let http = self.http(&cloud)?;
        self.session_on(tenant, http)
    }

    /// [`Context::session`] on a given HTTPS client (one of a fleet's connection pools).
    pub fn session_on(
        &self,
        tenant: &str,
        http: hybrid_trust::http::HttpClient,
    ) -> Result<hybrid_trust::session::Session, Failure> {
        let cloud = self.cloud()?;
        let tokens = self.token_provider(&cloud, tenant)?;
        let state = self.state_dir()?;
        Ok(hybrid_trust::session::Session::new(
            cloud,
            tenant,
            tokens,
            http,
            state,
            self.clock,
            self.global.dry_run,
        )
        .with_db(self.state_db()?))
    }

    /// The state dir (created 0700).
    pub fn state_dir(&self) -> Result<std::path::PathBuf, Failure> {
        // Checked once a run (a fleet makes a session per tenant).
        if let Some(d) = self.state_dir_checked.get() {
            return Ok(d.clone());
        }
        let dir = match &self.global.state_dir {
            Some(d) => d.clone(),
            None => hybrid_trust::paths::default_state_dir().ok_or_else(|| {
                Failure::input(
                    anyhow::anyhow!("cannot find a home directory for the state dir"),
                    Some("pass --state-dir DIR".to_string()),
                )
            })?,
        };
        hybrid_trust::paths::ensure_private_dir(&dir).map_err(|e| {
            Failure::runtime(
                anyhow::Error::new(e).context(format!("cannot create state dir {}", dir.display())),
                Some("pass a writable --state-dir".to_string()),
            )
        })?;
        for (path, what) in [
            (dir.clone(), "the state dir"),
            (dir.join("ledger"), "the ledger"),
            (dir.join("ledger").join("tenants"), "the ledger"),
        ] {
            hybrid_trust::paths::refuse_loose(&path, what).map_err(|e| {
                let hint = e.hint();
                Failure::input(e, Some(hint))
            })?;
        }
        Ok(self.state_dir_checked.get_or_init(|| dir).clone())
    }

    /// Asks before a change: `--yes` skips, `--dry-run` never gets here, and without a terminal
    /// the run stops rather than guess.
    pub fn confirm(&self, question: &str) -> bool {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        if self.global.yes {
            return true;
        }
        if !std::io::stdin().is_terminal() {
            return false;
        }
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    }

    /// Fails early (before any network) when a change could not be confirmed.
    pub fn require_confirmable(&self) -> Result<(), Failure> {
        use std::io::IsTerminal as _;
        if self.global.yes || self.global.dry_run || std::io::stdin().is_terminal() {
            return Ok(());
        }
        Err(Failure::input(
            anyhow::anyhow!("this changes the tenant and there is no terminal to confirm on"),
            Some("pass --yes to apply, or --dry-run to see the plan".to_string()),
        ))
    }
}
