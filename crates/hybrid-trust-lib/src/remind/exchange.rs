//! The Exchange Server hybrid trust's reminders (issue 27), on the same cadence as the Skype for
//! Business trust's ([`super`]): its lapse once per threshold, its failed renewal when it starts
//! and then weekly (daily in the last week). The lapse is the earliest of the Auth Certificate's
//! end, its key's end on the dedicated application, and, while MEAC's staged certificate has no
//! key on the application, that certificate's EffectiveDate (Exchange then signs with a
//! certificate Entra does not know). Each entry says what breaks across premises, names the
//! staged certificate, and (until EWS in Exchange Online ends) the EWS allow-list.
//!
//! Identities carry the prefix [`PREFIX`] (`exchange/app/thumbprint/end`,
//! `exchange/renewal-failure/<since>`), so they never meet the Skype for Business trust's in
//! the ledger's `reminders_sent`, and [`super::Due::is_exchange`] tells the entries apart.

use super::{Due, FAILURE_THRESHOLD, Kind};
use crate::ledger::{ExchangeTrust, TenantRecord};
use chrono::{DateTime, TimeZone as _, Utc};

/// The prefix of the Exchange trust's reminder identities.
pub const PREFIX: &str = "exchange/";

/// What Exchange hybrid loses when the dedicated application has no valid key for the
/// certificate Exchange signs with (CSS-Exchange #2250; docs/protocol.md §5.4).
pub const WHAT_BREAKS: &str = "what breaks for users: free/busy, MailTips, profile photos and the cloud archive across premises (Exchange Server and Exchange Online)";

/// When EWS in Exchange Online ends for good (docs/protocol.md §5.6).
pub fn ews_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 4, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The EWS allow-list sentence for the dedicated application `app_id`, while EWS in Exchange
/// Online still runs at `now` (none after).
pub fn ews_allow_list(app_id: &str, now: DateTime<Utc>) -> Option<String> {
    (now < ews_end()).then(|| {
        format!(
            "while Exchange Server uses EWS, the application {app_id} must be in Exchange Online's EwsAllowedAppIDs (check: Get-OrganizationConfig | Format-List Ews*) until EWS in Exchange Online ends on {}",
            ews_end().format("%Y-%m-%d")
        )
    })
}

/// The renew command for the Exchange trust of `domain`.
pub fn renew_command(domain: &str) -> String {
    format!("hybrid-trust renew --trust exchange --tenant {domain} --from DIR")
}

/// When the Exchange trust lapses, which certificate that is, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Lapse {
    pub at: DateTime<Utc>,
    pub thumbprint: String,
    pub why: String,
}

/// The Exchange trust's lapse (pure): none while it has no current certificate or no key of it
/// (`status` says that is missing; nothing is counted down).
pub fn lapse(x: &ExchangeTrust) -> Option<Lapse> {
    let cert = x.cert.as_ref()?;
    let key_end = x.credential_end(&cert.thumbprint_sha1)?;
    let mut l = if cert.not_after <= key_end {
        Lapse {
            at: cert.not_after,
            thumbprint: cert.thumbprint_sha1.to_string(),
            why: format!(
                "the Exchange Auth Certificate {} ends (renew it on-prem: MonitorExchangeAuthCertificate.ps1)",
                cert.thumbprint_sha1
            ),
        }
    } else {
        Lapse {
            at: key_end,
            thumbprint: cert.thumbprint_sha1.to_string(),
            why: format!(
                "the key of the Exchange Auth Certificate {} on the application ends",
                cert.thumbprint_sha1
            ),
        }
    };
    if let (Some(n), Some(e)) = (&x.next_cert, x.next_effective)
        && x.credential_end(&n.thumbprint_sha1).is_none()
        && e < l.at
    {
        l = Lapse {
            at: e,
            thumbprint: n.thumbprint_sha1.to_string(),
            why: format!(
                "MEAC's new Auth Certificate {} takes effect: staged on-prem, not yet on the app: upload before {}",
                n.thumbprint_sha1,
                e.format("%Y-%m-%d %H:%M UTC")
            ),
        };
    }
    Some(l)
}

/// The Exchange trust's entries due for tenant `t` on `channel` at `now`.
pub fn due(t: &TenantRecord, thresholds: &[i64], channel: &str, now: DateTime<Utc>) -> Vec<Due> {
    let Some(x) = &t.exchange else {
        return Vec::new();
    };
    let st =
        crate::status::exchange::status_of(x, &t.domain, now, crate::status::Thresholds::default());
    let l = lapse(x);
    let days = l.as_ref().map(|l| (l.at - now).num_days());
    let ews = ews_allow_list(&x.app_id, now)
        .map(|s| format!(". W{}", &s[1..]))
        .unwrap_or_default();
    let entry = |kind, credential: String, threshold_days, covers, detail: String| Due {
        tenant: t.domain.clone(),
        tenant_id: t.tenant_id.clone(),
        kind,
        credential,
        app_id: x.app_id.clone(),
        thumbprint_sha1: l.as_ref().map(|l| l.thumbprint.clone()).unwrap_or_default(),
        ends: l.as_ref().map(|l| l.at),
        days_left: days,
        threshold_days,
        covers,
        detail: format!("{detail}{ews}"),
        state: st.state.name().to_string(),
        action: st.next_action.clone(),
        roll: None,
    };
    let mut out = Vec::new();
    if let Some(f) = &x.last_renewal_failure {
        let key = format!(
            "{PREFIX}renewal-failure/{}",
            f.since.unwrap_or(f.at).to_rfc3339()
        );
        if super::problem_due(t, &key, channel, days, now) {
            out.push(entry(
                Kind::RenewalFailure,
                key,
                FAILURE_THRESHOLD,
                vec![FAILURE_THRESHOLD],
                f.message.clone(),
            ));
        }
    }
    let (Some(l), Some(days)) = (&l, days) else {
        return out;
    };
    let key = format!(
        "{PREFIX}{}/{}/{}",
        x.app_id,
        l.thumbprint,
        l.at.to_rfc3339()
    );
    let unsent = super::unsent_thresholds(t, &key, thresholds, days, l.at <= now, channel);
    if let Some(most_urgent) = unsent.iter().copied().min() {
        let kind = if l.at <= now {
            Kind::Expired
        } else {
            Kind::Expiry
        };
        out.push(entry(
            kind,
            key,
            most_urgent,
            unsent.into_iter().filter(|th| *th >= most_urgent).collect(),
            l.why.clone(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord, RenewalFailure};
    use crate::remind::Digest;
    use chrono::TimeDelta;

    const APP: &str = "11111111-2222-3333-4444-555555555555";
    const TH: &[i64] = &[60, 30, 14, 7, 3, 1];
    const C: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const N: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap()
    }

    fn cert(tp: &str, days: i64) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=Microsoft Exchange Server Auth Certificate".into(),
            not_before: t0() - TimeDelta::days(1700),
            not_after: t0() + TimeDelta::days(days),
            der_base64: String::new(),
        }
    }

    fn key(tp: &str, days: i64) -> CredentialRecord {
        CredentialRecord {
            app_id: APP.into(),
            key_id: None,
            thumbprint_sha1: tp.into(),
            start: t0() - TimeDelta::days(300),
            end: t0() + TimeDelta::days(days),
            recorded_at: t0(),
        }
    }

    /// A tenant kept only for Exchange: MEAC has staged `N`, effective in 20 days, and nobody
    /// uploaded it; the current certificate ends in 50 days, its key with it.
    fn staged() -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![], t0());
        t.exchange = Some(ExchangeTrust {
            app_id: APP.into(),
            cert: Some(cert(C, 50)),
            next_cert: Some(cert(N, 1875)),
            next_effective: Some(t0() + TimeDelta::days(20)),
            credentials: vec![key(C, 50)],
            ..ExchangeTrust::default()
        });
        t
    }

    #[test]
    fn an_exchange_only_tenant_is_reminded_of_meacs_staged_certificate() {
        let now = t0();
        let mut t = staged();
        assert!(!t.has_sfb());
        let d = crate::remind::due(&t, TH, "c", now);
        assert_eq!(d.len(), 1, "{d:?}");
        let e = &d[0];
        assert!(e.is_exchange());
        assert_eq!((e.kind, e.threshold_days), (Kind::Expiry, 30));
        assert_eq!(e.ends, Some(now + TimeDelta::days(20)));
        assert_eq!(e.thumbprint_sha1, N);
        assert_eq!(e.app_id, APP);
        assert!(
            e.detail.contains(&format!(
                "staged on-prem, not yet on the app: upload before {}",
                (now + TimeDelta::days(20)).format("%Y-%m-%d")
            )),
            "{}",
            e.detail
        );
        assert!(
            e.detail.contains(&format!(
                "{APP} must be in Exchange Online's EwsAllowedAppIDs"
            )) && e.detail.contains("2027-04-01"),
            "{}",
            e.detail
        );
        // The message says what breaks, for Exchange, and the Exchange renew command once.
        let dg = Digest::new(d.clone());
        for body in [dg.text(), dg.html()] {
            for what in ["free/busy", "MailTips", "photos", "cloud archive"] {
                assert!(body.contains(what), "{what}: {body}");
            }
            assert!(body.contains("Exchange hybrid trust"), "{body}");
            assert!(!body.contains("Skype for Business"), "{body}");
            assert_eq!(
                body.matches("hybrid-trust renew --trust exchange --tenant contoso.com")
                    .count(),
                1,
                "{body}"
            );
        }
        // Delivered: not again until the next threshold; then the upload moves the lapse to
        // the current certificate's end, a new identity.
        t.mark_reminded(e, "c", now);
        assert!(crate::remind::due(&t, TH, "c", now + TimeDelta::days(1)).is_empty());
        let d = crate::remind::due(&t, TH, "c", now + TimeDelta::days(7));
        assert_eq!(d[0].threshold_days, 14);
        let x = t.exchange.as_mut().unwrap();
        x.credentials.push(key(N, 365));
        let d = crate::remind::due(&t, TH, "c", now + TimeDelta::days(7));
        assert_eq!(d[0].thumbprint_sha1, C, "{d:?}");
        assert!(d[0].detail.contains("ends"), "{}", d[0].detail);
        // After EWS in Exchange Online ends, the allow-list line is gone.
        assert!(ews_allow_list(APP, ews_end()).is_none());
    }

    #[test]
    fn a_failed_exchange_renewal_is_reminded_and_marked_on_the_exchange_trust() {
        let now = t0();
        let mut t = staged();
        t.exchange.as_mut().unwrap().last_renewal_failure = Some(RenewalFailure {
            at: now,
            message: "the app management policy refused the key".into(),
            reported: false,
            since: None,
        });
        let d = crate::remind::due(&t, TH, "c", now);
        let f = d
            .iter()
            .find(|e| e.kind == Kind::RenewalFailure)
            .expect("the failure");
        assert!(f.is_exchange() && f.credential.starts_with("exchange/renewal-failure/"));
        assert!(
            Digest::new(vec![f.clone()])
                .subject()
                .contains("the renewal of the Exchange hybrid trust failed")
        );
        t.mark_reminded(f, "c", now);
        let x = t.exchange.as_ref().unwrap();
        assert!(x.last_renewal_failure.as_ref().unwrap().reported);
        assert!(
            !crate::remind::due(&t, TH, "c", now)
                .iter()
                .any(|e| e.kind == Kind::RenewalFailure),
            "reported once"
        );
    }

    #[test]
    fn a_tenant_with_both_trusts_gets_an_entry_for_each() {
        let now = t0();
        let mut t = staged();
        let sfb = crate::microsoft::SFB_APP_ID;
        t.app_ids = vec![sfb.into()];
        t.cert = Some(cert(C, 900));
        t.credentials.push(CredentialRecord {
            app_id: sfb.into(),
            ..key(C, 10)
        });
        let d = crate::remind::due(&t, TH, "c", now);
        let kinds: Vec<bool> = d.iter().map(Due::is_exchange).collect();
        assert_eq!(kinds, [false, true], "{d:?}");
        assert!(!Digest::new(vec![d[0].clone()]).text().contains("free/busy"));
    }
}
