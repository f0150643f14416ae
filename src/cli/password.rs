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
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The password, if one was given or can be prompted for.
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
            let mut s = std::fs::read_to_string(path)
                .map_err(|e| CertError::Password(format!("{}: {e}", path.display())))?;
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
