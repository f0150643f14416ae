//! `onboard` (docs/contract.md): the whole cross-premises setup in order — discover the tenant and
//! validate its metadata, validate the certificate, sign in, show the plan and confirm, upload the
//! credential, add the service principal names, verify end to end, write the on-prem script next
//! to the ledger, record the tenant. Re-running on an onboarded tenant changes nothing and says
//! so; a failure midway says what was done and how to finish or undo it. The checks and the
//! plan's confirmation are here; the changes, the plan's summary and the report are the
//! library's ([`hybrid_trust::session::onboard`]).

use super::password::PasswordArgs;
use super::{Context, Failure};
use hybrid_trust::onprem::{Fqdn, HttpsUrl};
use hybrid_trust::session::onboard::{
    NotReady, OnboardError, OnboardPlan, OnboardReport, certificate_ready, metadata_ready,
    undo_hint,
};
use hybrid_trust::tenant::{self, TenantRef};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  PFX_PASSWORD=... HT_SECRET=... hybrid-trust onboard --tenant contoso.onmicrosoft.com \\\n      --cert oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com \\\n      --pool-fqdn webext.contoso.com --client-id <admin app id> --client-secret-env HT_SECRET"
)]
pub struct OnboardArgs {
    #[arg(long)]
    pub tenant: String,
    /// The on-prem OAuthTokenIssuer certificate with its private key (PFX, or PEM with key).
    #[arg(long, value_name = "PFX")]
    pub cert: PathBuf,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The SIP domain the certificate must cover.
    #[arg(long, value_name = "DOMAIN")]
    pub sip_domain: String,
    /// Each pool's external web services FQDN (repeatable).
    #[arg(long = "pool-fqdn", value_name = "FQDN")]
    pub pool_fqdns: Vec<String>,
    /// Target applications (default 00000004-0000-0ff1-ce00-000000000000).
    #[arg(long = "app-id", value_name = "GUID")]
    pub app_ids: Vec<String>,
    /// Exchange autodiscover URL for Set-CsOAuthConfiguration.
    #[arg(long, value_name = "URL")]
    pub autodiscover_url: Option<String>,
}

struct Steps<'a> {
    ctx: &'a Context,
    done: Vec<String>,
}

impl Steps<'_> {
    fn say(&mut self, n: usize, what: &str) {
        self.ctx.printer.note(&format!("[{n}/8] {what}"));
        self.done.push(what.to_string());
    }
}

fn not_ready(e: NotReady) -> Failure {
    let hint = e.hint();
    if e.is_usage() {
        Failure::input(e, hint)
    } else {
        Failure::runtime(e, hint)
    }
}

pub fn run(ctx: &Context, a: OnboardArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("onboard")?;
    let t = TenantRef::parse(&a.tenant).map_err(super::bad_tenant)?;
    let apps = super::args::app_ids(&a.app_ids)?;
    let pools = super::args::pool_fqdns(&a.pool_fqdns)?;
    let sip = Fqdn::parse("--sip-domain", &a.sip_domain).map_err(|e| {
        Failure::input(e, Some("give the SIP domain, e.g. contoso.com".to_string()))
    })?;
    let autodiscover = a
        .autodiscover_url
        .as_deref()
        .map(|u| HttpsUrl::parse("--autodiscover-url", u))
        .transpose()
        .map_err(|e| Failure::input(e, None))?;
    ctx.require_confirmable()?;
    let mut steps = Steps {
        ctx,
        done: Vec::new(),
    };

    // 1. The tenant and its metadata.
    let cloud = ctx.cloud()?;
    let http = ctx.http(&cloud)?;
    let rt = super::runtime()?;
    let d = rt
        .block_on(tenant::discover(&http, &cloud, &t, ctx.clock.now()))
        .map_err(|e| {
            let hint = e.hint();
            Failure::runtime(e, Some(hint))
        })?;
    steps.say(1, &metadata_ready(&t, &d).map_err(not_ready)?);
    let tid = d.tenant_id.clone();

    // 2. The certificate.
    let loaded = a.password.load_cert(&a.cert)?;
    let (start, end, line) =
        certificate_ready(&loaded, &sip, ctx.clock.now()).map_err(not_ready)?;
    let thumb = loaded.leaf.thumbprint_sha1();
    steps.say(2, &line);

    // 3. Sign in, 4. the plan.
    let tokens = ctx.token_provider(&cloud, &tid)?;
    rt.block_on(tokens.token(&cloud.graph_scope()))
        .map_err(|e| {
            let hint = e.hint();
            Failure::runtime(e, Some(hint))
        })?;
    steps.say(
        3,
        &format!("signed in to Microsoft Graph as {}", tokens.actor()),
    );
    let plan = OnboardPlan {
        domain: match &t {
            TenantRef::Domain(dn) => Some(dn.as_str()),
            TenantRef::Id(_) => None,
        },
        apps: &apps,
        cert: &loaded,
        start,
        end,
        pools: &pools,
        metadata_url: &d.metadata_url,
        autodiscover_url: autodiscover,
    };
    let summary = plan.summary(&tid);
    ctx.printer.note(&summary);
    if ctx.global.dry_run {
        ctx.printer.emit(
            &serde_json::json!({"dry_run": true, "tenant_id": tid, "plan": summary}),
            || "dry run: nothing was changed\n".to_string(),
        );
        return Ok(0);
    }
    if !ctx.confirm("Onboard this tenant?") {
        return Err(Failure::input(
            anyhow::anyhow!("cancelled: nothing was changed"),
            Some("run again and answer y, or pass --yes".to_string()),
        ));
    }
    steps.say(4, "plan confirmed");

    // 5.-8. Upload, names, verify, script and ledger: the library's, reporting each step.
    let mut session = ctx.session(&tid)?;
    let done =
        rt.block_on(
            session.onboard(&plan, &mut |n, what| steps.say(n, &what), &mut |secs| {
                ctx.printer.note(&format!(
                "Entra ID does not accept the new key yet (AADSTS700027); trying again in {secs} s"
            ))
            }),
        );
    let done = done.map_err(|e| {
        let f = match e {
            OnboardError::Session(e) => super::session_failure(e),
            OnboardError::Verify(e) => {
                let (cause, fix) = e.cause_and_fix();
                Failure::runtime(anyhow::anyhow!(cause).context(e.to_string()), Some(fix))
            }
            OnboardError::Script(m) => Failure::runtime(anyhow::anyhow!(m), None),
        };
        let hint = undo_hint(&steps.done, &tid, &thumb);
        Failure {
            hint: Some(match &f.hint {
                Some(h) => format!("{h}; {hint}"),
                None => hint,
            }),
            ..f
        }
    })?;
    let report = OnboardReport::new(&plan, &tid, done, steps.done);
    ctx.printer.emit(&report, || report.text());
    Ok(0)
}
