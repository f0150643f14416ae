//! The renewal decision, a pure function of (ledger record, certificate offered, now, policy):
//! nothing to do; re-window a certificate whose key nears its end; roll to a new certificate;
//! retire the old certificate's keys after a roll; or stop and say why. Executing it is
//! [`crate::session::renewal`]'s job; this never sleeps or schedules.
//!
//! The roll follows SFBDOCS `stage-av-and-oauth-certificates.md`: the new certificate's key goes
//! to the tenant next to the old one *before* `Set-CsCertificate -Roll -EffectiveDate`. The
//! EffectiveDate E is never before the new key's start plus [`Policy::roll_margin`], and never
//! later than [`Policy::roll_lead`] (24 h: Exchange caches keys) before the trust lapses with the
//! old certificate: the earlier of the old certificate's end and the old key's end (issue 16,
//! defect 3). When no such E exists the roll is *blocked*: the new key is uploaded all the same,
//! E is the earliest the new key allows, and the reason is alerted at once.
//!
//! The old key stays until the roll is confirmed ([`crate::ledger::roll`]); then a later renew
//! retires it (defect 2). Until then the old certificate is the one the Front Ends sign with, so
//! it keeps being re-windowed while its key nears its end and the certificate has room.

use crate::dates;
use crate::graph::keys::{WindowError, window};
use crate::ledger::{CertRecord, TenantRecord};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Renew when the credential ends within this many days (default 30).
    pub horizon_days: i64,
    /// How long before the old certificate or key ends the roll must take effect (24 h).
    pub roll_lead: TimeDelta,
    /// How long after the new key's start the roll may take effect at the earliest (1 h: Entra
    /// replicates a new key within minutes; the ideal E is a day after the upload anyway).
    pub roll_margin: TimeDelta,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            horizon_days: 30,
            roll_lead: TimeDelta::hours(24),
            roll_margin: TimeDelta::hours(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    Nothing {
        next_check: DateTime<Utc>,
    },
    /// Upload a new window for certificate `thumbprint`, then remove the windows it supersedes
    /// once the new one is in.
    Rewindow {
        thumbprint: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        old_end: Option<DateTime<Utc>>,
    },
    /// Upload the new certificate next to the old one; then on-prem
    /// `Set-CsCertificate -Roll -EffectiveDate effective`. `blocked` says why no safe date
    /// existed (then `late`).
    Roll {
        thumbprint: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        effective: DateTime<Utc>,
        late: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        blocked: Option<String>,
    },
    /// Remove the keys of the old certificate `thumbprint` from every target application: the
    /// roll was confirmed, or the old certificate has expired.
    Retire {
        thumbprint: String,
        reason: String,
    },
    Blocked {
        reason: String,
        hint: String,
    },
}

impl Decision {
    /// Whether carrying it out changes the tenant.
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Decision::Rewindow { .. } | Decision::Roll { .. } | Decision::Retire { .. }
        )
    }
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

/// A window within the lifetime the tenant's policy is known to accept.
fn capped(
    t: &TenantRecord,
    w: Result<(DateTime<Utc>, DateTime<Utc>), WindowError>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WindowError> {
    w.map(|(s, e)| match t.key_lifetime_days {
        Some(days) => (s, e.min(dates::add(s, dates::days(days.max(1))))),
        None => (s, e),
    })
}

fn day(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn decide(
    t: &TenantRecord,
    offered: Option<&CertRecord>,
    now: DateTime<Utc>,
    p: Policy,
) -> Decision {
    let d = &t.domain;
    let Some(signing) = &t.cert else {
        return blocked(
            "no certificate is recorded for this tenant",
            format!("hybrid-trust credential upload --tenant {d} --cert CERT"),
        );
    };
    let offered = offered.filter(|o| {
        o.thumbprint_sha1 != signing.thumbprint_sha1
            && t.next_cert
                .as_ref()
                .is_none_or(|n| n.thumbprint_sha1 != o.thumbprint_sha1)
    });
    if let Some(new) = offered {
        return roll(t, signing, new, now, p);
    }
    let horizon = dates::days(p.horizon_days);
    // The certificates whose keys must stay alive: the one the Front Ends sign with, and a
    // pending roll's (both valid); the one whose key ends first is re-windowed first.
    let mut alive: Vec<(&CertRecord, Option<DateTime<Utc>>)> = std::iter::once(signing)
        .chain(t.next_cert.as_ref())
        .filter(|c| c.not_after > now && c.not_before <= now)
        .map(|c| (c, credential_end(t, &c.thumbprint_sha1)))
        .collect();
    alive.sort_by_key(|(_, e)| *e);
    for (c, ends) in &alive {
        if ends.is_some_and(|e| e - now > horizon) {
            continue;
        }
        if let Ok((start, end)) = capped(t, window(c.not_before, c.not_after, None, None, now))
            && ends.is_none_or(|e| end > dates::add(e, TimeDelta::days(1)))
        {
            return Decision::Rewindow {
                thumbprint: c.thumbprint_sha1.clone(),
                start,
                end,
                old_end: *ends,
            };
        }
    }
    if let Some(old) = t.to_retire(now) {
        let reason = if old.thumbprint_sha1 == signing.thumbprint_sha1 {
            "the old certificate has expired"
        } else {
            "the roll was confirmed"
        };
        return Decision::Retire {
            thumbprint: old.thumbprint_sha1.clone(),
            reason: reason.into(),
        };
    }
    let new_cert_hint = format!(
        "issue a new OAuthTokenIssuer certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx"
    );
    if t.next_cert.is_none() {
        if signing.not_after <= now {
            return blocked(
                format!(
                    "the on-prem certificate {} expired on {}",
                    signing.thumbprint_sha1,
                    signing.not_after.format("%Y-%m-%d")
                ),
                new_cert_hint,
            );
        }
        if signing.not_after - now <= horizon {
            return blocked(
                format!(
                    "the on-prem certificate {} ends {}, inside the renewal horizon: only a new certificate helps",
                    signing.thumbprint_sha1,
                    signing.not_after.format("%Y-%m-%d")
                ),
                new_cert_hint,
            );
        }
    }
    // The next look: when a kept key enters the horizon, or the signing certificate does.
    let next_check = alive
        .iter()
        .filter_map(|(_, e)| *e)
        .chain((t.next_cert.is_none()).then_some(signing.not_after))
        .map(|e| dates::sub(e, horizon))
        .min()
        .unwrap_or(now);
    if t.next_cert.is_none()
        && alive
            .iter()
            .any(|(_, e)| e.is_none_or(|e| e - now <= horizon))
    {
        // A key inside the horizon that a new window cannot extend: its certificate ends with it.
        return blocked(
            format!(
                "the on-prem certificate {} ends {}, so a new window gains nothing",
                signing.thumbprint_sha1,
                signing.not_after.format("%Y-%m-%d")
            ),
            new_cert_hint,
        );
    }
    Decision::Nothing {
        next_check: next_check.max(now),
    }
}

/// A roll from `signing` to `new`, with its EffectiveDate.
fn roll(
    t: &TenantRecord,
    signing: &CertRecord,
    new: &CertRecord,
    now: DateTime<Utc>,
    p: Policy,
) -> Decision {
    if let Some(n) = &t.next_cert {
        return blocked(
            format!("a roll to {} is already pending", n.thumbprint_sha1),
            format!(
                "finish it first: run its script on a Front End, then hybrid-trust renew --tenant {} --confirm-roll",
                t.domain
            ),
        );
    }
    let (start, end) = match capped(t, window(new.not_before, new.not_after, None, None, now)) {
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
    if new.not_after <= signing.not_after {
        return blocked(
            format!(
                "the new certificate {} does not outlive the current one ({})",
                new.thumbprint_sha1,
                signing.not_after.format("%Y-%m-%d")
            ),
            "issue a certificate that is valid for longer",
        );
    }
    // The trust lapses with the old certificate: its end, or its key's if that is earlier.
    let (old_lapse, what) = match crate::lifecycle::lapse_of(t, signing) {
        Ok(Some(l)) if l.at < signing.not_after => (l.at, "key"),
        _ => (signing.not_after, "certificate"),
    };
    // Saturating sums (crate::dates): a recorded date at the end of the calendar gives a
    // blocked roll, not a panic.
    let latest = dates::sub(old_lapse, p.roll_lead);
    let floor = dates::add(start.max(now), p.roll_margin);
    let ideal = dates::add(now, TimeDelta::hours(24));
    let (effective, blocked) = if latest >= floor {
        (ideal.min(latest).max(floor), None)
    } else {
        (
            floor,
            Some(format!(
                "the old {what} ends {}, less than {} h after the new key can take effect ({})",
                day(old_lapse),
                p.roll_lead.num_hours(),
                day(floor)
            )),
        )
    };
    Decision::Roll {
        thumbprint: new.thumbprint_sha1.clone(),
        start,
        end,
        effective,
        late: blocked.is_some(),
        blocked,
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
            roll_margin: TimeDelta::MAX,
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
        // After the old certificate expired, an unconfirmed roll is not made current (nobody
        // showed the Front Ends use it: issue 16, defect 1), but the dead keys are retired.
        let mut t = tenant(cert("A", d(-400), d(-1)), Some((d(-400), d(-1))));
        t.next_cert = Some(new.clone());
        t.credentials.push(CredentialRecord {
            app_id: APP.into(),
            key_id: Some("k2".into()),
            thumbprint_sha1: "B".into(),
            start: d(-2),
            end: d(363),
            recorded_at: d(-2),
        });
        assert_eq!(
            decide(&t, None, now, p),
            Decision::Retire {
                thumbprint: "A".into(),
                reason: "the old certificate has expired".into()
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
