//! `verify` (docs/contract.md): prove the trust end to end and explain a refusal; the library proves
//! it and says what it found ([`hybrid_trust::verify::report`]).

use super::password::PasswordArgs;
use super::{Context, Failure};
use hybrid_trust::sts::AssertionAlg;
use hybrid_trust::tenant::TenantRef;
use hybrid_trust::verify::{self, report::Listing, report::Proven, report::Refusal};
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
    /// Which trust: sfb (a token as 00000004-…) or exchange (a token as the Exchange hybrid's
    /// dedicated application, with its roles; --cert is then the Auth Certificate's PFX).
    #[arg(long, value_enum, default_value = "sfb")]
    pub trust: super::args::Trust,
    /// With --trust exchange: the export folder (finds the application by the organization GUID
    /// and checks the certificate is AuthConfig's current one).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// With --trust exchange: the dedicated application's appId.
    #[arg(long, value_name = "APPID")]
    pub exchange_app_id: Option<String>,
}

pub fn run(ctx: &Context, a: VerifyArgs) -> Result<u8, Failure> {
    if a.trust == super::args::Trust::Exchange {
        return verify_exchange(ctx, &a);
    }
    super::exchange::refuse_exchange_flags(&[
        (a.from.is_some(), "--from"),
        (a.exchange_app_id.is_some(), "--exchange-app-id"),
    ])?;
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
        return Ok(print_assertion(ctx, &assertion, &token_url));
    }
    let http = ctx.http(&cloud)?;
    let rt = super::runtime()?;
    let thumb = loaded.leaf.thumbprint_sha1();
    // With an admin identity at hand (flags, environment or a stored login), whether the
    // certificate is a key of the service principal. Never fatal.
    let listing = ctx.token_provider(&cloud, &tenant).ok().map(|tokens| {
        let g = hybrid_trust::graph::Graph::new(&http, &cloud, &tokens);
        rt.block_on(Listing::read(&g, &thumb, ctx.clock.running().now()))
    });
    if let Some(l) = &listing {
        ctx.printer.note(&format!("listing: {}", l.summary()));
    }
    // A key that starts in a moment is waited for rather than reported as refused.
    if let Some(wait) = listing
        .as_ref()
        .and_then(|l| l.starts_in(ctx.clock.running().now()))
    {
        ctx.printer.note(&format!(
            "the key starts in {} s; waiting for it",
            wait.num_seconds() + 1
        ));
        std::thread::sleep(
            wait.to_std().unwrap_or_default() + std::time::Duration::from_millis(1100),
        );
    }
    let now = ctx.clock.running().now();
    let assertion = verify::assertion(&loaded, &token_url, a.assertion_alg, now)
        .map_err(|e| Failure::input(e, None))?;
    match rt.block_on(verify::verify(&http, &cloud, &tenant, &assertion, now)) {
        Ok(v) => {
            let proven = Proven::new(v, a.assertion_alg, &thumb, listing);
            if let Some(n) = proven.skew_warning() {
                ctx.printer.note(&n);
            }
            ctx.printer.emit(&proven, || proven.text());
            for n in hybrid_trust::advisories::notes_for_verify(&cloud.name, ctx.now) {
                ctx.printer.note(&n);
            }
            // A token with a pending roll's new certificate proves what Entra accepts, not what
            // the Front Ends sign with: say how to confirm the roll; the ledger is not changed.
            if let Ok(store) = ctx.ledger_store() {
                let note = verify::roll_note(&store, &tenant, &thumb, ctx.clock.now());
                note.iter().for_each(|n| ctx.printer.note(n));
            }
            Ok(0)
        }
        Err(e) => {
            let r = Refusal::new(&e, &tenant, &thumb, now, listing);
            if ctx.printer.json() {
                ctx.printer.emit(&r, String::new);
            }
            let err = anyhow::anyhow!(r.cause.clone()).context(r.headline());
            Err(Failure::runtime(err, Some(r.fix)))
        }
    }
}

/// `verify --trust exchange --tenant T --cert PFX [--from DIR] [--exchange-app-id APPID]`: a token
/// for Exchange Online as the dedicated application (found by `--exchange-app-id`, the ledger,
/// or the export's organization GUID), and its roles.
fn verify_exchange(ctx: &Context, a: &VerifyArgs) -> Result<u8, Failure> {
    use hybrid_trust::verify::{self, exchange::ExchangeProven, report::Refusal};
    let tenant = super::args::tenant_arg(&a.tenant)?;
    let export = a
        .from
        .as_deref()
        .map(super::exchange::read_export)
        .transpose()?;
    let loaded = a.password.load_cert(&a.cert)?;
    let thumb = loaded.leaf.thumbprint_sha1();
    let cloud = ctx.cloud()?;
    let recorded = ctx
        .ledger()
        .ok()
        .and_then(|l| l.tenant(&tenant).and_then(|t| t.exchange.clone()))
        .map(|x| x.app_id);
    let app_id = match (
        super::exchange::app_id_arg(a.exchange_app_id.as_deref())?,
        recorded,
        &export,
    ) {
        (Some(id), _, _) => id,
        (None, Some(id), _) => id,
        (None, None, Some(e)) => {
            let session = ctx.session(&tenant)?;
            let app = super::runtime()?
                .block_on(hybrid_trust::session::exchange::find_app(
                    &session,
                    &e.app_display_name(),
                    None,
                ))
                .map_err(super::session_failure)?;
            app.app_id
        }
        (None, None, None) => {
            return Err(Failure::input(
                anyhow::anyhow!("which application is Exchange's is not known for {tenant}"),
                Some("give --from DIR (the export, which names the organization) or --exchange-app-id APPID".to_string()),
            ));
        }
    };
    let token_url = cloud.token_url(&tenant);
    let now = ctx.clock.running().now();
    let assertion = verify::assertion_as(&loaded, &app_id, &token_url, a.assertion_alg, now)
        .map_err(|e| {
            let (_, fix) = e.cause_and_fix();
            Failure::input(e, Some(fix))
        })?;
    if a.print_assertion {
        return Ok(print_assertion(ctx, &assertion, &token_url));
    }
    let http = ctx.http(&cloud)?;
    match super::runtime()?.block_on(verify::verify_as(
        &http, &cloud, &tenant, &app_id, &assertion, now,
    )) {
        Ok(v) => {
            let proven = ExchangeProven::new(
                &tenant,
                &app_id,
                &thumb,
                v.token,
                export.as_ref().map(|e| e.current.thumbprint.as_str()),
            );
            ctx.printer.emit(&proven, || proven.text());
            match proven.error() {
                Some(f) => Err(Failure::runtime(
                    anyhow::anyhow!(f.message.clone()),
                    Some(f.fix.clone()),
                )),
                None => Ok(0),
            }
        }
        Err(e) => {
            let r = Refusal::new(&e, &tenant, &thumb, now, None);
            if ctx.printer.json() {
                ctx.printer.emit(&r, String::new);
            }
            let err = anyhow::anyhow!(r.cause.clone()).context(format!(
                "Entra refused a token to the Exchange hybrid application {app_id} with certificate {thumb}"
            ));
            Err(Failure::runtime(
                err,
                Some(format!(
                    "{}; upload the Auth Certificate with hybrid-trust renew --trust exchange --tenant {tenant} --from DIR",
                    r.fix
                )),
            ))
        }
    }
}

/// `--print-assertion`: the signed client assertion and where it would be sent, nothing sent.
fn print_assertion(ctx: &Context, assertion: &str, token_url: &str) -> u8 {
    ctx.printer.emit(
        &serde_json::json!({"assertion": assertion, "token_url": token_url}),
        || format!("{assertion}\n"),
    );
    0
}
