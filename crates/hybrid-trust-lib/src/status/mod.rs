//! A tenant's state from its ledger record (or live keys), as `status` reports it: `ok`, `due`
//! (inside the renewal horizon), `expiring` (inside the critical window), `expired`, `missing`,
//! `roll-pending` (a roll not confirmed yet: the old certificate's lapse counts); days left; the
//! lifecycle phase ([`crate::lifecycle`]); the next action in words, with its deadline; the
//! monitoring grade and plugin line of `--check`. Pure: `now` and thresholds are arguments. Date sums go
//! through [`crate::dates`], so no date or threshold can make it panic. The fleet's view of many
//! tenants is [`crate::fleet::view`].

pub mod exchange;

use crate::dates;
use crate::ledger::TenantRecord;
use crate::lifecycle;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Ok,
    Due,
    Expiring,
    Expired,
    Missing,
    /// A roll is uploaded but not confirmed: the trust lapses with the old certificate or key
    /// (docs/contract.md extensions). `--check` grades it by its days left like any lapse.
    RollPending,
}

impl State {
    /// The state of a trust whose signing key lapses at `lapses`: expired, a roll pending, or by
    /// the days left against `th` (one rule for both trusts).
    pub fn of_lapse(
        lapses: DateTime<Utc>,
        now: DateTime<Utc>,
        th: Thresholds,
        roll_pending: bool,
    ) -> State {
        let days = (lapses - now).num_days();
        if lapses <= now {
            State::Expired
        } else if roll_pending {
            State::RollPending
        } else if days <= th.crit_days {
            State::Expiring
        } else if days <= th.warn_days {
            State::Due
        } else {
            State::Ok
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Due => "due",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Missing => "missing",
            State::RollPending => "roll-pending",
        }
    }

    /// Every state, in the order of the tables and the Prometheus export.
    pub const ALL: [State; 6] = [
        State::Ok,
        State::Due,
        State::Expiring,
        State::Expired,
        State::Missing,
        State::RollPending,
    ];
}

/// How a monitoring check grades a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warning,
    Critical,
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

/// One tenant's status (docs/contract.md keys first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantStatus {
    pub tenant_id: Option<String>,
    pub domain: String,
    pub app_ids: Vec<String>,
    pub cert_thumbprint_sha1: Option<crate::ids::Thumbprint>,
    pub cert_not_after: Option<DateTime<Utc>>,
    pub credential_end: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub state: State,
    pub next_action: String,
    pub cloud: String,
    /// When the trust breaks if nobody acts ([`crate::lifecycle`]): during a pending roll the
    /// earlier of the old certificate's end and the old key's end.
    pub lapses_at: Option<DateTime<Utc>>,
    /// The lifecycle phase (`none`, `active`, `roll-planned`, `roll-scheduled`,
    /// `roll-confirmed`).
    pub phase: crate::lifecycle::Phase,
    /// The deadline of the next action, when it has one (a roll's EffectiveDate, the lapse).
    pub deadline: Option<DateTime<Utc>>,
    /// A pending roll: the new certificate, its EffectiveDate and the script that applies it.
    pub roll: Option<crate::lifecycle::PendingRoll>,
    pub last_renewal: Option<DateTime<Utc>>,
    pub last_renewal_failure: Option<String>,
    /// One entry per trust recorded for the tenant (docs/contract.md, third round); `state` and
    /// `lapses_at` above are the worst and earliest of them.
    pub trusts: Vec<TrustStatus>,
}

/// One trust of a tenant: `sfb` (00000004-…) or `exchange` (the dedicated application).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrustStatus {
    pub kind: &'static str,
    pub app_id: Option<String>,
    pub state: State,
    pub lapses_at: Option<DateTime<Utc>>,
}

/// How bad a state is, for the worst of a tenant's trusts.
fn badness(s: State) -> u8 {
    match s {
        State::Ok => 0,
        State::Due => 1,
        State::RollPending => 2,
        State::Expiring => 3,
        State::Missing => 4,
        State::Expired => 5,
    }
}

impl TenantStatus {
    /// The grade `--check` gives: a pending roll like any lapse, by its days left.
    pub fn severity(&self, th: Thresholds) -> Severity {
        match self.state {
            State::Expired | State::Missing | State::Expiring => Severity::Critical,
            State::Due => Severity::Warning,
            State::Ok => Severity::Ok,
            State::RollPending => match self.days_left {
                Some(d) if d <= th.crit_days => Severity::Critical,
                Some(d) if d <= th.warn_days => Severity::Warning,
                _ => Severity::Ok,
            },
        }
    }
}

fn day(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Evaluates a tenant at `now`: each trust it has, the tenant as the worst of them.
pub fn evaluate(t: &TenantRecord, now: DateTime<Utc>, th: Thresholds) -> TenantStatus {
    let mut s = evaluate_sfb(t, now, th);
    if t.has_sfb() {
        s.trusts.push(TrustStatus {
            kind: "sfb",
            app_id: t.app_ids.first().cloned(),
            state: s.state,
            lapses_at: s.lapses_at,
        });
    }
    let Some(x) = &t.exchange else {
        return s;
    };
    let e = exchange::status_of(x, &t.domain, now, th);
    s.trusts.push(TrustStatus {
        kind: "exchange",
        app_id: Some(x.app_id.clone()),
        state: e.state,
        lapses_at: e.lapses_at,
    });
    let sfb_counts = t.has_sfb();
    if !sfb_counts || badness(e.state) > badness(s.state) {
        s.state = e.state;
        s.days_left = e.days_left;
        s.deadline = e.lapses_at;
        s.next_action = if sfb_counts {
            format!("Exchange: {}", e.next_action)
        } else {
            e.next_action
        };
    }
    s.lapses_at = match (s.lapses_at.filter(|_| sfb_counts), e.lapses_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    s
}

/// The Skype for Business trust of a tenant at `now`.
fn evaluate_sfb(t: &TenantRecord, now: DateTime<Utc>, th: Thresholds) -> TenantStatus {
    let lc = lifecycle::of(t, now);
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
        phase: lc.phase,
        deadline: None,
        roll: lc.roll.clone(),
        last_renewal: t.last_renewal,
        last_renewal_failure: t
            .last_renewal_failure
            .as_ref()
            .map(|f| format!("{}: {}", f.at.format("%Y-%m-%d %H:%M UTC"), f.message)),
        trusts: Vec::new(),
    };
    let d = &t.domain;
    let Some(cert) = &t.cert else {
        s.next_action = format!(
            "record the certificate: hybrid-trust credential upload --tenant {d} --cert CERT (or tenant add {d} --cert CERT)"
        );
        return s;
    };
    if let Some(app) = &lc.missing_app {
        s.next_action = format!(
            "upload the certificate to {app}: hybrid-trust credential upload --tenant {d} --cert CERT --app-id {app}"
        );
        return s;
    }
    let Some(lapse) = &lc.lapse else {
        s.next_action = format!(
            "no target application recorded: hybrid-trust tenant add {d} --app-id 00000004-0000-0ff1-ce00-000000000000"
        );
        return s;
    };
    let lapses = lapse.at;
    s.credential_end = Some(lapse.key_end);
    s.lapses_at = Some(lapses);
    s.deadline = Some(lapses);
    let days = (lapses - now).num_days();
    s.days_left = Some(days);
    s.state = State::of_lapse(lapses, now, th, lc.roll.is_some());
    let cert_end = cert.not_after;
    let cert_limits = lapse.cause == lifecycle::Cause::CertificateEnds
        || cert_end <= dates::add(lapse.key_end, TimeDelta::days(1));
    s.next_action = match (&lc.roll, s.state) {
        (Some(r), _) => roll_action(d, r, lapses, now, &mut s.deadline),
        (None, State::Ok) => match &lc.retire {
            Some(old) => format!("retire the old key {old}: hybrid-trust renew --tenant {d}"),
            None => format!(
                "nothing until {} (renewal opens {} days before the end)",
                dates::sub(lapses, dates::days(th.warn_days)).format("%Y-%m-%d"),
                th.warn_days
            ),
        },
        (None, _) if cert_limits => format!(
            "the on-prem certificate ends {}: issue a new OAuthTokenIssuer certificate, then hybrid-trust renew --tenant {d} --new-cert NEW.pfx",
            cert_end.format("%Y-%m-%d")
        ),
        (None, State::Expired) => format!(
            "renew now, the trust is broken since {}: hybrid-trust renew --tenant {d}",
            lapses.format("%Y-%m-%d")
        ),
        (None, _) => format!(
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

/// The next action of a pending roll, and its deadline.
fn roll_action(
    d: &str,
    r: &lifecycle::PendingRoll,
    lapses: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline: &mut Option<DateTime<Utc>>,
) -> String {
    let confirm = format!("hybrid-trust renew --tenant {d} --confirm-roll");
    let script = &r.script;
    let new = &r.thumbprint_sha1;
    if lapses <= now {
        return format!(
            "the trust lapsed at {} with the old certificate: run {script} on a Front End now, then {confirm}",
            day(lapses)
        );
    }
    match (r.effective, &r.blocked) {
        (Some(e), Some(b)) => {
            *deadline = Some(lapses);
            format!(
                "roll blocked ({b}): run {script} on a Front End now (it takes effect {}), then {confirm}; the trust lapses {}",
                day(e),
                day(lapses)
            )
        }
        (Some(e), None) if e > now => {
            *deadline = Some(e);
            format!(
                "run {script} on a Front End before {}, then after it: {confirm}",
                day(e)
            )
        }
        _ => format!(
            "confirm the roll once Get-CsCertificate -Type OAuthTokenIssuer shows {new} as current: {confirm} (or --current DIR); if {script} was not run, run it now: the trust lapses {}",
            day(lapses)
        ),
    }
}

/// The Nagios/Icinga plugin line and exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) for
/// these statuses; `errors` counts the tenants that could not be read.
pub fn check_line(statuses: &[TenantStatus], errors: usize, th: Thresholds) -> (u8, String) {
    let crit: Vec<&TenantStatus> = statuses
        .iter()
        .filter(|s| s.severity(th) == Severity::Critical)
        .collect();
    let warn: Vec<&TenantStatus> = statuses
        .iter()
        .filter(|s| s.severity(th) == Severity::Warning)
        .collect();
    let next = statuses
        .iter()
        .filter(|s| s.days_left.is_some())
        .min_by_key(|s| s.days_left);
    let perf: String = statuses
        .iter()
        .filter_map(|s| {
            s.days_left
                .map(|d| format!(" '{}'={d};{};{}", s.domain, th.warn_days, th.crit_days))
        })
        .collect();
    let (code, word) = if statuses.is_empty() || errors > 0 {
        (3, "UNKNOWN")
    } else if !crit.is_empty() {
        (2, "CRITICAL")
    } else if !warn.is_empty() {
        (1, "WARNING")
    } else {
        (0, "OK")
    };
    let detail = if statuses.is_empty() {
        "no tenants in the ledger".to_string()
    } else if errors > 0 {
        format!("{errors} tenant(s) could not be read")
    } else if let Some(c) = crit.first() {
        format!(
            "{} tenant(s) critical: {} is {} ({})",
            crit.len(),
            c.domain,
            c.state.name(),
            c.next_action
        )
    } else if let Some(w) = warn.first() {
        let roll = if w.state == State::RollPending {
            format!(" (roll pending: {})", w.next_action)
        } else {
            String::new()
        };
        format!(
            "{} tenant(s) due: {} in {} days{roll}",
            warn.len(),
            w.domain,
            w.days_left.unwrap_or(0)
        )
    } else {
        format!(
            "{} tenant(s); next lapse {} in {} days",
            statuses.len(),
            next.map_or("-", |n| n.domain.as_str()),
            next.and_then(|n| n.days_left).unwrap_or(0)
        )
    };
    (code, format!("HYBRID-TRUST {word} - {detail} |{perf}\n"))
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
