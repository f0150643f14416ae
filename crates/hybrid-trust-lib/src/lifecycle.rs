//! The renewal lifecycle of one tenant, and the one answer to "when does the trust lapse"
//! (issue 16), read the same way by `status`, `--check`, `remind` and `renew`. Pure: the ledger
//! record and `now` in, the phase and the lapse out.
//!
//! Phases: none → active → (re-window due, a `status` state) → roll scheduled (the new key is on
//! Graph and the on-prem script written with its EffectiveDate E; "roll planned" when no safe E
//! exists, a blocked roll) → roll confirmed (the old key still to retire) → active.
//!
//! The lapse is read from the certificate the Front Ends sign with (`cert` in the ledger, which a
//! roll only replaces once confirmed, see [`crate::ledger::roll`]): the earlier of its end and the
//! end of its keys (the latest window on each target application, the earliest across them).
//! During a pending roll that is the old certificate's and the old key's end, however healthy the
//! new key is: nobody has shown that the Front Ends use it.

use crate::ledger::{CertRecord, TenantRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// No certificate or no key recorded.
    None,
    Active,
    /// The new key is on Graph, but no safe EffectiveDate existed (a blocked roll).
    RollPlanned,
    /// The new key is on Graph and the on-prem step is written with its EffectiveDate.
    RollScheduled,
    /// The Front Ends sign with the new certificate; the old key is still to be retired.
    RollConfirmed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::None => "none",
            Phase::Active => "active",
            Phase::RollPlanned => "roll-planned",
            Phase::RollScheduled => "roll-scheduled",
            Phase::RollConfirmed => "roll-confirmed",
        }
    }
}

/// What ends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A key credential of the signing certificate ends.
    KeyEnds,
    /// The signing certificate itself ends.
    CertificateEnds,
}

/// When the trust breaks if nobody acts, and which key that is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lapse {
    pub at: DateTime<Utc>,
    pub cause: Cause,
    /// The application whose key lapses first, and that key's certificate and end: the identity
    /// reminders are counted against (`app/thumbprint/end`, as recorded since the first release).
    pub app_id: String,
    pub thumbprint_sha1: String,
    pub key_end: DateTime<Utc>,
}

impl Lapse {
    pub fn identity(&self) -> String {
        format!(
            "{}/{}/{}",
            self.app_id,
            self.thumbprint_sha1,
            self.key_end.to_rfc3339()
        )
    }
}

/// A pending roll as the ledger has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingRoll {
    pub thumbprint_sha1: String,
    pub effective: Option<DateTime<Utc>>,
    pub blocked: Option<String>,
    /// The script `renew` wrote, by name (it is next to the ledger).
    pub script: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub phase: Phase,
    pub lapse: Option<Lapse>,
    pub roll: Option<PendingRoll>,
    /// The certificate whose keys the next `renew` retires.
    pub retire: Option<String>,
    /// The application that has no key of the signing certificate, if any.
    pub missing_app: Option<String>,
}

/// The file name of the on-prem roll step for `domain` and the new certificate.
pub fn roll_script_name(domain: &str, thumbprint: &str) -> String {
    let short: String = thumbprint.chars().take(8).collect();
    format!("roll-{domain}-{short}.ps1")
}

/// The lapse of certificate `c`'s keys on `t`'s applications: the latest window on each
/// application, the earliest across them, bounded by the certificate's end. `Err(app)` names an
/// application with no key of `c`.
pub fn lapse_of(t: &TenantRecord, c: &CertRecord) -> Result<Option<Lapse>, String> {
    let mut first: Option<(String, DateTime<Utc>)> = None;
    for app in &t.app_ids {
        let Some(end) = t.credential_end(app, &c.thumbprint_sha1) else {
            return Err(app.clone());
        };
        if first.as_ref().is_none_or(|(_, e)| end < *e) {
            first = Some((app.clone(), end));
        }
    }
    Ok(first.map(|(app, key_end)| {
        let (at, cause) = if c.not_after < key_end {
            (c.not_after, Cause::CertificateEnds)
        } else {
            (key_end, Cause::KeyEnds)
        };
        Lapse {
            at,
            cause,
            app_id: app,
            thumbprint_sha1: c.thumbprint_sha1.clone(),
            key_end,
        }
    }))
}

/// The tenant's lifecycle at `now`.
pub fn of(t: &TenantRecord, now: DateTime<Utc>) -> Lifecycle {
    let roll = t.next_cert.as_ref().map(|n| PendingRoll {
        thumbprint_sha1: n.thumbprint_sha1.clone(),
        effective: t.roll_effective,
        blocked: t.roll_blocked.clone(),
        script: roll_script_name(&t.domain, &n.thumbprint_sha1),
    });
    let retire = t.to_retire(now).map(|c| c.thumbprint_sha1.clone());
    let Some(cert) = &t.cert else {
        return Lifecycle {
            phase: Phase::None,
            lapse: None,
            roll,
            retire,
            missing_app: None,
        };
    };
    let (lapse, missing_app) = match lapse_of(t, cert) {
        Ok(l) => (l, None),
        // The keys of an expired signing certificate may have been retired: it lapsed then.
        Err(_) if t.next_cert.is_some() && cert.not_after <= now => (
            Some(Lapse {
                at: cert.not_after,
                cause: Cause::CertificateEnds,
                app_id: t.app_ids.first().cloned().unwrap_or_default(),
                thumbprint_sha1: cert.thumbprint_sha1.clone(),
                key_end: cert.not_after,
            }),
            None,
        ),
        Err(app) => (None, Some(app)),
    };
    let phase = match (&roll, &retire, &lapse) {
        (Some(r), _, _) if r.blocked.is_some() => Phase::RollPlanned,
        (Some(_), _, _) => Phase::RollScheduled,
        (None, Some(_), _) => Phase::RollConfirmed,
        (None, None, Some(_)) => Phase::Active,
        (None, None, None) => Phase::None,
    };
    Lifecycle {
        phase,
        lapse,
        roll,
        retire,
        missing_app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ConfirmedBy, CredentialRecord};
    use chrono::{TimeDelta, TimeZone as _};

    const APP: &str = crate::microsoft::SFB_APP_ID;
    const TEAMS: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, 8, 0, 0).unwrap()
    }
    fn d(n: i64) -> DateTime<Utc> {
        now() + TimeDelta::days(n)
    }

    fn cert(tp: &str, end: i64) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=x".into(),
            not_before: d(-300),
            not_after: d(end),
            der_base64: String::new(),
        }
    }

    fn key(app: &str, tp: &str, end: i64) -> CredentialRecord {
        CredentialRecord {
            app_id: app.into(),
            key_id: None,
            thumbprint_sha1: tp.into(),
            start: d(-10),
            end: d(end),
            recorded_at: now(),
        }
    }

    /// Issue 16, defect 1: a pending roll lapses with the old certificate, however long the new
    /// key lasts; and defect 3's input: the old key ending before the old certificate is the
    /// lapse.
    #[test]
    fn a_pending_roll_lapses_with_the_old_certificate_and_its_key() {
        let mut t = TenantRecord::new("c.com", "global", vec![APP.into()], now());
        t.cert = Some(cert("OLD", 10));
        t.credentials.push(key(APP, "OLD", 10));
        t.start_roll(
            cert("NEW", 700),
            vec![key(APP, "NEW", 365)],
            d(1),
            None,
            now(),
        );
        let l = of(&t, now());
        assert_eq!(l.phase, Phase::RollScheduled);
        assert_eq!(l.lapse.as_ref().unwrap().at, d(10));
        assert_eq!(l.roll.as_ref().unwrap().script, "roll-c.com-NEW.ps1");
        // The old key ends before the old certificate: that is the lapse.
        t.cert = Some(cert("OLD", 60));
        let l = of(&t, now());
        assert_eq!(
            (l.lapse.as_ref().unwrap().at, l.lapse.unwrap().cause),
            (d(10), Cause::KeyEnds)
        );
        t.confirm_roll(ConfirmedBy::Admin, d(2)).unwrap();
        let l = of(&t, d(2));
        assert_eq!(l.phase, Phase::RollConfirmed);
        assert_eq!(l.lapse.unwrap().at, d(365));
        assert_eq!(l.retire.as_deref(), Some("OLD"));
    }

    #[test]
    fn the_earliest_application_lapses_first_and_a_missing_key_is_named() {
        let mut t = TenantRecord::new("c.com", "global", vec![APP.into(), TEAMS.into()], now());
        t.cert = Some(cert("A", 700));
        t.credentials.push(key(APP, "A", 300));
        assert_eq!(of(&t, now()).missing_app.as_deref(), Some(TEAMS));
        t.credentials.push(key(TEAMS, "A", 200));
        t.credentials.push(key(APP, "A", 100));
        let l = of(&t, now()).lapse.unwrap();
        assert_eq!((l.app_id.as_str(), l.at), (TEAMS, d(200)));
        assert_eq!(l.identity(), format!("{TEAMS}/A/{}", d(200).to_rfc3339()));
    }
}
