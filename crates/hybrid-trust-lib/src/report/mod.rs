//! Renderings of tenant status for people and machines: a table with a timeline of the key
//! windows, a self-contained HTML page ([`html`]), node-exporter textfile metrics (Prometheus exposition format), and an iCalendar file
//! (RFC 5545) with one event per credential end and alarms at the reminder thresholds. Pure;
//! date sums go through [`crate::dates`] (saturating), so no date can make a rendering panic.

pub mod html;

use crate::dates;
use crate::ledger::TenantRecord;
use crate::status::{State, TenantStatus};
use chrono::{DateTime, TimeDelta, Utc};
use std::fmt::Write as _;

/// A 24-column bar for the next 12 months: `#` where a key of the current certificate is
/// valid, `.` where none is, `|` at the certificate's end.
pub fn timeline(t: &TenantRecord, now: DateTime<Utc>) -> String {
    let mut bar = String::with_capacity(24);
    let certs: Vec<&str> = t
        .cert
        .iter()
        .chain(t.next_cert.iter())
        .map(|c| c.thumbprint_sha1.as_str())
        .collect();
    let cert_end = t
        .cert
        .iter()
        .chain(t.next_cert.iter())
        .map(|c| c.not_after)
        .max();
    for i in 0..24 {
        let (a, b) = (
            dates::add(now, TimeDelta::days(i * 365 / 24)),
            dates::add(now, TimeDelta::days((i + 1) * 365 / 24)),
        );
        let covered = !t.app_ids.is_empty()
            && t.app_ids.iter().all(|app| {
                t.credentials.iter().any(|c| {
                    &c.app_id == app
                        && certs.contains(&c.thumbprint_sha1.as_str())
                        && c.start <= a
                        && c.end >= b
                })
            });
        let c = if cert_end.is_some_and(|e| e >= a && e < b) {
            '|'
        } else if covered {
            '#'
        } else {
            '.'
        };
        bar.push(c);
    }
    bar
}

pub fn table(rows: &[(TenantStatus, String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<32} {:<9} {:>5}  {:<10}  {:<10}  {:<24}  NEXT ACTION",
        "TENANT", "STATE", "DAYS", "ENDS", "CERT ENDS", "NEXT 12 MONTHS"
    );
    for (st, bar) in rows {
        let _ = writeln!(
            s,
            "{:<32} {:<9} {:>5}  {:<10}  {:<10}  {:<24}  {}",
            st.domain,
            st.state.name(),
            st.days_left.map_or("-".into(), |d| d.to_string()),
            st.lapses_at
                .map_or("-".into(), |d| d.format("%Y-%m-%d").to_string()),
            st.cert_not_after
                .map_or("-".into(), |d| d.format("%Y-%m-%d").to_string()),
            bar,
            st.next_action
        );
    }
    if rows.is_empty() {
        s.push_str("(no tenants in the ledger: hybrid-trust onboard, or tenant add)\n");
    }
    s
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// node-exporter textfile collector format.
pub fn prometheus(tenants: &[(&TenantRecord, TenantStatus)], now: DateTime<Utc>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_credential_expiry_seconds Seconds until the key credential ends (negative: ended)."
    );
    let _ = writeln!(s, "# TYPE hybrid_trust_credential_expiry_seconds gauge");
    for (t, _) in tenants {
        for c in &t.credentials {
            let _ = writeln!(
                s,
                "hybrid_trust_credential_expiry_seconds{{tenant=\"{}\",tenant_id=\"{}\",app_id=\"{}\",thumbprint=\"{}\"}} {}",
                label(&t.domain),
                label(t.tenant_id.as_deref().unwrap_or("")),
                label(&c.app_id),
                label(&c.thumbprint_sha1),
                (c.end - now).num_seconds()
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_certificate_expiry_seconds Seconds until the on-prem OAuthTokenIssuer certificate expires."
    );
    let _ = writeln!(s, "# TYPE hybrid_trust_certificate_expiry_seconds gauge");
    for (t, _) in tenants {
        for c in t.cert.iter().chain(t.next_cert.iter()) {
            let _ = writeln!(
                s,
                "hybrid_trust_certificate_expiry_seconds{{tenant=\"{}\",thumbprint=\"{}\"}} {}",
                label(&t.domain),
                label(&c.thumbprint_sha1),
                (c.not_after - now).num_seconds()
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_trust_expiry_seconds Seconds until the trust lapses (credential or certificate, whichever ends first)."
    );
    let _ = writeln!(s, "# TYPE hybrid_trust_trust_expiry_seconds gauge");
    for (t, st) in tenants {
        if let Some(l) = st.lapses_at {
            let _ = writeln!(
                s,
                "hybrid_trust_trust_expiry_seconds{{tenant=\"{}\"}} {}",
                label(&t.domain),
                (l - now).num_seconds()
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_state 1 for the tenant's current state."
    );
    let _ = writeln!(s, "# TYPE hybrid_trust_state gauge");
    for (t, st) in tenants {
        for state in State::ALL {
            let _ = writeln!(
                s,
                "hybrid_trust_state{{tenant=\"{}\",state=\"{}\"}} {}",
                label(&t.domain),
                state.name(),
                u8::from(st.state == state)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_last_renewal_timestamp_seconds When the last renewal succeeded (Unix time)."
    );
    let _ = writeln!(
        s,
        "# TYPE hybrid_trust_last_renewal_timestamp_seconds gauge"
    );
    for (t, _) in tenants {
        if let Some(r) = t.last_renewal {
            let _ = writeln!(
                s,
                "hybrid_trust_last_renewal_timestamp_seconds{{tenant=\"{}\"}} {}",
                label(&t.domain),
                r.timestamp()
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_renewal_failed 1 when the last renewal attempt failed."
    );
    let _ = writeln!(s, "# TYPE hybrid_trust_renewal_failed gauge");
    for (t, _) in tenants {
        let _ = writeln!(
            s,
            "hybrid_trust_renewal_failed{{tenant=\"{}\"}} {}",
            label(&t.domain),
            u8::from(t.last_renewal_failure.is_some())
        );
    }
    let _ = writeln!(
        s,
        "# HELP hybrid_trust_last_reminder_timestamp_seconds When the last reminder was delivered (Unix time)."
    );
    let _ = writeln!(
        s,
        "# TYPE hybrid_trust_last_reminder_timestamp_seconds gauge"
    );
    for (t, _) in tenants {
        if let Some(r) = t.reminders_sent.iter().map(|r| r.sent_at).max() {
            let _ = writeln!(
                s,
                "hybrid_trust_last_reminder_timestamp_seconds{{tenant=\"{}\"}} {}",
                label(&t.domain),
                r.timestamp()
            );
        }
    }
    s
}

/// Escapes TEXT (RFC 5545 §3.3.11).
fn ics_text(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 §3.1), CRLF line ends.
fn fold(line: &str, out: &mut String) {
    let mut count = 0;
    for ch in line.chars() {
        let len = ch.len_utf8();
        if count + len > 75 {
            out.push_str("\r\n ");
            count = 1;
        }
        out.push(ch);
        count += len;
    }
    out.push_str("\r\n");
}

/// One VEVENT per credential end (all-day, on the end date) with a VALARM per threshold.
pub fn ics(
    tenants: &[(&TenantRecord, TenantStatus)],
    thresholds_days: &[i64],
    now: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    let mut line = |l: String| fold(&l, &mut out);
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line(format!(
        "PRODID:-//hybrid-trust//{}//EN",
        env!("CARGO_PKG_VERSION")
    ));
    line("CALSCALE:GREGORIAN".into());
    line("X-WR-CALNAME:Skype for Business hybrid trust".into());
    for (t, st) in tenants {
        for c in &t.credentials {
            line("BEGIN:VEVENT".into());
            line(format!(
                "UID:{}-{}-{}-{}@hybrid-trust",
                t.domain,
                c.app_id,
                c.thumbprint_sha1,
                c.end.timestamp()
            ));
            line(format!("DTSTAMP:{}", now.format("%Y%m%dT%H%M%SZ")));
            line(format!("DTSTART;VALUE=DATE:{}", c.end.format("%Y%m%d")));
            line(format!(
                "DTEND;VALUE=DATE:{}",
                dates::add(c.end, TimeDelta::days(1)).format("%Y%m%d")
            ));
            line(format!(
                "SUMMARY:{}",
                ics_text(&format!("Hybrid trust credential ends: {}", t.domain))
            ));
            line(format!(
                "DESCRIPTION:{}",
                ics_text(&format!(
                    "The key credential of certificate {} on application {} in tenant {} ends {}. Renew before then: hybrid-trust renew --tenant {}\nNow: {}",
                    c.thumbprint_sha1,
                    c.app_id,
                    t.domain,
                    c.end.format("%Y-%m-%d %H:%M UTC"),
                    t.domain,
                    st.next_action
                ))
            ));
            for d in thresholds_days {
                line("BEGIN:VALARM".into());
                line("ACTION:DISPLAY".into());
                line(format!("TRIGGER:-P{d}D"));
                line(format!(
                    "DESCRIPTION:{}",
                    ics_text(&format!(
                        "{}: the hybrid trust credential ends in {d} day(s)",
                        t.domain
                    ))
                ));
                line("END:VALARM".into());
            }
            line("END:VEVENT".into());
        }
    }
    line("END:VCALENDAR".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord};
    use crate::status::{Thresholds, evaluate};
    use chrono::TimeZone as _;

    const APP: &str = "00000004-0000-0ff1-ce00-000000000000";

    /// Issue 14, defect 4: every rendering survives dates at chrono's limits (a key's
    /// `endDateTime` of `+262142-12-31T23:59:59Z`) and a `now` at either end.
    #[test]
    fn renderings_survive_dates_at_the_limits_of_the_calendar() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        for (na, end) in [(now + TimeDelta::days(300), max), (min, max), (max, min)] {
            let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], now);
            t.cert = Some(CertRecord {
                thumbprint_sha1: "A".into(),
                subject: "CN=x".into(),
                not_before: min,
                not_after: na,
                der_base64: String::new(),
            });
            t.credentials.push(CredentialRecord {
                app_id: APP.into(),
                key_id: None,
                thumbprint_sha1: "A".into(),
                start: min,
                end,
                recorded_at: now,
            });
            for at in [now, min, max] {
                // A status row made without `t`'s dates: this test is about the renderings.
                let blank = TenantRecord::new("contoso.com", "global", vec![], now);
                let st = evaluate(&blank, at, Thresholds::default());
                let _ = timeline(&t, at);
                let _ = table(&[(st.clone(), timeline(&t, at))]);
                let _ = prometheus(&[(&t, st.clone())], at);
                let out = ics(&[(&t, st)], &[60, 30, i64::MAX, i64::MIN], at);
                assert!(out.contains("BEGIN:VEVENT"));
            }
        }
    }
}
