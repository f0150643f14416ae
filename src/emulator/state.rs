//! The emulated directory: tenants, their service principals and key credentials, the shared
//! multi-tenant admin application, and the behaviour knobs for what PROTOCOL.md leaves open.

use super::pki::Pki;
use super::{StartError, app_ids};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::Uuid;

/// How Graph renders `customKeyIdentifier` for keys it stores (seen in the wild in several
/// forms, PROTOCOL.md §1.9). The JSON value is always a Base64 string (Edm.Binary), or null.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CustomKeyIdForm {
    /// The JSON string is the uppercase hex SHA-1 thumbprint (what Microsoft's scripts compare).
    #[default]
    Hex,
    /// Base64 of the 20 thumbprint bytes.
    Base64,
    /// Base64 of the Base64 of the thumbprint bytes (doubly encoded, seen in a user report).
    Double,
    /// Always null (AAD Graph-era credentials).
    Null,
}

impl std::str::FromStr for CustomKeyIdForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hex" => Ok(Self::Hex),
            "base64" => Ok(Self::Base64),
            "double" => Ok(Self::Double),
            "null" => Ok(Self::Null),
            _ => Err(format!("{s:?} is not one of hex, base64, double, null")),
        }
    }
}

/// Switches for behaviours PROTOCOL.md marks [U], so tests can exercise both answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Behaviour {
    /// Whether the filtered collection query returns `key` when `$select=keyCredentials`
    /// (documented: only a single-object GET does; default false).
    pub key_in_collection: bool,
    pub custom_key_id_form: CustomKeyIdForm,
    /// Whether Graph gives re-submitted keys a new keyId (default: keeps the keyId sent).
    pub regenerate_key_ids: bool,
    /// `$select=keyCredentials` reads allowed per tenant per minute (documented: 150).
    pub select_key_limit_per_minute: u32,
    /// Device code flow: the emulated admin approves after this delay.
    pub device_code_approve_after_ms: u64,
    /// Device code flow: the polling interval the emulator asks for (Entra says 5).
    pub device_code_interval_secs: u64,
    /// Lifetime of issued access tokens.
    pub access_token_lifetime_secs: i64,
    /// [U] A Graph that never returns `key`, even on a single-object GET selecting keyCredentials.
    pub never_return_key: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            key_in_collection: false,
            custom_key_id_form: CustomKeyIdForm::Hex,
            regenerate_key_ids: false,
            select_key_limit_per_minute: 150,
            device_code_approve_after_ms: 2000,
            device_code_interval_secs: 5,
            access_token_lifetime_secs: 3599,
            never_return_key: false,
        }
    }
}

/// One stored key credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredKey {
    pub key_id: Uuid,
    /// As Graph would return it in JSON (Base64 text), or null.
    pub custom_key_identifier: Option<String>,
    pub display_name: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(rename = "type")]
    pub kind: String,
    pub usage: String,
    /// Base64 of the certificate DER.
    pub key: String,
}

impl StoredKey {
    pub fn der(&self) -> Vec<u8> {
        STANDARD.decode(&self.key).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServicePrincipal {
    pub id: Uuid,
    pub app_id: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub service_principal_names: Vec<String>,
    pub key_credentials: Vec<StoredKey>,
    /// Application permissions granted to this principal on Microsoft Graph.
    #[serde(default)]
    pub graph_roles: Vec<String>,
    /// The owning tenant of the application (Microsoft's for first-party apps).
    pub app_owner_organization_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TenantPolicy {
    /// App management policy: maximum lifetime of a key credential, in days.
    pub max_key_lifetime_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    pub id: Uuid,
    /// Verified domains; the first is the initial `*.onmicrosoft.com` one.
    pub domains: Vec<String>,
    pub service_principals: Vec<ServicePrincipal>,
    #[serde(default)]
    pub policy: TenantPolicy,
    /// The emulated delegated admin (device code flow).
    pub admin_user_id: Uuid,
}

impl Tenant {
    pub fn sp_by_app_id(&self, app_id: &str) -> Option<&ServicePrincipal> {
        self.service_principals
            .iter()
            .find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
    }
    pub fn admin_upn(&self) -> String {
        format!("admin@{}", self.domains[0])
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct AdminApp {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for AdminApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminApp {{ client_id: {}, .. }}", self.client_id)
    }
}

/// Everything the emulator persists with `--state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Directory {
    pub format: u32,
    pub admin_app: AdminApp,
    pub tenants: Vec<Tenant>,
    pub behaviour: Behaviour,
    pub pki: Pki,
}

pub const STATE_FORMAT: u32 = 1;

const FIRST_PARTY_OWNER: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

impl Directory {
    pub fn new(domains: &[String], behaviour: Behaviour, pki: Pki) -> Directory {
        let admin_app = AdminApp {
            client_id: Uuid::new_v4().to_string(),
            client_secret: random_secret(),
        };
        let mut dir = Directory {
            format: STATE_FORMAT,
            admin_app,
            tenants: Vec::new(),
            behaviour,
            pki,
        };
        for d in domains {
            dir.add_tenant(d);
        }
        dir
    }

    pub fn add_tenant(&mut self, domain: &str) -> Uuid {
        let id = Uuid::new_v4();
        let first_party = |app_id: &str, name: &str| ServicePrincipal {
            id: Uuid::new_v4(),
            app_id: app_id.to_string(),
            display_name: name.to_string(),
            account_enabled: true,
            service_principal_names: vec![app_id.to_string()],
            key_credentials: Vec::new(),
            graph_roles: Vec::new(),
            app_owner_organization_id: FIRST_PARTY_OWNER.to_string(),
        };
        let mut sps = vec![
            first_party(
                app_ids::SKYPE_FOR_BUSINESS_ONLINE,
                "Skype for Business Online",
            ),
            first_party(app_ids::EXCHANGE_ONLINE, "Office 365 Exchange Online"),
            first_party(app_ids::TEAMS_SCHEDULER, "Teams Calendar Scheduler Service"),
            first_party(app_ids::CLOUD_VOICEMAIL, "Cloud Voicemail"),
            first_party(app_ids::MICROSOFT_GRAPH, "Microsoft Graph"),
            first_party(
                app_ids::GRAPH_CLI_TOOLS,
                "Microsoft Graph Command Line Tools",
            ),
        ];
        sps[1]
            .service_principal_names
            .push("https://outlook.office365.com/".to_string());
        sps.push(ServicePrincipal {
            id: Uuid::new_v4(),
            app_id: self.admin_app.client_id.clone(),
            display_name: "hybrid-trust admin (emulated)".to_string(),
            account_enabled: true,
            service_principal_names: vec![self.admin_app.client_id.clone()],
            key_credentials: Vec::new(),
            graph_roles: vec!["Application.ReadWrite.All".to_string()],
            app_owner_organization_id: id.to_string(),
        });
        self.tenants.push(Tenant {
            id,
            domains: vec![domain.to_ascii_lowercase()],
            service_principals: sps,
            policy: TenantPolicy::default(),
            admin_user_id: Uuid::new_v4(),
        });
        id
    }

    /// Finds a tenant by GUID or by any verified domain (case-insensitive).
    pub fn tenant_index(&self, name: &str) -> Option<usize> {
        if let Ok(id) = Uuid::parse_str(name) {
            return self.tenants.iter().position(|t| t.id == id);
        }
        self.tenants
            .iter()
            .position(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(name)))
    }

    pub fn load(path: &Path) -> Result<Option<Directory>, StartError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StartError::ReadState {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let dir: Directory = serde_json::from_slice(&bytes).map_err(|e| StartError::BadState {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if dir.format != STATE_FORMAT {
            return Err(StartError::BadState {
                path: path.to_path_buf(),
                reason: format!(
                    "format {} (this emulator writes {STATE_FORMAT})",
                    dir.format
                ),
            });
        }
        Ok(Some(dir))
    }

    pub fn save(&self, path: &Path) -> Result<(), StartError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StartError::BadState {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }
}

/// Writes an emulator file (state, CA, ready file) atomically, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    crate::paths::write_atomic(path, bytes, 0o600).map_err(|source| StartError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn random_secret() -> String {
    // 40 characters from two v4 UUIDs: shaped like an Entra client secret, never logged.
    let a = Uuid::new_v4().simple().to_string();
    let b = Uuid::new_v4().simple().to_string();
    format!("emu~{}{}", &a[..18], &b[..18])
}
