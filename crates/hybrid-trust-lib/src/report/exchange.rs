//! The Exchange Server hybrid trust in the text table's timeline: which Auth Certificate
//! Exchange signs with over a stretch of days (the current one, then MEAC's staged one from its
//! EffectiveDate), and whether the dedicated application holds a key of it for all of it. Pure.

use crate::ledger::ExchangeTrust;
use chrono::{DateTime, Utc};

/// Whether a key of the certificate Exchange signs with covers `[a, b]` on the application:
/// the current certificate's before the staged one's EffectiveDate, the staged one's after.
pub fn covered(x: &ExchangeTrust, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    let key_covers = |tp: Option<&str>, from: DateTime<Utc>, to: DateTime<Utc>| {
        tp.is_some_and(|tp| {
            x.credentials.iter().any(|c| {
                c.thumbprint_sha1.eq_ignore_ascii_case(tp) && c.start <= from && c.end >= to
            })
        })
    };
    let current = x.cert.as_ref().map(|c| c.thumbprint_sha1.as_str());
    let staged = x
        .next_cert
        .as_ref()
        .map(|c| c.thumbprint_sha1.as_str())
        .zip(x.next_effective);
    match staged {
        Some((n, e)) if e <= a => key_covers(Some(n), a, b),
        Some((n, e)) if e < b => key_covers(current, a, e) && key_covers(Some(n), e, b),
        _ => key_covers(current, a, b),
    }
}

/// The latest end of the Auth Certificates the export named (the `|` in the bar).
pub fn cert_end(x: &ExchangeTrust) -> Option<DateTime<Utc>> {
    x.cert
        .iter()
        .chain(x.next_cert.iter())
        .map(|c| c.not_after)
        .max()
}

#[cfg(test)]
mod tests {
    use crate::ledger::{CertRecord, CredentialRecord, ExchangeTrust, TenantRecord};
    use crate::status::{Thresholds, evaluate};
    use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};

    const SFB: &str = crate::microsoft::SFB_APP_ID;
    const APP: &str = "11111111-2222-3333-4444-555555555555";
    const S: &str = "5555555555555555555555555555555555555555";
    const C: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const N: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }
    fn d(n: i64) -> DateTime<Utc> {
        now() + TimeDelta::days(n)
    }
    fn cert(tp: &str, from: i64, to: i64) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=x".into(),
            not_before: d(from),
            not_after: d(to),
            der_base64: String::new(),
        }
    }
    fn key(app: &str, tp: &str, from: i64, to: i64) -> CredentialRecord {
        CredentialRecord {
            app_id: app.into(),
            key_id: None,
            thumbprint_sha1: tp.into(),
            start: d(from),
            end: d(to),
            recorded_at: now(),
        }
    }

    /// A tenant with both trusts: the SfB key good for 300 days; Exchange's current Auth
    /// Certificate ends in 50 days and MEAC's staged one takes effect in 20, not uploaded.
    fn both() -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![SFB.into()], now());
        t.cert = Some(cert(S, -400, 700));
        t.credentials.push(key(SFB, S, -60, 300));
        t.exchange = Some(ExchangeTrust {
            app_id: APP.into(),
            cert: Some(cert(C, -1775, 50)),
            next_cert: Some(cert(N, -10, 1815)),
            next_effective: Some(d(20)),
            credentials: vec![key(APP, C, -300, 50)],
            ..ExchangeTrust::default()
        });
        t
    }

    #[test]
    fn the_text_bar_and_table_show_both_trusts() {
        let mut t = both();
        // From MEAC's EffectiveDate Exchange signs with a certificate the app has no key of.
        let bar = super::super::timeline(&t, now());
        assert_eq!(&bar[..1], "#", "{bar}");
        assert_eq!(
            &bar[1..2],
            ".",
            "{bar}: the EffectiveDate falls in the 2nd column"
        );
        assert!(bar[2..].chars().all(|c| c != '#'), "{bar}");
        // Uploaded (for a year under a 365-day policy): covered until the SfB key ends.
        t.exchange
            .as_mut()
            .unwrap()
            .credentials
            .push(key(APP, N, -1, 364));
        let bar = super::super::timeline(&t, now());
        assert_eq!(&bar[..19], "#".repeat(19), "{bar}");
        // Kept only for Exchange: the bar is the Exchange trust's alone.
        let mut x = TenantRecord::new("fabrikam.com", "global", vec![], now());
        x.exchange = t.exchange.clone();
        let bar = super::super::timeline(&x, now());
        assert!(bar.starts_with("########"), "{bar}");
        // The table names each trust under a tenant that has the Exchange one.
        let st = evaluate(&both(), now(), Thresholds::default());
        let table = super::super::table(&[(st, "b".into())]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[2].trim_start().starts_with(&format!("sfb {SFB}")),
            "{table}"
        );
        assert!(
            lines[3].contains(&format!("exchange {APP}")) && lines[3].contains("2026-12-20"),
            "{table}"
        );
    }

    #[test]
    fn the_html_timeline_has_the_exchange_lanes_and_meacs_date() {
        let t = both();
        let st = evaluate(&t, now(), Thresholds::default());
        let page = crate::report::html::render(&[(t.clone(), st)], &[], now());
        for want in [
            ">SfB 00000004<",
            ">Exchange app<",
            ">Auth cert<",
            &format!("key of {C} on the Exchange hybrid application {APP}"),
            &format!("staged Exchange Auth Certificate {N}"),
            &format!("Exchange: the staged Auth Certificate {N} takes effect 2026-12-20"),
            "sfb ok 2027-09-26 \u{b7} exchange due 2026-12-20",
        ] {
            assert!(
                page.contains(want),
                "{want}: {}",
                &page[page.find("<tbody>").unwrap_or(0)..][..600]
            );
        }
        // Kept only for Exchange: no Skype for Business lanes.
        let mut x = TenantRecord::new("fabrikam.com", "global", vec![], now());
        x.exchange = t.exchange.clone();
        let st = evaluate(&x, now(), Thresholds::default());
        let page = crate::report::html::render(&[(x, st)], &[], now());
        assert!(page.contains(">Exchange app<") && !page.contains(">SfB 00000004<"));
        assert!(!page.contains(">certificate<"));
    }
}
