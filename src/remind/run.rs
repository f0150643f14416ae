//! One `remind` run: for each channel, the tenants grouped by recipients (a tenant's own
//! `notify` list, or the channel's), one [`Digest`] per group, sent once; each entry of a digest
//! that was delivered is recorded in the ledger at once ([`TenantRecord::mark_reminded`]), so a
//! crash never sends it twice; a failed delivery records nothing and the next run retries it.

use super::{Digest, Due, due};
use crate::clock::Clock;
use crate::ledger::{LedgerError, LedgerStore, ReminderSent, TenantRecord};
use crate::notify::Notifier;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// One digest delivered (or, in a dry run, planned).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    /// The tenant-specific recipients (empty: the channel's own).
    pub recipients: Vec<String>,
    pub subject: String,
    pub entries: Vec<Due>,
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
            });
        }
        if d.kind == super::Kind::RenewalFailure
            && let Some(f) = self.last_renewal_failure.as_mut()
        {
            f.reported = true;
        }
    }
}

/// The digests due now: per channel, per set of recipients, the entries of every tenant.
pub fn plan(
    tenants: &[TenantRecord],
    notifiers: &[Box<dyn Notifier>],
    thresholds: &[i64],
    now: DateTime<Utc>,
) -> Vec<(usize, Delivery)> {
    let mut out: Vec<(usize, Delivery)> = Vec::new();
    for (i, n) in notifiers.iter().enumerate() {
        let id = n.id();
        let mut groups: Vec<(Vec<String>, Vec<Due>)> = Vec::new();
        for t in tenants {
            let entries = due(t, thresholds, &id, now);
            if entries.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(r, _)| *r == t.notify) {
                Some((_, e)) => e.extend(entries),
                None => groups.push((t.notify.clone(), entries)),
            }
        }
        for (recipients, entries) in groups {
            let digest = Digest::new(entries);
            out.push((
                i,
                Delivery {
                    channel: id.clone(),
                    recipients,
                    subject: digest.subject(),
                    entries: digest.entries,
                },
            ));
        }
    }
    out
}

/// Sends what is due (or plans it, in a dry run), at most `concurrency` messages in flight, and
/// records each delivery in the ledger as soon as it succeeds.
pub async fn run(
    store: &LedgerStore,
    tenants: &[TenantRecord],
    notifiers: &[Box<dyn Notifier>],
    thresholds: &[i64],
    clock: Clock,
    dry_run: bool,
    concurrency: usize,
) -> Result<Report, LedgerError> {
    use futures_util::StreamExt as _;
    let mut report = Report::default();
    let planned = plan(tenants, notifiers, thresholds, clock.now());
    if dry_run {
        report.planned = planned.into_iter().map(|(_, d)| d).collect();
        return Ok(report);
    }
    let mut sends = futures_util::stream::iter(planned.into_iter().enumerate())
        .map(|(order, (i, d))| async move {
            let digest = Digest {
                entries: d.entries.clone(),
            };
            let r = notifiers[i].send(&digest, &d.recipients).await;
            (order, d, r)
        })
        .buffer_unordered(concurrency.max(1));
    let mut sent = Vec::new();
    while let Some((order, d, r)) = sends.next().await {
        match r {
            Ok(()) => {
                let now = clock.now();
                let mut guard = store.lock(Duration::from_secs(30))?;
                for e in &d.entries {
                    if let Some(rec) = guard.ledger.tenant_mut(&e.tenant) {
                        rec.mark_reminded(e, &d.channel, now);
                    }
                }
                guard.commit()?;
                sent.push((order, d));
            }
            Err(e) => {
                let mut tenants: Vec<String> = d.entries.iter().map(|e| e.tenant.clone()).collect();
                tenants.dedup();
                report.failed.push(Failed {
                    channel: d.channel,
                    tenants,
                    error: e.to_string(),
                });
            }
        }
    }
    sent.sort_by_key(|(o, _)| *o);
    report.sent = sent.into_iter().map(|(_, d)| d).collect();
    Ok(report)
}
