//! `status --format html`: one self-contained page for a fleet, for people to look at rather
//! than read, and to hand to a customer. Pure: records, statuses, advisories and `now` in, a
//! string out.
//!
//! - Nothing external: no CDN, no web fonts, no images, no requests; the styles and the small
//!   script are inline (links to Microsoft's sources are plain anchors, fetched only if clicked).
//! - A fleet table, sortable by each column and filterable by state (the script also runs a
//!   self-check on load and writes its result in `data-selfcheck` on `<body>`, and any script
//!   error in `data-errors` and `#js-errors`, which the browser test reads from the DOM).
//! - Per tenant an inline SVG timeline from 60 days back to 14 months ahead: a lane per target
//!   application with its key windows, a lane with the certificates' validity, the pending roll's
//!   EffectiveDate, the lapse, the advisories' dates, and a line at today.
//! - State colours as in `status`; readable with `prefers-color-scheme: dark`; a print style.
//! - Every outside value (display names, domains, thumbprints, error messages) is escaped.

use crate::advisories::Advisory;
use crate::dates;
use crate::ledger::{CertRecord, CredentialRecord, TenantRecord};
use crate::status::{State, TenantStatus};
use chrono::{DateTime, TimeDelta, Utc};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values (and SVG, which is XML).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls have no business in a report; XML forbids most of them.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn day(d: Option<DateTime<Utc>>) -> String {
    d.map_or("-".into(), |d| d.format("%Y-%m-%d").to_string())
}

/// The timeline's span: 60 days back, about 14 months ahead.
const BACK_DAYS: i64 = 60;
const AHEAD_DAYS: i64 = 425;
const SVG_W: f64 = 400.0;
/// The left gutter for the lane labels.
const LABEL_W: f64 = 74.0;
const LANE_H: f64 = 12.0;
const TOP: f64 = 10.0;

struct Scale {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Scale {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.to - self.from).num_seconds().max(1) as f64;
        let at = (t.max(self.from).min(self.to) - self.from).num_seconds() as f64;
        ((LABEL_W + at / span * (SVG_W - LABEL_W)) * 10.0).round() / 10.0
    }
    fn visible(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
        b >= self.from && a <= self.to
    }
}

fn short(app: &str) -> String {
    match app {
        crate::microsoft::SFB_APP_ID => "SfB 00000004".into(),
        crate::microsoft::TEAMS_CALENDAR_APP_ID => "Teams Calendar".into(),
        crate::microsoft::CLOUD_VOICEMAIL_APP_ID => "Cloud Voicemail".into(),
        other => other.chars().take(8).collect(),
    }
}

/// The SVG timeline of one tenant.
pub fn timeline_svg(
    t: &TenantRecord,
    st: &TenantStatus,
    advisories: &[&Advisory],
    now: DateTime<Utc>,
) -> String {
    let sc = Scale {
        from: dates::sub(now, TimeDelta::days(BACK_DAYS)),
        to: dates::add(now, TimeDelta::days(AHEAD_DAYS)),
    };
    let sfb = t.has_sfb();
    let sfb_lanes = if sfb { t.app_ids.len().max(1) + 1 } else { 0 };
    let lanes = sfb_lanes + if t.exchange.is_some() { 2 } else { 0 };
    let h = TOP + lanes.max(1) as f64 * LANE_H + 4.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"tl\" viewBox=\"0 0 {SVG_W} {h}\" width=\"{SVG_W}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        escape(&format!("timeline of {}", t.domain))
    );
    // Month ticks.
    let mut m = sc.from;
    for _ in 0..20 {
        let next = dates::add(m, TimeDelta::days(30));
        if m > sc.to {
            break;
        }
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{x}\" x2=\"{x}\" y1=\"{TOP}\" y2=\"{h}\"/>",
            x = sc.x(m)
        );
        m = next;
    }
    let current: Vec<&str> = t.cert.iter().map(|c| c.thumbprint_sha1.as_str()).collect();
    let next: Vec<&str> = t
        .next_cert
        .iter()
        .map(|c| c.thumbprint_sha1.as_str())
        .collect();
    let apps: Vec<&str> = if !sfb {
        Vec::new()
    } else if t.app_ids.is_empty() {
        vec![crate::microsoft::SFB_APP_ID]
    } else {
        t.app_ids.iter().map(String::as_str).collect()
    };
    for (i, app) in apps.iter().enumerate() {
        let y = TOP + i as f64 * LANE_H;
        let _ = write!(
            s,
            "<text class=\"lbl\" x=\"2\" y=\"{}\">{}</text>",
            y + 9.0,
            escape(&short(app))
        );
        for c in t.credentials.iter().filter(|c| &c.app_id == app) {
            let tp = c.thumbprint_sha1.as_str();
            let which = if current.contains(&tp) {
                Which::Current
            } else if next.contains(&tp) {
                Which::Next
            } else {
                Which::Other
            };
            key_bar(&mut s, &sc, y, c, which, &format!("on {}", short(app)));
        }
    }
    // Certificates.
    let y = TOP + apps.len() as f64 * LANE_H;
    if sfb {
        let _ = write!(
            s,
            "<text class=\"lbl\" x=\"2\" y=\"{}\">certificate</text>",
            y + 9.0
        );
    }
    let sfb_certs = if sfb {
        [
            (&t.cert, "cert", "certificate"),
            (&t.next_cert, "cert next", "new certificate"),
        ]
        .to_vec()
    } else {
        Vec::new()
    };
    for (c, class, what) in sfb_certs {
        if let Some(c) = c {
            cert_bar(&mut s, &sc, y, c, class, what);
        }
    }
    if let Some(x) = &t.exchange {
        exchange_lanes(&mut s, x, &sc, TOP + sfb_lanes as f64 * LANE_H);
    }
    let mut marker = |at: DateTime<Utc>, class: &str, title: String| {
        if sc.visible(at, at) {
            let _ = write!(
                s,
                "<line class=\"{class}\" x1=\"{x}\" x2=\"{x}\" y1=\"0\" y2=\"{h}\"><title>{}</title></line>",
                escape(&title),
                x = sc.x(at)
            );
        }
    };
    for a in advisories {
        marker(
            a.date(),
            "adv",
            format!("{}: {}", a.date().format("%Y-%m-%d"), a.title),
        );
    }
    if let Some(r) = &st.roll
        && let Some(e) = r.effective
    {
        marker(
            e,
            "roll",
            format!("roll to {} effective {}", r.thumbprint_sha1, day(Some(e))),
        );
    }
    if let Some(x) = &t.exchange
        && let (Some(n), Some(e)) = (&x.next_cert, x.next_effective)
    {
        marker(
            e,
            "roll",
            format!(
                "Exchange: the staged Auth Certificate {} takes effect {}",
                n.thumbprint_sha1,
                day(Some(e))
            ),
        );
    }
    if let Some(l) = st.lapses_at {
        marker(l, "lapse", format!("the trust lapses {}", day(Some(l))));
    }
    marker(now, "today", format!("today {}", day(Some(now))));
    s.push_str("</svg>");
    s
}

/// A certificate's validity as a bar in the lane at `y`, titled `<what> <thumbprint> valid … to …`
/// (nothing when it is outside the timeline).
/// Whose certificate a key is of: the current one, the next (staged) one, or another.
enum Which {
    Current,
    Next,
    Other,
}

/// One key's bar in a lane at `y`, titled "key of THUMBPRINT {on}: START to END" (nothing when
/// outside the picture).
fn key_bar(s: &mut String, sc: &Scale, y: f64, c: &CredentialRecord, which: Which, on: &str) {
    if !sc.visible(c.start, c.end) {
        return;
    }
    let class = match which {
        Which::Current => "key",
        Which::Next => "key next",
        Which::Other => "key other",
    };
    let (x1, x2) = (sc.x(c.start), sc.x(c.end));
    let _ = write!(
        s,
        "<rect class=\"{class}\" x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
        y + 2.0,
        (x2 - x1).max(1.0),
        LANE_H - 4.0,
        escape(&format!(
            "key of {} {on}: {} to {}",
            c.thumbprint_sha1,
            day(Some(c.start)),
            day(Some(c.end))
        ))
    );
}

fn cert_bar(s: &mut String, sc: &Scale, y: f64, c: &CertRecord, class: &str, what: &str) {
    if !sc.visible(c.not_before, c.not_after) {
        return;
    }
    let (x1, x2) = (sc.x(c.not_before), sc.x(c.not_after));
    let _ = write!(
        s,
        "<rect class=\"{class}\" x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
        y + 3.0,
        (x2 - x1).max(1.0),
        LANE_H - 6.0,
        escape(&format!(
            "{what} {} valid {} to {}",
            c.thumbprint_sha1,
            day(Some(c.not_before)),
            day(Some(c.not_after))
        ))
    );
}

/// The Exchange trust's two lanes from `y`: the dedicated application's keys, and the Auth
/// Certificates (current, and MEAC's staged next).
fn exchange_lanes(s: &mut String, x: &crate::ledger::ExchangeTrust, sc: &Scale, y: f64) {
    let current = x.cert.as_ref().map(|c| c.thumbprint_sha1.as_str());
    let next = x.next_cert.as_ref().map(|c| c.thumbprint_sha1.as_str());
    let _ = write!(
        s,
        "<text class=\"lbl\" x=\"2\" y=\"{}\">Exchange app</text>",
        y + 9.0
    );
    for c in &x.credentials {
        let tp = Some(c.thumbprint_sha1.as_str());
        let which = if current == tp {
            Which::Current
        } else if next == tp {
            Which::Next
        } else {
            Which::Other
        };
        let on = format!("on the Exchange hybrid application {}", x.app_id);
        key_bar(s, sc, y, c, which, &on);
    }
    let y = y + LANE_H;
    let _ = write!(
        s,
        "<text class=\"lbl\" x=\"2\" y=\"{}\">Auth cert</text>",
        y + 9.0
    );
    for (c, class, what) in [
        (&x.cert, "cert", "Exchange Auth Certificate"),
        (
            &x.next_cert,
            "cert next",
            "staged Exchange Auth Certificate",
        ),
    ] {
        if let Some(c) = c {
            cert_bar(s, sc, y, c, class, what);
        }
    }
}

/// The tenant's trusts, one line (`sfb ok · exchange expiring 2027-01-06`), when it has the
/// Exchange trust (a tenant with only the Skype for Business trust needs no second line).
fn trusts_line(st: &TenantStatus) -> String {
    if !st.trusts.iter().any(|x| x.kind == "exchange") {
        return String::new();
    }
    let parts: Vec<String> = st
        .trusts
        .iter()
        .map(|x| format!("{} {} {}", x.kind, x.state.name(), day(x.lapses_at)))
        .collect();
    format!(
        "<br><span class=\"muted id trusts\">{}</span>",
        escape(&parts.join(" \u{b7} "))
    )
}

const CSS: &str = r#"
:root{--bg:#fff;--fg:#1b1b1b;--muted:#5f6368;--line:#d9d9d9;--row:#f7f7f7;
--ok:#1e7d32;--due:#b26a00;--expiring:#d84315;--expired:#b3261e;--missing:#6d4c41;--roll-pending:#1565c0;
--key:#2e7d32;--next:#1565c0;--other:#9e9e9e;--cert:#7b1fa2;--adv:#8e24aa;--lapse:#b3261e;--today:#1b1b1b}
@media (prefers-color-scheme: dark){:root{--bg:#121212;--fg:#e8e8e8;--muted:#a0a0a0;--line:#3a3a3a;--row:#1d1d1d;
--ok:#66bb6a;--due:#ffb74d;--expiring:#ff8a65;--expired:#ef5350;--missing:#bcaaa4;--roll-pending:#64b5f6;
--key:#66bb6a;--next:#64b5f6;--other:#757575;--cert:#ce93d8;--adv:#ba68c8;--lapse:#ef5350;--today:#e8e8e8}}
*{box-sizing:border-box}
body{margin:0;padding:24px;background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:var(--muted)}
.chips{display:flex;gap:8px;flex-wrap:wrap;margin:12px 0}
.chip{border:1px solid var(--line);border-radius:14px;padding:2px 10px;background:var(--bg);color:var(--fg);cursor:pointer;font:inherit}
.chip[aria-pressed=true]{outline:2px solid var(--fg)}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:middle}
.s-ok{--c:var(--ok)}.s-due{--c:var(--due)}.s-expiring{--c:var(--expiring)}.s-expired{--c:var(--expired)}.s-missing{--c:var(--missing)}.s-roll-pending{--c:var(--roll-pending)}
.dot,.badge{background:var(--c)}
.badge{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px;font-weight:600;white-space:nowrap}
@media (prefers-color-scheme: dark){.badge{color:#121212}}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:middle}
tbody tr:nth-child(even){background:var(--row)}
th button{all:unset;cursor:pointer;font-weight:600}
th[aria-sort=ascending] button::after{content:" \25B2"}th[aria-sort=descending] button::after{content:" \25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.action{max-width:300px;font-size:12px}td .id{font-size:11px}
.tl .grid{stroke:var(--line);stroke-width:.5}
.tl .lbl{fill:var(--muted);font-size:8px}
.tl .key{fill:var(--key);opacity:.85}.tl .key.next{fill:var(--next)}.tl .key.other{fill:var(--other)}
.tl .cert{fill:var(--cert);opacity:.6}.tl .cert.next{fill:var(--next)}
.tl .adv{stroke:var(--adv);stroke-width:1;stroke-dasharray:2 2}
.tl .roll{stroke:var(--next);stroke-width:2}
.tl .lapse{stroke:var(--lapse);stroke-width:2}
.tl .today{stroke:var(--today);stroke-width:1.5}
.legend svg{vertical-align:middle}
.adv-list li{margin:4px 0}
.unconfirmed{font-size:12px;border:1px solid var(--muted);border-radius:4px;padding:0 4px;margin-left:4px}
#js-errors:empty{display:none}#js-errors{color:var(--expired)}
.controls{display:flex;gap:12px;align-items:center;margin:8px 0}
@media print{body{padding:0;font-size:11px}.controls,.chips button{display:none}
tr{break-inside:avoid}thead{display:table-header-group}
:root{--bg:#fff;--fg:#000;--row:#fff}a{color:inherit;text-decoration:none}}
"#;

/// Runs first: any script error lands in the DOM, where the browser test reads it.
const ERRORS_JS: &str = r#"window.__errors=[];window.addEventListener("error",function(e){window.__errors.push(String(e.message||e));var n=document.getElementById("js-errors");if(n){n.textContent=window.__errors.join("\n");}document.documentElement.setAttribute("data-errors",String(window.__errors.length));});"#;

const JS: &str = r#"
(function(){
"use strict";
var table=document.getElementById("fleet"),body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
var filter=document.getElementById("state-filter"),shown=document.getElementById("shown");
function apply(state){
  var n=0;
  rows.forEach(function(r){var hide=state!==""&&r.getAttribute("data-state")!==state;r.hidden=hide;if(!hide){n++;}});
  shown.textContent=String(n);
  document.querySelectorAll(".chip").forEach(function(c){c.setAttribute("aria-pressed",String(c.getAttribute("data-state")===state));});
  return n;
}
function key(r,k){var v=r.getAttribute("data-"+k)||"";return (k==="days")?(v===""?Infinity:Number(v)):v;}
function sortBy(k,dir){
  var sorted=rows.slice().sort(function(a,b){var x=key(a,k),y=key(b,k);var c=(x<y)?-1:(x>y)?1:0;return dir==="descending"?-c:c;});
  sorted.forEach(function(r){body.appendChild(r);});
  table.querySelectorAll("th[data-key]").forEach(function(th){th.setAttribute("aria-sort",th.getAttribute("data-key")===k?dir:"none");});
  return sorted;
}
filter.addEventListener("change",function(){apply(filter.value);});
document.querySelectorAll(".chip").forEach(function(c){c.addEventListener("click",function(){var s=c.getAttribute("data-state");filter.value=(filter.value===s)?"":s;apply(filter.value);});});
table.querySelectorAll("th[data-key] button").forEach(function(b){b.addEventListener("click",function(){var th=b.parentNode;var d=th.getAttribute("aria-sort")==="ascending"?"descending":"ascending";sortBy(th.getAttribute("data-key"),d);});});
// Self-check: every state filter shows exactly its rows, all rows come back, sorting by days
// orders them; the result goes into <body data-selfcheck>.
var problems=[],counts={};
rows.forEach(function(r){var s=r.getAttribute("data-state");counts[s]=(counts[s]||0)+1;});
Object.keys(counts).forEach(function(s){var n=apply(s);var vis=rows.filter(function(r){return !r.hidden;}).length;if(n!==counts[s]||vis!==counts[s]){problems.push(s+":"+vis+"/"+counts[s]);}});
if(apply("")!==rows.length){problems.push("all");}
var byDays=sortBy("days","ascending"),prev=-Infinity;
byDays.forEach(function(r){var d=key(r,"days");if(d<prev){problems.push("sort");}prev=d;});
sortBy("urgency","ascending");
document.body.setAttribute("data-rows",String(rows.length));
document.body.setAttribute("data-selfcheck",problems.length?("fail "+problems.join(",")):"ok");
})();
"#;

/// Sort key for "most urgent first": the state's weight, then days left, then the domain, so
/// tenants of equal urgency come in one order whatever order they were read in (the page's
/// script sorts by the same key).
fn urgency(st: &TenantStatus) -> String {
    let w = match st.state {
        State::Expired => 0,
        State::Missing => 1,
        State::Expiring => 2,
        State::RollPending => 3,
        State::Due => 4,
        State::Ok => 5,
    };
    let d = st.days_left.unwrap_or(i64::MAX / 2).clamp(-99_999, 99_999) + 100_000;
    format!("{w}-{d:06}-{}", st.domain.to_lowercase())
}

/// The whole page.
pub fn render(
    tenants: &[(TenantRecord, TenantStatus)],
    advisories: &[&Advisory],
    now: DateTime<Utc>,
) -> String {
    let mut s = String::with_capacity(4096 + tenants.len() * 3000);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    // No request may leave the page: forbid everything but its own inline parts.
    s.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">");
    // A fleet with the Exchange trust says so; one without reads as it always did.
    let title = if tenants.iter().any(|(t, _)| t.exchange.is_some()) {
        "Skype for Business and Exchange hybrid trusts"
    } else {
        "Skype for Business hybrid trust"
    };
    let _ = write!(s, "<title>{title}: fleet report</title>");
    let _ = write!(
        s,
        "<script>{ERRORS_JS}</script><style>{CSS}</style></head><body>"
    );
    let _ = write!(
        s,
        "<h1>{title}</h1><p class=\"muted\">{} tenant(s), as of {} &middot; hybrid-trust {}</p>",
        tenants.len(),
        now.format("%Y-%m-%d %H:%M UTC"),
        env!("CARGO_PKG_VERSION")
    );
    s.push_str("<pre id=\"js-errors\"></pre>");
    // State chips with counts (they filter too).
    s.push_str("<div class=\"chips\">");
    for state in State::ALL {
        let n = tenants.iter().filter(|(_, st)| st.state == state).count();
        let _ = write!(
            s,
            "<button type=\"button\" class=\"chip s-{n_}\" data-state=\"{n_}\" aria-pressed=\"false\"><span class=\"dot\"></span>{n_} <strong>{n}</strong></button>",
            n_ = state.name()
        );
    }
    s.push_str("</div>");
    // Advisories.
    if !advisories.is_empty() {
        s.push_str("<h2>Microsoft's dated changes</h2><ul class=\"adv-list\">");
        for a in advisories {
            let when = if a.date() > now {
                format!("in {} day(s)", (a.date() - now).num_days())
            } else {
                "in effect".into()
            };
            let _ = write!(
                s,
                "<li><strong>{}</strong> ({}) {}{} &mdash; {} <a href=\"{}\" rel=\"noreferrer\">source</a></li>",
                a.date().format("%Y-%m-%d"),
                escape(&when),
                escape(a.title),
                if a.confirmed {
                    ""
                } else {
                    "<span class=\"unconfirmed\">unconfirmed</span>"
                },
                escape(&a.action_line()),
                escape(a.source)
            );
        }
        s.push_str("</ul>");
    }
    // Legend.
    s.push_str(
        "<h2>Fleet</h2><p class=\"legend muted\">Timeline: 60 days back to 14 months ahead. ",
    );
    for (class, what) in [
        ("key", "key of the certificate in use"),
        ("key next", "key of the new certificate"),
        ("key other", "another key"),
        ("cert", "certificate validity"),
    ] {
        let _ = write!(
            s,
            "<svg width=\"18\" height=\"10\" class=\"tl\"><rect class=\"{class}\" width=\"18\" height=\"10\"/></svg> {what} &nbsp;"
        );
    }
    for (class, what) in [
        ("today", "today"),
        ("lapse", "the trust lapses"),
        ("roll", "roll EffectiveDate"),
        ("adv", "Microsoft change"),
    ] {
        let _ = write!(
            s,
            "<svg width=\"10\" height=\"12\" class=\"tl\"><line class=\"{class}\" x1=\"5\" x2=\"5\" y1=\"0\" y2=\"12\"/></svg> {what} &nbsp;"
        );
    }
    s.push_str("</p>");
    // Controls.
    s.push_str("<div class=\"controls\"><label>State <select id=\"state-filter\"><option value=\"\">all</option>");
    for state in State::ALL {
        let _ = write!(s, "<option value=\"{0}\">{0}</option>", state.name());
    }
    let _ = write!(
        s,
        "</select></label><span class=\"muted\">showing <span id=\"shown\">{}</span> of {}</span></div>",
        tenants.len(),
        tenants.len()
    );
    s.push_str("<table id=\"fleet\"><thead><tr>");
    for (k, label) in [
        ("domain", "Tenant"),
        ("urgency", "State"),
        ("days", "Days left"),
        ("lapses", "Lapses"),
        ("cert", "Certificate ends"),
    ] {
        let _ = write!(
            s,
            "<th data-key=\"{k}\" aria-sort=\"none\"><button type=\"button\">{label}</button></th>"
        );
    }
    s.push_str("<th>Next action</th><th>Timeline</th></tr></thead><tbody>");
    let mut order: Vec<&(TenantRecord, TenantStatus)> = tenants.iter().collect();
    order.sort_by_key(|(_, st)| urgency(st));
    for (t, st) in order {
        let name = st.state.name();
        let _ = write!(
            s,
            "<tr data-state=\"{name}\" data-domain=\"{dom}\" data-days=\"{days}\" data-lapses=\"{lapses}\" data-cert=\"{cert}\" data-urgency=\"{urg}\">",
            dom = escape(&st.domain.to_lowercase()),
            days = st.days_left.map_or(String::new(), |d| d.to_string()),
            lapses = st.lapses_at.map_or(String::new(), |d| d.to_rfc3339()),
            cert = st.cert_not_after.map_or(String::new(), |d| d.to_rfc3339()),
            urg = escape(&urgency(st)),
        );
        let _ = write!(
            s,
            "<td><strong>{}</strong><br><span class=\"muted id\">{}</span></td><td><span class=\"badge s-{name}\">{name}</span>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"action\">{}</td><td>{}</td></tr>",
            escape(&st.domain),
            escape(st.tenant_id.as_deref().unwrap_or("tenant id unknown")),
            trusts_line(st),
            st.days_left.map_or("-".into(), |d| d.to_string()),
            day(st.lapses_at),
            day(st.cert_not_after),
            escape(&st.next_action),
            timeline_svg(t, st, advisories, now),
        );
    }
    s.push_str("</tbody></table>");
    if tenants.is_empty() {
        s.push_str("<p>No tenants in the ledger: <code>hybrid-trust onboard</code>, or <code>hybrid-trust tenant add</code>.</p>");
    }
    let _ = writeln!(s, "<script>{JS}</script></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CertRecord, CredentialRecord};
    use crate::status::{Thresholds, evaluate};
    use chrono::TimeZone as _;

    fn tenant(domain: &str, now: DateTime<Utc>, days: i64) -> (TenantRecord, TenantStatus) {
        let app = crate::microsoft::SFB_APP_ID;
        let mut t = TenantRecord::new(domain, "global", vec![app.into()], now);
        t.cert = Some(CertRecord {
            thumbprint_sha1: "AB".into(),
            subject: "CN=<b>x</b>".into(),
            not_before: now - TimeDelta::days(300),
            not_after: now + TimeDelta::days(days + 30),
            der_base64: String::new(),
        });
        t.credentials.push(CredentialRecord {
            app_id: app.into(),
            key_id: None,
            thumbprint_sha1: "AB".into(),
            start: now - TimeDelta::days(300),
            end: now + TimeDelta::days(days),
            recorded_at: now,
        });
        let st = evaluate(&t, now, Thresholds::default());
        (t, st)
    }

    #[test]
    fn outside_text_is_escaped_everywhere() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let evil = "<img src=x onerror=alert(1)>\"'&.example.com";
        let fleet = vec![tenant(evil, now, 100)];
        let html = render(&fleet, &[], now);
        assert!(!html.contains("<img"), "raw markup leaked");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;.example.com"));
        assert_eq!(escape("a\u{1b}b"), "a\u{fffd}b");
    }

    #[test]
    fn the_page_is_self_contained_and_has_one_row_per_tenant() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let fleet: Vec<_> = (0..5)
            .map(|i| tenant(&format!("t{i}.example.com"), now, i * 40 - 10))
            .collect();
        let adv = crate::advisories::applicable("global", now);
        let html = render(&fleet, &adv, now);
        assert_eq!(html.matches("<tr data-state=").count(), 5);
        assert_eq!(html.matches("<svg class=\"tl\"").count(), 5);
        for bad in ["src=\"http", "href=\"http://", "@import", "url(", "<link"] {
            assert!(!html.contains(bad), "{bad}");
        }
        assert!(html.contains("prefers-color-scheme: dark") && html.contains("@media print"));
        assert!(
            html.contains("data-state=\"expired\""),
            "a lapsed tenant is shown"
        );
        assert!(html.contains("Get-OrganizationConfig | Format-List Ews*"));
        assert!(html.contains("class=\"today\""));
        // Most urgent first.
        let first = html.find("<tr data-state=").unwrap();
        assert!(html[first..].starts_with("<tr data-state=\"expired\""));
    }

    /// Issue 28: tenants of equal urgency come by domain, whatever order the ledger read them
    /// in (it reads them in the order they were created), and the page's own sort agrees.
    #[test]
    fn tenants_of_equal_urgency_come_by_domain() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let fleet: Vec<_> = [
            "tenant-0002.example.com",
            "tenant-0003.example.com",
            "tenant-0001.example.com",
        ]
        .into_iter()
        .map(|d| tenant(d, now, 20))
        .chain([tenant("tenant-0009.example.com", now, 5)])
        .collect();
        let html = render(&fleet, &[], now);
        let rows: Vec<&str> = html
            .split("<tr data-state=")
            .skip(1)
            .map(|r| {
                let d = &r[r.find("data-domain=\"").unwrap() + 13..];
                &d[..d.find('"').unwrap()]
            })
            .collect();
        assert_eq!(
            rows,
            [
                "tenant-0009.example.com",
                "tenant-0001.example.com",
                "tenant-0002.example.com",
                "tenant-0003.example.com"
            ]
        );
        let keys: Vec<&str> = html
            .split("data-urgency=\"")
            .skip(1)
            .map(|r| &r[..r.find('"').unwrap()])
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "the script's sort key orders the rows the same way, with no ties: {keys:?}"
        );
    }

    /// As for the other renderings (issue 14): dates at chrono's limits do not panic.
    #[test]
    fn dates_at_the_limits_of_the_calendar_render() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        for now in [
            min,
            max,
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(),
        ] {
            let (mut t, st) = tenant(
                "edge.example.com",
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                10,
            );
            t.credentials[0].start = min;
            t.credentials[0].end = max;
            let adv = crate::advisories::applicable("global", now);
            let html = render(&[(t, st)], &adv, now);
            assert!(html.contains("edge.example.com"));
            for a in &adv {
                let _ = crate::advisories::line(a, now);
            }
            let _ = crate::advisories::due_reminders("global", now, &[]);
        }
    }

    #[test]
    fn a_pending_roll_and_the_lapse_are_marked() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let (t, mut st) = tenant("roll.example.com", now, 20);
        st.roll = Some(crate::lifecycle::PendingRoll {
            thumbprint_sha1: "CD".into(),
            effective: Some(now + TimeDelta::days(5)),
            blocked: None,
            script: "x.ps1".into(),
        });
        let svg = timeline_svg(&t, &st, &[], now);
        assert!(svg.contains("class=\"roll\"") && svg.contains("class=\"lapse\""));
        assert!(svg.contains("CN") || svg.contains("key of"));
    }
}
