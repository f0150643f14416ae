//! Dates from outside (Graph's keys, the token endpoint's `expires_in`, the ledger, certificates,
//! command-line flags): the range hybrid-trust accepts, and arithmetic that cannot panic.
//!
//! chrono's `DateTime + TimeDelta` (and `TimeDelta::days(n)`) panic on overflow, and chrono's
//! calendar ends at the years -262143 and 262142, which JSON can name (`+262142-12-31T23:59:59Z`
//! parses). Issue 14, defect 4: such a date from a server or a file crashed `status`, `--check`,
//! `--format ics` and `renew` (exit 101). Two layers keep that from coming back:
//!
//! 1. **At the parse boundary** a date outside [`EARLIEST`]..=[`LATEST`] — the years 1 to 9999 —
//!    is refused with an error that names it ([`check`]): keys in Graph answers
//!    (`graph::client`), every date of the ledger (`ledger::store::parse`), a certificate's
//!    validity (`cert`), `--start`/`--end`/`--credential-end`/`--as-of`, and a token's expiry
//!    (`sts::provider`). The range is .NET's `DateTime` (what Entra and Graph serialise from, so
//!    no genuine answer leaves it; its `MinValue`, 0001-01-01, is a sentinel real services emit
//!    and must still parse), RFC 3339's four-digit year, and X.509's GeneralizedTime. Windows'
//!    FILETIME starts later (1601) but nothing here converts to it, so refusing 1–1600 would
//!    only turn a sentinel into an outage. Server data out of range is a run-time failure
//!    (exit 1); the user's own files and flags are bad input (exit 2).
//! 2. **In the arithmetic** every sum of a date and a duration goes through [`add`] / [`sub`]
//!    (saturating at chrono's ends) or `checked_add_signed` where a wrong answer would matter
//!    (a token's expiry), and durations of N days through [`days`] (saturating). A date that
//!    slips past layer 1 after some refactor then yields an odd number, never a crash. Subtracting
//!    two dates cannot overflow (chrono's whole calendar spans about 1.7e13 s of the 9.2e15 s a
//!    `TimeDelta` holds), so `(end - now).num_days()` needs no guard.
//!
//! Saturation is used where the clamped value still means the right thing: a credential that
//! ends "at the end of time" plus a day is still "after anything", and days left clamp with it.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// The earliest date accepted from outside: 0001-01-01T00:00:00Z (.NET `DateTime.MinValue`).
pub const EARLIEST: DateTime<Utc> = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(d) => match d.and_hms_opt(0, 0, 0) {
        Some(t) => t.and_utc(),
        None => DateTime::<Utc>::MIN_UTC,
    },
    None => DateTime::<Utc>::MIN_UTC,
};

/// The latest date accepted from outside: 9999-12-31T23:59:59.999999999Z (.NET
/// `DateTime.MaxValue`, to the nanosecond).
pub const LATEST: DateTime<Utc> = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(d) => match d.and_hms_nano_opt(23, 59, 59, 999_999_999) {
        Some(t) => t.and_utc(),
        None => DateTime::<Utc>::MAX_UTC,
    },
    None => DateTime::<Utc>::MAX_UTC,
};

/// The message fragment every out-of-range refusal carries (tests and hints look for it).
pub const OUT_OF_RANGE: &str = "outside the dates hybrid-trust handles (years 1 to 9999)";

/// A date outside [`EARLIEST`]..=[`LATEST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} is {OUT_OF_RANGE}", show(*.0))]
pub struct OutOfRange(pub DateTime<Utc>);

/// A date as RFC 3339 (UTC, `Z`, fraction only when there is one): how the refused value was
/// most likely written.
pub fn show(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Whether `d` is in the accepted range.
pub fn in_range(d: DateTime<Utc>) -> bool {
    (EARLIEST..=LATEST).contains(&d)
}

/// `d`, or [`OutOfRange`] when it is outside the accepted range.
pub fn check(d: DateTime<Utc>) -> Result<DateTime<Utc>, OutOfRange> {
    if in_range(d) {
        Ok(d)
    } else {
        Err(OutOfRange(d))
    }
}

/// `d + delta`, clamped to chrono's calendar instead of panicking.
pub fn add(d: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    d.checked_add_signed(delta)
        .unwrap_or(if delta < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// `d - delta`, clamped to chrono's calendar instead of panicking.
pub fn sub(d: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    d.checked_sub_signed(delta)
        .unwrap_or(if delta < TimeDelta::zero() {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

/// `n` days as a duration, clamped to what a `TimeDelta` holds (`TimeDelta::days` panics past
/// about 1.07e11 days, a threshold or horizon a user can type).
pub fn days(n: i64) -> TimeDelta {
    TimeDelta::try_days(n).unwrap_or(if n < 0 {
        TimeDelta::MIN
    } else {
        TimeDelta::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn the_range_is_dotnet_datetime() {
        assert_eq!(show(EARLIEST), "0001-01-01T00:00:00Z");
        assert_eq!(show(LATEST), "9999-12-31T23:59:59.999999999Z");
        assert!(check(EARLIEST).is_ok() && check(LATEST).is_ok());
        let forever = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert!(check(forever).is_ok(), "RFC 5280's 'no expiry' date");
        for bad in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            EARLIEST - TimeDelta::nanoseconds(1),
            LATEST + TimeDelta::nanoseconds(1),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.to_string().ends_with(OUT_OF_RANGE), "{e}");
        }
        let beyond: DateTime<Utc> = "+262142-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(
            check(beyond).unwrap_err().to_string(),
            format!("+262142-12-31T23:59:59Z is {OUT_OF_RANGE}")
        );
    }

    #[test]
    fn arithmetic_saturates_at_the_ends_of_the_calendar() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert_eq!(add(max, TimeDelta::days(1)), max);
        assert_eq!(add(min, TimeDelta::days(-1)), min);
        assert_eq!(add(min, TimeDelta::MAX), max);
        assert_eq!(sub(min, TimeDelta::hours(24)), min);
        assert_eq!(sub(max, TimeDelta::days(-1)), max);
        assert_eq!(sub(max, TimeDelta::MAX), min);
        assert_eq!(days(i64::MAX), TimeDelta::MAX);
        assert_eq!(days(i64::MIN), TimeDelta::MIN);
        assert_eq!(days(30), TimeDelta::days(30));
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(add(t, days(1)), t + TimeDelta::days(1));
        assert_eq!(sub(t, days(1)), t - TimeDelta::days(1));
        // Differences never overflow: the whole calendar fits a TimeDelta.
        assert_eq!((max - min).num_days(), (max - min).num_seconds() / 86_400);
        assert!((min - max).num_days() < 0);
    }
}
