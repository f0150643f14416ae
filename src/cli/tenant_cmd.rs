//! `tenant discover`, `tenant metadata --file`, `tenant add` and `tenant remove` (docs/contract.md):
//! flags to the library's discovery, report ([`hybrid_trust::tenant::report`]) and offline ledger
//! records ([`hybrid_trust::tenant::offline`]).

use super::{Context, Failure};
use hybrid_trust::tenant::{self, MetadataReport, OfflineTenant, TenantRef, offline};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum TenantCommand {
    /// Resolve a domain or GUID to the tenant id through OpenID discovery, then fetch and validate
    /// the ACS metadata New-CsOAuthServer will use.
    #[command(
        after_help = "Examples:\n  hybrid-trust tenant discover contoso.onmicrosoft.com\n  hybrid-trust --cloud gcc-high --output json tenant discover 72f988bf-86f1-41af-91ab-2d7cd011db47"
    )]
    Discover {
        /// A verified domain (contoso.com, contoso.onmicrosoft.com) or the tenant id.
        tenant: String,
    },
    /// Validate a saved metadata document offline: ACS/SharePoint JSON metadata, an OpenID
    /// configuration, or a JWKS.
    #[command(after_help = "Example:\n  hybrid-trust tenant metadata --file metadata.json")]
    Metadata {
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Record a tenant in the ledger without touching the network (fleets onboarded elsewhere).
    #[command(
        after_help = "Examples:\n  hybrid-trust tenant add contoso.onmicrosoft.com --cert oauth.cer\n  hybrid-trust tenant add fabrikam.com --cert oauth.cer --credential-end 2027-06-30 --notify uc-admins@fabrikam.com"
    )]
    Add {
        /// The tenant's domain (or id).
        domain: String,
        /// The on-prem OAuthTokenIssuer certificate (public part is enough).
        #[arg(long, value_name = "PATH")]
        cert: Option<PathBuf>,
        #[command(flatten)]
        password: super::password::PasswordArgs,
        /// Target applications (default 00000004-0000-0ff1-ce00-000000000000).
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
        /// The end of the key credential already on the tenant, if known (status --live finds it otherwise).
        #[arg(long, value_name = "DATE", requires = "cert")]
        credential_end: Option<String>,
        /// Reminder recipients for this tenant (repeatable; override the config's).
        #[arg(long, value_name = "EMAIL")]
        notify: Vec<String>,
    },
    /// Remove a tenant from the ledger (nothing changes in the tenant).
    Remove { domain: String },
}

pub fn run(ctx: &Context, cmd: TenantCommand) -> Result<u8, Failure> {
    match cmd {
        TenantCommand::Add {
            domain,
            cert,
            password,
            app_ids,
            credential_end,
            notify,
        } => {
            ctx.refuse_as_of("tenant add")?;
            // The recipients first: a refusal asks for no certificate password.
            OfflineTenant {
                notify: notify.clone(),
                ..OfflineTenant::default()
            }
            .check()
            .map_err(|e| {
                let hint = Some(e.hint().to_string());
                Failure::input(e, hint)
            })?;
            let name = TenantRef::parse(&domain)
                .map_err(super::bad_tenant)?
                .to_string();
            let apps = super::args::app_ids(&app_ids)?;
            let loaded = cert.as_ref().map(|p| password.load_cert(p)).transpose()?;
            let end = credential_end
                .as_deref()
                .map(|d| super::args::parse_date("--credential-end", d))
                .transpose()?;
            let add = OfflineTenant {
                cert: loaded.map(|l| hybrid_trust::ledger::CertRecord::from_cert(&l.leaf)),
                credential_end: end,
                notify,
            };
            let now = ctx.clock.now();
            let status = ctx.record(&name, &apps, |rec| add.record(rec, now))?;
            ctx.printer.emit(&status, || {
                format!(
                    "recorded {name}: {} ({})\n",
                    status.state.name(),
                    status.next_action
                )
            });
            Ok(0)
        }
        TenantCommand::Remove { domain } => {
            ctx.refuse_as_of("tenant remove")?;
            let name = TenantRef::parse(&domain)
                .map_err(super::bad_tenant)?
                .to_string();
            let store = ctx.ledger_store()?;
            let audit = ctx.audit_log()?;
            let removed =
                offline::forget(&store, &audit, &name, ctx.clock.now()).map_err(|e| match e {
                    offline::ForgetError::Ledger(e) => super::ledger_rec::failure(e),
                    offline::ForgetError::Audit(e) => Failure::runtime(e, None),
                })?;
            if !removed {
                return Err(Failure::input(
                    anyhow::anyhow!("{name} is not in the ledger"),
                    Some("see hybrid-trust status --all".to_string()),
                ));
            }
            ctx.printer.emit(&serde_json::json!({"removed": name}), || {
                format!("removed {name} from the ledger (nothing changed in the tenant)\n")
            });
            Ok(0)
        }
        TenantCommand::Metadata { file } => {
            let bytes = hybrid_trust::paths::read_limited(
                &file,
                hybrid_trust::paths::MAX_DOCUMENT_FILE,
                "a metadata document",
            )
            .map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
                    Some(
                        "save the document the metadata URL returns and name that file".to_string(),
                    ),
                )
            })?;
            let doc = tenant::parse_document(&bytes, ctx.now).map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context(format!("{} is not a valid metadata document", file.display())),
                    Some("save it again from the metadata URL (it may be truncated, or an HTML error page)".to_string()),
                )
            })?;
            let report = MetadataReport::of_document(doc);
            ctx.printer.emit(&report, || report.text());
            Ok(report.exit_code())
        }
        TenantCommand::Discover { tenant } => {
            let t = TenantRef::parse(&tenant).map_err(super::bad_tenant)?;
            let cloud = ctx.cloud()?;
            let http = ctx.http(&cloud)?;
            let rt = super::runtime()?;
            let d = rt
                .block_on(tenant::discover(&http, &cloud, &t, ctx.now))
                .map_err(|e| {
                    let hint = e.hint();
                    Failure::runtime(e, Some(hint))
                })?;
            let report = MetadataReport::of_discovery(d, &cloud);
            ctx.printer.emit(&report, || report.text());
            Ok(report.exit_code())
        }
    }
}
