//! `--trust exchange` on `renew`, `credential list|prune` and `verify` (docs/contract.md, third
//! round): flags to the library's Exchange workflows ([`hybrid_trust::session::exchange`]), the export
//! folder read (`--from DIR`, [`hybrid_trust::onprem::exchange`]), the confirmation on the terminal, and
//! the reports printed.

use super::printer::terminal_safe;
use super::{Context, Failure};
use hybrid_trust::onprem::exchange::{Export, load_export};
use hybrid_trust::session::exchange;
use std::path::Path;

/// The export folder, or the one-line error with its fix (exit 2, nothing changed).
pub fn read_export(dir: &Path) -> Result<Export, Failure> {
    load_export(dir).map_err(|e| {
        let hint = e.hint();
        Failure::input(e, Some(hint))
    })
}

/// `--exchange-app-id`: a GUID.
pub fn app_id_arg(s: Option<&str>) -> Result<Option<String>, Failure> {
    s.map(|a| {
        hybrid_trust::ids::AppId::parse(a.trim()).map(String::from).ok_or_else(|| {
            Failure::input(
                anyhow::anyhow!("--exchange-app-id {a:?} is not a GUID"),
                Some("give the application (client) id of ExchangeServerApp-<organization guid>, as Get-AuthServer EvoSTS* | Format-List ApplicationIdentifier shows it".to_string()),
            )
        })
    })
    .transpose()
}

/// Flags of the Skype for Business renewal that mean nothing for the Exchange trust.
pub fn refuse_sfb_flags(flags: &[(bool, &str)]) -> Result<(), Failure> {
    match flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(Failure::input(
            anyhow::anyhow!("{flag} is for the Skype for Business trust, not --trust exchange"),
            Some(format!("drop {flag}, or use --trust sfb")),
        )),
        None => Ok(()),
    }
}

/// Flags of the Exchange trust given without `--trust exchange`.
pub fn refuse_exchange_flags(flags: &[(bool, &str)]) -> Result<(), Failure> {
    match flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(Failure::input(
            anyhow::anyhow!("{flag} is for the Exchange trust"),
            Some(format!("add --trust exchange, or drop {flag}")),
        )),
        None => Ok(()),
    }
}

/// `renew --trust exchange --tenant T --from DIR [--exchange-app-id APPID]`.
pub fn renew(
    ctx: &Context,
    tenant: &str,
    from: Option<&Path>,
    app_id: Option<&str>,
    horizon_days: Option<i64>,
) -> Result<u8, Failure> {
    ctx.refuse_as_of("renew --trust exchange")?;
    let tenant = super::args::tenant_arg(tenant)?;
    let Some(from) = from else {
        return Err(Failure::input(
            anyhow::anyhow!("renew --trust exchange needs --from DIR"),
            Some("run the script of hybrid-trust onprem script --trust exchange in the Exchange Management Shell and give its folder to --from".to_string()),
        ));
    };
    let export = read_export(from)?;
    let app_id = app_id_arg(app_id)?;
    let horizon = horizon_days.unwrap_or(ctx.settings()?.renewal.horizon_days);
    ctx.require_confirmable()?;
    let mut session = ctx.session(&tenant)?;
    let mut confirm = |steps: &[hybrid_trust::exchange::Step]| {
        for s in steps {
            eprintln!("{}", terminal_safe(&format!("{tenant}: {}", s.text())));
        }
        ctx.confirm("Apply these changes to the Exchange hybrid application?")
    };
    let report = super::runtime()?
        .block_on(exchange::renew(
            &mut session,
            &export,
            app_id.as_deref(),
            chrono::TimeDelta::days(horizon.max(0)),
            &mut confirm,
        ))
        .map_err(|e| failure(e, &tenant))?;
    ctx.printer.emit(&report, || report.text());
    Ok(0)
}

/// `credential prune --trust exchange --first-party --tenant T`.
pub fn prune_first_party(ctx: &Context, tenant: &str) -> Result<u8, Failure> {
    ctx.refuse_as_of("credential prune")?;
    let tenant = super::args::tenant_arg(tenant)?;
    ctx.require_confirmable()?;
    let mut session = ctx.session(&tenant)?;
    let mut confirm = |sp: &hybrid_trust::graph::ServicePrincipal,
                       plan: &hybrid_trust::graph::KeyPlan,
                       shown: Option<&hybrid_trust::graph::KeyPlan>| {
        eprint!(
            "{}",
            terminal_safe(&hybrid_trust::credential::report::confirm_text(
                sp, plan, shown, ctx.now
            ))
        );
        if ctx.global.yes {
            hybrid_trust::credential::Approval::Standing
        } else if ctx
            .confirm("Remove these on-premises keys from Exchange Online's shared principal?")
        {
            hybrid_trust::credential::Approval::Answered
        } else {
            hybrid_trust::credential::Approval::Refused
        }
    };
    let report = super::runtime()?
        .block_on(exchange::prune_first_party(&mut session, &mut confirm))
        .map_err(|e| failure(e, &tenant))?;
    ctx.printer.emit(&report, || report.text());
    Ok(0)
}

/// `credential list --trust exchange --tenant T [--app-id APPID]`: the dedicated application's
/// keys (the application recorded in the ledger, or `--app-id`).
pub fn list(ctx: &Context, tenant: &str, app_id: Option<&str>) -> Result<u8, Failure> {
    let tenant = super::args::tenant_arg(tenant)?;
    let app_id = app_id_arg(app_id)?;
    let recorded = ctx
        .ledger()
        .ok()
        .and_then(|l| l.tenant(&tenant).and_then(|t| t.exchange.clone()));
    let Some(app_id) = app_id.or_else(|| recorded.map(|x| x.app_id)) else {
        return Err(Failure::input(
            anyhow::anyhow!("{tenant} has no Exchange trust in the ledger"),
            Some("give the dedicated application with --app-id APPID, or record it with hybrid-trust renew --trust exchange --tenant T --from DIR".to_string()),
        ));
    };
    let mut session = ctx.session(&tenant)?;
    let report = super::runtime()?
        .block_on(exchange::list(&mut session, &app_id))
        .map_err(|e| failure(e, &tenant))?;
    ctx.printer.emit(&report, || report.text());
    Ok(0)
}

/// A failure of the Exchange flow, with its hint in the Exchange wording
/// ([`exchange::hint`]).
fn failure(e: hybrid_trust::session::SessionError, tenant: &str) -> Failure {
    let hint = exchange::hint(&e, tenant);
    let mut f = super::session_failure(e);
    f.hint = Some(hint);
    f
}
