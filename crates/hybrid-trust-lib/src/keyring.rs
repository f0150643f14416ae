//! The secret store: the OS keyring through keyring-core. On Linux the Secret Service (GNOME
//! Keyring, KWallet) when a session bus offers it, else the kernel keyring (keyutils, which needs
//! a session keyring: `keyctl session -` on a headless box). `HYBRID_TRUST_KEYRING=secret-service|
//! keyutils` forces one. There is never a silent in-memory fallback: if no keyring works, the
//! caller is told, and [`SecretStore::describe`] says where secrets went.
//!
//! Entries are named `login:<tenant>` / `login:*` (admin logins, [`crate::login`]) and
//! `pfx-password:<canonical path>` (a PFX's password, [`pfx_password_entry`]).

use crate::secret::SecretString;

pub const SERVICE: &str = "hybrid-trust";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SecretService,
    KernelKeyutils,
    /// keyring-core's mock store: tests only.
    Mock,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no OS keyring is available: {0}")]
    Unavailable(String),
    #[error("the keyring refused the operation: {0}")]
    Refused(String),
    #[error("HYBRID_TRUST_KEYRING={0:?} is not one of secret-service, keyutils")]
    BadChoice(String),
}

impl KeyringError {
    pub fn hint(&self) -> &'static str {
        match self {
            KeyringError::Unavailable(_) => {
                "start a desktop session keyring (GNOME Keyring/KWallet), or on a headless server run inside `keyctl session -`; or pass the identity with --client-id and --client-secret-env instead of login"
            }
            KeyringError::Refused(_) => "unlock the keyring and try again",
            KeyringError::BadChoice(_) => {
                "unset HYBRID_TRUST_KEYRING or set it to secret-service or keyutils"
            }
        }
    }
}

#[derive(Debug)]
pub struct SecretStore {
    backend: Backend,
}

fn probe() -> Result<(), String> {
    let e = keyring_core::Entry::new(SERVICE, "probe").map_err(|e| e.to_string())?;
    match e.get_password() {
        Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl SecretStore {
    /// Opens the OS keyring (see module docs). Call outside an async runtime.
    pub fn open() -> Result<SecretStore, KeyringError> {
        let choice = std::env::var("HYBRID_TRUST_KEYRING").unwrap_or_default();
        let mut tried = Vec::new();
        #[cfg(target_os = "linux")]
        {
            if choice.is_empty() || choice == "secret-service" {
                match zbus_secret_service_keyring_store::Store::new() {
                    Ok(s) => {
                        keyring_core::set_default_store(s);
                        match probe() {
                            Ok(()) => {
                                return Ok(SecretStore {
                                    backend: Backend::SecretService,
                                });
                            }
                            Err(e) => tried.push(format!("Secret Service: {e}")),
                        }
                        keyring_core::unset_default_store();
                    }
                    Err(e) => tried.push(format!("Secret Service: {e}")),
                }
            }
            if choice.is_empty() || choice == "keyutils" {
                match linux_keyutils_keyring_store::Store::new() {
                    Ok(s) => {
                        keyring_core::set_default_store(s);
                        match probe() {
                            Ok(()) => {
                                return Ok(SecretStore {
                                    backend: Backend::KernelKeyutils,
                                });
                            }
                            Err(e) => tried.push(format!("kernel keyring: {e}")),
                        }
                        keyring_core::unset_default_store();
                    }
                    Err(e) => tried.push(format!("kernel keyring: {e}")),
                }
            }
            if !choice.is_empty() && choice != "secret-service" && choice != "keyutils" {
                return Err(KeyringError::BadChoice(choice));
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = &choice;
            tried.push("no keyring store is built for this platform yet".to_string());
        }
        Err(KeyringError::Unavailable(tried.join("; ")))
    }

    /// keyring-core's in-memory mock store, for tests.
    pub fn mock() -> Result<SecretStore, KeyringError> {
        let s = keyring_core::mock::Store::new()
            .map_err(|e| KeyringError::Unavailable(e.to_string()))?;
        keyring_core::set_default_store(s);
        Ok(SecretStore {
            backend: Backend::Mock,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where secrets go, for people.
    pub fn describe(&self) -> &'static str {
        match self.backend {
            Backend::SecretService => "the Secret Service keyring (GNOME Keyring / KWallet)",
            Backend::KernelKeyutils => {
                "the Linux kernel keyring (your persistent keyring: kept for days after logout, gone at reboot)"
            }
            Backend::Mock => "the in-memory mock keyring (tests only)",
        }
    }

    fn entry(&self, user: &str) -> Result<keyring_core::Entry, KeyringError> {
        keyring_core::Entry::new(SERVICE, user).map_err(|e| KeyringError::Refused(e.to_string()))
    }

    pub fn get(&self, user: &str) -> Result<Option<SecretString>, KeyringError> {
        match self.entry(user)?.get_password() {
            Ok(p) => Ok(Some(SecretString::new(p))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyringError::Refused(e.to_string())),
        }
    }

    pub fn set(&self, user: &str, value: &SecretString) -> Result<(), KeyringError> {
        self.entry(user)?
            .set_password(value.expose())
            .map_err(|e| KeyringError::Refused(e.to_string()))
    }

    /// Removes an entry; `false` when there was none.
    pub fn delete(&self, user: &str) -> Result<bool, KeyringError> {
        match self.entry(user)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(KeyringError::Refused(e.to_string())),
        }
    }
}

/// The keyring entry of a PFX's password: keyed by the file's canonical path.
pub fn pfx_password_entry(path: &std::path::Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("pfx-password:{}", p.display())
}

impl SecretStore {
    /// The password stored for the PFX at `path` (`cert remember-password`), or why there is none.
    pub fn pfx_password(&self, path: &std::path::Path) -> Result<SecretString, String> {
        match self
            .get(&pfx_password_entry(path))
            .map_err(|e| e.to_string())?
        {
            Some(p) => Ok(p),
            None => Err(format!(
                "no password for {} in {}; store it with hybrid-trust cert remember-password",
                path.display(),
                self.describe()
            )),
        }
    }
}

/// The mock store, set once for all the tests of this process (tests run in parallel threads
/// and share keyring-core's one default store).
#[cfg(test)]
pub(crate) fn test_store() -> SecretStore {
    static SET: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        if let Ok(s) = keyring_core::mock::Store::new() {
            keyring_core::set_default_store(s);
        }
    });
    SecretStore {
        backend: Backend::Mock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_store_round_trip() {
        let s = test_store();
        assert_eq!(
            s.get("login:contoso.com")
                .unwrap()
                .map(|x| x.expose().to_string()),
            None
        );
        s.set("login:contoso.com", &SecretString::new("{\"k\":1}".into()))
            .unwrap();
        assert_eq!(
            s.get("login:contoso.com").unwrap().unwrap().expose(),
            "{\"k\":1}"
        );
        assert!(s.delete("login:contoso.com").unwrap());
        assert!(!s.delete("login:contoso.com").unwrap());
        assert_eq!(s.backend(), Backend::Mock);
    }

    #[test]
    fn a_pfx_password_is_found_by_the_files_canonical_path() {
        let s = test_store();
        let dir = tempfile::tempdir().unwrap();
        let pfx = dir.path().join("oauth.pfx");
        std::fs::write(&pfx, b"x").unwrap();
        let e = s.pfx_password(&pfx).unwrap_err();
        assert!(e.contains("cert remember-password"), "{e}");
        let canonical = std::fs::canonicalize(&pfx).unwrap();
        assert_eq!(
            pfx_password_entry(&dir.path().join(".").join("oauth.pfx")),
            format!("pfx-password:{}", canonical.display())
        );
        s.set(&pfx_password_entry(&pfx), &SecretString::new("pw".into()))
            .unwrap();
        assert_eq!(s.pfx_password(&canonical).unwrap().expose(), "pw");
    }
}
