//! The Exchange Server hybrid trust's rules (docs/protocol.md §5), pure: `now` and what was read
//! in, decisions out. How long a key may live under the tenant's app management policy (§5.5),
//! the window of a key for an Auth Certificate, and what `renew --trust exchange` must do to make
//! the dedicated application's keys match `Get-AuthConfig`: the current and the staged next
//! certificate each with a valid `AsymmetricX509Cert`/`Verify` key (re-windowed before it ends,
//! like the Skype for Business key), and the previous one's keys retired only once the export
//! shows the next as current. Nothing here removes a key of the current or the next certificate.

use crate::graph::{KeyCredential, WindowError};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

/// How much shorter than a policy's cap a key's window is (clock skew between this host and
/// Entra). Without a cap a key lasts as long as its certificate (what Microsoft's script gets by
/// sending no dates).
pub const SAFETY_MARGIN_HOURS: i64 = 24;

/// An ISO 8601 duration (`P365D`, `P1Y`, `PT8760H`, `P1Y6M`) in whole days (a year 365 days, a
/// month 30), rounded down; `None` when it is not one.
pub fn iso_duration_days(s: &str) -> Option<i64> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs: i64 = 0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                let n: i64 = num.parse().ok()?;
                secs = secs.checked_add(n.checked_mul(*mult)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    take(
        date,
        &[
            ('Y', 365 * 86400),
            ('M', 30 * 86400),
            ('W', 7 * 86400),
            ('D', 86400),
        ],
    )?;
    if let Some(t) = time {
        take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(secs / 86400)
}

/// The `asymmetricKeyLifetime` caps of one restriction list that apply to an application created
/// at `created` (an unknown creation time is taken as restricted).
fn caps_in(list: &Value, created: Option<DateTime<Utc>>) -> Vec<i64> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["restrictionType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("asymmetricKeyLifetime"))
        })
        .filter(|r| {
            r["state"]
                .as_str()
                .is_none_or(|s| !s.eq_ignore_ascii_case("disabled"))
        })
        .filter(|r| {
            let after = r["restrictForAppsCreatedAfterDateTime"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
            match (after, created) {
                (Some(a), Some(c)) => c > a.with_timezone(&Utc),
                _ => true,
            }
        })
        .filter_map(|r| r["maxLifetime"].as_str().and_then(iso_duration_days))
        .collect()
}

/// The longest key lifetime, in days, the app management policies allow an application's key
/// (docs/protocol.md §5.5): the application's own enabled policies when it has any (they override
/// the tenant's default), else the tenant default's `applicationRestrictions` when it is enabled.
/// `None`: nothing caps it.
pub fn key_lifetime_cap(
    default_policy: Option<&Value>,
    app_policies: &[Value],
    app_created: Option<DateTime<Utc>>,
) -> Option<i64> {
    let own: Vec<&Value> = app_policies
        .iter()
        .filter(|p| p["isEnabled"].as_bool() != Some(false))
        .collect();
    let caps: Vec<i64> = if own.is_empty() {
        default_policy
            .filter(|p| p["isEnabled"].as_bool() == Some(true))
            .map(|p| caps_in(&p["applicationRestrictions"]["keyCredentials"], app_created))
            .unwrap_or_default()
    } else {
        own.iter()
            .flat_map(|p| caps_in(&p["restrictions"]["keyCredentials"], app_created))
            .collect()
    };
    caps.into_iter().min()
}

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
    crate::graph::keys::window_within(not_before, not_after, now, max)
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
        thumbprint: String,
        role: &'static str,
        why: Why,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Remove the windows of `thumbprint` that end before `until`, once the new one has started.
    RetireWindows {
        thumbprint: String,
        until: DateTime<Utc>,
    },
    /// Remove every `Verify` key of AuthConfig's previous certificate.
    RetirePrevious { thumbprint: String },
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
    pub thumbprint: &'a str,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub role: &'static str,
}

/// What `renew --trust exchange` does, from the export's certificates and the application's keys
/// as read now. `horizon`: a key ending within it is re-windowed when its certificate outlives it.
pub fn plan(
    current: &Wanted<'_>,
    next: Option<&Wanted<'_>>,
    previous: Option<&str>,
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
            thumbprint: w.thumbprint.to_string(),
            role: w.role,
            why,
            start,
            end,
        });
        if why == Why::Rewindow {
            steps.push(Step::RetireWindows {
                thumbprint: w.thumbprint.to_string(),
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
            thumbprint: p.to_string(),
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use serde_json::json;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn durations_as_policies_write_them() {
        assert_eq!(iso_duration_days("P365D"), Some(365));
        assert_eq!(iso_duration_days("P1Y"), Some(365));
        assert_eq!(iso_duration_days("PT8760H"), Some(365));
        assert_eq!(iso_duration_days("P90DT12H"), Some(90));
        assert_eq!(iso_duration_days("P2W"), Some(14));
        for bad in ["365", "P", "PX", "P1.5D", ""] {
            assert_eq!(iso_duration_days(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_cap_comes_from_the_apps_own_policy_else_the_tenant_default() {
        let default = json!({"isEnabled": true, "applicationRestrictions": {"keyCredentials": [
            {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P365D", "state": "enabled",
             "restrictForAppsCreatedAfterDateTime": "2020-01-01T00:00:00Z"}]},
            "servicePrincipalRestrictions": {"keyCredentials": [
            {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P30D"}]}});
        let created = Some(t(2025, 8, 1));
        assert_eq!(key_lifetime_cap(Some(&default), &[], created), Some(365));
        // An application created before the restriction's date is not restricted.
        assert_eq!(
            key_lifetime_cap(Some(&default), &[], Some(t(2019, 1, 1))),
            None
        );
        // A disabled policy, or a disabled restriction, caps nothing.
        let mut off = default.clone();
        off["isEnabled"] = json!(false);
        assert_eq!(key_lifetime_cap(Some(&off), &[], created), None);
        let mut off = default.clone();
        off["applicationRestrictions"]["keyCredentials"][0]["state"] = json!("disabled");
        assert_eq!(key_lifetime_cap(Some(&off), &[], created), None);
        // The application's own policy overrides the default.
        let own = json!({"isEnabled": true, "restrictions": {"keyCredentials": [
            {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P90D"}]}});
        assert_eq!(key_lifetime_cap(Some(&default), &[own], created), Some(90));
        assert_eq!(key_lifetime_cap(None, &[], created), None);
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

    fn wanted<'a>(c: &crate::cert::Certificate, tp: &'a str, role: &'static str) -> Wanted<'a> {
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
