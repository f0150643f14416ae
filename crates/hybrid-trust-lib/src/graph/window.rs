//! The upload window (docs/protocol.md §1.9): never before now, never longer than a year, never
//! beyond the certificate's validity, to the precision Graph keeps; and a new key for a
//! certificate within it. Pure: `now` is always an argument.

use super::KeyCredential;
use crate::cert::Certificate;
use chrono::{DateTime, TimeDelta, Utc};

/// The most a key may live (the tool's policy and Graph's documented limit): 365 days, one day
/// under a leap-year calendar year, which keeps clear of "exceeds 1 year" clock-skew rejections.
pub const MAX_LIFETIME_DAYS: i64 = 365;
/// Why an upload window is refused (exit 2, nothing changed).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WindowError {
    #[error(
        "the start {start} is before {earliest} (now, or the certificate's notBefore if later)"
    )]
    StartTooEarly { start: String, earliest: String },
    #[error(
        "the end {end} is after {latest} (one year after the start, or the certificate's notAfter if earlier)"
    )]
    EndTooLate { end: String, latest: String },
    #[error("the end {end} is not after the start {start}")]
    EndNotAfterStart { start: String, end: String },
    #[error("the certificate expired on {0}; no window is possible")]
    CertificateExpired(String),
}

pub(crate) fn d(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Rounded up to the millisecond: a start is never before now, yet a key uploaded now is valid
/// at once (a whole-second start made every upload wait up to a second before it could be used).
pub(crate) fn ceil_milli(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
    if floor < t {
        crate::dates::add(floor, TimeDelta::milliseconds(1))
    } else {
        floor
    }
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The window rule (enforced, not advisory): `start >= max(now, notBefore)`,
/// `end <= min(start + 1 year, notAfter)`, `end > start`. Defaults: start now, end the latest
/// allowed. UTC; the start to the millisecond (never before now, valid at once), the end in whole
/// seconds (rounded down, so it stays inside the year). Whether Graph keeps the fraction is
/// unconfirmed: keys are compared by whole seconds (`credential::identity`), either way works.
pub fn window(
    cert_not_before: DateTime<Utc>,
    cert_not_after: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WindowError> {
    let earliest = ceil_milli(now.max(cert_not_before));
    if cert_not_after <= earliest {
        return Err(WindowError::CertificateExpired(d(cert_not_after)));
    }
    let start = start.map(ceil_milli).unwrap_or(earliest);
    if start < earliest {
        return Err(WindowError::StartTooEarly {
            start: d(start),
            earliest: d(earliest),
        });
    }
    let latest = floor_second(crate::dates::add(start, TimeDelta::days(MAX_LIFETIME_DAYS)))
        .min(cert_not_after);
    let end = end.map(floor_second).unwrap_or(latest);
    if end <= start {
        return Err(WindowError::EndNotAfterStart {
            start: d(start),
            end: d(end),
        });
    }
    if end > latest {
        return Err(WindowError::EndTooLate {
            end: d(end),
            latest: d(latest),
        });
    }
    Ok((start, end))
}

/// The window of a new key from now (or the certificate's notBefore) to its notAfter, shortened
/// to `max_lifetime` when one is given (an app management policy's cap): the start to the
/// millisecond, the end in whole seconds, as [`window`] does.
pub fn window_within(
    cert_not_before: DateTime<Utc>,
    cert_not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    max_lifetime: Option<TimeDelta>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WindowError> {
    let start = ceil_milli(now.max(cert_not_before));
    if cert_not_after <= start {
        return Err(WindowError::CertificateExpired(d(cert_not_after)));
    }
    let end = match max_lifetime {
        Some(m) => floor_second(crate::dates::add(start, m)).min(cert_not_after),
        None => floor_second(cert_not_after),
    };
    if end <= start {
        return Err(WindowError::EndNotAfterStart {
            start: d(start),
            end: d(end),
        });
    }
    Ok((start, end))
}

/// A new key for `cert` in the given window, named `label` (and the start date) in the portal.
pub fn new_key_labelled(
    cert: &Certificate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    label: &str,
) -> KeyCredential {
    let mut k = new_key(cert, start, end);
    let name = format!(
        "hybrid-trust {label} {} {}",
        cert.subject_cn.as_deref().unwrap_or(""),
        start.format("%Y-%m-%d")
    );
    k.display_name = Some(name.chars().take(90).collect());
    k
}

/// A new key credential for `cert` in the given window.
pub fn new_key(cert: &Certificate, start: DateTime<Utc>, end: DateTime<Utc>) -> KeyCredential {
    // Named so an admin in the portal sees what put it there and for which window.
    let display_name = format!(
        "hybrid-trust OAuthTokenIssuer {} {}",
        cert.subject_cn.as_deref().unwrap_or(""),
        start.format("%Y-%m-%d")
    );
    KeyCredential {
        custom_key_identifier: None,
        display_name: Some(display_name.chars().take(90).collect()),
        end_date_time: Some(end),
        key: Some(cert.base64()),
        key_id: Some(uuid::Uuid::new_v4().to_string()),
        start_date_time: Some(start),
        kind: Some("AsymmetricX509Cert".to_string()),
        usage: Some("Verify".to_string()),
    }
}
