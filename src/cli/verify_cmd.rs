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
