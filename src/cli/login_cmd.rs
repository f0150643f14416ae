//! `login` / `logout`: keep the admin identity for Microsoft Graph in the OS keyring, so renewal
//! jobs and later commands need no secret on the command line or in the environment. Stored per
//! tenant (`login:<tenant>`) or for every tenant (`login:*`, a multi-tenant admin app); what is
//! stored, and how it is proven first, is the library's ([`hybrid_trust::login`]).

use super::admin::login_failure;
use super::printer::display_safe;
use super::{Context, Failure};
use hybrid_trust::keyring::SecretStore;
use hybrid_trust::login::{self, LoginError, StoredLogin};
use hybrid_trust::sts::{AdminCredential, TokenProvider};
use std::sync::Arc;

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

pub fn login(ctx: &Context, a: LoginArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("login")?;
    let entry = entry(a.all_tenants, a.tenant.as_deref())?;
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
            .unwrap_or_else(|| login::DEVICE_CLIENT_ID.to_string());
        let prompt: hybrid_trust::sts::DeviceCodePrompt = Arc::new(|uri: &str, code: &str| {
            eprintln!(
                "To sign in, open {} and enter the code {}",
                display_safe(uri),
                display_safe(code)
            )
        });
        (AdminCredential::DeviceCode { client_id, prompt }, None)
    } else {
        let cred = ctx.admin_credential(&tenant_for_token)?;
        let password = g
            .client_cert_password_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok());
        let stored = StoredLogin::of(&cred, g.client_cert.as_deref(), password);
        (cred, Some(stored.map_err(login_failure)?))
    };
    let provider = TokenProvider::new(http, cloud.clone(), &tenant_for_token, cred);
    // Prove the identity works before storing it.
    let (stored, tid) = super::runtime()?
        .block_on(login::prove(
            &provider,
            &cloud.graph_scope(),
            ctx.now,
            stored,
        ))
        .map_err(login_failure)?;
    let done = login::store(&open()?, &entry, &stored, tid).map_err(login_failure)?;
    ctx.printer.emit(&done, || done.text());
    Ok(0)
}

pub fn logout(ctx: &Context, a: LogoutArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("logout")?;
    let entry = entry(a.all_tenants, a.tenant.as_deref())?;
    let done = login::remove(&open()?, &entry).map_err(login_failure)?;
    ctx.printer.emit(&done, || done.text());
    Ok(0)
}

/// The keyring entry for `--tenant` or `--all-tenants`.
fn entry(all_tenants: bool, tenant: Option<&str>) -> Result<String, Failure> {
    login::entry_name(if all_tenants { None } else { tenant }).map_err(super::bad_tenant)
}

fn open() -> Result<SecretStore, Failure> {
    SecretStore::open().map_err(|e| login_failure(LoginError::Keyring(e)))
}
