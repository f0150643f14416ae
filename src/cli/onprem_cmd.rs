//! `onprem script` (docs/contract.md): flags to the library's script input; the library compares saved
//! `Get-Cs*` output, renders the script and sums up the drift ([`hybrid_trust::onprem`]).

use super::{Context, Failure};
use hybrid_trust::onprem::{self, Current, Guid, HttpsUrl, ScriptInput, ScriptReport};
use hybrid_trust::tenant::{self, TenantRef};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum OnpremCommand {
    /// Print an idempotent Management Shell script that registers microsoft.sts, ensures the
    /// microsoft.exchange partner application and sets the OAuth configuration. With --current,
    /// only what differs from saved Get-Cs* output.
    #[command(
        after_help = "Examples:\n  hybrid-trust onprem script --tenant contoso.onmicrosoft.com --pool-fqdn webext.contoso.com > hybrid.ps1\n  hybrid-trust onprem script --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 --current ./saved --out fix.ps1\n\nSave the current state on a Front End with, for each cmdlet:\n  Get-CsOAuthServer | Format-List > Get-CsOAuthServer.txt\n  (likewise Get-CsPartnerApplication, Get-CsOAuthConfiguration, Get-CsCertificate)"
    )]
    Script {
        /// Tenant id, or a verified domain (resolved through OpenID discovery).
        #[arg(long)]
        tenant: String,
        /// A pool's external web services FQDN (repeatable).
        #[arg(long = "pool-fqdn", value_name = "FQDN")]
        pool_fqdns: Vec<String>,
        /// Set -ExchangeAutodiscoverUrl (e.g. https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc).
        #[arg(long, value_name = "URL")]
        autodiscover_url: Option<String>,
        /// Set -ClientAuthorizationOAuthServerIdentity microsoft.sts (fixes a stale on-prem Exchange value).
        #[arg(long)]
        client_auth_oauth_server: bool,
        /// A folder with saved Get-Cs* Format-List output; emit only what differs.
        #[arg(long, value_name = "DIR")]
        current: Option<PathBuf>,
        /// Write the script here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(ctx: &Context, cmd: OnpremCommand) -> Result<u8, Failure> {
    let OnpremCommand::Script {
        tenant,
        pool_fqdns,
        autodiscover_url,
        client_auth_oauth_server,
        current,
        out,
        force,
    } = cmd;
    let t = TenantRef::parse(&tenant).map_err(super::bad_tenant)?;
    let pools = super::args::pool_fqdns(&pool_fqdns)?;
    let autodiscover = autodiscover_url
        .as_deref()
        .map(|u| HttpsUrl::parse("--autodiscover-url", u))
        .transpose()
        .map_err(|e| Failure::input(e, Some("give an https URL such as https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc".to_string())))?;
    let saved = current
        .as_deref()
        .map(Current::load_dir)
        .transpose()
        .map_err(|e| Failure::input(e, Some("save the output of Get-CsOAuthServer, Get-CsPartnerApplication, Get-CsOAuthConfiguration and Get-CsCertificate piped to Format-List, one .txt file each".to_string())))?;
    if out.is_some() {
        ctx.refuse_as_of("onprem script --out")?;
    }
    let cloud = ctx.cloud()?;
    // A GUID needs no network; a domain is resolved (and its metadata validated) first.
    let tenant_id = match &t {
        TenantRef::Id(id) => id.to_string(),
        TenantRef::Domain(_) => {
            let http = ctx.http(&cloud)?;
            let d = super::runtime()?
                .block_on(tenant::discover(&http, &cloud, &t, ctx.now))
                .map_err(|e| {
                    let hint = e.hint();
                    Failure::runtime(e, Some(hint))
                })?;
            d.tenant_id
        }
    };
    let tenant_guid =
        Guid::parse("tenant id", &tenant_id).map_err(|e| Failure::runtime(e, None))?;
    let metadata_url = HttpsUrl::parse("metadata URL", &cloud.acs_metadata_url(&tenant_id))
        .map_err(|e| {
            Failure::input(
                e,
                Some("the cloud's acs_url must be an https URL".to_string()),
            )
        })?;
    let decisions = saved.as_ref().map(|c| {
        onprem::compare(
            c,
            metadata_url.as_str(),
            autodiscover.as_ref().map(HttpsUrl::as_str),
            client_auth_oauth_server,
        )
    });
    let input = ScriptInput {
        tenant_id: tenant_guid,
        metadata_url: metadata_url.clone(),
        pool_fqdns: pools,
        autodiscover_url: autodiscover,
        client_auth_sts: client_auth_oauth_server,
        generated_at: ctx.now,
    };
    let script = onprem::render(&input, decisions.as_ref());
    if let Some(out) = &out {
        super::files::write_new_file(out, script.as_bytes(), force)?;
    }
    let report = ScriptReport {
        drift: decisions.map(|d| d.drift),
        metadata_url: metadata_url.as_str().to_string(),
        out: out.as_ref().map(|p| p.display().to_string()),
        script,
        tenant_id,
    };
    let summary = report.drift.as_deref().map(onprem::drift_summary);
    ctx.printer.emit(&report, || match &out {
        Some(p) => format!("wrote {}\n{}", p.display(), summary.unwrap_or_default()),
        None => {
            if let Some(d) = &summary {
                eprint!("{}", super::printer::terminal_safe(d));
            }
            report.script.clone()
        }
    });
    Ok(0)
}
