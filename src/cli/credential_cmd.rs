//! `credential list|upload|remove|prune` and `spn add` (docs/contract.md): flags to the library's key and
//! name changes ([`hybrid_trust::session::keys`], [`hybrid_trust::session::names`]), the confirmation on the
//! terminal, and the report ([`hybrid_trust::credential::report`]) printed.

use super::args::Trust;
use super::password::PasswordArgs;
use super::printer::terminal_safe;
use super::{Context, Failure};
use hybrid_trust::credential::Approval;
use hybrid_trust::credential::foreign::Prune;
use hybrid_trust::credential::report::{self, KeyChanges, NameReport};
use hybrid_trust::graph;
use hybrid_trust::microsoft::SFB_APP_ID;
use hybrid_trust::session::keys::KeyOp;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum CredentialCommand {
    /// List the key credentials of the service principal, identified by certificate thumbprint.
    #[command(
        after_help = "Example:\n  hybrid-trust credential list --tenant contoso.onmicrosoft.com"
    )]
    List {
        #[arg(long)]
        tenant: String,
        /// Which trust: sfb (00000004-… and Teams service apps) or exchange (Exchange Server
        /// hybrid; see renew --trust exchange).
        #[arg(long, value_enum, default_value = "sfb")]
        trust: super::args::Trust,
        /// The application (default 00000004-0000-0ff1-ce00-000000000000, Skype for Business Online).
        #[arg(long = "app-id", value_name = "GUID")]
        app_id: Option<String>,
    },
    /// Add the on-prem certificate as an AsymmetricX509Cert/Verify key credential, keeping every
    /// other valid key and dropping expired ones. Window: start >= max(now, notBefore),
    /// end <= min(start + 365 days, notAfter).
    #[command(
        after_help = "Examples:\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --dry-run\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --yes\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --app-id 00000004-0000-0ff1-ce00-000000000000 --app-id 7557eb47-c689-4224-abcf-aef9bd7573df --app-id db7de2b5-2149-435e-8043-e080dd50afae"
    )]
    Upload {
        #[arg(long)]
        tenant: String,
        /// Which trust: sfb (00000004-… and Teams service apps) or exchange (Exchange Server
        /// hybrid; see renew --trust exchange).
        #[arg(long, value_enum, default_value = "sfb")]
        trust: super::args::Trust,
        /// The OAuthTokenIssuer certificate (any format; only its public part is sent).
        #[arg(long, value_name = "PATH")]
        cert: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Start of the window (RFC 3339 or YYYY-MM-DD, UTC); default now.
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        /// End of the window; default the latest allowed.
        #[arg(long, value_name = "DATE")]
        end: Option<String>,
        /// Target application (repeatable; default 00000004-0000-0ff1-ce00-000000000000).
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
        /// Create a target's missing service principal first (POST /servicePrincipals {"appId"}), after confirmation.
        #[arg(long)]
        create_service_principal: bool,
    },
    /// Remove the keys this host's ledger did not put there (--foreign) or expired ones
    /// (--expired); never a key of the certificate the ledger says the Front Ends use or roll to.
    #[command(
        after_help = "Example:\n  hybrid-trust credential prune --tenant contoso.onmicrosoft.com --foreign --dry-run"
    )]
    #[command(group(clap::ArgGroup::new("what").required(true).args(["foreign", "expired", "first_party"])))]
    Prune {
        #[arg(long)]
        tenant: String,
        /// Which trust: sfb (00000004-… and Teams service apps) or exchange (Exchange Server
        /// hybrid; see renew --trust exchange).
        #[arg(long, value_enum, default_value = "sfb")]
        trust: super::args::Trust,
        #[arg(long)]
        foreign: bool,
        #[arg(long)]
        expired: bool,
        /// With --trust exchange: remove the on-premises keys left on Exchange Online's shared
        /// principal 00000002-0000-0ff1-ce00-000000000000 (CVE-2025-53786), as Microsoft's
        /// ConfigureExchangeHybridApplication.ps1 -ResetFirstPartyServicePrincipalKeyCredentials does.
        #[arg(long)]
        first_party: bool,
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
    },
    /// Remove the key credential of a certificate, by thumbprint (other valid keys stay).
    #[command(
        after_help = "Example:\n  hybrid-trust credential remove --tenant contoso.onmicrosoft.com --thumbprint C018A043066A6F5CEC76253A1D3CAE84C0E2F730"
    )]
    Remove {
        #[arg(long)]
        tenant: String,
        /// Which trust: sfb (00000004-… and Teams service apps) or exchange (Exchange Server
        /// hybrid; see renew --trust exchange).
        #[arg(long, value_enum, default_value = "sfb")]
        trust: super::args::Trust,
        /// SHA-1 thumbprint (40 hex digits, as Windows shows it).
        #[arg(long, value_name = "HEX")]
        thumbprint: String,
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
        /// Also remove a key whose certificate was issued after the one this ledger says the
        /// Front Ends sign with (another host may have rolled them to it): check on a Front End
        /// first. Never the last valid key, nor the ledger's current or pending certificate.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum SpnCommand {
    /// Add 00000004-0000-0ff1-ce00-000000000000/<pool external web services FQDN> to the service
    /// principal names, keeping the others.
    #[command(
        after_help = "Example:\n  hybrid-trust spn add --tenant contoso.onmicrosoft.com --pool-fqdn webext.contoso.com --yes"
    )]
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long = "pool-fqdn", value_name = "FQDN", required = true)]
        pool_fqdns: Vec<String>,
    },
}

fn graph_failure(e: graph::GraphError) -> Failure {
    let hint = e.hint();
    Failure::runtime(e, Some(hint))
}

pub fn run(ctx: &Context, cmd: CredentialCommand) -> Result<u8, Failure> {
    match cmd {
        CredentialCommand::List {
            tenant,
            app_id,
            trust: Trust::Exchange,
        } => super::exchange::list(ctx, &tenant, app_id.as_deref()),
        CredentialCommand::Upload {
            trust: Trust::Exchange,
            ..
        }
        | CredentialCommand::Remove {
            trust: Trust::Exchange,
            ..
        } => Err(Failure::input(
            anyhow::anyhow!("the Exchange trust's keys are kept in step with Get-AuthConfig by renew --trust exchange, not changed one by one"),
            Some("export with the script of hybrid-trust onprem script --trust exchange, then run hybrid-trust renew --trust exchange --tenant T --from DIR: it uploads the current and staged certificates and retires the previous one".to_string()),
        )),
        CredentialCommand::Prune {
            tenant,
            trust,
            first_party,
            foreign,
            expired,
            ..
        } if trust == Trust::Exchange || first_party => {
            if trust != Trust::Exchange {
                return Err(Failure::input(
                    anyhow::anyhow!("--first-party is for the Exchange trust"),
                    Some("add --trust exchange".to_string()),
                ));
            }
            if !first_party || foreign || expired {
                return Err(Failure::input(
                    anyhow::anyhow!("credential prune --trust exchange takes --first-party only"),
                    Some("use credential prune --trust exchange --first-party --tenant T; renew --trust exchange retires the dedicated application's old keys".to_string()),
                ));
            }
            super::exchange::prune_first_party(ctx, &tenant)
        }
        CredentialCommand::List { tenant, app_id, .. } => {
            let tenant = super::args::tenant_arg(&tenant)?;
            let app = super::args::app_ids(&app_id.into_iter().collect::<Vec<_>>())?.remove(0);
            let mut session = ctx.session(&tenant)?;
            let listing = super::runtime()?
                .block_on(session.list_keys(&app))
                .map_err(graph_failure)?;
            ctx.printer.emit(&listing, || listing.text());
            Ok(0)
        }
        CredentialCommand::Upload {
            tenant,
            cert,
            password,
            start,
            end,
            app_ids: apps,
            create_service_principal: create,
            ..
        } => {
            ctx.refuse_as_of("credential upload")?;
            let tenant = super::args::tenant_arg(&tenant)?;
            let apps = super::args::app_ids(&apps)?;
            let start = start
                .as_deref()
                .map(|s| super::args::parse_date("--start", s))
                .transpose()?;
            let end = end
                .as_deref()
                .map(|s| super::args::parse_date("--end", s))
                .transpose()?;
            let c = password.load_cert(&cert)?.leaf;
            let (op, warning) = KeyOp::upload(&c, start, end, ctx.now).map_err(|e| {
                Failure::input(
                    anyhow::Error::new(e).context("the requested key window is not allowed"),
                    Some(
                        "omit --start/--end for the longest allowed window, or stay within it"
                            .to_string(),
                    ),
                )
            })?;
            if let Some(w) = warning {
                ctx.printer.note(&w);
            }
            ctx.require_confirmable()?;
            change_each(ctx, &tenant, &apps, &op, Some(c.thumbprint_sha1()), create)
        }
        CredentialCommand::Prune {
            tenant,
            foreign,
            app_ids: apps,
            ..
        } => {
            ctx.refuse_as_of("credential prune")?;
            let tenant = super::args::tenant_arg(&tenant)?;
            let apps = super::args::app_ids(&apps)?;
            let what = [Prune::Expired, Prune::Foreign][usize::from(foreign)];
            ctx.require_confirmable()?;
            change_each(ctx, &tenant, &apps, &KeyOp::Prune(what), None, false)
        }
        CredentialCommand::Remove {
            tenant,
            thumbprint,
            app_ids: apps,
            force,
            ..
        } => {
            ctx.refuse_as_of("credential remove")?;
            let tenant = super::args::tenant_arg(&tenant)?;
            let apps = super::args::app_ids(&apps)?;
            let tp = hybrid_trust::credential::thumbprint_arg(&thumbprint).map_err(|e| {
                Failure::input(
                    anyhow::anyhow!(e),
                    Some(hybrid_trust::credential::THUMBPRINT_HINT.into()),
                )
            })?;
            ctx.require_confirmable()?;
            change_each(
                ctx,
                &tenant,
                &apps,
                &if force {
                    KeyOp::RemoveForced(tp.clone())
                } else {
                    KeyOp::Remove(tp.clone())
                },
                Some(tp),
                false,
            )
        }
    }
}

/// Asks on the terminal (`--yes`: nobody is asked, the approval stands for additive changes).
fn approval(ctx: &Context) -> Approval {
    if ctx.global.yes {
        Approval::Standing
    } else if ctx.confirm("Apply this change?") {
        Approval::Answered
    } else {
        Approval::Refused
    }
}

/// Runs a key change on each target application through the library's session (lock, plan,
/// confirm, read again, PATCH, read back, ledger) and prints what each came to. The plan is shown
/// before the question, and with it what changed on the service principal since a plan was
/// shown before.
fn change_each(
    ctx: &Context,
    tenant: &str,
    apps: &[String],
    op: &KeyOp,
    thumb: Option<hybrid_trust::ids::Thumbprint>,
    create: bool,
) -> Result<u8, Failure> {
    let mut session = ctx.session(tenant)?;
    let mut confirm = |sp: &_, plan: &_, shown: Option<&_>| {
        eprint!(
            "{}",
            terminal_safe(&report::confirm_text(sp, plan, shown, ctx.now))
        );
        approval(ctx)
    };
    let mut create_sp = |app: &str| {
        if !create {
            return Approval::Refused;
        }
        eprintln!("{}", report::create_text(app, ctx.global.dry_run));
        // A dry run creates nothing, so nobody is asked (issue 24, item 10: an array of both
        // answers indexed by `dry_run` asked before choosing, and ignored the answer).
        if ctx.global.dry_run {
            Approval::Standing
        } else {
            approval(ctx)
        }
    };
    let outcomes = super::runtime()?
        .block_on(session.change_keys_creating(apps, op, &mut confirm, &mut create_sp))
        .map_err(super::session_failure)?;
    let audit = ctx.audit_log()?;
    let changes = KeyChanges::new(
        tenant,
        session.tenant_id.clone(),
        ctx.global.dry_run,
        audit.path(),
        outcomes,
        thumb,
        ctx.now,
    );
    ctx.printer.emit(&changes, || changes.text());
    Ok(0)
}

pub fn run_spn(ctx: &Context, cmd: SpnCommand) -> Result<u8, Failure> {
    let SpnCommand::Add { tenant, pool_fqdns } = cmd;
    ctx.refuse_as_of("spn add")?;
    let tenant = super::args::tenant_arg(&tenant)?;
    let names: Vec<String> = super::args::pool_fqdns(&pool_fqdns)?
        .iter()
        .map(|f| format!("{SFB_APP_ID}/{}", f.as_str()))
        .collect();
    ctx.require_confirmable()?;
    let mut session = ctx.session(&tenant)?;
    let changes = super::runtime()?
        .block_on(session.add_names(&names, None, &mut |sp, new| {
            eprintln!("{}", terminal_safe(&report::names_plan_text(sp, new)));
            approval(ctx)
        }))
        .map_err(super::session_failure)?;
    let r = NameReport::new(&tenant, ctx.global.dry_run, changes);
    ctx.printer.emit(&r, || r.text());
    Ok(0)
}
