//! `m365-emulator`: a local, stateful stand-in for the Microsoft cloud endpoints hybrid-trust uses.
//!
//! It owns every emulated service (Entra ID discovery, JWKS, token endpoint v1/v2 and device code;
//! ACS JSON metadata; the Microsoft Graph `servicePrincipals` subset) and the behaviour knobs that
//! let tests reproduce both answers to what docs/protocol.md marks as unconfirmed ([U]).
//!
//! Boundaries (docs/design.md):
//! - It never imports the client side's request/response types: its JSON is built from its own
//!   serde types, so a serialisation bug cannot hide on both sides at once.
//! - It listens on loopback unless told otherwise, and serves all four "hosts" of a cloud from one
//!   listener, distinguished by a path prefix (`/login`, `/graph`, `/acs`, `/exo`). Real clouds use
//!   separate host names; a custom cloud's URL may carry a path, so the tool must join URLs
//!   correctly either way, which this layout keeps honest.
//! - `/_emulator/...` is a control API for tests and scripts (clock skew, scripted faults, raw
//!   state). It is not a Microsoft API.
//!
//! Faithful by default to what real Graph does with the clients people use (issue 17; real
//! captures in fixtures/graph-captures, replayed by tests/graph_captures.rs; Microsoft's Graph SDK
//! for Python drives it in tests/interop_graph_sdk.rs):
//! - OData annotations (`@odata.type`, `@odata.context`, `prop@odata.type`) in request bodies are
//!   ignored, an `@odata.type` of another type refused; Edm.Binary may carry line breaks;
//! - `$filter` takes `eq`/`ne`, `startswith`, `servicePrincipalNames/any(c:c eq '…')`, `and`,
//!   `or`, `not`, in any URL encoding;
//! - a key gets Graph's server-filled fields: the certificate's subject (Windows style) as
//!   `displayName` when none is sent, the uppercase hex SHA-1 as `customKeyIdentifier`; `key` is
//!   null except on a single-object GET selecting `keyCredentials`; a key Graph knows by its
//!   `keyId`, re-sent with `key: null` (or other properties left out), keeps what it had;
//! - `POST /users/{id|upn}/sendMail` (JSON or MIME) needs `Mail.Send` in the token's roles;
//!   every tenant has the mailbox `noreply@<domain>` (and `admin@<domain>`, without a mailbox);
//!   what it accepts is listed at `GET /_emulator/mail` ([`mail`]);
//! - `POST /servicePrincipals {"appId"}` creates the service principal of a first-party app or
//!   of an application of the tenant; Entra refuses tokens to a disabled one (AADSTS7000112);
//! - `/applications`, `appRoleAssignments` and the app management policies ([`apps`],
//!   [`policy`]): Exchange Server hybrid's dedicated application (issue 27), seeded with
//!   `POST /_emulator/tenants/{tenant}/exchangeApp` or [`RunningEmulator::seed_exchange_app`].
//!
//! Modes for what docs/protocol.md leaves unconfirmed ([U]), set by flag, [`Config`], or the control
//! API (`POST /_emulator/behaviour`, `POST /_emulator/key-resend {"mode"}`):
//! - `--key-resend full|unchanged|minimal` (docs/protocol.md §6 item 9, how Graph treats keys a PATCH
//!   re-sends to keep them): `full` (default) accepts any properties; `unchanged` refuses a
//!   re-sent `keyId` whose other properties differ from the stored key (400, "Update to existing
//!   credential with KeyId '<id>' is not allowed.", as users of azure-cli and Azure PowerShell
//!   report); `minimal` refuses anything but `type`, `usage` and `key` on a retained key, as
//!   Microsoft's CSS-Exchange scripts warn, and takes such a key anew: a new `keyId`, the
//!   certificate's validity as its window (see [`KeyResend`]);
//! - `--key-in-collection`, `--custom-key-id-form`, `--regenerate-key-ids`, `never_return_key`
//!   (see [`Behaviour`]);
//! - `--key-lifetime window|from-creation|certificate` (docs/protocol.md §5.5, what an app
//!   management policy's `asymmetricKeyLifetime` measures, [`KeyLifetimeRule`]);
//! - tenants seeded without a first-party service principal or with one disabled
//!   (`--without-service-principal`, `--disabled-service-principal`, [`Seed`]; at run time
//!   `DELETE`/`POST /_emulator/tenants/{tenant}/servicePrincipals/{appId}`).

mod acs;
mod apps;
mod certinfo;
mod clock;
mod control;
pub mod crash;
mod entra;
mod errors;
pub mod faults;
mod filter;
mod graph;
mod jose;
mod mail;
mod pki;
mod policy;
mod server;
mod state;

pub use apps::FULL_ACCESS_AS_APP;
pub use clock::Clock;
pub use faults::{FaultKind, FaultRule, FaultSpec};
pub use mail::Delivered;
pub use pki::Keys;
pub use policy::KeyLifetimeRule;
pub use server::{RunningEmulator, start};
pub use state::{Behaviour, CustomKeyIdForm, KeyResend, Seed};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The well-known application ids the emulator provisions in every tenant.
pub mod app_ids {
    /// Skype for Business Online (the SfB Server hybrid trust target).
    pub const SKYPE_FOR_BUSINESS_ONLINE: &str = "00000004-0000-0ff1-ce00-000000000000";
    /// Office 365 Exchange Online.
    pub const EXCHANGE_ONLINE: &str = "00000002-0000-0ff1-ce00-000000000000";
    /// Teams Calendar Scheduler Service.
    pub const TEAMS_SCHEDULER: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";
    /// Cloud Voicemail.
    pub const CLOUD_VOICEMAIL: &str = "db7de2b5-2149-435e-8043-e080dd50afae";
    /// Microsoft Graph.
    pub const MICROSOFT_GRAPH: &str = "00000003-0000-0000-c000-000000000000";
    /// Microsoft Graph Command Line Tools: the public client used for the device code flow.
    pub const GRAPH_CLI_TOOLS: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
    /// The (legacy) Azure AD Graph application id, the audience of addKey/removeKey proofs.
    pub const AAD_GRAPH: &str = "00000002-0000-0000-c000-000000000000";
}

/// Everything the emulator needs to start. Built by the binary from flags, or by tests directly.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: bool,
    /// Explicit tenant domains (`--tenant`).
    pub tenants: Vec<String>,
    /// `--tenants N`: N generated tenants `tenant-0001.onmicrosoft.com` ….
    pub generated_tenants: usize,
    pub state_file: Option<PathBuf>,
    pub ready_file: Option<PathBuf>,
    /// Where the CA certificate is written with `--tls` (default: beside the ready file, or a
    /// temporary directory kept for the emulator's lifetime).
    pub ca_file: Option<PathBuf>,
    pub latency_ms: u64,
    pub faults: FaultSpec,
    pub seed: u64,
    pub behaviour: Behaviour,
    /// How long a `timeout` fault holds a request before answering 504.
    pub timeout_fault_secs: u64,
    /// Allow a non-loopback listen address (off: refused).
    pub allow_non_loopback: bool,
    /// Log each request to stderr.
    pub log_requests: bool,
    /// `--reuse-tokens`: hand out an app-only access token again (same tenant, client, resource
    /// and claims) while over half its lifetime is left, instead of signing a fresh one. A
    /// benchmark aid, off by default: Entra mints a fresh token per request, but its RSA
    /// signature costs ~0.4 ms of CPU that, on one machine, the emulator takes from the client
    /// being measured.
    pub reuse_tokens: bool,
    /// How tenants created at start are seeded: first-party service principals left out or
    /// disabled (`--without-service-principal`, `--disabled-service-principal`).
    pub seed_tenants: Seed,
    /// Key material to use instead of making it at start ([`Keys`]: tests start many emulators
    /// and share one set). Ignored when a state file brings its own.
    pub keys: Option<Keys>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            tenants: Vec::new(),
            generated_tenants: 0,
            state_file: None,
            ready_file: None,
            ca_file: None,
            latency_ms: 0,
            faults: FaultSpec::default(),
            seed: 0,
            behaviour: Behaviour::default(),
            timeout_fault_secs: 120,
            allow_non_loopback: false,
            log_requests: true,
            reuse_tokens: false,
            seed_tenants: Seed::default(),
            keys: None,
        }
    }
}

/// The ready file (docs/contract.md): `cloud` is directly usable as a `--cloud-file`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadyInfo {
    pub cloud: ReadyCloud,
    pub tenants: Vec<ReadyTenant>,
    /// Extension: the control API root and the process id.
    #[serde(default)]
    pub control_url: String,
    #[serde(default)]
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadyCloud {
    pub name: String,
    pub login_url: String,
    pub graph_url: String,
    pub acs_url: String,
    pub exchange_url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadyTenant {
    pub domain: String,
    pub tenant_id: String,
    pub admin: ReadyAdmin,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadyAdmin {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ReadyAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyAdmin")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// Errors that stop the emulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on non-loopback address {0}; pass --allow-non-loopback if you mean it"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot read state file {path}")]
    ReadState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not a valid emulator state: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate emulator keys: {0}")]
    Pki(String),
    #[error("invalid tenant domain {0:?}: use a DNS name such as contoso.onmicrosoft.com")]
    BadDomain(String),
}

/// An error and its sources on one line, each source once (the emulator's own copy: it shares no
/// code with the tool).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
