//! `renew` (docs/contract.md): for each tenant, decide (pure, `renew::decide`) and act: re-window the
//! same certificate (new window in, then the old key out), roll to a new certificate (upload next
//! to the old one and write the `Set-CsCertificate -Roll` step), or finish a roll. `--all` runs
//! every tenant in isolation; a failure is recorded in the ledger (reminders report it) and the
//! run goes on to the next tenant.

use super::password::PasswordArgs;
use super::{Context, Failure};
use hybrid_trust::ledger::TenantRecord;
use hybrid_trust::renew::{Decision, Policy};
use hybrid_trust::session::confirm;
use hybrid_trust::session::renew_all;
use hybrid_trust::session::renewal::describe;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust renew --all --dry-run\n  hybrid-trust renew --all --yes                     # the yearly (or daily, from a timer) job\n  hybrid-trust renew --tenant contoso.com --new-cert new-oauth.pfx --password-env PFX_PASSWORD\n\nA roll uploads the new certificate next to the old one and writes the on-prem step\n(Set-CsCertificate -Roll -EffectiveDate) next to the ledger; run it on a Front End."
)]
pub struct RenewArgs {
    #[arg(long, conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Every tenant in the ledger.
    #[arg(long)]
    pub all: bool,
    /// Roll to this new OAuthTokenIssuer certificate (its public part is uploaded).
    #[arg(long, value_name = "PATH", requires = "tenant")]
    pub new_cert: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Renew when the credential ends within this many days (default from the settings, 30).
    #[arg(long, value_name = "DAYS")]
    pub horizon_days: Option<i64>,
    /// Tenants renewed at once with --all (their waits overlap; each stays isolated).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub concurrency: usize,
    /// Record that the Front Ends now sign with the pending roll's new certificate (after its
    /// EffectiveDate); the next renew retires the old key. Changes only the ledger.
    #[arg(long, requires = "tenant", conflicts_with_all = ["new_cert", "all"])]
    pub confirm_roll: bool,
    /// With --confirm-roll: a directory with saved `Get-CsCertificate -Type OAuthTokenIssuer |
    /// Format-List` output (Get-CsCertificate.txt) that must show the new thumbprint as current.
    #[arg(long, value_name = "DIR", requires = "confirm_roll")]
    pub current: Option<PathBuf>,
    /// Which trust: sfb (the OAuthTokenIssuer key on 00000004-…) or exchange (the Auth
    /// Certificate's keys on the dedicated application ExchangeServerApp-<organization guid>).
    #[arg(long, value_enum, default_value = "sfb")]
    pub trust: super::args::Trust,
    /// With --trust exchange: the folder the script of `onprem script --trust exchange` wrote.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// With --trust exchange: the dedicated application's appId, instead of finding it by its
    /// display name.
    #[arg(long, value_name = "APPID")]
    pub exchange_app_id: Option<String>,
}

/// `--confirm-roll`: the ledger records the evidence; nothing is sent to the tenant.
fn confirm_roll(ctx: &Context, tenant: &str, current: Option<&PathBuf>) -> Result<u8, Failure> {
    ctx.refuse_as_of("renew --confirm-roll")?;
    let (store, audit) = (ctx.ledger_store()?, ctx.audit_log()?);
    let c = confirm::confirm_with(
        &store,
        &audit,
        tenant,
        current.map(PathBuf::as_path),
        ctx.clock.now(),
    )
    .map_err(super::session_failure)?;
    ctx.printer.emit(
        &serde_json::json!({"tenant": tenant, "confirmed": c}),
        || c.text(tenant),
    );
    Ok(0)
}

pub fn run(ctx: &Context, a: RenewArgs) -> Result<u8, Failure> {
    if a.trust == super::args::Trust::Exchange {
        super::exchange::refuse_sfb_flags(&[
            (a.all, "--all"),
            (a.new_cert.is_some(), "--new-cert"),
            (a.confirm_roll, "--confirm-roll"),
        ])?;
        let Some(t) = &a.tenant else {
            return Err(Failure::input(
                anyhow::anyhow!("renew --trust exchange needs --tenant T"),
                Some("give the tenant id or a verified domain".to_string()),
            ));
        };
        return super::exchange::renew(
            ctx,
            t,
            a.from.as_deref(),
            a.exchange_app_id.as_deref(),
            a.horizon_days,
        );
    }
    super::exchange::refuse_exchange_flags(&[
        (a.from.is_some(), "--from"),
        (a.exchange_app_id.is_some(), "--exchange-app-id"),
    ])?;
    if let (true, Some(t)) = (a.confirm_roll, &a.tenant) {
        return confirm_roll(ctx, t, a.current.as_ref());
    }
    ctx.refuse_as_of("renew")?;
    if a.tenant.is_none() && !a.all {
        return Err(Failure::input(
            anyhow::anyhow!("renew needs --tenant T or --all"),
            None,
        ));
    }
    let settings = ctx.settings()?;
    let policy = Policy {
        horizon_days: a.horizon_days.unwrap_or(settings.renewal.horizon_days),
        ..Policy::default()
    };
    let offered = match &a.new_cert {
        Some(p) => Some(a.password.load_cert(p)?.leaf),
        None => None,
    };
    let ledger = ctx.ledger()?;
    // A damaged record stops only its own tenant (issue 24, item 7): `--tenant` another one
    // goes on; `--all` reports it with the others.
    let tenants: Vec<TenantRecord> = match &a.tenant {
        Some(t) => vec![ledger.tenant(t).cloned().ok_or_else(|| {
            ctx.named_tenant_missing(
                t,
                Failure::input(
                    anyhow::anyhow!("{t} is not in the ledger"),
                    Some("onboard it, or record it with hybrid-trust tenant add".to_string()),
                ),
            )
        })?],
        // A tenant kept only for Exchange has no Skype for Business trust to renew.
        None => ledger
            .tenants
            .iter()
            .filter(|t| t.has_sfb())
            .cloned()
            .collect(),
    };
    if let Some(t) = tenants.iter().find(|t| !t.has_sfb()) {
        return Err(Failure::input(
            anyhow::anyhow!("{} has only the Exchange trust in the ledger", t.domain),
            Some(format!(
                "renew it with hybrid-trust renew --trust exchange --tenant {} --from DIR",
                t.domain
            )),
        ));
    }
    let damaged = if a.all { ledger.damaged } else { Vec::new() };
    let decisions = renew_all::plan(&tenants, offered.as_ref(), ctx.clock, policy);
    if decisions.iter().any(Decision::acts) && !ctx.global.dry_run {
        ctx.require_confirmable()?;
        for (t, d) in tenants.iter().zip(&decisions) {
            eprintln!("{}: {}", t.domain, describe(d));
        }
        if !ctx.confirm("Apply these renewals?") {
            return Err(Failure::input(
                anyhow::anyhow!("cancelled: nothing was changed"),
                Some("run again and answer y, or pass --yes".to_string()),
            ));
        }
    }
    let store = ctx.ledger_store()?;
    // Tenants spread over connection pools of at most 100 streams each, as `status --live`.
    let base = ctx.http(&ctx.cloud()?)?;
    let lanes: Vec<hybrid_trust::http::HttpClient> = (0..a.concurrency.div_ceil(100).clamp(1, 16))
        .map(|i| {
            if i == 0 {
                Ok(base.clone())
            } else {
                base.with_own_pool()
            }
        })
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::runtime(e, None))?;
    let session = |name: &str, i: usize| {
        ctx.session_on(name, lanes[i % lanes.len()].clone())
            .map_err(|f| format!("{:#}", f.error))
    };
    // Sign-in material first (an admin certificate's password may be asked for), not under the
    // bar; the sessions below reuse it.
    if let (Some(_), Some(t)) = (&ctx.global.client_cert, tenants.first()) {
        ctx.admin_credential(&t.domain)?;
    }
    let work = tenants.into_iter().zip(decisions).collect();
    let progress = super::progress::for_run(ctx.printer.json(), ctx.global.verbose);
    let results = super::runtime()?
        .block_on(renew_all::renew_many(
            &store,
            work,
            offered.as_ref(),
            policy,
            ctx.clock,
            ctx.global.dry_run,
            a.concurrency,
            &session,
            progress.as_ref(),
        ))
        .map_err(super::session_failure)?;
    let mut results = results;
    results.extend(damaged.iter().map(renew_all::TenantResult::damaged));
    let report = renew_all::RenewReport::new(ctx.global.dry_run, results);
    ctx.printer.emit(&report, || report.text());
    match report.failure() {
        Some((e, hint)) => Err(Failure::runtime(anyhow::anyhow!(e), Some(hint))),
        None => Ok(0),
    }
}
