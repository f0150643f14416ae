//! The Exchange Server hybrid trust's state from its ledger record, as `status` reports it in
//! `trusts` (pure: `now` and thresholds are arguments).

use chrono::{DateTime, TimeDelta, Utc};

/// The Exchange trust's state from its ledger record, as `status` reports it in `trusts`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustState {
    pub state: super::State,
    pub lapses_at: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub next_action: String,
}

/// Evaluates an Exchange trust at `now` (pure): it lapses at the earlier of the current Auth
/// Certificate's end and its key's end; while a staged certificate has no key on the application,
/// also at its EffectiveDate (Exchange then signs with a certificate Entra does not know).
pub fn status_of(
    x: &crate::ledger::ExchangeTrust,
    domain: &str,
    now: DateTime<Utc>,
    th: super::Thresholds,
) -> TrustState {
    use super::State;
    let renew = format!("hybrid-trust renew --trust exchange --tenant {domain} --from DIR");
    let missing = |why: String| TrustState {
        state: State::Missing,
        lapses_at: None,
        days_left: None,
        next_action: why,
    };
    let Some(cert) = &x.cert else {
        return missing(format!(
            "export the Auth Certificate (hybrid-trust onprem script --trust exchange) and upload it: {renew}"
        ));
    };
    let Some(key_end) = x.credential_end(&cert.thumbprint_sha1) else {
        return missing(format!(
            "the current Auth Certificate {} has no key on the application: {renew}",
            cert.thumbprint_sha1
        ));
    };
    let mut lapses = key_end.min(cert.not_after);
    let mut action = None;
    if let Some(n) = &x.next_cert
        && x.credential_end(&n.thumbprint_sha1).is_none()
    {
        let e = x.next_effective.unwrap_or(now);
        lapses = lapses.min(e);
        action = Some(format!(
            "staged on-prem, not yet on the app: upload {} before {}: {renew}",
            n.thumbprint_sha1,
            e.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    let days = (lapses - now).num_days();
    let state = State::of_lapse(lapses, now, th, false);
    let next_action = action.unwrap_or_else(|| match state {
        State::Ok => format!(
            "nothing until {}; after MonitorExchangeAuthCertificate.ps1 stages a new certificate, export again and {renew}",
            (lapses - TimeDelta::days(th.warn_days)).format("%Y-%m-%d")
        ),
        _ if cert.not_after <= key_end + TimeDelta::days(1) => format!(
            "the Auth Certificate ends {}: renew it on-prem (MonitorExchangeAuthCertificate.ps1), export again and {renew}",
            cert.not_after.format("%Y-%m-%d")
        ),
        _ => format!("renew before {}: {renew}", lapses.format("%Y-%m-%d")),
    });
    TrustState {
        state,
        lapses_at: Some(lapses),
        days_left: Some(days),
        next_action,
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::{CertRecord, CredentialRecord, ExchangeTrust, TenantRecord};
    use crate::status::{State, Thresholds, evaluate};
    use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};

    const SFB: &str = "00000004-0000-0ff1-ce00-000000000000";
    const APP: &str = "11111111-2222-3333-4444-555555555555";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
    }

    fn cert(tp: &str, days: i64) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=x".into(),
            not_before: now() - TimeDelta::days(30),
            not_after: now() + TimeDelta::days(days),
            der_base64: String::new(),
        }
    }

    fn cred(app: &str, tp: &str, days: i64) -> CredentialRecord {
        CredentialRecord {
            app_id: app.into(),
            key_id: None,
            thumbprint_sha1: tp.into(),
            start: now() - TimeDelta::days(30),
            end: now() + TimeDelta::days(days),
            recorded_at: now(),
        }
    }

    fn exchange(next_effective_days: Option<i64>) -> ExchangeTrust {
        let mut x = ExchangeTrust {
            app_id: APP.into(),
            cert: Some(cert("C", 1500)),
            ..ExchangeTrust::default()
        };
        x.credentials.push(cred(APP, "C", 300));
        if let Some(d) = next_effective_days {
            x.next_cert = Some(cert("N", 1800));
            x.next_effective = Some(now() + TimeDelta::days(d));
        }
        x
    }

    #[test]
    fn a_tenant_has_one_entry_per_trust_and_the_worst_of_them() {
        let th = Thresholds::default();
        // Only the Exchange trust: no sfb entry.
        let mut t = TenantRecord::new("contoso.com", "global", vec![], now());
        t.exchange = Some(exchange(None));
        let s = evaluate(&t, now(), th);
        assert_eq!(s.trusts.len(), 1);
        assert_eq!(s.trusts[0].kind, "exchange");
        assert_eq!(s.state, State::Ok);
        assert_eq!(s.lapses_at, Some(now() + TimeDelta::days(300)));
        // Both: MEAC's staged certificate not on the application, effective in 5 days, makes the
        // tenant expiring whatever its Skype for Business key says, and names the upload.
        let mut t = TenantRecord::new("contoso.com", "global", vec![SFB.into()], now());
        t.cert = Some(cert("S", 700));
        t.credentials.push(cred(SFB, "S", 200));
        t.exchange = Some(exchange(Some(5)));
        let s = evaluate(&t, now(), th);
        let kinds: Vec<&str> = s.trusts.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["sfb", "exchange"]);
        assert_eq!(s.trusts[0].state, State::Ok);
        assert_eq!(s.trusts[1].state, State::Expiring);
        assert_eq!(s.state, State::Expiring);
        assert_eq!(s.lapses_at, Some(now() + TimeDelta::days(5)));
        assert!(
            s.next_action.contains(&format!(
                "staged on-prem, not yet on the app: upload {} before 2027-01-06",
                crate::ids::Thumbprint::from("N")
            )),
            "{}",
            s.next_action
        );
        // Once its key is there, the tenant is as its trusts are.
        t.exchange
            .as_mut()
            .unwrap()
            .credentials
            .push(cred(APP, "N", 360));
        let s = evaluate(&t, now(), th);
        assert_eq!(s.state, State::Ok);
        assert_eq!(s.lapses_at, Some(now() + TimeDelta::days(200)));
    }
}
