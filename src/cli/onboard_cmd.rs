//! `onboard` (CONTRACT.md): the whole cross-premises setup in order — discover the tenant and
//! validate its metadata, validate the certificate, sign in, show the plan and confirm, upload the
//! credential, add the service principal names, verify end to end, write the on-prem script next
//! to the ledger, record the tenant. Re-running on an onboarded tenant changes nothing and says
//! so; a failure midway says what was done and how to finish or undo it.

use super::password::PasswordArgs;
use super::{Context, Failure};
use crate::cert::{self, CheckOptions, Severity};
use crate::graph;
use crate::microsoft::SFB_APP_ID;
use crate::onprem::{Fqdn, HttpsUrl};
use crate::session::onboard::{OnboardError, OnboardPlan};
use crate::tenant::{self, TenantRef};
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
    if let Some(f) = d
        .metadata
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        return Err(Failure::runtime(
            anyhow::anyhow!("the tenant's ACS metadata is not usable: {}", f.message),
            Some("see hybrid-trust tenant discover".to_string()),
        ));
    }
    let tid = d.tenant_id.clone();
    steps.say(
        1,
        &format!(
            "tenant {t} is {tid}; its ACS metadata is valid ({} signing key(s))",
            d.metadata.signing_keys.len()
        ),
    );

    // 2. The certificate.
    let loaded = a.password.load_cert(&a.cert)?;
    let findings = cert::check(
        &loaded,
        &CheckOptions {
            now: ctx.clock.now(),
            sip_domain: Some(sip.as_str().to_string()),
            horizon_days: 30,
            require_private_key: true,
        },
    );
    if let Some(f) = findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(Failure::input(anyhow::anyhow!("the certificate is not fit for OAuthTokenIssuer: {}", f.message), Some("fix the certificate (hybrid-trust cert inspect shows every finding), then run onboard again".to_string())));
    }
    let c = loaded.leaf.clone();
    let thumb = c.thumbprint_sha1();
    let (start, end) = graph::window(c.not_before, c.not_after, None, None, ctx.clock.now())
        .map_err(|e| Failure::input(e, None))?;
    steps.say(
        2,
        &format!(
            "certificate {thumb} ({}) is fit for OAuthTokenIssuer",
            c.subject
        ),
    );

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
    let names: Vec<String> = pools
        .iter()
        .map(|p| format!("{SFB_APP_ID}/{}", p.as_str()))
        .collect();
    let plan = format!(
        "plan for {tid}: add certificate {thumb} as a Verify key ({} -> {}) on {}; add service principal names {}; verify; write the on-prem script; record the tenant",
        start.format("%Y-%m-%d"),
        end.format("%Y-%m-%d"),
        apps.join(", "),
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    );
    ctx.printer.note(&plan);
    if ctx.global.dry_run {
        ctx.printer.emit(
            &serde_json::json!({"dry_run": true, "tenant_id": tid, "plan": plan}),
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

    let undo = |steps: &Steps, e: Failure| -> Failure {
        let mut hint = format!("done so far: {}", steps.done.join("; "));
        if steps.done.len() >= 5 {
            hint.push_str(&format!(". To finish, fix the cause and run onboard again (it skips what is done); to undo the upload: hybrid-trust credential remove --tenant {tid} --thumbprint {thumb} --yes"));
        }
        if let Some(h) = &e.hint {
            hint = format!("{h}; {hint}");
        }
        Failure {
            hint: Some(hint),
            ..e
        }
    };

    // 5.-8. Upload, names, verify, script and ledger: the library's, reporting each step.
    let mut session = ctx.session(&tid)?;
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
        undo(&steps, f)
    })?;
    let (uploaded, added, script_path) = (done.uploaded, done.names_added, done.script);
    let domain = plan.domain.unwrap_or(&tid).to_string();
    let next_renewal = crate::dates::sub(end, chrono::TimeDelta::days(30));
    let changed = !uploaded.is_empty() || !added.is_empty();
    let json = serde_json::json!({
        "tenant": domain,
        "tenant_id": tid,
        "thumbprint_sha1": thumb,
        "changed": changed,
        "uploaded_to": uploaded,
        "service_principal_names_added": added,
        "verified": true,
        "onprem_script": script_path.display().to_string(),
        "credential_end": end,
        "next_renewal": next_renewal,
        "steps": steps.done,
    });
    ctx.printer.emit(&json, || {
        format!(
            "{}\nNext: run {} in the Skype for Business Server Management Shell on a Front End.\nRenewal: hybrid-trust renews from {} (run `hybrid-trust renew --all` daily, see scripts/systemd).\n",
            if changed { format!("onboarded {domain} ({tid})") } else { format!("{domain} ({tid}) was already onboarded: nothing changed") },
            script_path.display(),
            next_renewal.format("%Y-%m-%d")
        )
    });
    Ok(0)
}
