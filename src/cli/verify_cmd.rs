//! `verify` (CONTRACT.md): prove the trust end to end and explain a refusal.

use super::password::PasswordArgs;
use super::{Context, Failure};
use crate::sts::AssertionAlg;
use crate::tenant::TenantRef;
use crate::verify::{self, VerifyError};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust verify --tenant contoso.onmicrosoft.com --cert oauth.pfx --password-env PFX_PASSWORD\n  hybrid-trust verify --tenant contoso.onmicrosoft.com --cert oauth.pfx --password-env PFX_PASSWORD --print-assertion | python3 -m jwt ..."
)]
pub struct VerifyArgs {
    #[arg(long)]
    pub tenant: String,
    /// The OAuthTokenIssuer certificate with its private key (PFX, or PEM with key).
    #[arg(long, value_name = "PATH")]
    pub cert: PathBuf,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Signature: rs256 with x5t (what CAPI keys can do; default) or ps256 with x5t#S256.
    #[arg(long, value_enum, default_value = "rs256")]
    pub assertion_alg: AssertionAlg,
    /// Print the signed client assertion (short-lived, no secret) and stop.
    #[arg(long)]
    pub print_assertion: bool,
}

pub fn run(ctx: &Context, a: VerifyArgs) -> Result<u8, Failure> {
    let tenant = TenantRef::parse(&a.tenant)
        .map_err(super::bad_tenant)?
        .to_string();
    let loaded = a.password.load_cert(&a.cert)?;
    let cloud = ctx.cloud()?;
    let token_url = cloud.token_url(&tenant);
    let now = ctx.clock.running().now();
    let assertion = verify::assertion(&loaded, &token_url, a.assertion_alg, now).map_err(|e| {
        let (_, fix) = e.cause_and_fix();
        Failure::input(e, Some(fix))
    })?;
    if a.print_assertion {
        ctx.printer.emit(
            &serde_json::json!({"assertion": assertion, "token_url": token_url}),
            || format!("{assertion}\n"),
        );
        return Ok(0);
    }
    let http = ctx.http(&cloud)?;
    let rt = super::runtime()?;
    let thumb = loaded.leaf.thumbprint_sha1();
    let listing = listing_check(ctx, rt, &cloud, &tenant, &thumb);
    if let Some(l) = &listing {
        ctx.printer
            .note(&format!("listing: {}", l["summary"].as_str().unwrap_or("")));
    }
    // A key that starts in a moment (just uploaded: its window never starts before now) is
    // waited for rather than reported as refused.
    if let Some(start) = listing
        .as_ref()
        .and_then(|l| l["start"].as_str())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        let wait = start.with_timezone(&chrono::Utc) - ctx.clock.running().now();
        if wait > chrono::TimeDelta::zero() && wait < chrono::TimeDelta::minutes(2) {
            ctx.printer.note(&format!(
                "the key starts in {} s; waiting for it",
                wait.num_seconds() + 1
            ));
            std::thread::sleep(
                wait.to_std().unwrap_or_default() + std::time::Duration::from_millis(1100),
            );
        }
    }
    let now = ctx.clock.running().now();
    let assertion = verify::assertion(&loaded, &token_url, a.assertion_alg, now)
        .map_err(|e| Failure::input(e, None))?;
    match rt.block_on(verify::verify(&http, &cloud, &tenant, &assertion, now)) {
        Ok(v) => {
            let skew_note = v.clock_skew_secs.filter(|s| s.abs() > 120).map(|s| format!("warning: this machine's clock is {s} s off Entra ID's; more than 300 s breaks token requests"));
            if let Some(n) = &skew_note {
                ctx.printer.note(n);
            }
            let json = serde_json::json!({
                "ok": true,
                "tenant_id": v.token.tid,
                "client_id": verify::SFB_CLIENT_ID,
                "thumbprint_sha1": thumb,
                "assertion_alg": format!("{:?}", a.assertion_alg).to_ascii_lowercase(),
                "token": v.token,
                "signature_verified": v.signature_verified,
                "clock_skew_secs": v.clock_skew_secs,
                "listing": listing,
            });
            ctx.printer.emit(&json, || {
                format!(
                    "trust verified: Entra ID issued a token to 00000004-0000-0ff1-ce00-000000000000 for certificate {thumb}\n  tenant     {}\n  audience   {}\n  issuer     {}\n  expires    {}\n  signature  checked against the tenant's signing keys (JWKS)\n  clock      {}\n",
                    v.token.tid.as_deref().unwrap_or("?"),
                    v.token.aud.as_deref().unwrap_or("?"),
                    v.token.iss.as_deref().unwrap_or("?"),
                    v.token.exp.as_deref().unwrap_or("?"),
                    v.clock_skew_secs.map_or("server time unknown".to_string(), |s| format!("{s} s from Entra ID's")),
                )
            });
            Ok(0)
        }
        Err(e) => {
            let (mut cause, fix) = e.cause_and_fix();
            let (code, cid, trace, server_time) = match &e {
                VerifyError::Refused {
                    response,
                    server_time,
                } => (
                    response.code(),
                    response.correlation_id.clone(),
                    response.trace_id.clone(),
                    *server_time,
                ),
                _ => (None, None, None, None),
            };
            if code == Some(700024) {
                cause.push_str(&format!(
                    " (this machine: {}; Entra ID: {})",
                    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    server_time.map_or("unknown".to_string(), |t| t
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                ));
            }
            let json = serde_json::json!({
                "ok": false,
                "tenant": tenant,
                "thumbprint_sha1": thumb,
                "error_code": code.map(|c| format!("AADSTS{c}")),
                "message": e.to_string(),
                "cause": cause,
                "fix": fix,
                "correlation_id": cid,
                "trace_id": trace,
                "listing": listing,
            });
            if ctx.printer.json() {
                ctx.printer.emit(&json, String::new);
            }
            let mut err = anyhow::anyhow!(cause);
            err = err.context(match &cid {
                Some(c) => format!("{e} (correlation id {c})"),
                None => e.to_string(),
            });
            Err(Failure::runtime(err, Some(fix)))
        }
    }
}

/// When an admin identity is at hand (flags, environment or a stored login), whether the
/// certificate's thumbprint is a key of the service principal and inside its window. Never
/// fatal: without an identity, or on any error, it says so and verify goes on.
fn listing_check(
    ctx: &Context,
    rt: &tokio::runtime::Runtime,
    cloud: &crate::cloud::Cloud,
    tenant: &str,
    thumb: &str,
) -> Option<serde_json::Value> {
    let tokens = ctx.token_provider(cloud, tenant).ok()?;
    let http = ctx.http(cloud).ok()?;
    let g = crate::graph::Graph::new(&http, cloud, &tokens);
    let now = ctx.clock.running().now();
    let r = rt.block_on(async {
        let id = g.find_service_principal(verify::SFB_CLIENT_ID).await?;
        g.read_service_principal(&id).await
    });
    Some(match r {
        Err(e) => {
            serde_json::json!({"checked": false, "summary": format!("could not read the service principal's keys: {e}")})
        }
        Ok(sp) => {
            let found = sp
                .key_credentials
                .iter()
                .find(|k| k.is_verify_cert() && k.thumbprint().as_deref() == Some(thumb));
            match found {
                None => {
                    serde_json::json!({"checked": true, "present": false, "summary": format!("certificate {thumb} is NOT a key of 00000004-0000-0ff1-ce00-000000000000 ({} other key(s))", sp.key_credentials.len())})
                }
                Some(k) => {
                    let starts_soon = k
                        .start_date_time
                        .is_some_and(|s| s > now && s - now < chrono::TimeDelta::minutes(2));
                    let in_window = (starts_soon || k.start_date_time.is_none_or(|s| s <= now))
                        && k.end_date_time.is_none_or(|e| e >= now);
                    serde_json::json!({"checked": true, "present": true, "in_window": in_window, "start": k.start_date_time, "end": k.end_date_time, "summary": format!("certificate {thumb} is a key of 00000004-0000-0ff1-ce00-000000000000{}", if in_window { ", inside its window" } else { ", but OUTSIDE its window" })})
                }
            }
        }
    })
}
