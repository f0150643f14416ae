//! Issue 27's lifecycle simulation of the Exchange Server hybrid trust: simulated years of a
//! daily timer for a tenant kept for Exchange, in process through the library on simulated time
//! ([`hybrid_trust::clock::SimTime`]) with the emulator following the same clock.
//!
//! The world: Exchange on-prem (its `Get-AuthConfig`: the certificate it signs with, the one it
//! switched away from, MEAC's staged one and its EffectiveDate), MEAC running daily at 01:00 (it
//! stages a new five-year certificate 30 days ahead when the current one has 60 days or less),
//! the dedicated application `ExchangeServerApp-<org guid>` in the emulated tenant, and the admin.
//! At 06:00 each simulated day the timer runs `remind --all` (the library's
//! [`hybrid_trust::session::remind_all`], which takes its entries from `remind::due`) and, where
//! the scenario has it, `renew --trust exchange --from DIR` ([`hybrid_trust::session::exchange::renew`])
//! on an export folder the on-prem script refreshes.
//!
//! Counted for every hour: an outage hour is one in which the certificate Exchange signs with (per
//! the simulated AuthConfig, switching at the EffectiveDate) has no valid `Verify` key on the
//! dedicated application (Graph's keys, read back after every run that changed them). Each
//! scenario prints its row.

mod support;

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use hybrid_trust::clock::{Clock, SimTime};
use hybrid_trust::cloud::Cloud;
use hybrid_trust::ledger::LedgerStore;
use hybrid_trust::notify::{Notifier, SendFuture};
use hybrid_trust::remind::Digest;
use hybrid_trust::session::Session;
use hybrid_trust::sts::AdminCredential;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::*;

const ORG: &str = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const THRESHOLDS: [i64; 6] = [60, 30, 14, 7, 3, 1];
const CN: &str = "Microsoft Exchange Server Auth Certificate";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Admin {
    /// Runs the on-prem export and `renew --trust exchange --from DIR` when a reminder about the
    /// Exchange trust arrives.
    OnReminder,
    /// Never acts after the first upload.
    Never,
    /// The timer runs `renew --trust exchange --from DIR` daily; the on-prem script refreshes the
    /// folder every `export_every` days (a scheduled task on the Exchange server).
    Daily { export_every: i64 },
}

struct Scenario {
    name: &'static str,
    admin: Admin,
    /// The tenant's app management policy caps key lifetimes at this many days.
    policy_days: Option<u32>,
    /// The first Auth Certificate ends this many days after the start.
    first_cert_days: i64,
    /// Simulated days.
    days: i64,
}

#[derive(Clone)]
struct Inbox {
    got: Arc<Mutex<Vec<Digest>>>,
}

impl Notifier for Inbox {
    fn id(&self) -> String {
        "inbox".into()
    }
    fn send<'a>(&'a self, msg: &'a Digest, _: &'a [String]) -> SendFuture<'a> {
        self.got.lock().unwrap().push(msg.clone());
        Box::pin(async { Ok(()) })
    }
}

/// Exchange on-prem: `Get-AuthConfig` over the certificates (indices into `certs`).
struct OnPrem {
    certs: Vec<TestCert>,
    current: usize,
    previous: Option<usize>,
    next: Option<(usize, DateTime<Utc>)>,
}

impl OnPrem {
    /// The certificate Exchange signs with at `t`.
    fn signing_at(&self, t: DateTime<Utc>) -> usize {
        match self.next {
            Some((n, e)) if t >= e => n,
            _ => self.current,
        }
    }

    /// AuthConfig at `t`: the staged certificate becomes current at its EffectiveDate.
    fn settle(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.next {
            Some((n, e)) if t >= e => {
                self.previous = Some(self.current);
                self.current = n;
                self.next = None;
                Some(e)
            }
            _ => None,
        }
    }

    /// MEAC's daily run: a new five-year certificate staged 30 days ahead when the current one has
    /// 60 days or less and nothing is staged. Returns the EffectiveDate when it staged one.
    fn meac(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.next.is_some() || self.certs[self.current].not_after - t > TimeDelta::days(60) {
            return None;
        }
        self.certs.push(make_cert(
            CN,
            t - TimeDelta::hours(1),
            t + TimeDelta::days(5 * 365),
        ));
        let e = t + TimeDelta::days(30);
        self.next = Some((self.certs.len() - 1, e));
        Some(e)
    }

    /// The export folder as the on-prem script writes it (UTF-8, ISO dates, one `.cer` each).
    fn export(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let tp = |i: usize| self.certs[i].sha1_hex();
        let auth = json!({
            "CurrentCertificateThumbprint": tp(self.current),
            "PreviousCertificateThumbprint": self.previous.map(tp),
            "NextCertificateThumbprint": self.next.map(|(n, _)| tp(n)),
            "NextCertificateEffectiveDate": self.next.map(|(_, e)| e.to_rfc3339()),
        });
        std::fs::write(dir.join("authconfig.json"), auth.to_string()).unwrap();
        std::fs::write(
            dir.join("organization.json"),
            json!({ "Guid": ORG }).to_string(),
        )
        .unwrap();
        for i in std::iter::once(self.current)
            .chain(self.previous)
            .chain(self.next.map(|n| n.0))
        {
            std::fs::write(dir.join(format!("{}.cer", tp(i))), &self.certs[i].der).unwrap();
        }
    }
}

/// A key on the dedicated application: thumbprint, start, end.
type Key = (String, DateTime<Utc>, DateTime<Utc>);

struct World {
    emu: Emu,
    sim: &'static SimTime,
    clock: Clock,
    cloud: Cloud,
    /// One HTTPS client for the simulation (building one per command was most of its time).
    http: hybrid_trust::http::HttpClient,
    dir: tempfile::TempDir,
    store: LedgerStore,
    app_object_id: String,
}

impl World {
    async fn start(policy_days: Option<u32>, t0: DateTime<Utc>) -> World {
        // Plain HTTP on loopback: TLS is tested elsewhere and would be most of the time here.
        let mut cfg = quiet_tls();
        cfg.tls = false;
        cfg.reuse_tokens = false;
        let emu = Emu::start_with(cfg).await;
        let sim = SimTime::leak(t0);
        let clock = Clock::Simulated(sim);
        assert!(emu.running.clock().follow(Arc::new(move || clock.now())));
        // Simulated time stands still within a run: the per-minute read throttle is out of reach.
        let mut b = emu.control_get("state").await["behaviour"].clone();
        b["select_key_limit_per_minute"] = json!(u32::MAX);
        let st = emu.control(Method::POST, "behaviour", b).await;
        assert!(st.is_success(), "{st}");
        let tid = emu.tenant.tenant_id.clone();
        if let Some(days) = policy_days {
            let st = emu
                .control(
                    Method::POST,
                    &format!("tenants/{tid}/policy"),
                    json!({ "max_key_lifetime_days": days }),
                )
                .await;
            assert!(st.is_success(), "{st}");
        }
        let seeded = emu
            .running
            .seed_exchange_app(&tid, ORG.parse().unwrap(), true)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.running.ca_pem()).unwrap();
        let cloud = support::emulated_cloud(&emu.cloud, ca);
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        World {
            store: LedgerStore::in_dir(&state),
            app_object_id: seeded["id"].as_str().unwrap().to_string(),
            http: hybrid_trust::http::HttpClient::for_cloud(&cloud).unwrap(),
            emu,
            sim,
            clock,
            cloud,
            dir,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A command's session (a process of its own).
    fn session(&self) -> Session {
        let admin = AdminCredential::Secret {
            client_id: self.emu.tenant.admin.client_id.clone(),
            secret: hybrid_trust::secret::SecretString::new(
                self.emu.tenant.admin.client_secret.clone(),
            ),
        };
        Session::signed_in(
            self.cloud.clone(),
            self.http.clone(),
            &self.emu.tenant.domain,
            admin,
            self.dir.path().join("state"),
            self.clock,
            false,
        )
    }

    fn export_dir(&self) -> PathBuf {
        self.dir.path().join("export")
    }

    /// `renew --trust exchange --from DIR --yes`, as the CLI runs it: the steps it applied.
    async fn renew(&self) -> Vec<hybrid_trust::exchange::Step> {
        let export = hybrid_trust::onprem::exchange::load_export(&self.export_dir()).unwrap();
        let mut s = self.session();
        let r = hybrid_trust::session::exchange::renew(
            &mut s,
            &export,
            None,
            TimeDelta::days(30),
            &mut |_| true,
        )
        .await
        .expect("renew --trust exchange");
        r.steps
            .into_iter()
            .filter(|r| r.outcome == "applied")
            .map(|r| r.step)
            .collect()
    }

    /// `remind --all` on the simulated day: the Exchange entries sent.
    async fn remind(&self, inbox: &Inbox) -> Vec<hybrid_trust::remind::Due> {
        let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(inbox.clone())];
        let ledger = self.store.load().unwrap();
        let due = hybrid_trust::session::remind_all::plan(
            &ledger.tenants,
            &notifiers,
            &THRESHOLDS,
            self.now(),
            &[],
        );
        if due.is_empty() {
            return Vec::new();
        }
        hybrid_trust::session::remind_all::run(
            &self.store,
            &ledger.tenants,
            &notifiers,
            &THRESHOLDS,
            self.clock,
            false,
            1,
            &[],
            &hybrid_trust::progress::Counter::default(),
        )
        .await
        .unwrap();
        std::mem::take(&mut *inbox.got.lock().unwrap())
            .into_iter()
            .flat_map(|d| d.entries)
            .filter(|e| e.is_exchange())
            .collect()
    }

    /// The dedicated application's keys as Graph holds them.
    async fn keys(&self) -> Vec<Key> {
        let (s, _, v) = self
            .emu
            .graph(
                Method::GET,
                &format!(
                    "applications/{}?$select=id,keyCredentials",
                    self.app_object_id
                ),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let date = |v: &Value| {
            DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        v["keyCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["usage"] == "Verify")
            .map(|k| {
                use base64::Engine as _;
                use sha1::Digest as _;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(k["key"].as_str().unwrap())
                    .unwrap();
                let tp: String = sha1::Sha1::digest(&der)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                (tp, date(&k["startDateTime"]), date(&k["endDateTime"]))
            })
            .collect()
    }
}

fn valid(keys: &[Key], tp: &str, t: DateTime<Utc>) -> bool {
    keys.iter().any(|(k, s, e)| k == tp && *s <= t && t < *e)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

#[derive(Default, Debug)]
struct Tally {
    outage_hours: i64,
    first_outage: Option<DateTime<Utc>>,
    /// Exchange reminders sent: (when, the lapse they named).
    reminders: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// MEAC's stagings: (when, EffectiveDate).
    staged: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The switches (EffectiveDates passed).
    switches: Vec<DateTime<Utc>>,
    renewals: i64,
    uploads: i64,
    retirements: Vec<DateTime<Utc>>,
    rewindows: i64,
}

/// Plays a scenario; returns the tally.
async fn simulate(sc: Scenario) -> Tally {
    let started = std::time::Instant::now();
    let t0 = Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0).unwrap();
    let w = World::start(sc.policy_days, t0).await;
    let inbox = Inbox {
        got: Arc::new(Mutex::new(Vec::new())),
    };
    // The first Auth Certificate, issued four years ago or so, ends `first_cert_days` from now.
    let first = make_cert(
        CN,
        t0 - TimeDelta::days(1500),
        t0 + TimeDelta::days(sc.first_cert_days) + TimeDelta::hours(9),
    );
    let mut op = OnPrem {
        certs: vec![first],
        current: 0,
        previous: None,
        next: None,
    };
    let mut tally = Tally::default();

    // Day 0, 06:00: the admin exports and uploads the current Auth Certificate.
    w.sim.set(t0 + TimeDelta::hours(6));
    op.export(&w.export_dir());
    let mut exported = w.now();
    let steps = w.renew().await;
    assert_eq!(steps.len(), 1, "{}: the first upload: {steps:?}", sc.name);
    let mut keys = w.keys().await;
    let mut counted_to = w.now();
    let mut retired_at_switch_check: Vec<(DateTime<Utc>, String)> = Vec::new();

    for day in 0..sc.days {
        let midnight = t0 + TimeDelta::days(day);
        let meac_at = midnight + TimeDelta::hours(1);
        let timer_at = midnight + TimeDelta::hours(6);
        for (at, what) in [(meac_at, "meac"), (timer_at, "timer")] {
            if at <= counted_to {
                continue;
            }
            // The hours up to `at`, with the keys as they are.
            let mut h = counted_to;
            while h < at {
                let signing = op.signing_at(h);
                if !valid(&keys, &op.certs[signing].sha1_hex(), h) {
                    tally.outage_hours += 1;
                    tally.first_outage.get_or_insert(h);
                }
                h += TimeDelta::hours(1);
            }
            counted_to = at;
            w.sim.set(at);
            if let Some(e) = op.settle(at) {
                tally.switches.push(e);
            }
            if what == "meac" {
                if let Some(e) = op.meac(at) {
                    tally.staged.push((at, e));
                }
                continue;
            }
            // The timer: remind, then the daily renew where the scenario has one.
            let sent = w.remind(&inbox).await;
            for e in &sent {
                tally.reminders.push((at, e.ends));
            }
            let run = match sc.admin {
                Admin::OnReminder => {
                    if !sent.is_empty() {
                        op.export(&w.export_dir());
                        exported = at;
                    }
                    !sent.is_empty()
                }
                Admin::Never => false,
                Admin::Daily { export_every } => {
                    if at - exported >= TimeDelta::days(export_every) {
                        op.export(&w.export_dir());
                        exported = at;
                    }
                    true
                }
            };
            if !run {
                continue;
            }
            let export = hybrid_trust::onprem::exchange::load_export(&w.export_dir()).unwrap();
            let steps = w.renew().await;
            tally.renewals += 1;
            for s in &steps {
                match s {
                    hybrid_trust::exchange::Step::Upload { why, .. } => {
                        tally.uploads += 1;
                        if *why == hybrid_trust::exchange::Why::Rewindow {
                            tally.rewindows += 1;
                        }
                    }
                    hybrid_trust::exchange::Step::RetirePrevious { thumbprint } => {
                        tally.retirements.push(at);
                        // Retired only when the export shows its successor current.
                        assert_ne!(
                            export.current.thumbprint.to_string(),
                            thumbprint.to_string(),
                            "{}: the current certificate retired",
                            sc.name
                        );
                        assert!(
                            export.next.is_none() && op.switched_to_export(&export),
                            "{}: {thumbprint} retired at {} before the export showed its successor current",
                            sc.name,
                            fmt(at)
                        );
                        retired_at_switch_check.push((at, thumbprint.to_string()));
                    }
                    hybrid_trust::exchange::Step::RetireWindows { .. } => {}
                }
            }
            if !steps.is_empty() {
                keys = w.keys().await;
            }
        }
    }
    eprintln!(
        "{:<58} outage {:>5} h  staged {:?}  switches {:?}  reminders {}  renewals {:>4}  uploads {} (re-windows {})  retirements {:?}  {:.1?}",
        sc.name,
        tally.outage_hours,
        tally
            .staged
            .iter()
            .map(|(a, e)| format!("{} eff {}", fmt(*a), fmt(*e)))
            .collect::<Vec<_>>(),
        tally.switches.iter().map(|t| fmt(*t)).collect::<Vec<_>>(),
        tally.reminders.len(),
        tally.renewals,
        tally.uploads,
        tally.rewindows,
        tally
            .retirements
            .iter()
            .map(|t| fmt(*t))
            .collect::<Vec<_>>(),
        started.elapsed()
    );
    tally
}

impl OnPrem {
    /// Whether the export shows what AuthConfig shows now (taken right after the switch).
    fn switched_to_export(&self, export: &hybrid_trust::onprem::exchange::Export) -> bool {
        export.current.thumbprint.as_str() == self.certs[self.current].sha1_hex()
    }
}

/// (a) MEAC renews, the tool reminds, the admin runs the export and `renew --trust exchange`
/// when reminded: the staged certificate is on the application before its EffectiveDate, the
/// previous one retired after the switch, no outage hour.
#[tokio::test(flavor = "multi_thread")]
async fn meac_renews_and_the_admin_uploads_when_reminded_no_outage() {
    let t = simulate(Scenario {
        name: "(a) MEAC renews, admin uploads when reminded",
        admin: Admin::OnReminder,
        policy_days: None,
        first_cert_days: 400,
        days: 2 * 365,
    })
    .await;
    assert_eq!(t.staged.len(), 1, "{t:?}");
    let (_, effective) = t.staged[0];
    assert_eq!(t.switches, vec![effective], "{t:?}");
    // The tool said so before the EffectiveDate, and the admin's upload it led to came in time.
    assert!(
        t.reminders.iter().any(|(at, _)| *at < effective),
        "no reminder before the EffectiveDate: {t:?}"
    );
    assert_eq!(t.outage_hours, 0, "{t:?}");
    // The previous certificate's key was retired, after the switch.
    assert_eq!(t.retirements.len(), 1, "{t:?}");
    assert!(t.retirements[0] > effective, "{t:?}");
}

/// (b) MEAC renews and nobody uploads: the outage starts at the EffectiveDate (the one outage
/// the tool cannot avoid), and the tool's reminders fired before it, the first at least 14 days
/// ahead.
#[tokio::test(flavor = "multi_thread")]
async fn meac_renews_and_nobody_uploads_the_outage_starts_at_the_effective_date_after_reminders() {
    let t = simulate(Scenario {
        name: "(b) MEAC renews, nobody uploads",
        admin: Admin::Never,
        policy_days: None,
        first_cert_days: 200,
        days: 300,
    })
    .await;
    assert_eq!(t.staged.len(), 1, "{t:?}");
    let (_, effective) = t.staged[0];
    // The outage: from the first hour at or after the EffectiveDate, to the end.
    let first = t.first_outage.expect("an outage");
    assert!(
        first >= effective && first - effective < TimeDelta::hours(1),
        "the outage starts at {} and the EffectiveDate is {}",
        fmt(first),
        fmt(effective)
    );
    let end = Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0).unwrap() + TimeDelta::days(300)
        - TimeDelta::hours(18);
    let expected = (end - first).num_hours();
    assert_eq!(t.outage_hours, expected, "{t:?}");
    // Unavoidable: the tool reminded before it, first at least 14 days ahead.
    let reminded: Vec<_> = t
        .reminders
        .iter()
        .filter(|(at, _)| *at < effective)
        .collect();
    assert!(
        reminded
            .first()
            .is_some_and(|(at, _)| effective - *at >= TimeDelta::days(14)),
        "reminders before the EffectiveDate {}: {reminded:?}",
        fmt(effective)
    );
    assert!(reminded.len() >= 2, "{reminded:?}");
}

/// (c) A 365-day app management policy and a five-year Auth Certificate: the daily `renew
/// --trust exchange` re-windows the key before each one-year window ends, no outage hour.
#[tokio::test(flavor = "multi_thread")]
async fn a_365_day_policy_with_a_five_year_certificate_is_rewindowed_yearly_no_outage() {
    let t = simulate(Scenario {
        name: "(c) 365-day policy, five-year certificate, daily renew",
        admin: Admin::Daily { export_every: 1 },
        policy_days: Some(365),
        first_cert_days: 4 * 365,
        days: 680,
    })
    .await;
    assert!(t.staged.is_empty(), "{t:?}");
    assert_eq!(t.outage_hours, 0, "{t:?}");
    // A window a year at most: re-windowed twice in 680 days, each before the window ended.
    assert_eq!(t.rewindows, 2, "{t:?}");
    assert!(t.retirements.is_empty(), "{t:?}");
}

/// (d) The switch: MEAC's staged certificate uploaded ahead by the daily renew, the previous
/// key kept while the export (refreshed every five days) still shows it current, retired by the first
/// renew whose export shows the new one current; no outage hour. The 365-day policy applies.
#[tokio::test(flavor = "multi_thread")]
async fn the_switch_retires_the_previous_key_only_after_the_export_shows_the_new_one() {
    let t = simulate(Scenario {
        name: "(d) the switch, export refreshed every 5 days, 365-day policy",
        admin: Admin::Daily { export_every: 5 },
        policy_days: Some(365),
        first_cert_days: 120,
        days: 200,
    })
    .await;
    assert_eq!(t.staged.len(), 1, "{t:?}");
    let (_, effective) = t.staged[0];
    assert_eq!(t.switches, vec![effective], "{t:?}");
    assert_eq!(t.outage_hours, 0, "{t:?}");
    assert_eq!(t.retirements.len(), 1, "{t:?}");
    let retired = t.retirements[0];
    // Not by the renews of the days the export still showed the old one current (the switch
    // fell between two exports), but by the first after the export showed the new one.
    assert!(
        retired - effective > TimeDelta::days(1) && retired - effective <= TimeDelta::days(6),
        "retired {} for the switch at {}",
        fmt(retired),
        fmt(effective)
    );
}
