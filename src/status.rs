//! A tenant's state from its ledger record (or live keys), as `status` reports it: `ok`, `due`
//! (inside the renewal horizon), `expiring` (inside the critical window), `expired`, `missing`;
//! days left; the next action in words. Pure: `now` and thresholds are arguments. Date sums go
//! through [`crate::dates`], so no date or threshold can make it panic.

use crate::dates;
use crate::ledger::TenantRecord;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Due,
    Expiring,
    Expired,
    Missing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Due => "due",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Renewal horizon: `due` at or under this many days (default 30).
    pub warn_days: i64,
    /// `expiring` at or under this many days (default 7).
    pub crit_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_days: 30,
            crit_days: 7,
        }
    }
}

/// One tenant's status (CONTRACT.md keys first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantStatus {
    pub tenant_id: Option<String>,
    pub domain: String,
    pub app_ids: Vec<String>,
    pub cert_thumbprint_sha1: Option<String>,
    pub cert_not_after: Option<DateTime<Utc>>,
    pub credential_end: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub state: State,
    pub next_action: String,
    pub cloud: String,
    /// The instant the trust lapses: the earlier of the credential's end and the certificate's.
    pub lapses_at: Option<DateTime<Utc>>,
    pub last_renewal: Option<DateTime<Utc>>,
    pub last_renewal_failure: Option<String>,
}

/// Evaluates a tenant at `now`.
pub fn evaluate(t: &TenantRecord, now: DateTime<Utc>, th: Thresholds) -> TenantStatus {
    let mut s = TenantStatus {
        tenant_id: t.tenant_id.clone(),
        domain: t.domain.clone(),
        app_ids: t.app_ids.clone(),
        cert_thumbprint_sha1: t.cert.as_ref().map(|c| c.thumbprint_sha1.clone()),
        cert_not_after: t.cert.as_ref().map(|c| c.not_after),
        credential_end: None,
        days_left: None,
        state: State::Missing,
        next_action: String::new(),
        cloud: t.cloud.clone(),
        lapses_at: None,
        last_renewal: t.last_renewal,
        last_renewal_failure: t
            .last_renewal_failure
            .as_ref()
            .map(|f| format!("{}: {}", f.at.format("%Y-%m-%d %H:%M UTC"), f.message)),
    };
    let d = &t.domain;
    let Some(cert) = &t.cert else {
        s.next_action = format!(
            "record the certificate: hybrid-trust credential upload --tenant {d} --cert CERT (or tenant add {d} --cert CERT)"
        );
        return s;
    };
    let certs: Vec<_> = std::iter::once(cert).chain(t.next_cert.as_ref()).collect();
    let mut ends = Vec::new();
    for app in &t.app_ids {
        let end = certs
            .iter()
            .filter_map(|c| t.credential_end(app, &c.thumbprint_sha1))
            .max();
        match end {
            Some(e) => ends.push(e),
            None => {
                s.next_action = format!(
                    "upload the certificate to {app}: hybrid-trust credential upload --tenant {d} --cert CERT --app-id {app}"
                );
                return s;
            }
        }
    }
    let Some(credential_end) = ends.into_iter().min() else {
        s.next_action = format!(
            "no target application recorded: hybrid-trust tenant add {d} --app-id 00000004-0000-0ff1-ce00-000000000000"
        );
        return s;
    };
    let cert_end = certs
        .iter()
        .map(|c| c.not_after)
        .max()
        .unwrap_or(cert.not_after);
    let lapses = credential_end.min(cert_end);
    s.credential_end = Some(credential_end);
    s.lapses_at = Some(lapses);
    let days = (lapses - now).num_days();
    s.days_left = Some(days);
    s.state = if lapses <= now {
        State::Expired
    } else if days <= th.crit_days {
        State::Expiring
    } else if days <= th.warn_days {
        State::Due
    } else {
        State::Ok
    };
    let cert_limits = cert_end <= dates::add(credential_end, TimeDelta::days(1));
    s.next_action = match s.state {
        State::Ok => format!(
            "nothing until {} (renewal opens {} days before the end)",
            dates::sub(lapses, dates::days(th.warn_days)).format("%Y-%m-%d"),
            th.warn_days
        ),
        _ if cert_limits && t.next_cert.is_none() => format!(
            "the on-prem certificate ends {}: issue a new OAuthTokenIssuer certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx",
            cert_end.format("%Y-%m-%d")
        ),
        State::Expired => format!(
            "renew now, the trust is broken since {}: hybrid-trust renew --tenant {d}",
            lapses.format("%Y-%m-%d")
        ),
        _ => format!(
            "renew before {}: hybrid-trust renew --tenant {d}",
            lapses.format("%Y-%m-%d")
        ),
    };
    if let Some(f) = &s.last_renewal_failure {
        s.next_action
            .push_str(&format!("; the last renewal failed ({f})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord};
    use chrono::TimeZone as _;

    const APP: &str = "00000004-0000-0ff1-ce00-000000000000";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn tenant(not_after: DateTime<Utc>, end: DateTime<Utc>) -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], now());
        t.cert = Some(CertRecord {
            thumbprint_sha1: "A".into(),
            subject: "CN=x".into(),
            not_before: now() - TimeDelta::days(30),
            not_after,
            der_base64: String::new(),
        });
        t.credentials.push(CredentialRecord {
            app_id: APP.into(),
            key_id: None,
            thumbprint_sha1: "A".into(),
            start: now() - TimeDelta::days(30),
            end,
            recorded_at: now(),
        });
        t
    }

    /// Issue 14, defect 4: dates at chrono's limits (a key or ledger date past any real one) and
    /// absurd thresholds give a status, never a panic.
    #[test]
    fn dates_at_the_limits_of_the_calendar_do_not_panic() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let normal = now() + TimeDelta::days(200);
        for (na, end) in [
            (normal, max),
            (max, max),
            (min, normal),
            (max, min),
            (min, min),
        ] {
            for th in [
                Thresholds::default(),
                Thresholds {
                    warn_days: i64::MAX,
                    crit_days: i64::MAX,
                },
            ] {
                for at in [now(), min, max] {
                    let s = evaluate(&tenant(na, end), at, th);
                    assert!(s.days_left.is_some());
                }
            }
        }
        let s = evaluate(&tenant(normal, max), now(), Thresholds::default());
        assert_eq!(s.state, State::Ok);
        assert_eq!(s.lapses_at, Some(normal));
    }
}
