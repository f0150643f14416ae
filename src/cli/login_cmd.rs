//! `login` / `logout`: keep the admin identity for Microsoft Graph in the OS keyring, so renewal
//! jobs and later commands need no secret on the command line or in the environment. Stored per
//! tenant (`login:<tenant>`) or for every tenant (`login:*`, a multi-tenant admin app).

use super::{Context, Failure};
use crate::keyring::SecretStore;
use crate::secret::SecretString;
use crate::sts::{AdminCredential, AssertionAlg, TokenProvider};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Microsoft Graph Command Line Tools: a public client every tenant has, used for device login.
pub const DEVICE_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  HT_SECRET=... hybrid-trust login --tenant contoso.onmicrosoft.com --client-id <app id> --client-secret-env HT_SECRET\n  hybrid-trust login --tenant contoso.onmicrosoft.com --device-code\n  hybrid-trust login --all-tenants --client-id <multi-tenant app id> --client-cert admin.pfx --client-cert-password-env PFX_PW"
)]
pub struct LoginArgs {
    /// The tenant this login is for.
    #[arg(long, required_unless_present = "all_tenants")]
    pub tenant: Option<String>,
    /// Use this login for every tenant (a multi-tenant admin application).
    #[arg(long, conflicts_with = "device_code")]
    pub all_tenants: bool,
    /// Sign in interactively as a delegated admin (Application Administrator) with the device
    /// code flow; the refresh token is stored.
    #[arg(long)]
    pub device_code: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust logout --tenant contoso.onmicrosoft.com\n  hybrid-trust logout --all-tenants"
)]
pub struct LogoutArgs {
    #[arg(long, required_unless_present = "all_tenants")]
    pub tenant: Option<String>,
    #[arg(long)]
    pub all_tenants: bool,
}

/// What is kept in the keyring entry (the whole JSON is the secret).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Stored {
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

fn user_for(tenant: Option<&str>) -> Result<String, Failure> {
    match tenant {
        None => Ok("login:*".to_string()),
        Some(t) => Ok(format!(
            "login:{}",
            crate::tenant::TenantRef::parse(t).map_err(super::bad_tenant)?
        )),
    }
}

fn store() -> Result<SecretStore, Failure> {
    SecretStore::open().map_err(|e| {
        let hint = e.hint().to_string();
        Failure::runtime(e, Some(hint))
    })
}

/// The stored login for `tenant` (or for every tenant), if any.
pub fn stored_credential(_ctx: &Context, tenant: &str) -> Result<Option<AdminCredential>, Failure> {
    let Ok(store) = SecretStore::open() else {
        return Ok(None);
    };
    let keys = [user_for(Some(tenant))?, "login:*".to_string()];
    for k in &keys {
        let Some(v) = store
            .get(k)
            .map_err(|e| Failure::runtime(e, Some("unlock the keyring".to_string())))?
        else {
            continue;
        };
        let stored: Stored = serde_json::from_str(v.expose()).map_err(|_| {
            Failure::runtime(
                anyhow::anyhow!("the keyring entry {k} is not a hybrid-trust login"),
                Some(format!(
                    "run hybrid-trust logout --tenant {tenant} and log in again"
                )),
            )
        })?;
        tracing::info!("using the stored login {k} from {}", store.describe());
        return Ok(Some(match stored {
            Stored::Secret { client_id, secret } => AdminCredential::Secret {
                client_id,
                secret: SecretString::new(secret),
            },
            Stored::RefreshToken {
                client_id,
                refresh_token,
            } => AdminCredential::RefreshToken {
                client_id,
                refresh_token: SecretString::new(refresh_token),
            },
            Stored::Certificate {
                client_id,
                cert_path,
                password,
            } => {
                let loaded = crate::cert::load_file(&cert_path, &mut || {
                    Ok(password.clone().map(SecretString::new))
                })?;
                let key = loaded.key.ok_or_else(|| {
                    Failure::runtime(
                        anyhow::anyhow!("{} has no private key", cert_path.display()),
                        Some("log in again with the PFX".to_string()),
                    )
                })?;
                AdminCredential::Certificate {
                    client_id,
                    cert: Box::new(loaded.leaf),
                    key,
                    alg: AssertionAlg::Rs256,
                }
            }
        }));
    }
    Ok(None)
}

pub fn login(ctx: &Context, a: LoginArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("login")?;
    let user = user_for(if a.all_tenants {
        None
    } else {
        a.tenant.as_deref()
    })?;
    let tenant_for_token = a
        .tenant
        .clone()
        .unwrap_or_else(|| "organizations".to_string());
    let cloud = ctx.cloud()?;
    let http = ctx.http(&cloud)?;
    let g = &ctx.global;
    let (cred, stored) = if a.device_code {
        let client_id = g
            .client_id
            .clone()
            .unwrap_or_else(|| DEVICE_CLIENT_ID.to_string());
        let prompt: crate::sts::DeviceCodePrompt = Arc::new(|uri: &str, code: &str| {
            eprintln!(
                "To sign in, open {} and enter the code {}",
                super::printer::display_safe(uri),
                super::printer::display_safe(code)
            )
        });
        (
            AdminCredential::DeviceCode {
                client_id: client_id.clone(),
                prompt,
            },
            None,
        )
    } else {
        let cred = ctx.admin_credential(&tenant_for_token)?;
        let stored = match &cred {
            AdminCredential::Secret { client_id, secret } => Stored::Secret {
                client_id: client_id.clone(),
                secret: secret.expose().to_string(),
            },
            AdminCredential::Certificate { client_id, .. } => {
                let path = g.client_cert.clone().ok_or_else(|| {
                    Failure::input(anyhow::anyhow!("--client-cert is needed"), None)
                })?;
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                let password = g
                    .client_cert_password_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok());
                Stored::Certificate {
                    client_id: client_id.clone(),
                    cert_path: path,
                    password,
                }
            }
            _ => {
                return Err(Failure::input(
                    anyhow::anyhow!(
                        "login needs --client-id with a secret or certificate, or --device-code"
                    ),
                    None,
                ));
            }
        };
        (cred, Some(stored))
    };
    let provider = TokenProvider::new(http, cloud.clone(), &tenant_for_token, cred);
    let rt = super::runtime()?;
    // Prove the identity works before storing it.
    let token = rt
        .block_on(provider.request(&cloud.graph_scope(), ctx.now))
        .map_err(|e| {
            let hint = e.hint();
            Failure::runtime(e, Some(hint))
        })?;
    let stored = match stored {
        Some(s) => s,
        None => Stored::RefreshToken {
            client_id: provider.credential().client_id().to_string(),
            refresh_token: token
                .refresh_token
                .as_ref()
                .ok_or_else(|| {
                    Failure::runtime(
                        anyhow::anyhow!("Entra ID returned no refresh token"),
                        Some(
                            "the device login must ask for offline_access; report this".to_string(),
                        ),
                    )
                })?
                .expose()
                .to_string(),
        },
    };
    let store = store()?;
    let value =
        SecretString::new(serde_json::to_string(&stored).map_err(|e| Failure::runtime(e, None))?);
    store
        .set(&user, &value)
        .map_err(|e| Failure::runtime(e, Some("unlock the keyring".to_string())))?;
    let tid = crate::sts::unverified_claim(token.access_token.expose(), "tid");
    let json = serde_json::json!({"stored": user, "keyring": store.describe(), "client_id": provider.credential().client_id(), "tenant_id": tid});
    ctx.printer.emit(&json, || {
        format!(
            "signed in; stored as {SERVICE}/{user} in {}\n",
            store.describe(),
            SERVICE = crate::keyring::SERVICE
        )
    });
    Ok(0)
}

pub fn logout(ctx: &Context, a: LogoutArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("logout")?;
    let user = user_for(if a.all_tenants {
        None
    } else {
        a.tenant.as_deref()
    })?;
    let store = store()?;
    let removed = store
        .delete(&user)
        .map_err(|e| Failure::runtime(e, Some("unlock the keyring".to_string())))?;
    let json = serde_json::json!({"removed": removed, "entry": user, "keyring": store.describe()});
    ctx.printer.emit(&json, || {
        if removed {
            format!("removed {user} from {}\n", store.describe())
        } else {
            format!("no stored login {user} in {}\n", store.describe())
        }
    });
    Ok(0)
}
