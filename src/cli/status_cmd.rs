//! `status` (docs/contract.md): every tenant's state from the ledger, or `--live` from the tenants;
//! `--check` for Nagios/Icinga; table, JSON, Prometheus textfile or iCalendar.

use super::{Context, Failure};
use hybrid_trust::ledger::TenantRecord;
use hybrid_trust::status::{self, Thresholds};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
    Prometheus,
    Ics,
    Html,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust status --all\n  hybrid-trust status --all --check --warn-days 30 --crit-days 7     # Nagios/Icinga\n  hybrid-trust status --all --format prometheus > /var/lib/node_exporter/textfile_collector/hybrid_trust.prom\n  hybrid-trust status --all --format ics > hybrid-trust.ics\n  hybrid-trust status --all --format html --out fleet.html\n  hybrid-trust --as-of 2027-03-01T00:00:00Z status --all        # what will be due on 1 March?"
)]
pub struct StatusArgs {
    /// One tenant (domain or id).
    #[arg(long, conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Every tenant in the ledger (the default).
    #[arg(long)]
    pub all: bool,
    /// Monitoring mode: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[arg(long)]
    pub check: bool,
    /// `due` / WARNING at or under this many days.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub warn_days: i64,
    /// `expiring` / CRITICAL at or under this many days.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub crit_days: i64,
    /// Re-read the keys from the tenants and report drift from the ledger.
    #[arg(long)]
    pub live: bool,
    // 1,000: a fleet of that size is read in one wave (scripts/bench.sh, README "Performance").
    // What it costs: ~20 KB per tenant in flight (42 MB peak at 1,000) and one HTTP/2 stream,
    // over ceil(N/100) connections per host (hybrid_trust::fleet). What it asks of Microsoft: one token
    // per tenant (Entra's limits are per tenant) and one Graph read per tenant and application,
    // a burst far below Graph's global limit of 130,000 requests per 10 s per application
    // across tenants (learn.microsoft.com/graph/throttling-limits).
    /// Tenants read at once with --live.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub concurrency: usize,
    #[arg(long, value_enum)]
    pub format: Option<StatusFormat>,
    /// Write the output to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(ctx: &Context, a: StatusArgs) -> Result<u8, Failure> {
    if !a.check {
        return report(ctx, a);
    }
    // A monitoring check that cannot run is UNKNOWN (3), never CRITICAL (2, the code of bad
    // usage elsewhere): the Nagios plugin guidelines give UNKNOWN to invalid arguments and to
    // failures of the check itself. One line on stdout (JSON with --output json), the hint on
    // stderr. (Arguments clap itself cannot parse still exit 2 before this runs.)
    report(ctx, a).or_else(|f| {
        let line = format!(
            "HYBRID-TRUST UNKNOWN - {}",
            hybrid_trust::terminal::display_safe(&format!("{:#}", f.error))
        );
        let json =
            serde_json::json!({"status": "UNKNOWN", "code": 3, "summary": line, "tenants": []});
        ctx.printer.emit(&json, || format!("{line}\n"));
        if let Some(h) = &f.hint {
            ctx.printer.note(&format!("hint: {h}"));
        }
        Ok(3)
    })
}

fn report(ctx: &Context, a: StatusArgs) -> Result<u8, Failure> {
    if a.crit_days > a.warn_days || a.crit_days < 0 {
        return Err(Failure::input(
            anyhow::anyhow!(
                "--crit-days {} must be between 0 and --warn-days {}",
                a.crit_days,
                a.warn_days
            ),
            None,
        ));
    }
    if ctx.printer.json() && a.format.is_some_and(|f| f != StatusFormat::Json) {
        return Err(Failure::input(
            anyhow::anyhow!(
                "--format {:?} conflicts with --output json",
                a.format.unwrap_or(StatusFormat::Json)
            ),
            Some("use one of them: --output json prints one JSON document".to_string()),
        ));
    }
    let th = Thresholds {
        warn_days: a.warn_days,
        crit_days: a.crit_days,
    };
    let ledger = ctx.ledger()?;
    // A damaged record is shown as a problem of its own tenant; the others are reported.
    let (mut tenants, damaged): (Vec<TenantRecord>, _) = match &a.tenant {
        Some(t) => (
            vec![ledger.tenant(t).cloned().ok_or_else(|| {
                ctx.named_tenant_missing(
                    t,
                    Failure::input(
                        anyhow::anyhow!("{t} is not in the ledger"),
                        Some("add it with hybrid-trust tenant add, or onboard it".to_string()),
                    ),
                )
            })?],
            Vec::new(),
        ),
        None => (ledger.tenants.clone(), ledger.damaged.clone()),
    };
    let live = if a.live {
        let cloud = ctx.cloud()?;
        let http = ctx.http(&cloud)?;
        let cred = ctx.admin_credential(a.tenant.as_deref().unwrap_or("*"))?;
        let progress = super::progress::for_run(ctx.printer.json(), ctx.global.verbose);
        let refresh = hybrid_trust::fleet::refresh(
            &mut tenants,
            &cloud,
            &http,
            &cred,
            a.concurrency,
            progress.as_ref(),
            ctx.now,
        );
        Some(super::runtime()?.block_on(refresh))
    } else {
        None
    };
    // The settings: advisories acknowledged, thresholds for ics (--check does without them).
    let settings = (!a.check)
        .then(|| ctx.settings())
        .transpose()?
        .unwrap_or_default();
    let fleet = status::Fleet::new(tenants, live, ctx.now, th)
        .with_acknowledged(settings.advisories.acknowledged.clone())
        .with_damaged(damaged);
    if a.check {
        let (code, line, json) = fleet.check(th);
        ctx.printer.emit(&json, || line.clone());
        return Ok(code);
    }
    let format = a.format.unwrap_or(if ctx.printer.json() {
        StatusFormat::Json
    } else {
        StatusFormat::Table
    });
    let out = match format {
        StatusFormat::Json => format!("{:#}\n", fleet.json()),
        StatusFormat::Table => fleet.table(),
        StatusFormat::Prometheus => hybrid_trust::report::prometheus(&fleet.pairs(), ctx.now),
        StatusFormat::Ics => fleet.ics(&settings.reminders.thresholds_days),
        StatusFormat::Html => fleet.html(),
    };
    match &a.out {
        Some(p) => super::files::write_new_file(p, out.as_bytes(), true)?,
        None => ctx.printer.raw(&out),
    }
    if let Some(f) = super::ledger_rec::damaged_failure(&fleet.damaged) {
        return Err(f);
    }
    match fleet.live_failure() {
        Some((e, hint)) => Err(Failure::runtime(anyhow::anyhow!(e), Some(hint))),
        None => Ok(0),
    }
}
