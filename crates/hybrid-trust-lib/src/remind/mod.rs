//! Which reminders are due, a pure function of (ledger record, thresholds, channel, now), on a
//! cadence people keep reading (issue 16):
//!
//! - **A lapse** (when the trust breaks if nobody acts, [`crate::lifecycle`]) is reminded once
//!   per threshold: when several are crossed at once, one message for the most urgent, and the
//!   others count as sent. Its identity is the key that lapses (`app/thumbprint/end`), so a
//!   renewal or a confirmed roll gives a new identity and the old thresholds stop mattering.
//! - **A problem** (a failed or blocked renewal, a blocked roll) is reminded when it starts,
//!   again when its reason changes, then weekly, then daily in the last 7 days before the lapse
//!   (weekly again once it has lapsed: the threshold-0 message said so, and a daily repeat for
//!   months teaches people to ignore the tool).
//!   Its identity is the moment its reason was first seen (`renewal-failure/<since>`; ledgers
//!   from before this cadence have `since` = `at`, so what they recorded still counts).
//! - Both stop the moment the situation is fixed: the failure record is cleared by a success,
//!   the lapse moves with a renewal.
//!
//! One run sends one message per channel and recipient, a [`digest`] of every tenant that needs
//! attention, the most urgent first ([`run`] carries it out). Scheduling is cron's or systemd's.

pub mod digest;
pub mod exchange;

use crate::ledger::TenantRecord;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

pub use digest::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The credential (or the certificate) ends within a threshold.
    Expiry,
    /// It has ended: the trust is broken.
    Expired,
    /// The last renewal attempt failed or was blocked.
    RenewalFailure,
}

/// One entry of a reminder: a tenant that needs attention, on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Due {
    pub tenant: String,
    pub tenant_id: Option<String>,
    pub kind: Kind,
    /// What it is counted against: `app/thumbprint/end` (or `renewal-failure/<since>`).
    pub credential: String,
    pub app_id: String,
    pub thumbprint_sha1: String,
    /// When the trust lapses.
    pub ends: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    /// The threshold this message is for; `covers` are all thresholds it settles.
    pub threshold_days: i64,
    pub covers: Vec<i64>,
    /// What ends, or the failure's message.
    pub detail: String,
    /// The tenant's state and next action, as `status` says them.
    pub state: String,
    pub action: String,
    /// A roll in progress: its script and EffectiveDate.
    pub roll: Option<crate::lifecycle::PendingRoll>,
}

impl Due {
    /// How urgent: an ended trust first, then the nearest lapse; a problem before a plain
    /// reminder for the same day.
    pub fn urgency(&self) -> (u8, i64, u8) {
        let ended = u8::from(self.kind != Kind::Expired);
        let problem = u8::from(self.kind != Kind::RenewalFailure);
        (ended, self.days_left.unwrap_or(i64::MAX), problem)
    }

    /// Whether it is about the Exchange Server hybrid trust ([`exchange`]).
    pub fn is_exchange(&self) -> bool {
        self.credential.starts_with(exchange::PREFIX)
    }
}

/// The threshold recorded for a renewal-failure message.
pub const FAILURE_THRESHOLD: i64 = -1;

/// A problem is reminded again after this long (weekly), less a few hours for timer jitter...
const WEEKLY: TimeDelta = TimeDelta::hours(7 * 24 - 4);
/// ...and daily in the last days before the lapse.
const DAILY: TimeDelta = TimeDelta::hours(20);
const DAILY_FROM_DAYS: i64 = 7;

fn sent<'a>(
    t: &'a TenantRecord,
    credential: &'a str,
    channel: &'a str,
) -> impl Iterator<Item = &'a crate::ledger::ReminderSent> {
    t.reminders_sent
        .iter()
        .filter(move |r| r.credential == credential && r.channel == channel)
}

/// Whether a problem counted as `key` is due a message on `channel` at `now`, `days` before
/// the lapse: when it starts, then weekly, daily in the last days before the lapse.
fn problem_due(
    t: &TenantRecord,
    key: &str,
    channel: &str,
    days: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    let last = sent(t, key, channel).map(|r| r.sent_at).max();
    // Daily in the last days before the lapse; weekly before, and after it (a lapsed trust
    // is in the threshold-0 message already; a daily repeat for months is not read).
    let every = if days.is_some_and(|d| (0..DAILY_FROM_DAYS).contains(&d)) {
        DAILY
    } else {
        WEEKLY
    };
    last.is_none_or(|l| now - l >= every)
}

/// The thresholds crossed `days` before the lapse counted as `key` (0 once it has `lapsed`)
/// that were not sent on `channel` yet.
fn unsent_thresholds(
    t: &TenantRecord,
    key: &str,
    thresholds: &[i64],
    days: i64,
    lapsed: bool,
    channel: &str,
) -> Vec<i64> {
    let mut crossed: Vec<i64> = thresholds
        .iter()
        .copied()
        .filter(|th| days <= *th)
        .collect();
    if lapsed {
        crossed.push(0);
    }
    let already: Vec<i64> = sent(t, key, channel).map(|r| r.threshold_days).collect();
    crossed
        .into_iter()
        .filter(|th| !already.contains(th))
        .collect()
}

/// The entries due for tenant `t` on `channel` at `now`: its Skype for Business trust's, then
/// its Exchange trust's ([`exchange::due`]); a tenant kept only for Exchange has only those.
pub fn due(t: &TenantRecord, thresholds: &[i64], channel: &str, now: DateTime<Utc>) -> Vec<Due> {
    let mut out = if t.has_sfb() {
        due_sfb(t, thresholds, channel, now)
    } else {
        Vec::new()
    };
    out.extend(exchange::due(t, thresholds, channel, now));
    out
}

/// The Skype for Business trust's entries.
fn due_sfb(t: &TenantRecord, thresholds: &[i64], channel: &str, now: DateTime<Utc>) -> Vec<Due> {
    let status = crate::status::evaluate(t, now, crate::status::Thresholds::default());
    let lc = crate::lifecycle::of(t, now);
    let lapse = lc.lapse.as_ref();
    let days = lapse.map(|l| (l.at - now).num_days());
    let entry = |kind, credential: String, threshold_days, covers, detail: String| Due {
        tenant: t.domain.clone(),
        tenant_id: t.tenant_id.clone(),
        kind,
        credential,
        app_id: lapse.map(|l| l.app_id.clone()).unwrap_or_default(),
        thumbprint_sha1: lapse
            .map(|l| l.thumbprint_sha1.to_string())
            .unwrap_or_default(),
        ends: lapse.map(|l| l.at),
        days_left: days,
        threshold_days,
        covers,
        detail,
        state: status.state.name().to_string(),
        action: status.next_action.clone(),
        roll: lc.roll.clone(),
    };
    let mut out = Vec::new();
    if let Some(f) = &t.last_renewal_failure {
        let key = format!("renewal-failure/{}", f.since.unwrap_or(f.at).to_rfc3339());
        if problem_due(t, &key, channel, days, now) {
            out.push(entry(
                Kind::RenewalFailure,
                key,
                FAILURE_THRESHOLD,
                vec![FAILURE_THRESHOLD],
                f.message.clone(),
            ));
        }
    }
    let (Some(l), Some(days)) = (lapse, days) else {
        return out;
    };
    let key = l.identity();
    let unsent = unsent_thresholds(t, &key, thresholds, days, l.at <= now, channel);
    if let Some(most_urgent) = unsent.iter().copied().min() {
        let kind = if l.at <= now {
            Kind::Expired
        } else {
            Kind::Expiry
        };
        let why = match (l.cause, lc.roll.is_some()) {
            (crate::lifecycle::Cause::CertificateEnds, true) => {
                "the old on-prem certificate ends (the roll to the new one is not confirmed)"
            }
            (crate::lifecycle::Cause::KeyEnds, true) => {
                "the old certificate's key credential ends (the roll to the new one is not confirmed)"
            }
            (crate::lifecycle::Cause::CertificateEnds, false) => "the on-prem certificate ends",
            (crate::lifecycle::Cause::KeyEnds, false) => "the key credential ends",
        };
        out.push(entry(
            kind,
            key,
            most_urgent,
            unsent.into_iter().filter(|th| *th >= most_urgent).collect(),
            why.to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord, ReminderSent, RenewalFailure};
    use chrono::{TimeDelta, TimeZone as _};
    use proptest::prelude::*;

    const APP: &str = crate::microsoft::SFB_APP_ID;
    const TH: &[i64] = &[60, 30, 14, 7, 3, 1];

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap()
    }

    fn tenant(end: DateTime<Utc>) -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], t0());
        t.cert = Some(CertRecord {
            thumbprint_sha1: "A".into(),
            subject: "CN=x".into(),
            not_before: t0() - TimeDelta::days(400),
            not_after: t0() + TimeDelta::days(900),
            der_base64: String::new(),
        });
        t.credentials.push(CredentialRecord {
            app_id: APP.into(),
            key_id: None,
            thumbprint_sha1: "A".into(),
            start: t0() - TimeDelta::days(300),
            end,
            recorded_at: t0(),
        });
        t
    }

    fn deliver(t: &mut TenantRecord, d: &Due, now: DateTime<Utc>) {
        for th in &d.covers {
            t.reminders_sent.push(ReminderSent {
                credential: d.credential.clone(),
                threshold_days: *th,
                channel: "c".into(),
                sent_at: now,
                sent_by: None,
            });
        }
    }

    /// Issue 14, defect 4: a credential or certificate end at chrono's limits, `now` at either
    /// end, or absurd thresholds give reminders (or none), never a panic.
    #[test]
    fn dates_at_the_limits_of_the_calendar_do_not_panic() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        for end in [min, max] {
            for na in [min, max, t0() + TimeDelta::days(900)] {
                let mut t = tenant(end);
                if let Some(c) = t.cert.as_mut() {
                    c.not_after = na;
                }
                for now in [t0(), min, max] {
                    let _ = due(&t, &[i64::MAX, 30, i64::MIN], "c", now);
                }
            }
        }
    }

    #[test]
    fn several_crossed_thresholds_give_one_message_for_the_most_urgent() {
        let now = t0();
        let mut t = tenant(now + TimeDelta::days(10));
        let d = due(&t, TH, "c", now);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].threshold_days, d[0].covers.clone()),
            (14, vec![60, 30, 14])
        );
        deliver(&mut t, &d[0], now);
        assert!(
            due(&t, TH, "c", now + TimeDelta::days(1)).is_empty(),
            "nothing new at 9 days"
        );
        let d = due(&t, TH, "c", now + TimeDelta::days(4));
        assert_eq!(d[0].threshold_days, 7);
        assert!(
            due(&t, TH, "other-channel", now).len() == 1,
            "each channel on its own"
        );
    }

    #[test]
    fn a_renewed_credential_stops_the_reminders_and_a_failure_is_reported_at_once() {
        let now = t0();
        let mut t = tenant(now + TimeDelta::days(5));
        let d = due(&t, TH, "c", now);
        deliver(&mut t, &d[0], now);
        t.credentials.push(CredentialRecord {
            app_id: APP.into(),
            key_id: None,
            thumbprint_sha1: "A".into(),
            start: now,
            end: now + TimeDelta::days(365),
            recorded_at: now,
        });
        assert!(due(&t, TH, "c", now + TimeDelta::days(2)).is_empty());
        t.last_renewal_failure = Some(RenewalFailure {
            at: now,
            message: "boom".into(),
            reported: false,
            since: None,
        });
        let d = due(&t, TH, "c", now);
        assert_eq!(d[0].kind, Kind::RenewalFailure);
        deliver(&mut t, &d[0], now);
        assert!(due(&t, TH, "c", now).is_empty(), "reported once");
    }

    #[test]
    fn an_ended_credential_gets_one_expired_message() {
        let now = t0();
        let mut t = tenant(now - TimeDelta::hours(2));
        let d = due(&t, TH, "c", now);
        assert_eq!((d[0].kind, d[0].threshold_days), (Kind::Expired, 0));
        deliver(&mut t, &d[0], now);
        assert!(due(&t, TH, "c", now + TimeDelta::days(3)).is_empty());
    }

    /// Issue 28: a digest entry says the renew command once (it came under "Next action", "To
    /// renew" and "To fix"), in the text and in the HTML, for a lapse near or far and a failure;
    /// the status command is still there.
    #[test]
    fn a_digest_entry_names_each_command_once() {
        let now = t0();
        let mut entries = Vec::new();
        for days in [10, 45] {
            entries.extend(due(&tenant(now + TimeDelta::days(days)), TH, "c", now));
        }
        let mut t = tenant(now + TimeDelta::days(200));
        t.last_renewal_failure = Some(RenewalFailure {
            at: now,
            message: "boom".into(),
            reported: false,
            since: None,
        });
        entries.extend(due(&t, TH, "c", now));
        assert_eq!(entries.len(), 3, "{entries:?}");
        for e in entries {
            let d = Digest::new(vec![e]);
            for body in [d.text(), d.html()] {
                assert_eq!(
                    body.matches("hybrid-trust renew --tenant contoso.com")
                        .count(),
                    1,
                    "{body}"
                );
                assert_eq!(
                    body.matches("hybrid-trust status --tenant contoso.com")
                        .count(),
                    1,
                    "{body}"
                );
            }
        }
    }

    proptest! {
        /// Run daily over a year: never two messages for one threshold, never a message before
        /// its threshold, at most one message a day, and every threshold is covered at the end.
        #[test]
        fn no_duplicates_over_daily_runs(end_days in 0i64..120, skip in proptest::collection::vec(any::<bool>(), 130)) {
            let start = t0();
            let mut t = tenant(start + TimeDelta::days(end_days) + TimeDelta::hours(3));
            let mut seen: Vec<i64> = Vec::new();
            for day in 0..130 {
                if skip[day as usize] { continue; }
                let now = start + TimeDelta::days(day);
                let d = due(&t, TH, "c", now);
                prop_assert!(d.len() <= 1);
                if let Some(m) = d.first() {
                    prop_assert!(m.days_left.unwrap() <= m.threshold_days || m.threshold_days == 0);
                    for th in &m.covers {
                        prop_assert!(!seen.contains(th), "threshold {th} twice");
                        seen.push(*th);
                    }
                    deliver(&mut t, m, now);
                }
            }
        }
    }
}
