//! The admin identity for Microsoft Graph: from what the user gave (a client id with a secret or
//! a certificate, [`AdminSettings`]), or else a login stored in the OS keyring by `login`. A
//! login is kept per tenant (`login:<tenant>`) or for every tenant (`login:*`, a multi-tenant
//! admin app); the whole JSON entry is the secret. `login` proves an identity with a token
//! before storing it, and `logout` removes it.

use crate::cert::CertError;
use crate::keyring::{KeyringError, SecretStore};
use crate::secret::SecretString;
use crate::sts::{AdminCredential, AssertionAlg, StsError, TokenProvider};
use crate::tenant::{BadTenant, TenantRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Microsoft Graph Command Line Tools: a public client every tenant has, used for device login.
pub const DEVICE_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// What the user gave for the admin identity (flags and environment, already read).
#[derive(Debug, Default)]
pub struct AdminSettings {
    pub client_id: Option<String>,
    pub secret: Option<SecretString>,
    /// The admin app's certificate with its private key (PFX, or PEM with key).
    pub cert: Option<PathBuf>,
}

/// Why there is no admin identity, or why a stored login cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no admin identity for Microsoft Graph")]
    NoIdentity,
    #[error("--client-id needs a credential")]
    NoCredential,
    #[error("a client secret or certificate was given without --client-id")]
    NoClientId,
    /// The admin certificate (`--client-cert`) has no private key.
    #[error("{} has no private key", .0.display())]
    NoPrivateKey(PathBuf),
    /// A stored login's certificate has no private key.
    #[error("{} has no private key", .0.display())]
    StoredWithoutKey(PathBuf),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    BadTenant(#[from] BadTenant),
    /// The keyring cannot be opened.
    #[error(transparent)]
    Keyring(KeyringError),
    /// The keyring refused to read, write or delete an entry.
    #[error(transparent)]
    Entry(KeyringError),
    #[error("the keyring entry {entry} is not a hybrid-trust login")]
    NotALogin { entry: String, tenant: String },
    #[error("login needs --client-id with a secret or certificate, or --device-code")]
    NotStorable,
    #[error("--client-cert is needed")]
    NoCertPath,
    #[error(transparent)]
    Token(Box<StsError>),
    #[error("Entra ID returned no refresh token")]
    NoRefreshToken,
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

impl LoginError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            LoginError::NoIdentity => "give --client-id with --client-secret-env VAR (or HYBRID_TRUST_CLIENT_SECRET) or --client-cert PATH, or run hybrid-trust login".into(),
            LoginError::NoCredential => "add --client-secret-env VAR (or set HYBRID_TRUST_CLIENT_SECRET) or --client-cert PATH".into(),
            LoginError::NoClientId => "add --client-id (or HYBRID_TRUST_CLIENT_ID)".into(),
            LoginError::NoPrivateKey(_) => "--client-cert needs the admin app's certificate with its private key (PFX or PEM with key)".into(),
            LoginError::StoredWithoutKey(_) => "log in again with the PFX".into(),
            LoginError::Cert(e) => return e.hint().map(str::to_string),
            LoginError::BadTenant(_) => "the tenant id is on the Overview page of the Entra admin center; the initial domain is <name>.onmicrosoft.com".into(),
            LoginError::Keyring(e) => e.hint().into(),
            LoginError::Entry(_) => "unlock the keyring".into(),
            LoginError::NotALogin { tenant, .. } => format!("run hybrid-trust logout --tenant {tenant} and log in again"),
            LoginError::Token(e) => e.hint(),
            LoginError::NoRefreshToken => "the device login must ask for offline_access; report this".into(),
            LoginError::NotStorable | LoginError::NoCertPath | LoginError::Encode(_) => {
                return None;
            }
        })
    }

    /// Whether the user's own input caused it (exit 2), not the run (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LoginError::NoIdentity
                | LoginError::NoCredential
                | LoginError::NoClientId
                | LoginError::NoPrivateKey(_)
                | LoginError::Cert(_)
                | LoginError::BadTenant(_)
                | LoginError::NotStorable
                | LoginError::NoCertPath
        )
    }
}

impl From<StsError> for LoginError {
    fn from(e: StsError) -> Self {
        LoginError::Token(Box::new(e))
    }
}

/// A certificate's password source: asked only when the file needs one.
pub type PasswordSource<'a> = dyn FnMut() -> Result<Option<SecretString>, CertError> + 'a;

impl AdminSettings {
    /// The credential these settings give; with none given at all, `stored()` (a login).
    pub fn credential(
        &self,
        password: &mut PasswordSource<'_>,
        stored: impl FnOnce() -> Result<Option<AdminCredential>, LoginError>,
    ) -> Result<AdminCredential, LoginError> {
        match (&self.client_id, &self.secret, &self.cert) {
            (Some(id), Some(secret), _) => Ok(AdminCredential::Secret {
                client_id: id.clone(),
                secret: secret.clone(),
            }),
            (Some(id), None, Some(path)) => {
                let loaded = crate::cert::load_file(path, password)?;
                let key = loaded
                    .key
                    .ok_or_else(|| LoginError::NoPrivateKey(path.clone()))?;
                Ok(AdminCredential::Certificate {
                    client_id: id.clone(),
                    cert: Box::new(loaded.leaf),
                    key,
                    alg: AssertionAlg::Rs256,
                })
            }
            (Some(_), None, None) => Err(LoginError::NoCredential),
            (None, Some(_), _) | (None, None, Some(_)) => Err(LoginError::NoClientId),
            (None, None, None) => stored()?.ok_or(LoginError::NoIdentity),
        }
    }
}

/// The keyring entry of the login for `tenant`, or for every tenant (`None`).
pub fn entry_name(tenant: Option<&str>) -> Result<String, BadTenant> {
    Ok(match tenant {
        None => "login:*".to_string(),
        Some(t) => format!("login:{}", TenantRef::parse(t)?),
    })
}

/// What is kept in the keyring entry (the whole JSON is the secret).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StoredLogin {
    Secret {
        client_id: String,
        secret: String,
    },
    Certificate {
        client_id: String,
        cert_path: PathBuf,
        password: Option<String>,
    },
    RefreshToken {
        client_id: String,
        refresh_token: String,
    },
}

impl StoredLogin {
    /// What to store for `cred`: a secret, or where the certificate is (made absolute) with its
    /// password. A device login is stored by its refresh token, after the sign-in ([`prove`]).
    pub fn of(
        cred: &AdminCredential,
        cert_path: Option<&Path>,
        cert_password: Option<String>,
    ) -> Result<StoredLogin, LoginError> {
        match (cred, cert_path) {
            (AdminCredential::Secret { client_id, secret }, _) => Ok(StoredLogin::Secret {
                client_id: client_id.clone(),
                secret: secret.expose().to_string(),
            }),
            (AdminCredential::Certificate { client_id, .. }, Some(path)) => {
                Ok(StoredLogin::Certificate {
                    client_id: client_id.clone(),
                    cert_path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
                    password: cert_password,
                })
            }
            (AdminCredential::Certificate { .. }, None) => Err(LoginError::NoCertPath),
            _ => Err(LoginError::NotStorable),
        }
    }

    fn client_id(&self) -> &str {
        match self {
            StoredLogin::Secret { client_id, .. }
            | StoredLogin::Certificate { client_id, .. }
            | StoredLogin::RefreshToken { client_id, .. } => client_id,
        }
    }

    fn into_credential(self) -> Result<AdminCredential, LoginError> {
        Ok(match self {
            StoredLogin::Secret { client_id, secret } => AdminCredential::Secret {
                client_id,
                secret: SecretString::new(secret),
            },
            StoredLogin::RefreshToken {
                client_id,
                refresh_token,
            } => AdminCredential::RefreshToken {
                client_id,
                refresh_token: SecretString::new(refresh_token),
            },
            StoredLogin::Certificate {
                client_id,
                cert_path,
                password,
            } => {
                let loaded = crate::cert::load_file(&cert_path, &mut || {
                    Ok(password.clone().map(SecretString::new))
                })?;
                let key = loaded
                    .key
                    .ok_or_else(|| LoginError::StoredWithoutKey(cert_path.clone()))?;
                AdminCredential::Certificate {
                    client_id,
                    cert: Box::new(loaded.leaf),
                    key,
                    alg: AssertionAlg::Rs256,
                }
            }
        })
    }
}

/// The stored login for `tenant`, else the one for every tenant; `None` when there is neither
/// or no keyring can be opened.
pub fn stored_credential(tenant: &str) -> Result<Option<AdminCredential>, LoginError> {
    let Ok(store) = SecretStore::open() else {
        return Ok(None);
    };
    stored_in(&store, tenant)
}

fn stored_in(store: &SecretStore, tenant: &str) -> Result<Option<AdminCredential>, LoginError> {
    for k in [entry_name(Some(tenant))?, entry_name(None)?] {
        let Some(v) = store.get(&k).map_err(LoginError::Entry)? else {
            continue;
        };
        let stored: StoredLogin =
            serde_json::from_str(v.expose()).map_err(|_| LoginError::NotALogin {
                entry: k.clone(),
                tenant: tenant.to_string(),
            })?;
        tracing::info!("using the stored login {k} from {}", store.describe());
        return stored.into_credential().map(Some);
    }
    Ok(None)
}

/// Proves an identity by getting a Graph token with it. Returns what to store (for a device
/// login, its refresh token) and the tenant id the token names.
pub async fn prove(
    provider: &TokenProvider,
    scope: &str,
    now: DateTime<Utc>,
    stored: Option<StoredLogin>,
) -> Result<(StoredLogin, Option<String>), LoginError> {
    let token = provider.request(scope, now).await?;
    let stored = match stored {
        Some(s) => s,
        None => StoredLogin::RefreshToken {
            client_id: provider.credential().client_id().to_string(),
            refresh_token: token
                .refresh_token
                .as_ref()
                .ok_or(LoginError::NoRefreshToken)?
                .expose()
                .to_string(),
        },
    };
    let tid = crate::sts::unverified_claim(token.access_token.expose(), "tid");
    Ok((stored, tid))
}

/// What `login` stored.
#[derive(Debug, Serialize)]
pub struct LoggedIn {
    pub client_id: String,
    pub keyring: &'static str,
    pub stored: String,
    pub tenant_id: Option<String>,
}

impl LoggedIn {
    pub fn text(&self) -> String {
        format!(
            "signed in; stored as {}/{} in {}\n",
            crate::keyring::SERVICE,
            self.stored,
            self.keyring
        )
    }
}

/// Stores a proven login as `entry`.
pub fn store(
    store: &SecretStore,
    entry: &str,
    login: &StoredLogin,
    tenant_id: Option<String>,
) -> Result<LoggedIn, LoginError> {
    let value = SecretString::new(serde_json::to_string(login)?);
    store.set(entry, &value).map_err(LoginError::Entry)?;
    Ok(LoggedIn {
        client_id: login.client_id().to_string(),
        keyring: store.describe(),
        stored: entry.to_string(),
        tenant_id,
    })
}

/// What `logout` did.
#[derive(Debug, Serialize)]
pub struct LoggedOut {
    pub entry: String,
    pub keyring: &'static str,
    pub removed: bool,
}

impl LoggedOut {
    pub fn text(&self) -> String {
        if self.removed {
            format!("removed {} from {}\n", self.entry, self.keyring)
        } else {
            format!("no stored login {} in {}\n", self.entry, self.keyring)
        }
    }
}

/// Removes the login `entry`.
pub fn remove(store: &SecretStore, entry: &str) -> Result<LoggedOut, LoginError> {
    let removed = store.delete(entry).map_err(LoginError::Entry)?;
    Ok(LoggedOut {
        entry: entry.to_string(),
        keyring: store.describe(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, s: &str) -> AdminCredential {
        AdminCredential::Secret {
            client_id: id.into(),
            secret: SecretString::new(s.into()),
        }
    }

    fn client_id(c: &AdminCredential) -> &str {
        c.client_id()
    }

    #[test]
    fn settings_give_a_credential_or_say_what_is_missing() {
        let mut no_password = || Ok(None);
        let never = || -> Result<Option<AdminCredential>, LoginError> { panic!("not asked") };
        let s = AdminSettings {
            client_id: Some("app".into()),
            secret: Some(SecretString::new("s".into())),
            cert: None,
        };
        assert_eq!(
            client_id(&s.credential(&mut no_password, never).unwrap()),
            "app"
        );
        let only_id = AdminSettings {
            client_id: Some("app".into()),
            ..AdminSettings::default()
        };
        let e = only_id.credential(&mut no_password, never).unwrap_err();
        assert!(matches!(e, LoginError::NoCredential) && e.is_usage());
        let no_id = AdminSettings {
            secret: Some(SecretString::new("s".into())),
            ..AdminSettings::default()
        };
        assert!(matches!(
            no_id.credential(&mut no_password, never),
            Err(LoginError::NoClientId)
        ));
        // Nothing given: the stored login, else no identity.
        let none = AdminSettings::default();
        let c = none
            .credential(&mut no_password, || Ok(Some(secret("stored", "x"))))
            .unwrap();
        assert_eq!(client_id(&c), "stored");
        let e = none.credential(&mut no_password, || Ok(None)).unwrap_err();
        assert!(matches!(e, LoginError::NoIdentity));
        assert!(e.hint().unwrap().contains("hybrid-trust login"));
    }

    #[test]
    fn an_admin_certificate_needs_its_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["admin.contoso.com".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let public = dir.path().join("admin.cer");
        std::fs::write(&public, cert.pem()).unwrap();
        let with_key = dir.path().join("admin.pem");
        std::fs::write(&with_key, cert.pem() + &kp.serialize_pem()).unwrap();
        let settings = |p: &Path| AdminSettings {
            client_id: Some("app".into()),
            cert: Some(p.to_path_buf()),
            ..AdminSettings::default()
        };
        let e = settings(&public)
            .credential(&mut || Ok(None), || Ok(None))
            .unwrap_err();
        assert!(
            matches!(e, LoginError::NoPrivateKey(_)) && e.is_usage(),
            "{e}"
        );
        let c = settings(&with_key)
            .credential(&mut || Ok(None), || Ok(None))
            .unwrap();
        assert!(matches!(c, AdminCredential::Certificate { .. }));
        // Stored, it is kept by its absolute path and loads again.
        let stored = StoredLogin::of(&c, Some(&with_key), None).unwrap();
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.contains("\"kind\":\"certificate\""), "{json}");
        assert!(matches!(
            stored.into_credential().unwrap(),
            AdminCredential::Certificate { .. }
        ));
        let e = StoredLogin::of(&c, None, None).err().unwrap();
        assert!(matches!(e, LoginError::NoCertPath));
    }

    #[test]
    fn logins_are_stored_per_tenant_and_for_every_tenant() {
        let store = crate::keyring::test_store();
        let t = "login-test.contoso.com";
        assert_eq!(entry_name(Some(t)).unwrap(), format!("login:{t}"));
        assert_eq!(entry_name(None).unwrap(), "login:*");
        assert!(entry_name(Some("not a tenant")).is_err());
        assert!(stored_in(&store, t).unwrap().is_none());

        let stored = StoredLogin::of(&secret("per-tenant", "s1"), None, None).unwrap();
        let done = super::store(&store, &entry_name(Some(t)).unwrap(), &stored, None).unwrap();
        assert_eq!(done.client_id, "per-tenant");
        assert!(
            done.text()
                .starts_with("signed in; stored as hybrid-trust/login:")
        );
        let c = stored_in(&store, t).unwrap().unwrap();
        assert_eq!(client_id(&c), "per-tenant");

        // A tenant without its own login falls back to the one for every tenant.
        let all = StoredLogin::RefreshToken {
            client_id: "every-tenant".into(),
            refresh_token: "rt".into(),
        };
        super::store(&store, "login:*", &all, None).unwrap();
        let other = stored_in(&store, "other-login-test.contoso.com")
            .unwrap()
            .unwrap();
        assert!(matches!(other, AdminCredential::RefreshToken { .. }));

        // Something else under the name is refused with a way out.
        let junk = "junk-login-test.contoso.com";
        store
            .set(
                &entry_name(Some(junk)).unwrap(),
                &SecretString::new("{}".into()),
            )
            .unwrap();
        let e = stored_in(&store, junk).err().unwrap();
        assert!(!e.is_usage());
        assert!(
            e.hint()
                .unwrap()
                .contains("logout --tenant junk-login-test")
        );

        let out = remove(&store, &entry_name(Some(t)).unwrap()).unwrap();
        assert!(out.removed && out.text().starts_with("removed login:"));
        let again = remove(&store, &entry_name(Some(t)).unwrap()).unwrap();
        assert!(!again.removed && again.text().starts_with("no stored login "));
        remove(&store, "login:*").unwrap();
    }
}
