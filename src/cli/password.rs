//! Where a PFX password comes from: `--password-env VAR`, `--password-file PATH`, or a prompt when
//! stdin is a terminal. Never from argv. (The keyring joins with `login`.)

use hybrid_trust::cert::CertError;
use hybrid_trust::secret::SecretString;
use std::io::IsTerminal as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PasswordArgs {
    /// Read the PFX password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// Read the PFX password from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "password_keyring")]
    pub password_file: Option<PathBuf>,
    /// Read the PFX password from the OS keyring (stored by `cert remember-password`).
    #[arg(long, conflicts_with = "password_env")]
    pub password_keyring: bool,
}

impl PasswordArgs {
    /// The password for `path`, if one was given or can be prompted for.
    pub fn get_for(&self, path: &std::path::Path) -> Result<Option<SecretString>, CertError> {
        if self.password_keyring {
            let store = hybrid_trust::keyring::SecretStore::open()
                .map_err(|e| CertError::Password(e.to_string()))?;
            return store
                .pfx_password(path)
                .map(Some)
                .map_err(CertError::Password);
        }
        self.get()
    }

    /// The password from `--password-env` or `--password-file`, else a prompt on a terminal.
    pub fn get(&self) -> Result<Option<SecretString>, CertError> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(SecretString::new(v))),
                Err(_) => Err(CertError::Password(format!(
                    "environment variable {var} is not set or not UTF-8"
                ))),
            };
        }
        if let Some(path) = &self.password_file {
            return hybrid_trust::cert::read_password_file(path).map(Some);
        }
        if std::io::stdin().is_terminal() {
            let pw = rpassword::prompt_password("PFX password: ")
                .map_err(|e| CertError::Password(e.to_string()))?;
            return Ok(Some(SecretString::new(pw)));
        }
        Ok(None)
    }
}

impl PasswordArgs {
    /// Loads a certificate file (any format), asking for a PFX password the way these flags say.
    pub fn load_cert(
        &self,
        path: &std::path::Path,
    ) -> Result<hybrid_trust::cert::Loaded, super::Failure> {
        Ok(hybrid_trust::cert::load_file(path, &mut || {
            self.get_for(path)
        })?)
    }
}
