//! The on-prem half of the trust, which this tool cannot run from Linux: a typed plan of Skype for
//! Business / Lync Management Shell steps rendered to an idempotent `.ps1` (every interpolated
//! value validated and quoted by [`quote::ps_quote`]), and a parser for saved `Get-Cs*`
//! `Format-List` output to find drift. Never executes PowerShell, never embeds secrets.
//!
//! Cmdlets and parameters: ODP New-CsOAuthServer.md, New-CsPartnerApplication.md,
//! Set-CsOAuthConfiguration.md, Set-CsCertificate.md; the ensure/recreate logic follows SFBDOCS
//! `manage/authentication/configure-a-hybrid-environment.md` (docs/protocol.md §4).

pub mod current;
pub mod quote;
pub mod roll;
mod script;

pub use current::{
    Change, Current, CurrentError, Decisions, Drift, PsObject, compare, decode_text, drift_summary,
    parse_format_list,
};
pub use quote::{Fqdn, Guid, HttpsUrl, UnsafeValue, ps_quote};
pub use script::{ScriptInput, ScriptReport, render};

/// Skype for Business Online, the `-ServiceName` of the hybrid OAuth configuration.
pub const SFB_SERVICE_NAME: &str = crate::microsoft::SFB_APP_ID;
/// Exchange Online, the `microsoft.exchange` partner application's identifier.
pub const EXCHANGE_APP_ID: &str = crate::microsoft::EXCHANGE_APP_ID;
