//! `renew` over several tenants: the decisions planned for all (shown and confirmed once), then
//! each tenant carried out in isolation: a tenant that needs the network gets a session; one
//! that cannot have one fails alone and its failure is recorded in the ledger, where `status`
//! and reminders find it. The report renders as JSON and text.

use super::renewal::{self, Renewed, describe};
use super::{Session, SessionError};
use crate::cert::Certificate;
use crate::clock::Clock;
use crate::ledger::{CertRecord, LedgerStore, TenantRecord};
use crate::renew::{self, Decision, Policy};
use serde::Serialize;

/// One tenant's renewal as reported.
#[derive(Debug, Serialize)]
pub struct TenantResult {
    pub tenant: String,
    pub decision: Decision,
    /// `applied`, `nothing`, `blocked`, `dry-run`, `incomplete` (the new key is in, a later step
    /// could not be finished) or `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onprem_script: Option<String>,
    /// A damaged record's fix (the failure's hint), when this tenant could not even be read.
    #[serde(skip)]
    pub fix: Option<String>,
}

impl TenantResult {
    fn from_renewed(r: Renewed) -> TenantResult {
        let (outcome, error) = match r.outcome {
            Ok(o) => (o.to_string(), None),
            Err(e @ SessionError::Incomplete(_)) => {
                ("incomplete".to_string(), Some(format!("{e}")))
            }
            Err(e) => ("failed".to_string(), Some(format!("{e}"))),
        };
        TenantResult {
            tenant: r.tenant.domain.clone(),
            decision: r.decision,
            outcome,
            error,
            onprem_script: r.onprem_script.map(|p| p.display().to_string()),
            fix: None,
        }
    }

    /// A tenant whose ledger record could not be read (issue 24, item 7): failed, with the file
    /// and the fix; the other tenants were renewed without it.
    pub fn damaged(d: &crate::ledger::Damaged) -> TenantResult {
        TenantResult {
            tenant: d.tenant.clone(),
            decision: Decision::Blocked {
                reason: format!("its ledger record {} is damaged", d.path.display()),
                hint: d.hint.clone(),
            },
            outcome: "failed".to_string(),
            error: Some(d.error.clone()),
            onprem_script: None,
            fix: Some(d.hint.clone()),
        }
    }

    fn failed(&self) -> bool {
        matches!(self.outcome.as_str(), "failed" | "blocked" | "incomplete")
    }
}

/// Every tenant's renewal.
#[derive(Debug, Serialize)]
pub struct RenewReport {
    // In this order: the document `json!` wrote before (keys sorted).
    pub dry_run: bool,
    pub failed: usize,
    pub results: Vec<TenantResult>,
}

/// The decision for each tenant at `clock`'s now.
pub fn plan(
    tenants: &[TenantRecord],
    offered: Option<&Certificate>,
    clock: Clock,
    policy: Policy,
) -> Vec<Decision> {
    let offered = offered.map(CertRecord::from_cert);
    let now = clock.now();
    tenants
        .iter()
        .map(|t| renew::decide(t, offered.as_ref(), now, policy))
        .collect()
}

/// Carries out `d` on `t`: offline when it needs no tenant (or in a dry run), else in the
/// session `session` makes (named by the tenant id when the ledger has it); a session that
/// cannot be made is a failure of this tenant alone, recorded in the ledger.
#[allow(clippy::too_many_arguments)]
pub async fn renew_one(
    store: &LedgerStore,
    t: &TenantRecord,
    d: Decision,
    offered: Option<&Certificate>,
    policy: Policy,
    clock: Clock,
    dry_run: bool,
    session: impl FnOnce(&str) -> Result<Session, String>,
) -> Result<TenantResult, SessionError> {
    let renewed = if dry_run || !d.acts() {
        renewal::renew_offline(store, t, d, clock, dry_run).await?
    } else {
        let name = t.tenant_id.clone().unwrap_or_else(|| t.domain.clone());
        match session(&name) {
            Ok(mut s) => s.renew(t, d, offered, policy).await?,
            Err(msg) => {
                renewal::record_failure(store, t, &msg, clock.now()).await?;
                Renewed {
                    tenant: t.clone(),
                    decision: d,
                    outcome: Err(SessionError::Renewal(msg)),
                    onprem_script: None,
                }
            }
        }
    };
    Ok(TenantResult::from_renewed(renewed))
}

/// Renews many tenants at once, at most `concurrency` in flight (the waits for a new key's start
/// overlap), each in isolation; results in the tenants' order. `session(name, i)` makes the
/// session of the `i`-th tenant (the caller spreads them over connection pools).
///
/// So that runs on several hosts (or two here) share a fleet instead of queueing, each tenant's
/// lock is tried once; a tenant another run holds is set aside to wait for it (up to the
/// session's lock wait) while the free ones go on, and is decided afresh under its lock, so a
/// tenant the other run renewed meanwhile is found with nothing to do. A tenant still held when
/// the wait ends fails alone; the others are reported. At most `concurrency` tenants are tried at
/// once, and beside them at most `concurrency` wait for another run (each, once free, usually
/// found with nothing to do).
#[allow(clippy::too_many_arguments)]
pub async fn renew_many(
    store: &LedgerStore,
    work: Vec<(TenantRecord, Decision)>,
    offered: Option<&Certificate>,
    policy: Policy,
    clock: Clock,
    dry_run: bool,
    concurrency: usize,
    session: &(dyn Fn(&str, usize) -> Result<Session, String> + Sync),
    progress: &dyn crate::progress::Progress,
) -> Result<Vec<TenantResult>, SessionError> {
    use futures_util::StreamExt as _;
    progress.start("renewing tenants", work.len());
    let results: Vec<Option<Result<TenantResult, SessionError>>> =
        work.iter().map(|_| None).collect();
    // Where this run starts in the fleet: runs sharing the team's database at the same moment
    // start apart and meet in the middle, instead of contending for the same tenants in the
    // same order (where the first run takes every lock and the others wait).
    let (_slot, start) = match store.db() {
        Some(pg) if !dry_run && work.len() > 1 => match pg.run_slot().await {
            Some((lock, slot)) => (Some(lock), spread(slot, work.len())),
            None => (None, 0),
        },
        _ => (None, 0),
    };
    let n = work.len();
    let mut order: Vec<_> = work.into_iter().enumerate().collect();
    order.rotate_left(start.min(n));
    // Tenants another run holds wait beside the others (their own `concurrency` of waits, each
    // a few bytes and a share of one poll), so each is decided again as soon as the holder lets
    // go, not after this run's last free tenant.
    // One tenant, its lock waited for as the session says, or not at all (`Some(ZERO)`).
    let attempt = |i: usize, t: &TenantRecord, d: &Decision, wait: Option<std::time::Duration>| {
        let (t, d) = (t.clone(), d.clone());
        async move {
            renew_one(store, &t, d, offered, policy, clock, dry_run, |name| {
                session(name, i).map(|s| match wait {
                    Some(w) => s.with_lock_wait(w),
                    None => s,
                })
            })
            .await
        }
    };
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    let first = async move {
        let held_tx = held_tx;
        let mut done = Vec::new();
        let mut tries = futures_util::stream::iter(order)
            .map(|(i, (t, d))| async move {
                let r = attempt(i, &t, &d, Some(std::time::Duration::ZERO)).await;
                (i, t, d, r)
            })
            .buffer_unordered(concurrency.max(1));
        while let Some((i, t, d, r)) = tries.next().await {
            match r {
                Err(SessionError::Lock(e)) if e.is_busy() => {
                    let _ = held_tx.send((i, t, d));
                }
                r => {
                    progress.done(&t.domain);
                    done.push((i, r));
                }
            }
        }
        done
    };
    let second = futures_util::stream::poll_fn(|cx| held_rx.poll_recv(cx))
        .map(|(i, t, d): (usize, TenantRecord, Decision)| async move {
            let r = attempt(i, &t, &d, None).await;
            progress.done(&t.domain);
            let r = match r {
                Err(SessionError::Lock(e)) if e.is_busy() => Ok(TenantResult {
                    tenant: t.domain.clone(),
                    decision: d,
                    outcome: "failed".to_string(),
                    error: Some(format!("{e}: this run left the tenant alone")),
                    onprem_script: None,
                    fix: None,
                }),
                r => r,
            };
            (i, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>();
    let (first, second) = futures_util::future::join(first, second).await;
    progress.finish();
    let mut all: Vec<Option<Result<TenantResult, SessionError>>> = results;
    for (i, r) in first.into_iter().chain(second) {
        all[i] = Some(r);
    }
    // The first error in the fleet's order, as before the tenants ran apart.
    all.into_iter().flatten().collect()
}

/// Where the run in `slot` (0 for the first run at the moment, 1 for the second, …) starts in a
/// fleet of `n`: 0, then n/2, n/4, 3n/4, … (the slot's bits reversed), so any number of runs
/// start as far apart as they can.
pub fn spread(slot: usize, n: usize) -> usize {
    let bits = (slot as u64 & 63).reverse_bits() >> 58;
    (n as u64 * bits / 64) as usize
}

impl RenewReport {
    pub fn new(dry_run: bool, results: Vec<TenantResult>) -> RenewReport {
        let failed = results.iter().filter(|r| r.failed()).count();
        RenewReport {
            dry_run,
            results,
            failed,
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for r in &self.results {
            s.push_str(&format!(
                "{}: {} [{}]\n",
                r.tenant,
                describe(&r.decision),
                r.outcome
            ));
            if let Some(e) = &r.error {
                s.push_str(&format!("  error: {e}\n"));
            }
            if let Some(p) = &r.onprem_script {
                s.push_str(&format!(
                    "  on-prem step written to {p}: run it on a Front End\n"
                ));
            }
        }
        s.push_str(&format!(
            "{} tenant(s), {} failed or blocked\n",
            self.results.len(),
            self.failed
        ));
        s
    }

    /// When some tenants failed or were blocked: the error line and its hint.
    pub fn failure(&self) -> Option<(String, String)> {
        let r = self.results.iter().find(|r| r.failed())?;
        let first = format!(
            "{}: {}",
            r.tenant,
            r.error.clone().unwrap_or_else(|| describe(&r.decision))
        );
        let hint = match self.results.iter().find_map(|r| r.fix.as_ref()) {
            Some(fix) => format!("a damaged record: {fix}; other failures are recorded in the ledger and reported by remind"),
            None => "each failure is recorded in the ledger and reported by remind; fix the cause and run renew again".to_string(),
        };
        Some((
            format!(
                "{} of {} tenant(s) could not be renewed (first: {first})",
                self.failed,
                self.results.len()
            ),
            hint,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn runs_start_as_far_apart_as_they_can() {
        let starts: Vec<usize> = (0..5).map(|s| spread(s, 1000)).collect();
        assert_eq!(starts, vec![0, 500, 250, 750, 125]);
        assert_eq!(spread(1, 1), 0);
        assert_eq!(spread(63, 64), 63);
        assert!((0..64).all(|s| spread(s, 10) < 10));
    }
}
