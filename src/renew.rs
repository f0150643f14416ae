//! The renewal decision, a pure function of (ledger record, certificate offered, now, policy):
//! nothing to do; re-window the same certificate; roll to a new certificate; finish a roll whose
//! old certificate has expired; or stop and say why. Executing it is the CLI's job; this never
//! sleeps or schedules.
//!
//! The roll follows SFBDOCS `stage-av-and-oauth-certificates.md`: the new certificate's key goes
//! to the tenant next to the old one *before* `Set-CsCertificate -Roll -EffectiveDate`, the
//! effective date at least 24 hours before the old certificate expires (Exchange caches keys),
//! and the old key is never removed during the roll: its window ends with the old certificate,
//! and the next PATCH after that drops it as expired.

use crate::dates;
use crate::graph::keys::{WindowError, window};
use crate::ledger::{CertRecord, TenantRecord};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Renew when the credential ends within this many days (default 30).
    pub horizon_days: i64,
    /// How long before the old certificate's expiry the roll must take effect (24 h).
    pub roll_lead: TimeDelta,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            horizon_days: 30,
            roll_lead: TimeDelta::hours(24),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    Nothing {
        next_check: DateTime<Utc>,
    },
    /// Upload a new window for the same certificate, then remove the old key once the new one
    /// is in.
    Rewindow {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        old_end: Option<DateTime<Utc>>,
    },
    /// Upload the new certificate next to the old one; then on-prem
    /// `Set-CsCertificate -Roll -EffectiveDate effective`.
    Roll {
        thumbprint: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        effective: DateTime<Utc>,
        late: bool,
    },
    /// The old certificate has expired: the new one becomes current.
    FinishRoll {
        thumbprint: String,
    },
    Blocked {
        reason: String,
        hint: String,
    },
}

fn blocked(reason: impl Into<String>, hint: impl Into<String>) -> Decision {
    Decision::Blocked {
        reason: reason.into(),
        hint: hint.into(),
    }
}

/// The earliest end, across the tenant's applications, of the credentials for `thumbprint`
/// (`None` when an application has none).
fn credential_end(t: &TenantRecord, thumbprint: &str) -> Option<DateTime<Utc>> {
    let mut ends = t.app_ids.iter().map(|a| t.credential_end(a, thumbprint));
    let first = ends.next()??;
    ends.try_fold(first, |acc, e| e.map(|e| acc.min(e)))
}

pub fn decide(
    t: &TenantRecord,
    offered: Option<&CertRecord>,
    now: DateTime<Utc>,
    p: Policy,
) -> Decision {
    let d = &t.domain;
    let Some(cert) = &t.cert else {
        return blocked(
            "no certificate is recorded for this tenant",
            format!("hybrid-trust credential upload --tenant {d} --cert CERT"),
        );
    };
    if let Some(next) = &t.next_cert
        && cert.not_after <= now
    {
        return Decision::FinishRoll {
            thumbprint: next.thumbprint_sha1.clone(),
        };
    }
    let offered = offered.filter(|o| {
        o.thumbprint_sha1 != cert.thumbprint_sha1
            && t.next_cert
                .as_ref()
                .is_none_or(|n| n.thumbprint_sha1 != o.thumbprint_sha1)
    });
    if let Some(new) = offered {
        let (start, end) = match window(new.not_before, new.not_after, None, None, now) {
            Ok(w) => w,
            Err(WindowError::CertificateExpired(_)) => {
                return blocked(
                    format!("the new certificate {} has expired", new.thumbprint_sha1),
                    "issue a new certificate",
                );
            }
            Err(e) => {
                return blocked(
                    format!("no key window for the new certificate: {e}"),
                    "check the new certificate's validity",
                );
            }
        };
        if new.not_after <= cert.not_after {
            return blocked(
                format!(
                    "the new certificate {} does not outlive the current one ({})",
                    new.thumbprint_sha1,
                    cert.not_after.format("%Y-%m-%d")
                ),
                "issue a certificate that is valid for longer",
            );
        }
        // Effective a day after the upload if the old certificate allows it; never later than
        // 24 hours before the old one expires; never before the new key's window starts.
        // Saturating sums (crate::dates): a recorded date at the end of the calendar gives a
        // late roll, not a panic.
        let latest = dates::sub(cert.not_after, p.roll_lead);
        let ideal = dates::add(now, TimeDelta::hours(24));
        let floor = dates::add(now, TimeDelta::minutes(10)).max(start);
        let late = latest < floor;
        let effective = if late {
            floor
        } else {
            ideal.min(latest).max(floor)
        };
        return Decision::Roll {
            thumbprint: new.thumbprint_sha1.clone(),
            start,
            end,
            effective,
            late,
        };
    }
    let current = t
        .next_cert
        .as_ref()
        .filter(|n| n.not_before <= now)
        .unwrap_or(cert);
    let horizon = dates::days(p.horizon_days);
    let ends = credential_end(t, &current.thumbprint_sha1);
    if current.not_after <= now {
        return blocked(
            format!(
                "the on-prem certificate {} expired on {}",
                current.thumbprint_sha1,
                current.not_after.format("%Y-%m-%d")
            ),
            format!(
                "issue a new certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx"
            ),
        );
    }
    if current.not_after - now <= horizon {
        return blocked(
            format!(
                "the on-prem certificate {} ends {}, inside the renewal horizon: only a new certificate helps",
                current.thumbprint_sha1,
                current.not_after.format("%Y-%m-%d")
            ),
            format!(
                "issue a new OAuthTokenIssuer certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx"
            ),
        );
    }
    let due = ends.is_none_or(|e| e - now <= horizon);
    if !due {
        let e = ends.unwrap_or(now);
        return Decision::Nothing {
            next_check: dates::sub(e, horizon),
        };
    }
    match window(current.not_before, current.not_after, None, None, now) {
        Ok((start, end)) if ends.is_none_or(|e| end > dates::add(e, TimeDelta::days(1))) => {
            Decision::Rewindow {
                start,
                end,
                old_end: ends,
            }
        }
        _ => blocked(
            format!(
                "the on-prem certificate {} ends {}, so a new window gains nothing",
                current.thumbprint_sha1,
                current.not_after.format("%Y-%m-%d")
            ),
            format!(
                "issue a new OAuthTokenIssuer certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::CredentialRecord;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    const APP: &str = crate::microsoft::SFB_APP_ID;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn cert(tp: &str, nb: DateTime<Utc>, na: DateTime<Utc>) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=x".into(),
            not_before: nb,
            not_after: na,
            der_base64: String::new(),
        }
    }

    fn tenant(c: CertRecord, cred: Option<(DateTime<Utc>, DateTime<Utc>)>) -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], t0());
        if let Some((s, e)) = cred {
            t.credentials.push(CredentialRecord {
                app_id: APP.into(),
                key_id: Some("k1".into()),
                thumbprint_sha1: c.thumbprint_sha1.clone(),
                start: s,
                end: e,
                recorded_at: s,
            });
        }
        t.cert = Some(c);
        t
    }

    /// Issue 14, defect 4: a recorded certificate or credential at chrono's limits (a ledger
    /// `not_after` of `-262143-01-01`), a `now` at either end and an absurd horizon give a
    /// decision, never a panic.
    #[test]
    fn dates_at_the_limits_of_the_calendar_do_not_panic() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let now = t0();
        let new = cert("B", now - TimeDelta::days(1), now + TimeDelta::days(700));
        let huge = Policy {
            horizon_days: i64::MAX,
            roll_lead: TimeDelta::MAX,
        };
        for (nb, na) in [(min, min), (min, max), (max, max), (now, max)] {
            for cred in [None, Some((min, max)), Some((max, min)), Some((min, min))] {
                let t = tenant(cert("A", nb, na), cred);
                for at in [now, min, max] {
                    for p in [Policy::default(), huge] {
                        let _ = decide(&t, Some(&new), at, p);
                        let _ = decide(&t, None, at, p);
                    }
                }
            }
        }
        // The reported case: the old certificate "ends" at the start of the calendar.
        let t = tenant(
            cert("A", min, min),
            Some((now - TimeDelta::days(10), now + TimeDelta::days(10))),
        );
        assert!(matches!(
            decide(&t, Some(&new), now, Policy::default()),
            Decision::Roll { late: true, .. }
        ));
    }

    #[test]
    fn table_of_situations() {
        let now = t0();
        let d = |n: i64| now + TimeDelta::days(n);
        let p = Policy::default();
        // Far from the end: nothing, next check 30 days before it.
        let t = tenant(cert("A", d(-100), d(700)), Some((d(-10), d(200))));
        assert_eq!(
            decide(&t, None, now, p),
            Decision::Nothing { next_check: d(170) }
        );
        // Inside the horizon: a new one-year window for the same certificate.
        let t = tenant(cert("A", d(-100), d(700)), Some((d(-300), d(20))));
        assert!(
            matches!(decide(&t, None, now, p), Decision::Rewindow { end, .. } if end == now + TimeDelta::seconds(0) + TimeDelta::days(365))
        );
        // No credential at all: upload a window.
        let t = tenant(cert("A", d(-100), d(700)), None);
        assert!(matches!(
            decide(&t, None, now, p),
            Decision::Rewindow { old_end: None, .. }
        ));
        // The certificate ends first: a new window gains nothing; a roll is needed.
        let t = tenant(cert("A", d(-300), d(20)), Some((d(-300), d(20))));
        assert!(matches!(decide(&t, None, now, p), Decision::Blocked { .. }));
        // Roll: effective a day later, well before the old certificate's end.
        let t = tenant(cert("A", d(-300), d(60)), Some((d(-300), d(60))));
        let new = cert("B", d(-1), d(800));
        match decide(&t, Some(&new), now, p) {
            Decision::Roll {
                effective,
                late,
                start,
                ..
            } => {
                assert_eq!(effective, now + TimeDelta::hours(24));
                assert!(!late && start <= effective);
            }
            other => panic!("{other:?}"),
        }
        // Roll with the old certificate ending in 30 hours: effective no later than 24 h before.
        let t = tenant(
            cert("A", d(-300), now + TimeDelta::hours(30)),
            Some((d(-300), now + TimeDelta::hours(30))),
        );
        match decide(&t, Some(&new), now, p) {
            Decision::Roll {
                effective, late, ..
            } => {
                assert_eq!(effective, now + TimeDelta::hours(6));
                assert!(!late);
            }
            other => panic!("{other:?}"),
        }
        // Too late for a clean roll: still rolls, flagged late.
        let t = tenant(
            cert("A", d(-300), now + TimeDelta::hours(5)),
            Some((d(-300), now + TimeDelta::hours(5))),
        );
        assert!(matches!(
            decide(&t, Some(&new), now, p),
            Decision::Roll { late: true, .. }
        ));
        // After the old certificate expired, the roll finishes.
        let mut t = tenant(cert("A", d(-400), d(-1)), Some((d(-400), d(-1))));
        t.next_cert = Some(new.clone());
        assert_eq!(
            decide(&t, None, now, p),
            Decision::FinishRoll {
                thumbprint: "B".into()
            }
        );
        // An expired new certificate, or one that does not outlive the old, is refused.
        let t = tenant(cert("A", d(-300), d(60)), Some((d(-300), d(60))));
        assert!(matches!(
            decide(&t, Some(&cert("C", d(-400), d(-2))), now, p),
            Decision::Blocked { .. }
        ));
        assert!(matches!(
            decide(&t, Some(&cert("C", d(-4), d(50))), now, p),
            Decision::Blocked { .. }
        ));
    }

    proptest! {
        /// Whatever the situation, after acting on the decision (and at every moment in between)
        /// some key is valid from now until the trust's natural end.
        #[test]
        fn never_a_moment_without_a_valid_key(
            cert_life in 1i64..900, cert_age in 0i64..800, cred_left in -5i64..400, new_offered in any::<bool>(), new_life in 30i64..900
        ) {
            let now = t0();
            let d = |n: i64| now + TimeDelta::days(n);
            let (nb, na) = (d(-cert_age), d(-cert_age + cert_life));
            prop_assume!(na > now);
            let cred_end = d(cred_left).min(na);
            prop_assume!(cred_end > now);
            let t = tenant(cert("A", nb, na), Some((nb.max(d(-365)), cred_end)));
            let new = cert("B", d(-1), d(new_life));
            let decision = decide(&t, new_offered.then_some(&new), now, Policy::default());
            // Keys valid after the change (the old key is never removed before its end, except
            // by a re-window, which removes it only once the new window has started).
            let mut windows = vec![(nb.max(d(-365)), cred_end)];
            match &decision {
                Decision::Rewindow { start, end, .. } => {
                    prop_assert!(*start <= now + TimeDelta::seconds(1));
                    prop_assert!(*end > cred_end);
                    windows.push((*start, *end));
                }
                Decision::Roll { start, end, effective, .. } => {
                    prop_assert!(*start <= *effective, "the new key is valid when the roll takes effect");
                    prop_assert!(*effective <= na || *effective <= now + TimeDelta::minutes(10));
                    windows.push((*start, *end));
                }
                _ => {}
            }
            // From now (plus the one-second rounding) to the latest end, no gap.
            let until = windows.iter().map(|w| w.1).max().unwrap();
            let mut t = now + TimeDelta::seconds(1);
            while t < until {
                prop_assert!(windows.iter().any(|(s, e)| *s <= t && t <= *e), "gap at {t}");
                t += TimeDelta::hours(6);
            }
        }
    }
}
