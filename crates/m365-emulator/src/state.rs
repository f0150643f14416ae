//! The emulated directory: tenants, their service principals and key credentials, the shared
//! multi-tenant admin application, and the behaviour knobs for what docs/protocol.md leaves open.

use super::pki::Pki;
use super::{StartError, app_ids};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::Uuid;

/// How Graph renders `customKeyIdentifier` for keys it stores (seen in the wild in several
/// forms, docs/protocol.md §1.9). The JSON value is always a Base64 string (Edm.Binary), or null.
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

/// How Graph treats a retained key (one the PATCH re-sends to keep it) — docs/protocol.md §6 item 9,
/// [U]: the tool re-sends every property; Microsoft's CSS-Exchange scripts say to send only
/// `key`, `type` and `usage` "otherwise the PATCH call will fail"; users of azure-cli and Azure
/// PowerShell report "Update to existing credential with KeyId '…' is not allowed".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyResend {
    /// Any properties on a retained key are accepted (sent values replace the stored ones).
    #[default]
    Full,
    /// A re-sent `keyId` whose other properties differ from the stored key is refused with 400
    /// "Update to existing credential with KeyId '<id>' is not allowed."
    Unchanged,
    /// A retained key (its `keyId` names a stored key, or it carries no `keyId` and its
    /// certificate is a stored key's) may carry only `type`, `usage` and `key`; Graph then treats
    /// it as the certificate anew: new keyId, dates from the certificate, names filled in.
    Minimal,
}

impl std::str::FromStr for KeyResend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Self::Full),
            "unchanged" => Ok(Self::Unchanged),
            "minimal" => Ok(Self::Minimal),
            _ => Err(format!("{s:?} is not one of full, unchanged, minimal")),
        }
    }
}

impl std::fmt::Display for KeyResend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "full",
            Self::Unchanged => "unchanged",
            Self::Minimal => "minimal",
        })
    }
}

/// Switches for behaviours docs/protocol.md marks [U], so tests can exercise both answers.
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
    /// [U] How retained keys re-sent in a PATCH are treated (`--key-resend`).
    pub key_resend: KeyResend,
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
            key_resend: KeyResend::Full,
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
    /// `createdDateTime` (state files from before it existed load with the load time).
    #[serde(default = "crate::clock::system_now")]
    pub created: DateTime<Utc>,
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
    /// Users Microsoft Graph mail knows: `noreply@<domain>` with a mailbox, and the delegated
    /// admin `admin@<domain>` without one (state files from before them get both on load).
    #[serde(default)]
    pub users: Vec<MailUser>,
}

/// A user for `sendMail`: by id or user principal name; `mailbox`: has an Exchange Online
/// mailbox (without one, Graph answers `MailboxNotEnabledForRESTAPI`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailUser {
    pub id: Uuid,
    pub upn: String,
    pub mailbox: bool,
}

/// The users every tenant has: `noreply@<domain>` with a mailbox, `admin@<domain>` without.
pub fn seed_users(domain: &str, admin_user_id: Uuid) -> Vec<MailUser> {
    vec![
        MailUser {
            id: Uuid::new_v4(),
            upn: format!("noreply@{domain}"),
            mailbox: true,
        },
        MailUser {
            id: admin_user_id,
            upn: format!("admin@{domain}"),
            mailbox: false,
        },
    ]
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
    /// A user by object id or user principal name (case-insensitive).
    pub fn user(&self, id_or_upn: &str) -> Option<&MailUser> {
        self.users.iter().find(|u| {
            u.id.to_string().eq_ignore_ascii_case(id_or_upn)
                || u.upn.eq_ignore_ascii_case(id_or_upn)
        })
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

/// Microsoft's first-party applications the emulator knows: every tenant starts with a service
/// principal for each (unless seeded without), and `POST /servicePrincipals {"appId"}` creates one
/// for these app ids only (any other has no application object behind it).
pub const FIRST_PARTY: &[(&str, &str)] = &[
    (
        app_ids::SKYPE_FOR_BUSINESS_ONLINE,
        "Skype for Business Online",
    ),
    (app_ids::EXCHANGE_ONLINE, "Office 365 Exchange Online"),
    (app_ids::TEAMS_SCHEDULER, "Teams Calendar Scheduler Service"),
    (app_ids::CLOUD_VOICEMAIL, "Cloud Voicemail"),
    (app_ids::MICROSOFT_GRAPH, "Microsoft Graph"),
    (
        app_ids::GRAPH_CLI_TOOLS,
        "Microsoft Graph Command Line Tools",
    ),
];

/// A new service principal of a first-party application, as Entra creates it.
pub fn first_party_sp(app_id: &str) -> Option<ServicePrincipal> {
    let (app_id, name) = FIRST_PARTY
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(app_id))?;
    let mut names = vec![app_id.to_string()];
    if *app_id == app_ids::EXCHANGE_ONLINE {
        names.push("https://outlook.office365.com/".to_string());
    }
    Some(ServicePrincipal {
        id: Uuid::new_v4(),
        app_id: app_id.to_string(),
        display_name: name.to_string(),
        account_enabled: true,
        service_principal_names: names,
        key_credentials: Vec::new(),
        graph_roles: Vec::new(),
        app_owner_organization_id: FIRST_PARTY_OWNER.to_string(),
        created: crate::clock::system_now(),
    })
}

/// How new tenants are seeded (`--without-service-principal`, `--disabled-service-principal`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// First-party app ids that get no service principal (a tenant that never used them).
    pub without_service_principals: Vec<String>,
    /// App ids whose service principal starts disabled (`accountEnabled: false`).
    pub disabled_service_principals: Vec<String>,
}

impl Directory {
    pub fn new(domains: &[String], behaviour: Behaviour, pki: Pki, seed: &Seed) -> Directory {
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
            dir.add_tenant_seeded(d, seed);
        }
        dir
    }

    /// Adds a tenant with Microsoft's first-party service principals, less those `seed` leaves
    /// out, and with those it names disabled (`accountEnabled: false`).
    pub fn add_tenant_seeded(&mut self, domain: &str, seed: &Seed) -> Uuid {
        let id = Uuid::new_v4();
        let mut sps: Vec<ServicePrincipal> = FIRST_PARTY
            .iter()
            .filter(|(app_id, _)| {
                !seed
                    .without_service_principals
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(app_id))
            })
            .filter_map(|(app_id, _)| first_party_sp(app_id))
            .collect();
        sps.push(ServicePrincipal {
            id: Uuid::new_v4(),
            app_id: self.admin_app.client_id.clone(),
            display_name: "hybrid-trust admin (emulated)".to_string(),
            account_enabled: true,
            service_principal_names: vec![self.admin_app.client_id.clone()],
            key_credentials: Vec::new(),
            graph_roles: vec![
                "Application.ReadWrite.All".to_string(),
                "Mail.Send".to_string(),
            ],
            app_owner_organization_id: id.to_string(),
            created: crate::clock::system_now(),
        });
        for sp in &mut sps {
            if seed
                .disabled_service_principals
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&sp.app_id))
            {
                sp.account_enabled = false;
            }
        }
        let admin_user_id = Uuid::new_v4();
        self.tenants.push(Tenant {
            id,
            domains: vec![domain.to_ascii_lowercase()],
            service_principals: sps,
            policy: TenantPolicy::default(),
            admin_user_id,
            users: seed_users(&domain.to_ascii_lowercase(), admin_user_id),
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
        let mut dir: Directory =
            serde_json::from_slice(&bytes).map_err(|e| StartError::BadState {
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
        for t in dir.tenants.iter_mut().filter(|t| t.users.is_empty()) {
            t.users = seed_users(&t.domains[0], t.admin_user_id);
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
    write_file_atomic(path, bytes).map_err(|source| StartError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A temporary file beside `path`, mode 0600, synced and renamed over it: a reader sees the old
/// file or the new one, never half of one.
fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".m365-emulator.")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn random_secret() -> String {
    // 40 characters from two v4 UUIDs: shaped like an Entra client secret, never logged.
    let a = Uuid::new_v4().simple().to_string();
    let b = Uuid::new_v4().simple().to_string();
    format!("emu~{}{}", &a[..18], &b[..18])
}
