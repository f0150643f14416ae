//! One `remind` run: for each channel, the tenants grouped by recipients (a tenant's own
//! `notify` list, or the channel's), one [`Digest`] per group, sent once; each entry of a digest
//! that was delivered is recorded in the ledger at once ([`TenantRecord::mark_reminded`]), so a
//! crash never sends it twice; a failed delivery records nothing and the next run retries it.
//! Microsoft's dated changes ride in the same digests, each once at 60 and once at 14 days ahead
//! per tenant and channel ([`crate::advisories::due_reminders`], recorded as `advisory/<id>`).
//!
//! Overlapping runs (the timer and an admin by hand) must not both send what they both planned:
//! the caller holds the reminders lock ([`lock`]) from reading the ledger to the last mark, so
//! the second run plans from what the first recorded and sends only what is still due. It is a
//! lock of its own, not the tenants' locks `renew` takes: a digest covers many tenants (up to
//! the whole fleet), so holding their locks across a send would stall `renew` for as long as a
//! slow server takes, and open one file per tenant at once. The cost is that a second `remind`
//! waits for the first; every message has a deadline (webhooks and Graph the HTTP client's,
//! SMTP `timeout_secs`), so that wait is bounded, and it gives up after [`LOCK_TIMEOUT`].

use crate::advisories::{AdvisoryDue, due_reminders_for, ledger_key};
use crate::clock::Clock;
use crate::ledger::{LedgerError, LedgerStore, ReminderSent, TenantRecord};
use crate::notify::Notifier;
use crate::remind::{Digest, Due, due};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// How long a run waits for another run's reminders lock before it gives up (exit 1, nothing
/// sent: the next run sends what is due).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// Takes the reminders lock of `state_dir` (waiting up to `timeout` for another run): hold it
/// from reading the ledger for [`run`] until `run` returns.
pub fn lock(
    state_dir: &std::path::Path,
    timeout: Duration,
) -> Result<crate::lock::TenantLock, crate::lock::LockError> {
    crate::lock::TenantLock::reminders(state_dir, timeout)
}

/// [`lock`] of a team's database (`--state-url`): one `remind` run at a time on every host, so
/// two hosts running `remind --all` together deliver each reminder once.
pub fn lock_db(
    pg: &crate::state::pg::PgState,
    timeout: Duration,
) -> Result<crate::lock::TenantLock, crate::lock::LockError> {
    crate::lock::TenantLock::reminders_db(pg, timeout)
}

/// One digest delivered (or, in a dry run, planned).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    /// The tenant-specific recipients (empty: the channel's own).
    pub recipients: Vec<String>,
    pub subject: String,
    pub entries: Vec<Due>,
    /// Microsoft's dated changes in this digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<AdvisoryDue>,
    /// Which tenant (domain, id) each advisory is recorded on once delivered.
    #[serde(skip)]
    pub advisory_marks: Vec<AdvisoryMark>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub channel: String,
    pub tenants: Vec<String>,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub sent: Vec<Delivery>,
    pub planned: Vec<Delivery>,
    pub failed: Vec<Failed>,
}

impl Report {
    /// Entries (tenant reminders) in the digests sent.
    pub fn sent_entries(&self) -> usize {
        self.sent.iter().map(|d| d.entries.len()).sum()
    }

    /// Entries in the digests planned (a dry run).
    pub fn planned_entries(&self) -> usize {
        self.planned.iter().map(|d| d.entries.len()).sum()
    }

    /// The `remind --output json` document: one object per entry sent or planned (as before
    /// digests: tenant, channel, threshold), the failures, the advisories each message carried,
    /// and the number of messages.
    pub fn json(&self, dry_run: bool) -> serde_json::Value {
        use serde_json::json;
        let sent: Vec<serde_json::Value> = self
            .sent
            .iter()
            .flat_map(|d| {
                d.entries.iter().map(|e| json!({"tenant": e.tenant, "channel": d.channel, "threshold_days": e.threshold_days, "kind": e.kind, "subject": d.subject}))
            })
            .collect();
        let planned: Vec<serde_json::Value> = self
            .planned
            .iter()
            .flat_map(|d| {
                d.entries.iter().map(|e| json!({"channel": d.channel, "recipients": d.recipients, "message": e, "subject": d.subject}))
            })
            .collect();
        let advisories: Vec<serde_json::Value> = self
            .sent
            .iter()
            .chain(&self.planned)
            .flat_map(|d| {
                d.advisories.iter().map(|a| json!({"id": a.id, "channel": d.channel, "threshold_days": a.threshold_days, "subject": d.subject}))
            })
            .collect();
        json!({"dry_run": dry_run, "sent": sent, "failed": self.failed, "planned": planned, "advisories": advisories, "messages": self.sent.len() + self.planned.len()})
    }
}

impl TenantRecord {
    /// Records that `d` was delivered on `channel`: each threshold it covers, once; a problem's
    /// message as reported.
    pub fn mark_reminded(&mut self, d: &Due, channel: &str, now: DateTime<Utc>) {
        for th in &d.covers {
            self.reminders_sent.push(ReminderSent {
                credential: d.credential.clone(),
                threshold_days: *th,
                channel: channel.to_string(),
                sent_at: now,
                sent_by: None,
            });
        }
        let failure = if d.is_exchange() {
            self.exchange
                .as_mut()
                .and_then(|x| x.last_renewal_failure.as_mut())
        } else {
            self.last_renewal_failure.as_mut()
        };
        if d.kind == crate::remind::Kind::RenewalFailure
            && let Some(f) = failure
        {
            f.reported = true;
        }
    }
}

impl TenantRecord {
    /// Records that advisory `a` was delivered on `channel`: each threshold it covers.
    pub fn mark_advisory(&mut self, a: &AdvisoryDue, channel: &str, now: DateTime<Utc>) {
        for th in &a.covers {
            self.reminders_sent.push(ReminderSent {
                credential: ledger_key(a.id),
                threshold_days: *th,
                channel: channel.to_string(),
                sent_at: now,
                sent_by: None,
            });
        }
    }

    /// The advisories due for this tenant on `channel` at `now`, less the acknowledged.
    fn advisories_due(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        ack: &[String],
    ) -> Vec<AdvisoryDue> {
        let sent: Vec<(String, i64)> = self
            .reminders_sent
            .iter()
            .filter(|r| r.channel == channel)
            .filter_map(|r| {
                let id = r.credential.strip_prefix("advisory/")?;
                Some((id.to_string(), r.threshold_days))
            })
            .collect();
        due_reminders_for(
            &self.cloud,
            (self.has_sfb(), self.exchange.is_some()),
            now,
            &sent,
        )
        .into_iter()
        .filter(|a| !ack.iter().any(|k| k == a.id))
        .collect()
    }
}

/// An advisory due for a tenant (domain, tenant id).
pub type AdvisoryMark = (String, Option<String>, AdvisoryDue);

/// One group of a channel: recipients, entries, advisories by tenant.
type Group = (Vec<String>, Vec<Due>, Vec<AdvisoryMark>);

/// The digests due now: per channel, per set of recipients, the entries of every tenant and the
/// advisories due for any of them (`acknowledged` ones left out).
pub fn plan(
    tenants: &[TenantRecord],
    notifiers: &[Box<dyn Notifier>],
    thresholds: &[i64],
    now: DateTime<Utc>,
    acknowledged: &[String],
) -> Vec<(usize, Delivery)> {
    let mut out: Vec<(usize, Delivery)> = Vec::new();
    for (i, n) in notifiers.iter().enumerate() {
        let id = n.id();
        let mut groups: Vec<Group> = Vec::new();
        for t in tenants {
            let entries = due(t, thresholds, &id, now);
            let advisories: Vec<AdvisoryMark> = t
                .advisories_due(&id, now, acknowledged)
                .into_iter()
                .map(|a| (t.domain.clone(), t.tenant_id.clone(), a))
                .collect();
            if entries.is_empty() && advisories.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(r, _, _)| *r == t.notify) {
                Some((_, e, a)) => {
                    e.extend(entries);
                    a.extend(advisories);
                }
                None => groups.push((t.notify.clone(), entries, advisories)),
            }
        }
        for (recipients, entries, marks) in groups {
            let mut advisories: Vec<AdvisoryDue> = Vec::new();
            for (_, _, a) in &marks {
                match advisories.iter_mut().find(|x| x.id == a.id) {
                    // The nearest threshold any tenant is at.
                    Some(x) if a.threshold_days < x.threshold_days => *x = a.clone(),
                    Some(_) => {}
                    None => advisories.push(a.clone()),
                }
            }
            let digest = Digest::new(entries).with_advisories(advisories);
            out.push((
                i,
                Delivery {
                    channel: id.clone(),
                    recipients,
                    subject: digest.subject(),
                    entries: digest.entries,
                    advisories: digest.advisories,
                    advisory_marks: marks,
                },
            ));
        }
    }
    out
}

/// Records the delivery `d` in each of its tenants' records (one tenant file at a time): its
/// entries and the advisories it carried for them.
pub fn mark(store: &LedgerStore, d: &Delivery, now: DateTime<Utc>) -> Result<(), LedgerError> {
    // Each tenant's record is its own file: they are written on a few threads, so the waits for
    // the disk (one fsync per file) overlap.
    type Marks<'a> = (&'a str, Option<&'a str>, Vec<&'a Due>, Vec<&'a AdvisoryDue>);
    let mut by_tenant: Vec<Marks<'_>> = Vec::new();
    // A damaged record's entry has nothing to record (and no record to record it in).
    for e in d
        .entries
        .iter()
        .filter(|e| !e.credential.starts_with(DAMAGED))
    {
        match by_tenant.iter_mut().find(|(t, _, _, _)| *t == e.tenant) {
            Some((_, _, es, _)) => es.push(e),
            None => by_tenant.push((&e.tenant, e.tenant_id.as_deref(), vec![e], Vec::new())),
        }
    }
    for (tenant, id, a) in &d.advisory_marks {
        match by_tenant.iter_mut().find(|(t, _, _, _)| t == tenant) {
            Some((_, _, _, al)) => al.push(a),
            None => by_tenant.push((tenant, id.as_deref(), Vec::new(), vec![a])),
        }
    }
    // In a team's database the records say which host sent it.
    let host = store.db().map(|pg| pg.host().to_string());
    let host = &host;
    let workers = by_tenant.len().clamp(1, 8);
    let chunk = by_tenant.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = by_tenant
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    for (t, id, entries, advisories) in part {
                        store.update(t, *id, Duration::from_secs(30), |l| {
                            if let Some(rec) = l.tenant_mut(t) {
                                let from = rec.reminders_sent.len();
                                for e in entries {
                                    rec.mark_reminded(e, &d.channel, now);
                                }
                                for a in advisories {
                                    rec.mark_advisory(a, &d.channel, now);
                                }
                                for r in &mut rec.reminders_sent[from..] {
                                    r.sent_by.clone_from(host);
                                }
                            }
                        })?;
                    }
                    Ok::<(), LedgerError>(())
                })
            })
            .collect();
        handles
            .into_iter()
            // A writer thread that died is a failed write, never a silent success: the
            // delivery's other records stand, and the next run re-sends what was not recorded.
            .try_for_each(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LedgerError::Write {
                        path: store.path().to_path_buf(),
                        source: std::io::Error::other("a ledger writer thread failed"),
                    })
                })
            })
    })
}

/// Sends what is due (or plans it, in a dry run), at most `concurrency` messages in flight, and
/// records each delivery in the ledger as soon as it succeeds.
#[allow(
    clippy::too_many_arguments,
    reason = "the run's inputs as the command line has them; a settings struct would only rename them"
)]
pub async fn run(
    store: &LedgerStore,
    tenants: &[TenantRecord],
    notifiers: &[Box<dyn Notifier>],
    thresholds: &[i64],
    clock: Clock,
    dry_run: bool,
    concurrency: usize,
    acknowledged: &[String],
    progress: &dyn crate::progress::Progress,
) -> Result<Report, LedgerError> {
    run_with_damaged(
        store,
        tenants,
        &[],
        notifiers,
        thresholds,
        clock,
        dry_run,
        concurrency,
        acknowledged,
        progress,
    )
    .await
}

/// What a ledger record that cannot be read (issue 24, item 7) is reminded as: a problem of its
/// tenant, with the file and the fix, on every run until it is mended (nothing can be recorded
/// in a record that does not parse, so it is never marked sent).
pub fn damaged_entry(d: &crate::ledger::Damaged) -> Due {
    Due {
        tenant: d.tenant.clone(),
        tenant_id: None,
        kind: crate::remind::Kind::RenewalFailure,
        credential: format!("{DAMAGED}{}", d.path.display()),
        app_id: String::new(),
        thumbprint_sha1: String::new(),
        ends: None,
        days_left: None,
        threshold_days: crate::remind::FAILURE_THRESHOLD,
        covers: Vec::new(),
        detail: format!("nothing can be renewed or reminded for it: {}", d.error),
        state: "damaged".to_string(),
        action: d.hint.clone(),
        roll: None,
    }
}

/// The `credential` of a damaged record's entry.
const DAMAGED: &str = "damaged-record/";

/// Adds the damaged records' entries to each channel's digest for its own recipients.
fn with_damaged(
    mut planned: Vec<(usize, Delivery)>,
    damaged: &[crate::ledger::Damaged],
    notifiers: &[Box<dyn Notifier>],
) -> Vec<(usize, Delivery)> {
    if damaged.is_empty() {
        return planned;
    }
    let entries: Vec<Due> = damaged.iter().map(damaged_entry).collect();
    for (i, n) in notifiers.iter().enumerate() {
        let at = planned
            .iter()
            .position(|(j, d)| *j == i && d.recipients.is_empty());
        let (advisories, marks, mut all) = match at {
            Some(k) => {
                let (_, d) = planned.remove(k);
                (d.advisories, d.advisory_marks, d.entries)
            }
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        all.extend(entries.iter().cloned());
        let digest = Digest::new(all).with_advisories(advisories);
        planned.push((
            i,
            Delivery {
                channel: n.id(),
                recipients: Vec::new(),
                subject: digest.subject(),
                entries: digest.entries,
                advisories: digest.advisories,
                advisory_marks: marks,
            },
        ));
    }
    planned
}

/// [`run`], with the tenant records the ledger could not read reminded as problems.
#[allow(
    clippy::too_many_arguments,
    reason = "the run's inputs as the command line has them; a settings struct would only rename them"
)]
pub async fn run_with_damaged(
    store: &LedgerStore,
    tenants: &[TenantRecord],
    damaged: &[crate::ledger::Damaged],
    notifiers: &[Box<dyn Notifier>],
    thresholds: &[i64],
    clock: Clock,
    dry_run: bool,
    concurrency: usize,
    acknowledged: &[String],
    progress: &dyn crate::progress::Progress,
) -> Result<Report, LedgerError> {
    use futures_util::StreamExt as _;
    let mut report = Report::default();
    let planned = with_damaged(
        plan(tenants, notifiers, thresholds, clock.now(), acknowledged),
        damaged,
        notifiers,
    );
    if dry_run {
        report.planned = planned.into_iter().map(|(_, d)| d).collect();
        return Ok(report);
    }
    progress.start("sending reminders", planned.len());
    let mut sends = futures_util::stream::iter(planned.into_iter().enumerate())
        .map(|(order, (i, d))| async move {
            let digest = Digest {
                entries: d.entries.clone(),
                advisories: d.advisories.clone(),
            };
            let r = notifiers[i].send(&digest, &d.recipients).await;
            (order, d, r)
        })
        .buffer_unordered(concurrency.max(1));
    let mut sent = Vec::new();
    while let Some((order, d, r)) = sends.next().await {
        progress.done(&d.channel);
        match r {
            Ok(()) => {
                mark(store, &d, clock.now())?;
                sent.push((order, d));
            }
            Err(e) => {
                let mut tenants: Vec<String> = d
                    .entries
                    .iter()
                    .map(|e| e.tenant.clone())
                    .chain(d.advisory_marks.iter().map(|(t, _, _)| t.clone()))
                    .collect();
                tenants.dedup();
                report.failed.push(Failed {
                    channel: d.channel,
                    tenants,
                    error: e.to_string(),
                });
            }
        }
    }
    progress.finish();
    sent.sort_by_key(|(o, _)| *o);
    report.sent = sent.into_iter().map(|(_, d)| d).collect();
    Ok(report)
}
