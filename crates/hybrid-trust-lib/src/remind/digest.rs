//! One reminder message: a digest of every tenant that needs attention on one channel and for
//! one set of recipients, the most urgent first. Each entry says what lapses when, what breaks
//! for users, and the exact commands that fix it. A digest of one entry reads as the single
//! reminders always did (same subject line).

use super::{Due, Kind};
use crate::advisories::AdvisoryDue;
use chrono::{DateTime, Datelike as _, Utc};
use serde::Serialize;

/// What Skype for Business Server loses when the trust lapses (SFBDOCS "Plan to integrate Skype
/// for Business and Exchange"; LS Storage Service events 32053/32054).
pub const WHAT_BREAKS: &str = "what breaks for users: contacts in Exchange (unified contact store), archiving to Exchange, meetings and conversation history in Exchange Online, and high-resolution photos";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// Most urgent first.
    pub entries: Vec<Due>,
    /// Microsoft's dated changes due a reminder (60 and 14 days ahead), soonest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<AdvisoryDue>,
}

impl Digest {
    pub fn new(mut entries: Vec<Due>) -> Digest {
        entries.sort_by_key(Due::urgency);
        Digest {
            entries,
            advisories: Vec::new(),
        }
    }

    /// The same digest with these advisories.
    pub fn with_advisories(mut self, mut advisories: Vec<AdvisoryDue>) -> Digest {
        advisories.sort_by_key(|a| a.date);
        self.advisories = advisories;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.advisories.is_empty()
    }

    /// The advisories as plain text (empty when there are none).
    fn advisories_text(&self) -> String {
        let mut s = String::new();
        if self.advisories.is_empty() {
            return s;
        }
        s.push_str("Microsoft's dated changes for this trust:\n");
        for a in &self.advisories {
            s.push_str(&format!(
                "- {} (in {} day(s)){}: {}\n  Do: {}\n  Source: {}\n",
                a.date.format("%Y-%m-%d"),
                a.days_left,
                if a.confirmed { "" } else { " (unconfirmed)" },
                a.title,
                a.action,
                a.source
            ));
        }
        s.push('\n');
        s
    }

    /// The subject line: the single reminder's own, or a count with the most urgent; with only
    /// advisories, the nearest one.
    pub fn subject(&self) -> String {
        match self.entries.as_slice() {
            [] if !self.advisories.is_empty() => {
                let a = &self.advisories[0];
                format!(
                    "[hybrid-trust] Microsoft change in {} day(s) ({}): {}",
                    a.days_left,
                    a.date.format("%Y-%m-%d"),
                    a.title
                )
            }
            [] => "[hybrid-trust] nothing needs attention".to_string(),
            [one] => subject(one),
            [first, ..] => {
                let tenants = {
                    let mut t: Vec<&str> = self.entries.iter().map(|e| e.tenant.as_str()).collect();
                    t.sort_unstable();
                    t.dedup();
                    t.len()
                };
                format!(
                    "[hybrid-trust] {tenants} tenant(s) need attention; most urgent: {}",
                    subject(first).trim_start_matches("[hybrid-trust] ")
                )
            }
        }
    }

    /// The plain-text body: each entry in turn.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.entries.len() > 1 {
            s.push_str(&format!(
                "{} item(s) need attention, the most urgent first.\n\n",
                self.entries.len()
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            if self.entries.len() > 1 {
                s.push_str(&format!("{}. {}\n", i + 1, subject(e)));
            }
            s.push_str(&text(e));
            s.push('\n');
        }
        s.push_str(&self.advisories_text());
        s.push_str("To see every tenant: hybrid-trust status --all\n");
        s
    }
}

/// Escapes text for HTML: the report's escaper ([`crate::report::html::escape`]), one rule for
/// every page and mail the tool writes.
pub fn html_escape(s: &str) -> String {
    crate::report::html::escape(s)
}

impl Digest {
    /// The HTML body: the same facts as [`Digest::text`], one card per entry, inline styles only
    /// (mail clients drop `<style>` blocks and never load anything external). Every value is
    /// escaped.
    pub fn html(&self) -> String {
        let e = html_escape;
        let mut s = String::from(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1b1b1b;max-width:720px\">",
        );
        s.push_str(&format!(
            "<h2 style=\"font-size:18px\">{}</h2>",
            e(self.subject().trim_start_matches("[hybrid-trust] "))
        ));
        for m in &self.entries {
            let colour = match m.kind {
                Kind::Expired | Kind::RenewalFailure => "#b3261e",
                Kind::Expiry if m.days_left.is_some_and(|d| d <= 7) => "#b3261e",
                Kind::Expiry => "#8a5300",
            };
            s.push_str(&format!(
                "<div style=\"border-left:4px solid {colour};padding:8px 12px;margin:12px 0;background:#f6f6f6\"><p style=\"margin:0 0 6px\"><strong>{}</strong></p><table style=\"border-collapse:collapse\">",
                e(subject(m).trim_start_matches("[hybrid-trust] "))
            ));
            let when = m
                .ends
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "unknown".into());
            let rows: [(&str, String); 6] = [
                ("Tenant", m.tenant.clone()),
                ("Lapses", when),
                (
                    "Days left",
                    m.days_left.map_or("-".into(), |d| d.to_string()),
                ),
                ("What", m.detail.clone()),
                ("Certificate", m.thumbprint_sha1.clone()),
                ("Next action", m.action.clone()),
            ];
            for (k, v) in rows {
                s.push_str(&format!(
                    "<tr><td style=\"padding:2px 12px 2px 0;color:#555\">{k}</td><td style=\"padding:2px 0\">{}</td></tr>",
                    e(&v)
                ));
            }
            s.push_str("</table>");
            s.push_str(&timeline(m, colour));
            let also = other_commands(m);
            if !also.is_empty() {
                s.push_str("<p style=\"margin:6px 0 2px\">Also:</p><pre style=\"margin:0;background:#fff;padding:6px;border:1px solid #ddd;white-space:pre-wrap\">");
                s.push_str(&e(&also.join("\n")));
                s.push_str("</pre>");
            }
            s.push_str("</div>");
        }
        if !self.advisories.is_empty() {
            s.push_str(
                "<h3 style=\"font-size:15px\">Microsoft's dated changes for this trust</h3><ul>",
            );
            for a in &self.advisories {
                s.push_str(&format!(
                    "<li style=\"margin:6px 0\"><strong>{}</strong> (in {} day(s)){} {}<br>Do: {}<br><a href=\"{}\">source</a></li>",
                    a.date.format("%Y-%m-%d"),
                    a.days_left,
                    if a.confirmed { "" } else { " <em>unconfirmed</em>" },
                    e(a.title),
                    e(&a.action),
                    e(a.source)
                ));
            }
            s.push_str("</ul>");
        }
        s.push_str(&format!(
            "<p style=\"color:#555\">{}.</p><p style=\"color:#555\">To see every tenant: <code>hybrid-trust status --all</code></p></body></html>",
            e(&format!("W{}", &WHAT_BREAKS[1..]))
        ));
        s
    }
}

/// The days a digest's timeline spans at least (the first reminder threshold).
const TIMELINE_DAYS: i64 = 60;

/// One entry's timeline for mail: from today to the lapse (and the roll's EffectiveDate on the
/// way), then the days after it, drawn as one row of table cells with background colours.
///
/// The fleet report draws its timelines in SVG; mail cannot: Outlook for Windows renders mail
/// with Word's engine, which draws no SVG, and Gmail strips it. Table cells with `bgcolor` and
/// percentage widths are what every client draws (the "bulletproof" bar of email design), so
/// the digest uses those, with the dates as text under the bar for clients that drop colour.
/// Positions come from the entry's own `days_left` and dates, so the digest needs no clock.
fn timeline(m: &Due, colour: &str) -> String {
    let Some(left) = m.days_left else {
        return String::new();
    };
    // Today, as the entry's own dates put it (`days_left` counts whole days to `ends`): dates in
    // another year than that carry theirs.
    let today = m.ends.map(|e| e - chrono::TimeDelta::days(left));
    let date = |t: Option<DateTime<Utc>>| match (t, today) {
        (Some(t), Some(d)) if t.year() == d.year() => t.format("%b %-d").to_string(),
        (Some(t), _) => t.format("%b %-d, %Y").to_string(),
        (None, _) => String::new(),
    };
    let mut segs: Vec<(i64, &str, String)> = Vec::new();
    if m.kind == Kind::Expired {
        segs.push((
            1,
            "#b3261e",
            format!("lapsed {} ({})", date(m.ends), ago(-left)),
        ));
    } else if left <= 0 {
        // Less than a day to go: `days_left` is 0, the lapse is still ahead.
        segs.push((1, colour, format!("today: lapses {}", date(m.ends))));
    } else {
        let span = left.max(TIMELINE_DAYS) + 5;
        let effective = m
            .roll
            .as_ref()
            .and_then(|r| r.effective)
            .zip(m.ends)
            .map(|(eff, end)| left - (end - eff).num_days())
            .filter(|d| (1..left).contains(d));
        match effective {
            Some(d) => {
                segs.push((d, "#8a5300", "today: run the roll script".into()));
                segs.push((
                    left - d,
                    colour,
                    format!(
                        "EffectiveDate {}",
                        date(m.roll.as_ref().and_then(|r| r.effective))
                    ),
                ));
            }
            None => segs.push((left, colour, "today".into())),
        }
        segs.push((span - left, "#c8c8c8", format!("lapses {}", date(m.ends))));
    }
    let widths = percentages(&segs.iter().map(|(d, _, _)| *d).collect::<Vec<_>>());
    let mut bar = String::new();
    let mut labels = String::new();
    for ((_, c, label), w) in segs.iter().zip(widths) {
        bar.push_str(&format!(
            "<td width=\"{w}%\" bgcolor=\"{c}\" style=\"background:{c};height:10px;font-size:0;line-height:0\">&nbsp;</td>"
        ));
        labels.push_str(&format!(
            "<td width=\"{w}%\" style=\"font-size:11px;color:#555;padding:2px 4px 0 0;vertical-align:top\">{}</td>",
            html_escape(label)
        ));
    }
    format!(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"border-collapse:collapse;margin:8px 0 2px\" data-timeline=\"{left}\"><tr>{bar}</tr><tr>{labels}</tr></table>"
    )
}

/// Whole percentages for `parts` (each at least 1, so every segment shows) that add up to 100:
/// the rounding is taken from, or given to, the largest part.
fn percentages(parts: &[i64]) -> Vec<i64> {
    let total: i64 = parts.iter().map(|p| p.max(&0)).sum::<i64>().max(1);
    let mut w: Vec<i64> = parts
        .iter()
        .map(|p| (p.max(&0) * 100 / total).max(1))
        .collect();
    let sum: i64 = w.iter().sum();
    if let Some(big) = (0..w.len()).max_by_key(|&i| w[i]) {
        w[big] = (w[big] + 100 - sum).max(1);
    }
    w
}

fn ago(days: i64) -> String {
    match days {
        0 => "today".into(),
        1 => "1 day ago".into(),
        d => format!("{d} days ago"),
    }
}

/// The subject line of one entry.
pub fn subject(m: &Due) -> String {
    match m.kind {
        Kind::RenewalFailure => format!(
            "[hybrid-trust] {}: the renewal of the Skype for Business hybrid trust failed",
            m.tenant
        ),
        Kind::Expired => format!(
            "[hybrid-trust] {}: the Skype for Business hybrid trust has EXPIRED",
            m.tenant
        ),
        Kind::Expiry => format!(
            "[hybrid-trust] {}: the Skype for Business hybrid trust ends in {} day(s) ({})",
            m.tenant,
            m.days_left.unwrap_or(0),
            m.ends
                .map(|e| e.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        ),
    }
}

/// The command that renews (or retries) the tenant.
pub fn command(m: &Due) -> String {
    format!("hybrid-trust renew --tenant {}", m.tenant)
}

/// The commands that fix it: the status's next action when it names one, and renew.
pub fn commands(m: &Due) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = &m.roll {
        out.push(format!(
            "on a Front End: run {} (written next to the ledger)",
            r.script
        ));
        out.push(format!(
            "hybrid-trust renew --tenant {} --confirm-roll",
            m.tenant
        ));
    } else {
        out.push(command(m));
    }
    out.push(format!("hybrid-trust status --tenant {}", m.tenant));
    out
}

/// The plain-text section of one entry.
pub fn text(m: &Due) -> String {
    let tid = m
        .tenant_id
        .as_deref()
        .map(|t| format!(" (tenant id {t})"))
        .unwrap_or_default();
    let when = m
        .ends
        .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "unknown".into());
    let left = match m.days_left {
        Some(d) if d < 0 || m.kind == Kind::Expired || m.ends.is_some_and(|_| d < 0) => {
            "already ended: the trust is broken now".to_string()
        }
        Some(d) => format!("in {d} day(s)"),
        None => "unknown".into(),
    };
    let also = other_commands(m)
        .iter()
        .map(|c| format!("  {c}\n"))
        .collect::<String>();
    let also = if also.is_empty() {
        also
    } else {
        format!("Also:\n{also}")
    };
    let (kind, facts) = match m.kind {
        Kind::RenewalFailure => (
            "the renewal to retry (it shows the error)",
            format!(
                "The last renewal attempt failed: {}\nThe trust lapses: {when} ({left}); {WHAT_BREAKS}.\n",
                m.detail
            ),
        ),
        Kind::Expiry | Kind::Expired => (
            "the change",
            format!(
                "What expires: {} for the on-prem OAuthTokenIssuer certificate {} on application {}\nWhen: {when} ({left})\nWhat breaks then: {}.\n",
                m.detail,
                m.thumbprint_sha1,
                m.app_id,
                WHAT_BREAKS.trim_start_matches("what breaks for users: "),
            ),
        ),
    };
    format!(
        "Tenant: {}{tid}\n{facts}Next action: {}\n(add --dry-run to a hybrid-trust command to see {kind} first)\n{also}",
        m.tenant, m.action,
    )
}

/// The commands of [`commands`] the next action does not already name: each command is said
/// once in a digest entry (issue 28: the renew command came three times).
pub fn other_commands(m: &Due) -> Vec<String> {
    commands(m)
        .into_iter()
        .filter(|c| !m.action.contains(c.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_outside_values_and_keeps_the_facts() {
        let d = Digest::new(vec![Due {
            tenant: "<script>alert(1)</script>.example.com".into(),
            tenant_id: Some("t\"id".into()),
            kind: Kind::Expiry,
            credential: "x".into(),
            app_id: "00000004-0000-0ff1-ce00-000000000000".into(),
            thumbprint_sha1: "AB&CD".into(),
            ends: None,
            days_left: Some(3),
            threshold_days: 7,
            covers: vec![7],
            detail: "the key".into(),
            state: "expiring".into(),
            action: "renew now".into(),
            roll: None,
        }]);
        let h = d.html();
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example.com"));
        assert!(h.contains("AB&amp;CD") && h.contains("renew now"));
        assert!(h.contains("hybrid-trust renew --tenant &lt;script&gt;"));
        assert_eq!(html_escape("a'b\"c"), "a&#39;b&quot;c");
    }

    fn due(days_left: Option<i64>, roll_effective_in: Option<i64>) -> Due {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2027, 3, 1, 0, 0, 0).unwrap();
        let ends = days_left.map(|d| now + chrono::TimeDelta::days(d));
        Due {
            tenant: "contoso.com".into(),
            tenant_id: None,
            kind: if days_left.is_some_and(|d| d < 0) {
                Kind::Expired
            } else {
                Kind::Expiry
            },
            credential: "x".into(),
            app_id: "00000004-0000-0ff1-ce00-000000000000".into(),
            thumbprint_sha1: "AB".into(),
            ends,
            days_left,
            threshold_days: 30,
            covers: vec![30],
            detail: "the key".into(),
            state: "due".into(),
            action: "renew".into(),
            roll: roll_effective_in.map(|d| crate::lifecycle::PendingRoll {
                thumbprint_sha1: "CD".into(),
                effective: Some(now + chrono::TimeDelta::days(d)),
                blocked: None,
                script: "roll.ps1".into(),
            }),
        }
    }

    /// The cells' widths, in order, of the timeline in `html`.
    fn widths(html: &str) -> Vec<i64> {
        let t = &html[html.find("data-timeline").expect("a timeline")..];
        let bar = &t[..t.find("</tr>").unwrap()];
        bar.split("<td width=\"")
            .skip(1)
            .map(|c| c[..c.find('%').unwrap()].parse().unwrap())
            .collect()
    }

    #[test]
    fn the_mail_timeline_places_today_the_roll_and_the_lapse_in_proportion() {
        // 20 days left on a 65-day span: the coloured part is 20/65 of the bar.
        let h = Digest::new(vec![due(Some(20), None)]).html();
        assert_eq!(widths(&h), vec![30, 70], "{h}");
        assert!(
            h.contains(">today<") && h.contains(">lapses Mar 21<"),
            "{h}"
        );
        assert!(!h.contains("<svg"), "no SVG in mail");
        // A roll whose EffectiveDate is in 5 days: amber to it, then the state's colour.
        let h = Digest::new(vec![due(Some(20), Some(5))]).html();
        assert_eq!(widths(&h), vec![7, 23, 70], "{h}");
        assert!(h.contains("EffectiveDate Mar 6"), "{h}");
        // More than the span ahead: the bar grows with it, the lapse still at its end.
        let h = Digest::new(vec![due(Some(90), None)]).html();
        assert_eq!(widths(&h), vec![95, 5], "{h}");
        // Years ahead with a roll tomorrow: every segment shows, the whole is 100%, and dates
        // in another year say which.
        let h = Digest::new(vec![due(Some(1500), Some(1))]).html();
        let w = widths(&h);
        assert_eq!((w.len(), w.iter().sum::<i64>()), (3, 100), "{h}");
        assert!(w.iter().all(|&x| x >= 1), "{w:?}");
        assert!(h.contains("lapses Apr 9, 2031"), "{h}");
        // Lapsed: one red cell that says when.
        let h = Digest::new(vec![due(Some(-2), None)]).html();
        assert_eq!(widths(&h), vec![100], "{h}");
        assert!(h.contains("lapsed Feb 27 (2 days ago)"), "{h}");
        // Hours to go (days_left 0, not yet expired): still ahead, not "lapsed".
        let mut d = due(Some(0), None);
        d.kind = Kind::Expiry;
        let h = Digest::new(vec![d]).html();
        assert!(
            h.contains("today: lapses Mar 1") && !h.contains("lapsed"),
            "{h}"
        );
        // No end known: no timeline at all.
        assert!(
            !Digest::new(vec![due(None, None)])
                .html()
                .contains("data-timeline")
        );
    }

    #[test]
    fn advisories_ride_along_or_make_a_digest_of_their_own() {
        let now = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2027, 3, 1, 0, 0, 0).unwrap();
        let due = crate::advisories::due_reminders("global", now, &[]);
        assert!(due.iter().any(|a| a.id == "ews-retired"));
        let d = Digest::new(Vec::new()).with_advisories(due);
        assert!(!d.is_empty());
        assert!(
            d.subject().contains("Microsoft change in"),
            "{}",
            d.subject()
        );
        let t = d.text();
        assert!(
            t.contains("Get-OrganizationConfig | Format-List Ews*") && t.contains("(unconfirmed)"),
            "{t}"
        );
        assert!(d.html().contains("Format-List Ews*"));
    }
}
