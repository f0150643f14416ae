//! Which reminders are due, a pure function of (ledger record, thresholds, channel, now): each
//! credential gets at most one message per threshold and channel; when several thresholds are
//! crossed at once, one message for the most urgent (and the others count as sent); a renewed
//! credential has a new end, hence a new identity, so its old thresholds stop mattering; a
//! recorded renewal failure is due at once. Scheduling is cron's or systemd's job.

use crate::ledger::TenantRecord;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The credential (or the certificate) ends within a threshold.
    Expiry,
    /// It has ended: the trust is broken.
    Expired,
    /// The last renewal attempt failed.
    RenewalFailure,
}

/// One message to send on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Due {
    pub tenant: String,
    pub tenant_id: Option<String>,
    pub kind: Kind,
    /// The credential's identity: `app/thumbprint/end` (or `renewal-failure/<time>`).
    pub credential: String,
    pub app_id: String,
    pub thumbprint_sha1: String,
    pub ends: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    /// The threshold this message is for; `covers` are all thresholds it settles.
    pub threshold_days: i64,
    pub covers: Vec<i64>,
    pub detail: String,
}

/// The threshold recorded for a renewal-failure message.
pub const FAILURE_THRESHOLD: i64 = -1;

fn sent(t: &TenantRecord, credential: &str, channel: &str) -> Vec<i64> {
    t.reminders_sent
        .iter()
        .filter(|r| r.credential == credential && r.channel == channel)
        .map(|r| r.threshold_days)
        .collect()
}

/// The messages due for tenant `t` on `channel` at `now`.
pub fn due(t: &TenantRecord, thresholds: &[i64], channel: &str, now: DateTime<Utc>) -> Vec<Due> {
    let mut out = Vec::new();
    if let Some(f) = &t.last_renewal_failure {
        let key = format!("renewal-failure/{}", f.at.to_rfc3339());
        if sent(t, &key, channel).is_empty() {
            out.push(Due {
                tenant: t.domain.clone(),
                tenant_id: t.tenant_id.clone(),
                kind: Kind::RenewalFailure,
                credential: key,
                app_id: String::new(),
                thumbprint_sha1: String::new(),
                ends: None,
                days_left: None,
                threshold_days: FAILURE_THRESHOLD,
                covers: vec![FAILURE_THRESHOLD],
                detail: f.message.clone(),
            });
        }
    }
    let Some(cert) = &t.cert else { return out };
    let certs: Vec<_> = std::iter::once(cert).chain(t.next_cert.iter()).collect();
    let cert_end = certs
        .iter()
        .map(|c| c.not_after)
        .max()
        .unwrap_or(cert.not_after);
    for app in &t.app_ids {
        let best = t
            .credentials
            .iter()
            .filter(|c| {
                &c.app_id == app && certs.iter().any(|k| k.thumbprint_sha1 == c.thumbprint_sha1)
            })
            .max_by_key(|c| c.end);
        let Some(c) = best else { continue };
        let lapse = c.end.min(cert_end);
        let days = (lapse - now).num_days();
        let key = format!("{app}/{}/{}", c.thumbprint_sha1, c.end.to_rfc3339());
        let mut crossed: Vec<i64> = thresholds
            .iter()
            .copied()
            .filter(|th| days <= *th)
            .collect();
        if lapse <= now {
            crossed.push(0);
        }
        let already = sent(t, &key, channel);
        let unsent: Vec<i64> = crossed
            .iter()
            .copied()
            .filter(|th| !already.contains(th))
            .collect();
        let Some(most_urgent) = unsent.iter().copied().min() else {
            continue;
        };
        let kind = if lapse <= now {
            Kind::Expired
        } else {
            Kind::Expiry
        };
        let why = if cert_end < c.end {
            "the on-prem certificate ends"
        } else {
            "the key credential ends"
        };
        out.push(Due {
            tenant: t.domain.clone(),
            tenant_id: t.tenant_id.clone(),
            kind,
            credential: key,
            app_id: app.clone(),
            thumbprint_sha1: c.thumbprint_sha1.clone(),
            ends: Some(lapse),
            days_left: Some(days),
            threshold_days: most_urgent,
            covers: unsent.into_iter().filter(|th| *th >= most_urgent).collect(),
            detail: why.to_string(),
        });
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
