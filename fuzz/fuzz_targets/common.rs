//! What the date targets share: a `now` anywhere in chrono's calendar, and every computation the
//! tool makes from a tenant record and `now` (status row, timeline, table, Prometheus, ICS,
//! reminders, the renewal decision, the key window). Issue 14, defect 4 was a panic in several of
//! these on dates at the ends of the calendar; none may panic, whatever the dates.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone as _, Utc};
use hybrid_trust::ledger::{CertRecord, TenantRecord};
use hybrid_trust::{graph, remind, renew, report, status};

/// A realistic `now` (2026, plus up to ~68 years either way) when `pick` is even; otherwise any
/// second of chrono's calendar, its two ends included.
pub fn now_from(pick: u8, bytes: [u8; 8]) -> DateTime<Utc> {
    let n = i64::from_le_bytes(bytes);
    let base = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    if pick % 2 == 0 {
        return hybrid_trust::dates::add(base, chrono::TimeDelta::seconds(i64::from(n as i32)));
    }
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    match pick % 8 {
        1 => DateTime::<Utc>::MIN_UTC,
        3 => DateTime::<Utc>::MAX_UTC,
        _ => DateTime::from_timestamp(min + n.rem_euclid(max - min + 1), 0).unwrap(),
    }
}

/// A date the parsers would refuse, to reach the arithmetic with it (the second layer of
/// `hybrid_trust::dates`; JSON text rarely mutates into `+262142-12-31`): `d` itself, a date
/// within an hour of either end of chrono's calendar (where a day added or taken overflows), or
/// `d` moved by up to ~16,000 years.
/// The choice mixes `b` with the date's own seconds, so that mutating a date's digits (frequent)
/// reaches every choice, not only mutating the one byte `b` comes from (rare in long inputs).
pub fn twist(d: DateTime<Utc>, b: u8) -> DateTime<Utc> {
    let b = b ^ (d.timestamp().rem_euclid(251) as u8);
    let near = chrono::TimeDelta::minutes(i64::from(b >> 2));
    match b % 4 {
        0 => d,
        1 => hybrid_trust::dates::add(DateTime::<Utc>::MIN_UTC, near),
        2 => hybrid_trust::dates::sub(DateTime::<Utc>::MAX_UTC, near),
        _ => hybrid_trust::dates::add(d, chrono::TimeDelta::days(i64::from(b as i8) * 46_000)),
    }
}

/// Thresholds and horizons: the defaults, or whatever a user could type.
pub fn days_from(pick: u8, n: i64) -> (i64, i64, Vec<i64>) {
    match pick % 3 {
        0 => (30, 7, vec![60, 30, 14, 7, 3, 1]),
        1 => (n.saturating_abs(), (n % 1000).abs(), vec![n, 0, -1]),
        _ => (i64::MAX, i64::MAX, vec![i64::MAX, i64::MIN]),
    }
}

/// Every computation `status` (all formats), `remind` and `renew` make from `t` at `now`.
pub fn everything(t: &TenantRecord, now: DateTime<Utc>, warn: i64, crit: i64, thresholds: &[i64]) {
    let th = status::Thresholds {
        warn_days: warn,
        crit_days: crit.min(warn),
    };
    let st = status::evaluate(t, now, th);
    let bar = report::timeline(t, now);
    let _ = report::table(&[(st.clone(), bar)]);
    let _ = report::prometheus(&[(t, st.clone())], now);
    let _ = report::ics(&[(t, st)], thresholds, now);
    let _ = remind::due(t, thresholds, "email:x", now);
    for policy in [
        renew::Policy::default(),
        renew::Policy {
            horizon_days: warn,
            ..renew::Policy::default()
        },
    ] {
        let _ = renew::decide(t, None, now, policy);
        for offered in t.cert.iter().chain(t.next_cert.iter()) {
            // Offered as a new certificate (another thumbprint), with the recorded dates.
            let o = CertRecord {
                thumbprint_sha1: format!("{}-new", offered.thumbprint_sha1),
                ..offered.clone()
            };
            let _ = renew::decide(t, Some(&o), now, policy);
        }
    }
    for c in t.cert.iter().chain(t.next_cert.iter()) {
        let _ = graph::window(c.not_before, c.not_after, None, None, now);
        let _ = graph::window(
            c.not_before,
            c.not_after,
            Some(c.not_before),
            Some(c.not_after),
            now,
        );
    }
}
