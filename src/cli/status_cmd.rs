//! `status` (CONTRACT.md): every tenant's state from the ledger, or `--live` from the tenants;
//! `--check` for Nagios/Icinga; table, JSON, Prometheus textfile or iCalendar.

use super::{Context, Failure};
use crate::ledger::TenantRecord;
use crate::status::{self, TenantStatus, Thresholds};
use std::io::IsTerminal as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
    Prometheus,
    Ics,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust status --all\n  hybrid-trust status --all --check --warn-days 30 --crit-days 7     # Nagios/Icinga\n  hybrid-trust status --all --format prometheus > /var/lib/node_exporter/textfile_collector/hybrid_trust.prom\n  hybrid-trust status --all --format ics > hybrid-trust.ics\n  hybrid-trust --as-of 2027-03-01T00:00:00Z status --all        # what will be due on 1 March?"
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
    // over ceil(N/100) connections per host (crate::fleet). What it asks of Microsoft: one token
    // per tenant (Entra's limits are per tenant) and one Graph read per tenant and application,
    // a burst far below Graph's global limit of 130,000 requests per 10 s per application
    // across tenants (learn.microsoft.com/graph/throttling-limits).
    /// Tenants read at once with --live.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub concurrency: usize,
    #[arg(long, value_enum)]
    pub format: Option<StatusFormat>,
}

pub fn run(ctx: &Context, a: StatusArgs) -> Result<u8, Failure> {
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
    let ledger = match ctx.ledger() {
        Ok(l) => l,
        Err(f) if a.check => {
            ctx.printer
                .raw(&format!("HYBRID-TRUST UNKNOWN - {}\n", f.error));
            return Ok(3);
        }
        Err(f) => return Err(f),
    };
    let mut tenants: Vec<TenantRecord> = match &a.tenant {
        Some(t) => vec![ledger.tenant(t).cloned().ok_or_else(|| {
            Failure::input(
                anyhow::anyhow!("{t} is not in the ledger"),
                Some("add it with hybrid-trust tenant add, or onboard it".to_string()),
            )
        })?],
        None => ledger.tenants.clone(),
    };
    let mut drift = vec![Vec::new(); tenants.len()];
    let mut live_errors: Vec<Option<String>> = vec![None; tenants.len()];
    let mut first_hint: Option<String> = None;
    if a.live {
        let cloud = ctx.cloud()?;
        let http = ctx.http(&cloud)?;
        let cred = ctx.admin_credential(a.tenant.as_deref().unwrap_or("*"))?;
        let tty = std::io::stderr().is_terminal() && !ctx.printer.json();
        let progress = move |done: usize, total: usize| {
            if tty {
                eprint!("\rreading tenants: {done}/{total}");
                if done == total {
                    eprintln!();
                }
            }
        };
        let rt = super::runtime()?;
        let results = rt.block_on(crate::fleet::read_all(
            &tenants,
            &cloud,
            &http,
            &cred,
            a.concurrency,
            &progress,
        ));
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(live) => {
                    let (rec, d) = crate::fleet::apply_live(&tenants[i], &live, ctx.now);
                    tenants[i] = rec;
                    drift[i] = d;
                }
                Err(e) => {
                    first_hint.get_or_insert_with(|| e.hint());
                    live_errors[i] = Some(e.to_string());
                }
            }
        }
    }
    let statuses: Vec<TenantStatus> = tenants
        .iter()
        .map(|t| status::evaluate(t, ctx.now, th))
        .collect();

    if a.check {
        let errors = live_errors.iter().filter(|e| e.is_some()).count();
        let (code, line) = status::check_line(&statuses, errors, th);
        if ctx.printer.json() {
            let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code.min(3))];
            ctx.printer.emit(&serde_json::json!({"status": word, "code": code, "summary": line.trim_end(), "tenants": statuses}), String::new);
        } else {
            ctx.printer.raw(&line);
        }
        return Ok(code);
    }
    let format = a.format.unwrap_or(if ctx.printer.json() {
        StatusFormat::Json
    } else {
        StatusFormat::Table
    });
    match format {
        StatusFormat::Json => {
            let list: Vec<serde_json::Value> = statuses
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    if a.live {
                        v["drift"] = serde_json::json!(drift[i]);
                        v["live_error"] = serde_json::json!(live_errors[i]);
                    }
                    v
                })
                .collect();
            let out = serde_json::json!({"as_of": ctx.now, "live": a.live, "tenants": list});
            ctx.printer.raw(&format!(
                "{}\n",
                serde_json::to_string_pretty(&out).unwrap_or_default()
            ));
        }
        StatusFormat::Table => {
            let rows: Vec<(TenantStatus, String)> = statuses
                .iter()
                .cloned()
                .zip(tenants.iter().map(|t| crate::report::timeline(t, ctx.now)))
                .collect();
            let mut s = crate::report::table(&rows);
            for (i, t) in tenants.iter().enumerate() {
                for d in &drift[i] {
                    s.push_str(&format!(
                        "drift {}: {} {} ({})\n",
                        t.domain, d.app_id, d.thumbprint_sha1, d.kind
                    ));
                }
                if let Some(e) = &live_errors[i] {
                    s.push_str(&format!("could not read {}: {e}\n", t.domain));
                }
            }
            ctx.printer.raw(&s);
        }
        StatusFormat::Prometheus => {
            let pairs: Vec<(&TenantRecord, TenantStatus)> =
                tenants.iter().zip(statuses.iter().cloned()).collect();
            ctx.printer.raw(&crate::report::prometheus(&pairs, ctx.now));
        }
        StatusFormat::Ics => {
            let pairs: Vec<(&TenantRecord, TenantStatus)> =
                tenants.iter().zip(statuses.iter().cloned()).collect();
            let thresholds = ctx.settings()?.reminders.thresholds_days;
            ctx.printer
                .raw(&crate::report::ics(&pairs, &thresholds, ctx.now));
        }
    }
    if let Some((i, e)) = live_errors
        .iter()
        .enumerate()
        .find_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    {
        let n = live_errors.iter().filter(|e| e.is_some()).count();
        return Err(Failure::runtime(
            anyhow::anyhow!(
                "{n} tenant(s) could not be read live (first: {}: {e})",
                tenants[i].domain
            ),
            Some(format!(
                "the others are shown; {}",
                first_hint.unwrap_or_else(|| {
                    "check the admin identity's access to those tenants".to_string()
                })
            )),
        ));
    }
    Ok(0)
}
