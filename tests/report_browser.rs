//! The HTML report in a real browser (Debian's `chromium`, headless; scripts/test.sh installs
//! it): a 300-tenant report renders to a PNG, its script reports no error (none in the DOM, no
//! "Uncaught" in Chromium's console log), the DOM holds the 300 rows, and the page's own
//! self-check (each state filter shows exactly its rows, sorting by days orders them) passed.
//! A 10-tenant fleet is rendered too, the size of the reviewed picture in docs/report.png; set
//! `HYBRID_TRUST_REPORT_PNG=path` to write its screenshot there.

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use hybrid_trust::ids::Thumbprint;
use hybrid_trust::ledger::{CertRecord, CredentialRecord, TenantRecord};
use hybrid_trust::microsoft::{CLOUD_VOICEMAIL_APP_ID, SFB_APP_ID, TEAMS_CALENDAR_APP_ID};
use hybrid_trust::status::{State, TenantStatus, Thresholds, evaluate};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn cert(tp: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> CertRecord {
    CertRecord {
        thumbprint_sha1: Thumbprint::parse(tp).expect("a test thumbprint"),
        subject: "CN=sip.example.com".into(),
        not_before: from,
        not_after: to,
        der_base64: String::new(),
    }
}

/// Tenant `i` of a fleet: every state appears (ok, due, expiring, expired, missing, a pending
/// roll), one or three target apps, names with markup in them.
fn tenant(i: usize) -> (TenantRecord, TenantStatus) {
    let now = now();
    let apps: Vec<String> = if i.is_multiple_of(3) {
        vec![
            SFB_APP_ID.into(),
            TEAMS_CALENDAR_APP_ID.into(),
            CLOUD_VOICEMAIL_APP_ID.into(),
        ]
    } else {
        vec![SFB_APP_ID.into()]
    };
    let domain = if i % 50 == 7 {
        format!("<b>odd&name</b>-{i:03}.onmicrosoft.com")
    } else {
        format!("customer-{i:03}.onmicrosoft.com")
    };
    let mut t = TenantRecord::new(&domain, "global", apps.clone(), now);
    t.tenant_id = Some(format!("00000000-0000-4000-8000-{i:012}"));
    let days = match i % 6 {
        0 => 200 + (i as i64 % 150),
        1 => 20 + (i as i64 % 9),
        2 => 3 + (i as i64 % 4),
        3 => -5 - (i as i64 % 20),
        4 => 0,
        _ => 40 + (i as i64 % 30),
    };
    if i % 6 == 4 {
        // Missing: onboarded elsewhere, nothing recorded yet.
        return (t.clone(), evaluate(&t, now, Thresholds::default()));
    }
    let tp = format!("{:040X}", i + 1);
    let start = now - TimeDelta::days(330);
    t.cert = Some(cert(
        &tp,
        start - TimeDelta::days(30),
        now + TimeDelta::days(days + 60),
    ));
    for app in &apps {
        t.credentials.push(CredentialRecord {
            app_id: app.clone(),
            key_id: None,
            thumbprint_sha1: Thumbprint::parse(&tp).expect("a test thumbprint"),
            start,
            end: now + TimeDelta::days(days),
            recorded_at: start,
        });
    }
    if i % 6 == 5 {
        // A roll uploaded, effective in a few days.
        let next = format!("{:040X}", 10_000 + i);
        t.next_cert = Some(cert(
            &next,
            now - TimeDelta::days(2),
            now + TimeDelta::days(700),
        ));
        t.roll_effective = Some(now + TimeDelta::days(7));
        for app in &apps {
            t.credentials.push(CredentialRecord {
                app_id: app.clone(),
                key_id: None,
                thumbprint_sha1: Thumbprint::parse(&next).expect("a test thumbprint"),
                start: now - TimeDelta::days(1),
                end: now + TimeDelta::days(364),
                recorded_at: now,
            });
        }
    }
    let st = evaluate(&t, now, Thresholds::default());
    (t, st)
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return c.to_string();
        }
    }
    panic!("chromium is not installed: run scripts/test.sh (it installs Debian's chromium)");
}

/// Runs headless Chromium with `args` on `page`; (stdout, stderr). Killed after two minutes.
fn run_chromium(page: &Path, profile: &Path, args: &[String]) -> (String, String) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (t_out.join().unwrap(), t_err.join().unwrap())
}

struct Rendered {
    dom: String,
    png: PathBuf,
    console: String,
}

fn render_in_browser(n: usize, dir: &Path, window: &str) -> Rendered {
    let fleet: Vec<(TenantRecord, TenantStatus)> = (0..n).map(tenant).collect();
    render_fleet_in_browser(&fleet, dir, window)
}

fn render_fleet_in_browser(
    fleet: &[(TenantRecord, TenantStatus)],
    dir: &Path,
    window: &str,
) -> Rendered {
    let n = fleet.len();
    let adv = hybrid_trust::advisories::for_fleet(["global"], now(), &[]);
    let html = hybrid_trust::report::html::render(fleet, &adv, now());
    let page = dir.join(format!("report-{n}.html"));
    std::fs::write(&page, &html).unwrap();
    let png = dir.join(format!("report-{n}.png"));
    let (_, console1) = run_chromium(
        &page,
        &dir.join(format!("profile-a-{n}")),
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={window}"),
            "--hide-scrollbars".into(),
        ],
    );
    let (dom, console2) = run_chromium(
        &page,
        &dir.join(format!("profile-b-{n}")),
        &["--dump-dom".into()],
    );
    Rendered {
        dom,
        png,
        console: console1 + &console2,
    }
}

fn assert_clean(r: &Rendered, rows: usize) {
    assert!(
        r.dom.contains(&format!("data-rows=\"{rows}\"")),
        "the self-check did not run: {}",
        &r.dom[..r.dom.len().min(2000)]
    );
    assert!(
        r.dom.contains("data-selfcheck=\"ok\""),
        "the page's self-check failed"
    );
    assert!(
        !r.dom.contains("data-errors="),
        "a script error was recorded in the DOM"
    );
    assert!(r.dom.contains("<pre id=\"js-errors\"></pre>"));
    assert_eq!(r.dom.matches("<tr data-state=").count(), rows);
    for line in r.console.lines() {
        assert!(
            !(line.contains("Uncaught") || line.contains("CONSOLE") && line.contains("rror")),
            "console error: {line}"
        );
    }
    let png = std::fs::read(&r.png).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn a_300_tenant_report_renders_in_chromium_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = render_in_browser(300, dir.path(), "1400,1800");
    assert_clean(&r, 300);
    // Every state is there, and the odd names came through as text, not markup.
    for s in State::ALL {
        assert!(
            r.dom.contains(&format!("data-state=\"{}\"", s.name())),
            "{}",
            s.name()
        );
    }
    assert!(
        r.dom
            .contains("&lt;b&gt;odd&amp;name&lt;/b&gt;-007.onmicrosoft.com")
    );
    assert!(!r.dom.contains("<b>odd"));

    // The size of the reviewed picture in docs/report.png (the window cut to the page's height).
    let small = render_in_browser(10, dir.path(), "1400,1400");
    assert_clean(&small, 10);
    if let Ok(dest) = std::env::var("HYBRID_TRUST_REPORT_PNG") {
        std::fs::copy(&small.png, dest).unwrap();
    }
}

/// Issue 27: tenants with both trusts, and one kept only for Exchange whose staged Auth
/// Certificate is not on the application, render in Chromium with the Exchange lanes and MEAC's
/// EffectiveDate on the tenant's one timeline, and each trust's state under the tenant's.
#[test]
fn both_trusts_render_on_one_timeline_in_chromium() {
    use hybrid_trust::ledger::ExchangeTrust;
    let app = "11111111-2222-3333-4444-555555555555";
    let mut fleet: Vec<(TenantRecord, TenantStatus)> = Vec::new();
    for i in 0..6 {
        let (mut t, _) = tenant(i);
        let (c, n) = (
            format!("{:040X}", 50_000 + i),
            format!("{:040X}", 60_000 + i),
        );
        let mut x = ExchangeTrust {
            app_id: app.into(),
            cert: Some(cert(
                &c,
                now() - TimeDelta::days(1775),
                now() + TimeDelta::days(50),
            )),
            next_cert: Some(cert(
                &n,
                now() - TimeDelta::days(5),
                now() + TimeDelta::days(1820),
            )),
            next_effective: Some(now() + TimeDelta::days(20 + i as i64)),
            ..ExchangeTrust::default()
        };
        x.credentials.push(CredentialRecord {
            app_id: app.into(),
            key_id: None,
            thumbprint_sha1: Thumbprint::parse(&c).unwrap(),
            start: now() - TimeDelta::days(300),
            end: now() + TimeDelta::days(50),
            recorded_at: now(),
        });
        if i % 2 == 0 {
            // Uploaded ahead, for a year (a 365-day policy).
            x.credentials.push(CredentialRecord {
                app_id: app.into(),
                key_id: None,
                thumbprint_sha1: Thumbprint::parse(&n).unwrap(),
                start: now() - TimeDelta::days(1),
                end: now() + TimeDelta::days(364),
                recorded_at: now(),
            });
        }
        if i == 5 {
            // Kept only for Exchange.
            t = TenantRecord::new("exchange-only.onmicrosoft.com", "global", vec![], now());
        }
        t.exchange = Some(x);
        let st = evaluate(&t, now(), Thresholds::default());
        fleet.push((t, st));
    }
    let dir = tempfile::tempdir().unwrap();
    let r = render_fleet_in_browser(&fleet, dir.path(), "1400,900");
    assert_clean(&r, 6);
    assert_eq!(r.dom.matches(">Exchange app<").count(), 6);
    assert_eq!(r.dom.matches(">Auth cert<").count(), 6);
    assert_eq!(r.dom.matches("class=\"muted id trusts\"").count(), 6);
    assert!(r.dom.contains("exchange-only.onmicrosoft.com"));
    assert!(
        r.dom
            .contains("<h1>Skype for Business and Exchange hybrid trusts</h1>")
    );
    assert!(r.dom.contains("Exchange: the staged Auth Certificate"));
    if let Ok(dest) = std::env::var("HYBRID_TRUST_REPORT_EXCHANGE_PNG") {
        std::fs::copy(&r.png, dest).unwrap();
    }
}
