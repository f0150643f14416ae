//! Where a PFX password comes from: `--password-env VAR`, `--password-file PATH`, or a prompt when
//! stdin is a terminal. Never from argv. (The keyring joins with `login`.)

use crate::cert::CertError;
use crate::secret::SecretString;
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

/// The keyring entry of a PFX's password: keyed by the file's canonical path.
pub fn keyring_user(path: &std::path::Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("pfx-password:{}", p.display())
}

impl PasswordArgs {
    /// The password, if one was given or can be prompted for.
    /// The password for `path`, if one was given or can be prompted for.
    pub fn get_for(&self, path: &std::path::Path) -> Result<Option<SecretString>, CertError> {
        if self.password_keyring {
            let store = crate::keyring::SecretStore::open()
                .map_err(|e| CertError::Password(e.to_string()))?;
            return match store
                .get(&keyring_user(path))
                .map_err(|e| CertError::Password(e.to_string()))?
            {
                Some(p) => Ok(Some(p)),
                None => Err(CertError::Password(format!(
                    "no password for {} in {}; store it with hybrid-trust cert remember-password",
                    path.display(),
                    store.describe()
                ))),
            };
        }
        self.get()
    }

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
            let read_err = |e: String| CertError::Password(format!("{}: {e}", path.display()));
            let bytes = crate::paths::read_limited(
                path,
                crate::paths::MAX_PASSWORD_FILE,
                "a password file",
            )
            .map_err(|e| read_err(e.to_string()))?;
            let mut s = String::from_utf8(bytes)
                .map_err(|_| read_err("the password is not UTF-8 text".to_string()))?;
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            return Ok(Some(SecretString::new(s)));
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
    pub fn load_cert(&self, path: &std::path::Path) -> Result<crate::cert::Loaded, super::Failure> {
        Ok(crate::cert::load_file(path, &mut || self.get_for(path))?)
    }
}
