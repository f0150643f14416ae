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
/// Two passes, so that runs on several hosts (or two here) share a fleet instead of queueing:
/// the first tries each tenant's lock once and leaves a tenant another run holds for later; the
/// second waits for those (up to the session's lock wait) and decides each afresh under its
/// lock, so a tenant the other run renewed meanwhile is found with nothing to do. A tenant still
/// held when the wait ends fails alone; the others are reported.
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
    let mut results: Vec<Option<TenantResult>> = work.iter().map(|_| None).collect();
    let mut later = Vec::new();
    let first: Vec<_> = futures_util::stream::iter(work.into_iter().enumerate())
        .map(|(i, (t, d))| async move {
            let r = renew_one(
                store,
                &t,
                d.clone(),
                offered,
                policy,
                clock,
                dry_run,
                |name| session(name, i).map(|s| s.with_lock_wait(std::time::Duration::ZERO)),
            )
            .await;
            if !matches!(&r, Err(SessionError::Lock(e)) if e.is_busy()) {
                progress.done(&t.domain);
            }
            (i, t, d, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (i, t, d, r) in first {
        match r {
            Err(SessionError::Lock(e)) if e.is_busy() => later.push((i, (t, d))),
            r => results[i] = Some(r?),
        }
    }
    let second: Vec<_> = futures_util::stream::iter(later)
        .map(|(i, (t, d))| async move {
            let r = renew_one(
                store,
                &t,
                d.clone(),
                offered,
                policy,
                clock,
                dry_run,
                |name| session(name, i),
            )
            .await;
            progress.done(&t.domain);
            (i, t, d, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (i, t, d, r) in second {
        results[i] = Some(match r {
            Err(SessionError::Lock(e)) if e.is_busy() => TenantResult {
                tenant: t.domain.clone(),
                decision: d,
                outcome: "failed".to_string(),
                error: Some(format!("{e}: this run left the tenant alone")),
                onprem_script: None,
                fix: None,
            },
            r => r?,
        });
    }
    progress.finish();
    Ok(results.into_iter().flatten().collect())
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
