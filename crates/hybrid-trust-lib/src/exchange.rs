//! The Exchange Server hybrid trust's rules (docs/protocol.md §5), pure: `now` and what was read
//! in, decisions out. The window of a key for an Auth Certificate within the app management
//! policy's cap (read by [`crate::graph::policy`], §5.5), and what `renew --trust exchange` must do to make
//! the dedicated application's keys match `Get-AuthConfig`: the current and the staged next
//! certificate each with a valid `AsymmetricX509Cert`/`Verify` key (re-windowed before it ends,
//! like the Skype for Business key), and the previous one's keys retired only once the export
//! shows the next as current. Nothing here removes a key of the current or the next certificate.

use crate::graph::{KeyCredential, WindowError};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// How much shorter than a policy's cap a key's window is (clock skew between this host and
/// Entra). Without a cap a key lasts as long as its certificate (what Microsoft's script gets by
/// sending no dates).
pub const SAFETY_MARGIN_HOURS: i64 = 24;

/// The window of a new key for an Auth Certificate: from now (or its notBefore) to its notAfter,
/// shortened to the policy's cap less a day's margin (clock skew between here and Entra; whether
/// Entra measures from the key's start or its creation is unconfirmed, §5.5).
pub fn key_window(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    cap_days: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WindowError> {
    let max = cap_days.map(|d| {
        TimeDelta::days(d.max(1)) - TimeDelta::hours(SAFETY_MARGIN_HOURS.min(d.max(1) * 12))
    });
    crate::graph::window::window_within(not_before, not_after, now, max)
}

/// The valid `Verify` keys of certificate `thumbprint` that have started, by their end.
fn covering<'a>(
    keys: &'a [KeyCredential],
    thumbprint: &str,
    now: DateTime<Utc>,
) -> Option<&'a KeyCredential> {
    keys.iter()
        .filter(|k| {
            k.is_verify_cert()
                && !k.is_expired(now)
                && k.start_date_time.is_none_or(|s| s <= now)
                && k.thumbprint().as_deref() == Some(thumbprint)
        })
        .max_by_key(|k| k.end_date_time)
}

/// Why a certificate's key is (re)uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// AuthConfig's current certificate has no valid key on the application.
    Current,
    /// The staged next certificate has none (MEAC staged it; nothing uploads it but this).
    Next,
    /// The certificate's key ends within the horizon and the certificate outlives it.
    Rewindow,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// Add a key of `thumbprint` (`role` current or next).
    Upload {
        thumbprint: crate::ids::Thumbprint,
        role: &'static str,
        why: Why,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Remove the windows of `thumbprint` that end before `until`, once the new one has started.
    RetireWindows {
        thumbprint: crate::ids::Thumbprint,
        until: DateTime<Utc>,
    },
    /// Remove every `Verify` key of AuthConfig's previous certificate.
    RetirePrevious { thumbprint: crate::ids::Thumbprint },
}

impl Step {
    pub fn text(&self) -> String {
        let d = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        match self {
            Step::Upload {
                thumbprint,
                role,
                why,
                start,
                end,
            } => format!(
                "upload the {role} Auth Certificate {thumbprint} ({} -> {}){}",
                d(start),
                d(end),
                match why {
                    Why::Rewindow => ": a new window before the old one ends",
                    Why::Next => ": staged on-prem, not yet on the application",
                    Why::Current => "",
                }
            ),
            Step::RetireWindows { thumbprint, .. } => {
                format!("retire the superseded windows of {thumbprint}")
            }
            Step::RetirePrevious { thumbprint } => format!(
                "retire the previous Auth Certificate {thumbprint} (the export shows its successor current)"
            ),
        }
    }
}

/// A certificate with what the plan needs of it.
pub struct Wanted<'a> {
    pub thumbprint: &'a crate::ids::Thumbprint,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub role: &'static str,
}

/// What `renew --trust exchange` does, from the export's certificates and the application's keys
/// as read now. `horizon`: a key ending within it is re-windowed when its certificate outlives it.
pub fn plan(
    current: &Wanted<'_>,
    next: Option<&Wanted<'_>>,
    previous: Option<&crate::ids::Thumbprint>,
    keys: &[KeyCredential],
    cap_days: Option<i64>,
    horizon: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Vec<Step>, WindowError> {
    let mut steps = Vec::new();
    for w in std::iter::once(current).chain(next) {
        let have = covering(keys, w.thumbprint, now);
        let why = match have.and_then(|k| k.end_date_time) {
            None if have.is_none() => Some(if w.role == "next" {
                Why::Next
            } else {
                Why::Current
            }),
            // A key without an end lasts as long as the certificate.
            None => None,
            Some(end) => {
                let due = end <= now + horizon && w.not_after > end + TimeDelta::days(1);
                due.then_some(Why::Rewindow)
            }
        };
        let Some(why) = why else { continue };
        let (start, end) = key_window(w.not_before, w.not_after, cap_days, now)?;
        if why == Why::Rewindow && have.and_then(|k| k.end_date_time).is_some_and(|e| e >= end) {
            // The policy or the certificate allows no longer window than the one there.
            continue;
        }
        steps.push(Step::Upload {
            thumbprint: w.thumbprint.clone(),
            role: w.role,
            why,
            start,
            end,
        });
        if why == Why::Rewindow {
            steps.push(Step::RetireWindows {
                thumbprint: w.thumbprint.clone(),
                until: end,
            });
        }
    }
    if let Some(p) = previous
        && p != current.thumbprint
        && next.is_none_or(|n| n.thumbprint != p)
        && keys
            .iter()
            .any(|k| k.is_verify_cert() && k.thumbprint().as_deref() == Some(p))
    {
        steps.push(Step::RetirePrevious {
            thumbprint: p.clone(),
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn key(
        tp_cert: &crate::cert::Certificate,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> KeyCredential {
        crate::graph::new_key(tp_cert, start, end)
    }

    fn cert(cn: &str, nb: DateTime<Utc>, na: DateTime<Utc>) -> crate::cert::Certificate {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(nb.timestamp()).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(na.timestamp()).unwrap();
        crate::cert::Certificate::from_der(p.self_signed(&kp).unwrap().der()).unwrap()
    }

    fn wanted<'a>(
        c: &crate::cert::Certificate,
        tp: &'a crate::ids::Thumbprint,
        role: &'static str,
    ) -> Wanted<'a> {
        Wanted {
            thumbprint: tp,
            not_before: c.not_before,
            not_after: c.not_after,
            role,
        }
    }

    #[test]
    fn meacs_staged_certificate_is_uploaded_within_the_policy_and_the_previous_waits() {
        let now = t(2026, 12, 1);
        let horizon = TimeDelta::days(30);
        // Current: five years, its key capped at 365 days and a long way from ending.
        let c = cert("current", t(2024, 1, 1), t(2029, 1, 1));
        let n = cert("next", t(2026, 11, 30), t(2031, 11, 30));
        let (ctp, ntp) = (c.thumbprint_sha1(), n.thumbprint_sha1());
        let keys = vec![key(&c, t(2026, 6, 1), t(2027, 5, 31))];
        let steps = plan(
            &wanted(&c, &ctp, "current"),
            Some(&wanted(&n, &ntp, "next")),
            None,
            &keys,
            Some(365),
            horizon,
            now,
        )
        .unwrap();
        assert_eq!(steps.len(), 1, "{steps:?}");
        let Step::Upload {
            thumbprint,
            why,
            start,
            end,
            ..
        } = &steps[0]
        else {
            panic!("{steps:?}")
        };
        assert_eq!((thumbprint, *why), (&ntp, Why::Next));
        assert_eq!(*start, now);
        assert!(*end <= now + TimeDelta::days(365) && *end > now + TimeDelta::days(363));
        // Without a cap, the window is the certificate's validity.
        let steps = plan(
            &wanted(&c, &ctp, "current"),
            Some(&wanted(&n, &ntp, "next")),
            None,
            &keys,
            None,
            horizon,
            now,
        )
        .unwrap();
        assert!(matches!(&steps[0], Step::Upload { end, .. } if *end == n.not_after));
        // After the switch: the export shows the new one current and the old previous; both
        // keys there: only the previous is retired.
        let keys = vec![
            key(&c, t(2026, 6, 1), t(2027, 5, 31)),
            key(&n, now, t(2027, 11, 30)),
        ];
        let steps = plan(
            &wanted(&n, &ntp, "current"),
            None,
            Some(&ctp),
            &keys,
            Some(365),
            horizon,
            now,
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![Step::RetirePrevious {
                thumbprint: ctp.clone()
            }]
        );
        // The previous is never retired while it is also the current or the next.
        let steps = plan(
            &wanted(&c, &ctp, "current"),
            None,
            Some(&ctp),
            &keys,
            Some(365),
            horizon,
            now,
        )
        .unwrap();
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn a_capped_key_is_rewindowed_before_it_ends_and_the_old_window_retired() {
        let now = t(2027, 5, 10);
        let c = cert("current", t(2024, 1, 1), t(2029, 1, 1));
        let ctp = c.thumbprint_sha1();
        let keys = vec![key(&c, t(2026, 6, 1), t(2027, 5, 31))];
        let steps = plan(
            &wanted(&c, &ctp, "current"),
            None,
            None,
            &keys,
            Some(365),
            TimeDelta::days(30),
            now,
        )
        .unwrap();
        assert!(
            matches!(
                &steps[0],
                Step::Upload {
                    why: Why::Rewindow,
                    ..
                }
            ),
            "{steps:?}"
        );
        assert!(matches!(&steps[1], Step::RetireWindows { .. }), "{steps:?}");
        // A key that ends with its certificate is not re-windowed.
        let short = cert("short", t(2026, 1, 1), t(2027, 5, 31));
        let stp = short.thumbprint_sha1();
        let keys = vec![key(&short, t(2026, 6, 1), t(2027, 5, 31))];
        let steps = plan(
            &wanted(&short, &stp, "current"),
            None,
            None,
            &keys,
            Some(365),
            TimeDelta::days(30),
            now,
        )
        .unwrap();
        assert!(steps.is_empty(), "{steps:?}");
    }
}
