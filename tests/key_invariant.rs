//! Issue 24's model-based test of the promise: **at every moment the certificate the Front Ends
//! sign with has a valid Verify key in Entra, or the tool has already said when it will lapse and
//! why.** (docs/design.md, "Third round": the invariant is the product.)
//!
//! The world: the Front Ends (the certificate they sign with; it changes only when a roll script
//! `renew --new-cert` wrote is run *and* its EffectiveDate passes), Entra's keys (the in-process
//! emulator), two admin hosts A and B with their own state dirs and ledgers, one tenant, and one
//! simulated clock ([`hybrid_trust::clock::SimTime`]) that the library and the emulator share:
//! every wait the library makes moves it on at once. Entra's clock may be skewed from the hosts'.
//!
//! Random sequences of steps, each by host A or B: credential upload of the certificate the Front
//! Ends use (onboarding), `renew`, `renew --new-cert` (a new certificate of random validity),
//! running the roll script (or not), `renew --confirm-roll` (the admin's word, only when the admin
//! would honestly believe it: the script ran and its EffectiveDate passed), `renew --confirm-roll
//! --current DIR` with saved `Get-CsCertificate | Format-List` output at any time, its
//! EffectiveDate printed in a random time zone (local time without an offset, as Format-List shows
//! a DateTime, or the ISO form with an offset), `verify` with any of the certificates,
//! `credential prune --foreign` / `--expired`, `credential remove` of a certificate the host's
//! ledger knows, `status --check`, and clock jumps of hours to months (on each simulated day both
//! hosts run `status --check` and `remind`, and, when the case gives them a timer, `renew --all`).
//! A command may be killed (`kill -9`) at its k-th request to the emulator, the request applied or
//! not: the emulator never answers it and the command's future is dropped (its locks go with it,
//! as with a dead process).
//!
//! Each command runs through the library calls its CLI command makes (`src/cli/*_cmd.rs`), with
//! `--yes`. After every step the oracle reads Entra's keys and asserts the invariant over the time
//! that passed: a lapse that a command caused (the Front Ends' certificate had a valid key before
//! it, not after) is never excused; a lapse that time brought (a key's end, the Front Ends
//! switching at an EffectiveDate) is excused only when, before it, the latest `status --check` of
//! a host graded the tenant WARNING or CRITICAL with a `lapses_at` no later than the lapse, or a
//! reminder said so since that host's last OK. The model's own view is checked against Entra:
//! the Front Ends ask for a token after every step.
//!
//! `HYBRID_TRUST_MODEL_CASES=N` plays N cases (the suite plays a few hundred, split over test
//! functions), `HYBRID_TRUST_MODEL_SEED=S` replays one case (`HYBRID_TRUST_MODEL_KEEP=0,3,7` only
//! those steps of it: what a failure's shrinking prints), `HYBRID_TRUST_MODEL_SKEW=0` plays
//! without clock skew, `HYBRID_TRUST_MODEL_SHRINK=0` reports a failure unshrunk. A failure prints
//! the seed, the case, the trace of every step and the state of the world, and the line to
//! replay it. The four parts play Graph's three ways of taking kept keys re-sent in a PATCH
//! (`--key-resend` full, full, unchanged, minimal; `HYBRID_TRUST_MODEL_RESEND` picks one for a
//! replay). Each test function prints a one-line summary (cases, steps, actions by kind,
//! invariant checks, elapsed).

mod support;

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use hybrid_trust::cert::Certificate;
use hybrid_trust::clock::{Clock, SimTime};
use hybrid_trust::cloud::Cloud;
use hybrid_trust::credential::foreign::Prune;
use hybrid_trust::credential::standing;
use hybrid_trust::http::HttpClient;
use hybrid_trust::ledger::{LedgerStore, TenantRecord};
use hybrid_trust::notify::{Notifier, SendFuture};
use hybrid_trust::remind::Digest;
use hybrid_trust::renew::Policy;
use hybrid_trust::session::Session;
use hybrid_trust::session::keys::KeyOp;
use hybrid_trust::session::renew_all;
use hybrid_trust::status::{self, Severity, Thresholds};
use hybrid_trust::sts::AdminCredential;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use support::*;

/// `remind`'s default thresholds (days before a lapse).
const THRESHOLDS: [i64; 6] = [60, 30, 14, 7, 3, 1];
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ---------------------------------------------------------------------------------------------
// Randomness: a seeded generator of our own, so a case is its seed.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------------
// The case: parameters of the world and the steps.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum H {
    A,
    B,
}

impl H {
    fn i(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `12/6/2026 1:41:49 PM`: local time without an offset, as Format-List prints a DateTime.
    Local,
    /// `2026-12-06T21:41:49.0000000Z`: `.ToUniversalTime().ToString('o')`.
    Iso,
}

#[derive(Clone, Debug)]
enum Act {
    Upload,
    Renew,
    NewCert {
        days: i64,
        back_hours: i64,
    },
    RunScript,
    ConfirmPlain,
    ConfirmCurrent {
        tz_minutes: i64,
        form: Form,
        with_use: bool,
    },
    Verify {
        pick: u64,
    },
    PruneForeign,
    PruneExpired,
    Remove {
        pick: u64,
    },
    Check,
    Jump {
        minutes: i64,
    },
}

impl Act {
    fn kind(&self) -> &'static str {
        match self {
            Act::Upload => "upload",
            Act::Renew => "renew",
            Act::NewCert { .. } => "renew --new-cert",
            Act::RunScript => "run roll script",
            Act::ConfirmPlain => "confirm-roll",
            Act::ConfirmCurrent { .. } => "confirm-roll --current",
            Act::Verify { .. } => "verify",
            Act::PruneForeign => "prune --foreign",
            Act::PruneExpired => "prune --expired",
            Act::Remove { .. } => "credential remove",
            Act::Check => "status --check",
            Act::Jump { .. } => "clock jump",
        }
    }
    fn network(&self) -> bool {
        matches!(
            self,
            Act::Upload
                | Act::Renew
                | Act::NewCert { .. }
                | Act::Verify { .. }
                | Act::PruneForeign
                | Act::PruneExpired
                | Act::Remove { .. }
        )
    }
}

#[derive(Clone, Debug)]
struct Step {
    host: H,
    act: Act,
    /// `kill -9` at the k-th request to the emulator, that request applied (true) or not.
    crash: Option<(u64, bool)>,
}

#[derive(Clone, Debug)]
struct Params {
    t0: DateTime<Utc>,
    /// Entra's clock minus the hosts' clock.
    skew_secs: i64,
    /// The first certificate: valid from `t0 - o_back_days` to `t0 + o_days`.
    o_days: i64,
    o_back_days: i64,
    /// Host B uploaded the first certificate too (its ledger knows it).
    b_onboarded: bool,
    /// Which hosts run `renew --all` daily.
    timers: [bool; 2],
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    params: Params,
    steps: Vec<Step>,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn generate(seed: u64, steps: std::ops::RangeInclusive<u64>) -> Case {
    let mut r = Rng(seed ^ 0x5EED_0F24);
    let skew_allowed = env_u64("HYBRID_TRUST_MODEL_SKEW") != Some(0);
    let t0 = Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0).unwrap()
        + TimeDelta::minutes(r.range(0, 60 * 24 * 300));
    let params = Params {
        t0,
        skew_secs: if skew_allowed && r.chance(25) {
            r.range(-15 * 60, 15 * 60)
        } else {
            0
        },
        o_days: r.range(10, 800),
        o_back_days: r.range(1, 365),
        b_onboarded: r.chance(60),
        timers: [r.chance(40), r.chance(30)],
    };
    let n = r.range(*steps.start() as i64, *steps.end() as i64);
    let mut weights: [(u64, u8); 12] = [
        (22, 0), // jump
        (10, 1), // new cert
        (10, 2), // run script
        (6, 3),  // confirm plain
        (10, 4), // confirm --current
        (7, 5),  // verify
        (9, 6),  // renew
        (4, 7),  // upload
        (7, 8),  // prune --foreign
        (3, 9),  // prune --expired
        (3, 10), // remove
        (3, 11), // check
    ];
    // A census may leave kinds out (`HYBRID_TRUST_MODEL_WITHOUT=remove,prune-foreign`), so
    // that one defect does not hide the others.
    let without = std::env::var("HYBRID_TRUST_MODEL_WITHOUT").unwrap_or_default();
    for (name, k) in [
        ("new-cert", 1),
        ("run-script", 2),
        ("confirm", 3),
        ("confirm-current", 4),
        ("verify", 5),
        ("renew", 6),
        ("upload", 7),
        ("prune-foreign", 8),
        ("prune-expired", 9),
        ("remove", 10),
    ] {
        if without.split(',').any(|w| w.trim() == name) {
            weights[k].0 = 0;
        }
    }
    let total: u64 = weights.iter().map(|w| w.0).sum();
    let mut steps = Vec::new();
    for _ in 0..n {
        let mut x = r.below(total);
        let kind = weights
            .iter()
            .find(|(w, _)| {
                if x < *w {
                    true
                } else {
                    x -= w;
                    false
                }
            })
            .map(|w| w.1)
            .unwrap_or(0);
        let host = if r.chance(60) { H::A } else { H::B };
        let act = match kind {
            0 => Act::Jump {
                minutes: match r.below(100) {
                    0..=59 => r.range(30, 30 * 60),
                    60..=84 => r.range(2 * 24 * 60, 20 * 24 * 60),
                    _ => r.range(30 * 24 * 60, 120 * 24 * 60),
                },
            },
            1 => Act::NewCert {
                // Beyond the end of the certificate the Front Ends use (a few do not outlive it).
                days: r.range(-30, 730),
                back_hours: r.range(0, 72),
            },
            2 => Act::RunScript,
            3 => Act::ConfirmPlain,
            4 => Act::ConfirmCurrent {
                tz_minutes: if r.chance(80) {
                    r.range(-12, 14) * 60
                } else {
                    r.range(-24, 28) * 30
                },
                form: if r.chance(60) { Form::Local } else { Form::Iso },
                with_use: r.chance(50),
            },
            5 => Act::Verify { pick: r.next() },
            6 => Act::Renew,
            7 => Act::Upload,
            8 => Act::PruneForeign,
            9 => Act::PruneExpired,
            10 => Act::Remove { pick: r.next() },
            _ => Act::Check,
        };
        let crash = (act.network() && r.chance(12)).then(|| (r.range(1, 10) as u64, r.chance(50)));
        // An admin who confirms a roll often runs renew next, as the tool's note says.
        let follow = matches!(act, Act::ConfirmPlain | Act::ConfirmCurrent { .. }) && r.chance(35);
        // The roll script prints Get-CsCertificate: an admin may save it and confirm with it
        // later that day, wherever the Front End is.
        let saved = matches!(act, Act::RunScript) && r.chance(40);
        steps.push(Step { host, act, crash });
        if saved {
            steps.push(Step {
                host,
                act: Act::Jump {
                    minutes: r.range(30, 24 * 60),
                },
                crash: None,
            });
            steps.push(Step {
                host,
                act: Act::ConfirmCurrent {
                    tz_minutes: r.range(-12, 14) * 60,
                    form: if r.chance(60) { Form::Local } else { Form::Iso },
                    with_use: r.chance(50),
                },
                crash: None,
            });
            if r.chance(50) {
                steps.push(Step {
                    host,
                    act: Act::Renew,
                    crash: None,
                });
            }
        }
        if follow {
            steps.push(Step {
                host,
                act: Act::Renew,
                crash: None,
            });
        }
    }
    Case {
        seed,
        params,
        steps,
    }
}

// ---------------------------------------------------------------------------------------------
// The environment of a test function: one emulator on simulated time, reused case after case
// (its one tenant's keys are cleared between cases).

struct Env {
    emu: Emu,
    sim: &'static SimTime,
    clock: Clock,
    cloud: Cloud,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(resend: m365_emulator::KeyResend) -> Env {
        // Plain HTTP on loopback: TLS is tested elsewhere, and its handshakes would be most of
        // this test's time.
        let mut cfg = quiet_tls();
        cfg.tls = false;
        // How Graph takes kept keys re-sent in a PATCH ([U]: each part of the suite plays one).
        cfg.behaviour.key_resend = resend;
        cfg.reuse_tokens = false;
        let emu = Emu::start_with(cfg).await;
        let sim = SimTime::leak(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        let clock = Clock::Simulated(sim);
        assert!(
            emu.running
                .clock()
                .follow(std::sync::Arc::new(move || clock.now()))
        );
        // Simulated time stands still between steps and a shrinking replays a case at the same
        // minute: the per-minute read throttle (tested elsewhere) is set out of reach.
        let mut b = emu.control_get("state").await["behaviour"].clone();
        b["select_key_limit_per_minute"] = serde_json::json!(u32::MAX);
        let st = emu.control(reqwest::Method::POST, "behaviour", b).await;
        assert!(st.is_success(), "{st}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.running.ca_pem()).unwrap();
        let cloud = support::emulated_cloud(&emu.cloud, ca);
        Env {
            emu,
            sim,
            clock,
            cloud,
            _dir: dir,
        }
    }

    /// The HTTPS client of one command (a process has its own: what it learnt of the servers'
    /// clock from `Date` is its own).
    fn http(&self) -> HttpClient {
        HttpClient::for_cloud(&self.cloud).unwrap()
    }

    fn session(&self, state: &Path) -> Session {
        let admin = AdminCredential::Secret {
            client_id: self.emu.tenant.admin.client_id.clone(),
            secret: hybrid_trust::secret::SecretString::new(
                self.emu.tenant.admin.client_secret.clone(),
            ),
        };
        Session::signed_in(
            self.cloud.clone(),
            self.http(),
            &self.emu.tenant.domain,
            admin,
            state.to_path_buf(),
            self.clock,
            false,
        )
    }

    async fn reset(&self, p: &Params) {
        self.sim.set(p.t0);
        self.emu.running.clock().set_offset_secs(p.skew_secs);
        self.emu.running.crash_point().disarm();
        let path = format!(
            "tenants/{}/servicePrincipals/{SFB}/keyCredentials",
            self.emu.tenant.domain
        );
        let s = self
            .emu
            .control(reqwest::Method::PUT, &path, serde_json::json!([]))
            .await;
        assert!(s.is_success(), "{s}");
    }
}

/// Three RSA keys of the pool ([`pooled_key`]), parsed once per process (a certificate is cheap,
/// its RSA key is not); certificates of a case take them in turn.
fn rsa_keys() -> &'static Vec<rcgen::KeyPair> {
    static KEYS: OnceLock<Vec<rcgen::KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| pooled_key()).collect())
}

// ---------------------------------------------------------------------------------------------
// The world of one case.

struct WorldCert {
    name: String,
    tc: TestCert,
    tp: String,
    /// The "PFX" the admin holds: PEM with the private key.
    pem: PathBuf,
}

struct Host {
    name: char,
    state: PathBuf,
    store: LedgerStore,
    /// Roll scripts `renew --new-cert` wrote here, newest last.
    scripts: Vec<PathBuf>,
    /// The tenant's record as last read, by its file's identity (inode, length, mtime): the
    /// daily monitoring reads the ledger again only when it changed.
    cache: Option<((u64, u64, std::time::SystemTime), Option<TenantRecord>)>,
}

/// What `Get-CsCertificate -Type OAuthTokenIssuer` shows on a Front End.
#[derive(Clone, Copy, Debug)]
struct Shown {
    cert: usize,
    effective: DateTime<Utc>,
    previous: Option<usize>,
}

struct FrontEnds {
    active: usize,
    pending: Option<(usize, DateTime<Utc>)>,
    shown: Shown,
}

impl FrontEnds {
    fn at(&mut self, t: DateTime<Utc>) -> usize {
        if let Some((c, from)) = self.pending
            && t >= from
        {
            self.active = c;
            self.pending = None;
        }
        self.active
    }
}

#[derive(Clone, Debug)]
struct KeyView {
    tp: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    display: String,
}

/// A grade a host's monitoring gave: `status --check` (OK too: it withdraws what it said
/// before), or a reminder.
#[derive(Clone, Debug)]
struct Said {
    host: char,
    at: DateTime<Utc>,
    /// `Some(lapses_at)` for WARNING/CRITICAL or a reminder; `None` for OK.
    lapse: Option<DateTime<Utc>>,
    reminder: bool,
    what: String,
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

#[derive(Default, Clone)]
struct Stats {
    cases: u64,
    steps: u64,
    by_kind: BTreeMap<&'static str, u64>,
    checks: u64,
    crashes: u64,
    days_monitored: u64,
    timer_renewals: u64,
    excused_lapses: u64,
    refused_confirms: u64,
    roll_scripts_run: u64,
    tokens: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.steps += o.steps;
        for (k, v) in &o.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        self.checks += o.checks;
        self.crashes += o.crashes;
        self.days_monitored += o.days_monitored;
        self.timer_renewals += o.timer_renewals;
        self.excused_lapses += o.excused_lapses;
        self.refused_confirms += o.refused_confirms;
        self.roll_scripts_run += o.roll_scripts_run;
        self.tokens += o.tokens;
    }
}

struct World<'e> {
    env: &'e Env,
    p: Params,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    hosts: [Host; 2],
    certs: Vec<WorldCert>,
    fe: FrontEnds,
    said: Vec<Said>,
    /// The lapse going on: since when, and what excused it.
    lapse: Option<(DateTime<Utc>, String)>,
    /// Entra's keys as last read, and the (hosts') time of that read.
    keys: Vec<KeyView>,
    checked_at: DateTime<Utc>,
    /// What the Front Ends' last token request was asked with (keys, certificate, answer).
    last_asked: Option<(String, usize, bool)>,
    inbox: Inbox,
    trace: Vec<String>,
    stats: Stats,
}

fn fmt_t(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl<'e> World<'e> {
    async fn new(env: &'e Env, p: Params) -> World<'e> {
        env.reset(&p).await;
        // On tmpfs where there is one: the ledger and audit log fsync every write, and the
        // model writes thousands.
        let shm = Path::new("/dev/shm");
        let d = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let dir = d.path().to_path_buf();
        let host = |name: char| {
            let state = dir.join(format!("host-{name}"));
            std::fs::create_dir_all(&state).unwrap();
            Host {
                name,
                store: LedgerStore::in_dir(&state),
                state,
                scripts: vec![],
                cache: None,
            }
        };
        let hosts = [host('A'), host('B')];
        let mut w = World {
            env,
            _dir: d,
            dir,
            hosts,
            certs: vec![],
            fe: FrontEnds {
                active: 0,
                pending: None,
                shown: Shown {
                    cert: 0,
                    effective: p.t0 - TimeDelta::days(p.o_back_days),
                    previous: None,
                },
            },
            said: vec![],
            lapse: None,
            keys: vec![],
            checked_at: p.t0,
            last_asked: None,
            inbox: Inbox {
                got: Arc::new(Mutex::new(vec![])),
            },
            trace: vec![],
            stats: Stats::default(),
            p,
        };
        let t0 = w.p.t0;
        w.add_cert(
            t0 - TimeDelta::days(w.p.o_back_days),
            t0 + TimeDelta::days(w.p.o_days),
        );
        w
    }

    fn now(&self) -> DateTime<Utc> {
        self.env.clock.now()
    }

    fn add_cert(&mut self, nb: DateTime<Utc>, na: DateTime<Utc>) -> usize {
        let i = self.certs.len();
        let keys = rsa_keys();
        let tc = make_cert_signed_by("sfb.contoso.com", nb, na, &keys[i % keys.len()]);
        let pem = self.dir.join(format!("c{i}.pem"));
        std::fs::write(&pem, format!("{}{}", tc.cert_pem, tc.key_pem)).unwrap();
        self.certs.push(WorldCert {
            name: format!("C{i}"),
            tp: tc.sha1_hex(),
            tc,
            pem,
        });
        i
    }

    fn cert_name(&self, tp: &str) -> String {
        self.certs
            .iter()
            .find(|c| c.tp.eq_ignore_ascii_case(tp))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("?{}", &tp[..tp.len().min(8)]))
    }

    fn cert_of(&self, i: usize) -> Certificate {
        Certificate::from_der(&self.certs[i].tc.der).unwrap()
    }

    fn record(&mut self, h: H) -> Option<TenantRecord> {
        use std::os::unix::fs::MetadataExt as _;
        let domain = &self.env.emu.tenant.domain;
        let host = &mut self.hosts[h.i()];
        let id = std::fs::metadata(tenant_file(&host.state, domain))
            .ok()
            .map(|m| (m.ino(), m.len(), m.modified().unwrap()));
        let id = id.unwrap_or((0, 0, std::time::SystemTime::UNIX_EPOCH));
        if let Some((cached, rec)) = &host.cache
            && *cached == id
        {
            return rec.clone();
        }
        let rec = host
            .store
            .load()
            .ok()
            .and_then(|l| l.tenant(domain).cloned());
        host.cache = Some((id, rec.clone()));
        rec
    }

    fn log(&mut self, line: String) {
        self.trace.push(line);
    }

    // --- Entra, as the oracle reads it ------------------------------------------------------

    async fn read_keys(&self) -> Vec<KeyView> {
        let state = self.env.emu.control_get("state").await;
        let tenant = state["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                t["domains"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d == &self.env.emu.tenant.domain))
            })
            .unwrap()
            .clone();
        let sp = tenant["service_principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["app_id"] == SFB)
            .unwrap()
            .clone();
        let t = |v: &serde_json::Value| {
            DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        sp["key_credentials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["usage"] == "Verify" && k["type"] == "AsymmetricX509Cert")
            .map(|k| {
                use base64::Engine as _;
                use sha1::Digest as _;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(k["key"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                KeyView {
                    tp: sha1::Sha1::digest(&der)
                        .iter()
                        .map(|b| format!("{b:02X}"))
                        .collect(),
                    start: t(&k["start"]),
                    end: t(&k["end"]),
                    display: k["display_name"].as_str().unwrap_or("").to_string(),
                }
            })
            .collect()
    }

    /// Whether Entra holds a valid key of certificate `cert` at the hosts' time `t` (Entra's
    /// time is `t + skew`).
    fn valid(&self, keys: &[KeyView], cert: usize, t: DateTime<Utc>) -> bool {
        let et = t + TimeDelta::seconds(self.p.skew_secs);
        let tp = &self.certs[cert].tp;
        keys.iter()
            .any(|k| k.tp == *tp && k.start <= et && et < k.end)
    }

    fn keys_text(&self, keys: &[KeyView]) -> String {
        let mut v: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "{} {}..{}{}",
                    self.cert_name(&k.tp),
                    fmt_t(k.start),
                    fmt_t(k.end),
                    if k.display.contains("hybrid-trust") {
                        ""
                    } else {
                        " (not ours)"
                    }
                )
            })
            .collect();
        v.sort();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }

    /// What excuses a lapse starting at `l`: the latest `status --check` of a host before it
    /// graded the tenant WARNING/CRITICAL with `lapses_at` no later than `l`, or a reminder a
    /// host sent since its last OK said so.
    fn excuse(&self, l: DateTime<Utc>) -> Option<String> {
        let tol = TimeDelta::seconds(self.p.skew_secs.abs() + 60);
        for h in ['A', 'B'] {
            let mine: Vec<&Said> = self
                .said
                .iter()
                .filter(|s| s.host == h && s.at <= l)
                .collect();
            let last_check = mine.iter().rev().find(|s| !s.reminder);
            if let Some(s) = last_check
                && let Some(at) = s.lapse
                && at <= l + tol
            {
                return Some(format!("{h}: {} at {}", s.what, fmt_t(s.at)));
            }
            let last_ok = mine
                .iter()
                .rev()
                .find(|s| !s.reminder && s.lapse.is_none())
                .map(|s| s.at);
            if let Some(s) = mine.iter().rev().find(|s| {
                s.reminder
                    && last_ok.is_none_or(|ok| s.at >= ok)
                    && s.lapse.is_some_and(|at| at <= l + tol)
            }) {
                return Some(format!("{h}: {} at {}", s.what, fmt_t(s.at)));
            }
        }
        None
    }

    /// Time passed from `self.checked_at` to `to` with Entra's keys `keys` unchanged: follows
    /// the Front Ends through it and finds where a lapse starts or ends.
    fn pass_time(&mut self, keys: &[KeyView], to: DateTime<Utc>) -> Result<(), String> {
        let from = self.checked_at;
        let skew = TimeDelta::seconds(self.p.skew_secs);
        let mut instants: Vec<DateTime<Utc>> = keys
            .iter()
            .flat_map(|k| [k.start - skew, k.end - skew])
            .chain(self.fe.pending.map(|p| p.1))
            .filter(|t| *t > from && *t <= to)
            .collect();
        instants.push(to);
        instants.sort();
        instants.dedup();
        for t in instants {
            let cert = self.fe.at(t);
            if self.valid(keys, cert, t) {
                if let Some((since, _)) = &self.lapse {
                    self.log(format!(
                        "      lapse since {} ends at {}",
                        fmt_t(*since),
                        fmt_t(t)
                    ));
                }
                self.lapse = None;
                continue;
            }
            if self.lapse.is_some() {
                continue;
            }
            let why = if self.certs[cert].tc.not_after <= t + skew {
                format!("{} itself expired", self.certs[cert].name)
            } else {
                format!(
                    "the Front Ends sign with {} and Entra holds no valid key of it",
                    self.certs[cert].name
                )
            };
            match self.excuse(t) {
                Some(e) => {
                    self.log(format!(
                        "      lapse at {} ({why}), announced: {e}",
                        fmt_t(t)
                    ));
                    self.stats.excused_lapses += 1;
                    self.lapse = Some((t, e));
                }
                None => {
                    return Err(format!(
                        "UNANNOUNCED LAPSE at {} ({why}); keys: {}; no status --check or reminder said so before",
                        fmt_t(t),
                        self.keys_text(keys)
                    ));
                }
            }
        }
        self.checked_at = to;
        Ok(())
    }

    /// The oracle after a step that changed only a ledger (`--confirm-roll` sends nothing).
    fn check_offline(&mut self) -> Result<(), String> {
        self.stats.checks += 1;
        let keys = self.keys.clone();
        self.pass_time(&keys, self.now())
    }

    /// The oracle after a step that may have changed Entra's keys.
    async fn check(&mut self, what: &str) -> Result<(), String> {
        self.stats.checks += 1;
        let before = self.keys.clone();
        let t = self.now();
        // The time the command took (its waits), with the keys before it.
        self.pass_time(&before, t)?;
        let after = self.read_keys().await;
        let cert = self.fe.at(t);
        let ok = self.valid(&after, cert, t);
        if !ok && self.valid(&before, cert, t) {
            return Err(format!(
                "{what} REMOVED THE LAST VALID KEY: the Front Ends sign with {} and at {} Entra holds no valid key of it any more (keys before: {}; after: {})",
                self.certs[cert].name,
                fmt_t(t),
                self.keys_text(&before),
                self.keys_text(&after)
            ));
        }
        if ok {
            self.lapse = None;
        }
        if before.len() != after.len()
            || before
                .iter()
                .zip(&after)
                .any(|(a, b)| a.tp != b.tp || a.end != b.end || a.start != b.start)
        {
            self.log(format!("      keys: {}", self.keys_text(&after)));
        }
        self.keys = after;
        self.checked_at = t;
        Ok(())
    }

    /// The Front Ends ask Entra for a token: the model's view must be Entra's. Asked whenever
    /// the model's answer may have changed (other keys, another certificate, another answer).
    async fn front_ends_token(&mut self) -> Result<(), String> {
        let t = self.now();
        let cert = self.fe.at(t);
        let expect = self.valid(&self.keys, cert, t);
        let view = (self.keys_text(&self.keys), cert, expect);
        if self.last_asked.as_ref() == Some(&view) {
            return Ok(());
        }
        self.last_asked = Some(view);
        self.stats.tokens += 1;
        // Entra's own check is start <= now <= end: the instant of an end is the one where the
        // two readings differ, and no step stops exactly there but by chance.
        let et = t + TimeDelta::seconds(self.p.skew_secs);
        if self.keys.iter().any(|k| k.end == et || k.start == et) {
            return Ok(());
        }
        let url = self.env.emu.token_url(&self.env.emu.tenant.tenant_id);
        let c = &self.certs[cert].tc;
        let a = assertion(
            c,
            &c.pkcs8,
            "RS256",
            Thumb::X5t,
            &assertion_claims(SFB, &url, et),
        );
        let scope = format!("{}/.default", self.env.emu.cloud.exchange_url);
        let (s, body) = self
            .env
            .emu
            .post_form(
                &url,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", SFB),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &a),
                    ("scope", &scope),
                ],
            )
            .await;
        if (s == 200) != expect {
            return Err(format!(
                "MODEL ERROR: the model says the Front Ends' token with {} is {}, Entra answered {s}: {body}",
                self.certs[cert].name,
                if expect { "accepted" } else { "refused" }
            ));
        }
        Ok(())
    }

    // --- monitoring ---------------------------------------------------------------------------

    fn status_check(&mut self, h: H, why: &str) {
        let now = self.now();
        let th = Thresholds::default();
        let Some(t) = self.record(h) else {
            return;
        };
        let s = status::evaluate(&t, now, th);
        let sev = s.severity(th);
        let lapse = (sev != Severity::Ok).then_some(s.lapses_at).flatten();
        let what = format!(
            "status --check {:?} {} lapses_at {}",
            sev,
            s.state.name(),
            s.lapses_at.map(fmt_t).unwrap_or("-".into())
        );
        let changed = self
            .said
            .iter()
            .rev()
            .find(|x| x.host == self.hosts[h.i()].name && !x.reminder)
            .is_none_or(|x| x.lapse != lapse);
        if changed || why == "explicit" {
            self.log(format!("      {}: {what}", self.hosts[h.i()].name));
        }
        // What a host said last is what counts: an unchanged grade need not be kept twice.
        if !changed {
            return;
        }
        self.said.push(Said {
            host: self.hosts[h.i()].name,
            at: now,
            lapse,
            reminder: false,
            what,
        });
    }

    async fn remind(&mut self, h: H) {
        let Some(rec) = self.record(h) else {
            return;
        };
        let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(self.inbox.clone())];
        // Nothing due sends nothing and writes nothing: skip the run then.
        let due = hybrid_trust::session::remind_all::plan(
            std::slice::from_ref(&rec),
            &notifiers,
            &THRESHOLDS,
            self.now(),
            &[],
        );
        if due.is_empty() {
            return;
        }
        let Ok(ledger) = self.hosts[h.i()].store.load() else {
            return;
        };
        let progress = hybrid_trust::progress::Counter::default();
        let _ = hybrid_trust::session::remind_all::run(
            &self.hosts[h.i()].store,
            &ledger.tenants,
            &notifiers,
            &THRESHOLDS,
            self.env.clock,
            false,
            1,
            &[],
            &progress,
        )
        .await;
        let got: Vec<Digest> = std::mem::take(&mut *self.inbox.got.lock().unwrap());
        let now = self.now();
        for d in got {
            for e in d.entries {
                let what = format!(
                    "reminder {:?} ends {} ({})",
                    e.kind,
                    e.ends.map(fmt_t).unwrap_or("-".into()),
                    e.state
                );
                self.log(format!("      {}: {what}", self.hosts[h.i()].name));
                self.said.push(Said {
                    host: self.hosts[h.i()].name,
                    at: now,
                    lapse: e.ends,
                    reminder: true,
                    what,
                });
            }
        }
    }

    /// The daily timer of each host: `status --check` and `remind --all`; `renew --all` too
    /// where the case gives the host that timer.
    async fn daily(&mut self) -> Result<(), String> {
        self.stats.days_monitored += 1;
        for h in [H::A, H::B] {
            if self.p.timers[h.i()] {
                self.stats.timer_renewals += 1;
                let acted = self.renew(h, None, None).await;
                if acted {
                    self.check(&format!("{}'s daily renew --all", self.hosts[h.i()].name))
                        .await?;
                }
            }
            self.status_check(h, "daily");
            self.remind(h).await;
        }
        Ok(())
    }

    // --- commands, as the CLI runs them -----------------------------------------------------

    /// Runs a command's future, killed at its k-th request when `crash` says so.
    async fn killable<T>(
        &mut self,
        crash: Option<(u64, bool)>,
        fut: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let Some((k, apply)) = crash else {
            return Some(fut.await);
        };
        let cp = self.env.emu.running.crash_point();
        cp.arm(k, apply);
        let out = tokio::select! {
            biased;
            r = fut => Some(r),
            () = cp.wait_fired() => None,
        };
        cp.disarm();
        if out.is_none() {
            self.stats.crashes += 1;
        }
        out
    }

    /// `renew --tenant T` (or `--all`: one tenant) [`--new-cert`]: whether it acted on Graph.
    async fn renew(&mut self, h: H, offered: Option<usize>, crash: Option<(u64, bool)>) -> bool {
        let Some(rec) = self.record(h) else {
            self.log("      (not in this host's ledger)".into());
            return false;
        };
        let tenants = vec![rec];
        let host = &self.hosts[h.i()];
        let offered = offered.map(|i| self.cert_of(i));
        let policy = Policy::default();
        let decisions = renew_all::plan(&tenants, offered.as_ref(), self.env.clock, policy);
        let acts = decisions.iter().any(|d| d.acts());
        // Nothing to do writes nothing (renew_offline): the daily timer skips the run.
        if offered.is_none()
            && crash.is_none()
            && decisions
                .iter()
                .all(|d| matches!(d, hybrid_trust::renew::Decision::Nothing { .. }))
        {
            return false;
        }
        let env = self.env;
        let state = host.state.clone();
        let store = host.store.clone();
        let session =
            move |_: &str, _: usize| -> Result<Session, String> { Ok(env.session(&state)) };
        let work: Vec<_> = tenants.into_iter().zip(decisions).collect();
        let progress = hybrid_trust::progress::Counter::default();
        let fut = renew_all::renew_many(
            &store,
            work,
            offered.as_ref(),
            policy,
            env.clock,
            false,
            1000,
            &session,
            &progress,
        );
        match self.killable(crash, fut).await {
            None => self.log("      KILLED".into()),
            Some(Err(e)) => self.log(format!("      error: {e}")),
            Some(Ok(results)) => {
                for r in results {
                    if r.outcome == "nothing" {
                        continue;
                    }
                    let mut line = format!(
                        "      {}: {}",
                        r.outcome,
                        hybrid_trust::session::renewal::describe(&r.decision)
                    );
                    for c in &self.certs {
                        line = line.replace(&c.tp, &c.name);
                    }
                    if let Some(e) = &r.error {
                        line.push_str(&format!(" — error: {e}"));
                    }
                    self.log(line);
                    if let Some(p) = r.onprem_script {
                        self.hosts[h.i()].scripts.push(PathBuf::from(p));
                    }
                }
            }
        }
        acts
    }

    /// `credential upload|prune|remove --yes` on the host.
    async fn change_keys(&mut self, h: H, op: KeyOp, crash: Option<(u64, bool)>) {
        let mut s = self.env.session(&self.hosts[h.i()].state);
        let apps = [SFB.to_string()];
        let fut = async move { s.change_keys(&apps, &op, &mut standing).await };
        match self.killable(crash, fut).await {
            None => self.log("      KILLED".into()),
            Some(Err(e)) => {
                let mut m = format!("      error: {e}");
                for c in &self.certs {
                    m = m.replace(&c.tp, &c.name);
                }
                self.log(m)
            }
            Some(Ok(outcomes)) => {
                for (_, o) in outcomes {
                    let (plan, applied) = match &o {
                        hybrid_trust::credential::Outcome::Applied { plan, .. } => (plan, true),
                        hybrid_trust::credential::Outcome::Unchanged { plan, .. }
                        | hybrid_trust::credential::Outcome::Planned { plan, .. } => (plan, false),
                    };
                    let names = |ks: &[hybrid_trust::graph::KeyCredential]| -> String {
                        ks.iter()
                            .map(|k| {
                                self.cert_name(
                                    &k.thumbprint().map(String::from).unwrap_or_default(),
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    self.log(format!(
                        "      {}; removed [{}] dropped [{}] added {}",
                        if applied { "applied" } else { "unchanged" },
                        names(&plan.removed),
                        names(&plan.dropped_expired),
                        plan.added
                            .as_ref()
                            .map(|k| self
                                .cert_name(&k.thumbprint().map(String::from).unwrap_or_default()))
                            .unwrap_or("-".into())
                    ));
                }
            }
        }
    }

    /// `verify --cert C`: a token as 00000004 with C, then what the CLI does with a token.
    async fn verify(&mut self, h: H, cert: usize, crash: Option<(u64, bool)>) {
        let bytes = std::fs::read(&self.certs[cert].pem).unwrap();
        let loaded =
            hybrid_trust::cert::load_bytes(&bytes, &self.certs[cert].pem, &mut || Ok(None))
                .unwrap();
        let domain = self.env.emu.tenant.domain.clone();
        let token_url = self.env.cloud.token_url(&domain);
        let now = self.env.clock.running().now();
        let a = hybrid_trust::verify::assertion(
            &loaded,
            &token_url,
            hybrid_trust::sts::AssertionAlg::Rs256,
            now,
        )
        .unwrap();
        let env = self.env;
        let http = env.http();
        let fut = hybrid_trust::verify::verify(&http, &env.cloud, &domain, &a, now);
        match self.killable(crash, fut).await {
            None => self.log("      KILLED".into()),
            Some(Err(e)) => self.log(format!("      refused: {e}")),
            Some(Ok(_)) => {
                let host = &self.hosts[h.i()];
                let note = hybrid_trust::verify::roll_note(
                    &host.store,
                    &domain,
                    &self.certs[cert].tp,
                    self.env.clock.now(),
                );
                let mut line = format!("      token issued; {}", note.unwrap_or_default());
                for c in &self.certs {
                    line = line.replace(&c.tp, &c.name);
                }
                self.log(line);
            }
        }
    }

    /// `renew --confirm-roll [--current DIR]`.
    fn confirm(&mut self, h: H, current: Option<&Path>) {
        let host = &self.hosts[h.i()];
        let audit = hybrid_trust::audit::AuditLog::in_dir(&host.state);
        let r = hybrid_trust::session::confirm::confirm_with(
            &host.store,
            &audit,
            &self.env.emu.tenant.domain,
            current,
            self.env.clock.now(),
        );
        let mut line = match r {
            Ok(c) => format!(
                "      confirmed {} (previous {})",
                c.thumbprint_sha1,
                c.previous_thumbprint_sha1
                    .map(String::from)
                    .unwrap_or_default()
            ),
            Err(e) => {
                self.stats.refused_confirms += 1;
                format!("      refused: {e}")
            }
        };
        for c in &self.certs {
            line = line.replace(&c.tp, &c.name);
        }
        self.log(line);
    }

    /// Saved `Get-CsCertificate -Type OAuthTokenIssuer | Format-List` output, as a Front End in
    /// the time zone `tz_minutes` east of UTC prints it.
    fn saved_output(&self, tz_minutes: i64, form: Form, with_use: bool) -> (PathBuf, String) {
        let s = self.fe.shown;
        let date = match form {
            Form::Local => (s.effective + TimeDelta::minutes(tz_minutes))
                .format("%-m/%-d/%Y %-I:%M:%S %p")
                .to_string(),
            Form::Iso => format!(
                "{}.{:07}Z",
                s.effective.format("%Y-%m-%dT%H:%M:%S"),
                s.effective.timestamp_subsec_nanos() / 100
            ),
        };
        let mut text = format!(
            "Thumbprint         : {}\r\nEffectiveDate      : {date}\r\n",
            self.certs[s.cert].tp
        );
        if let Some(p) = s.previous {
            text.push_str(&format!("PreviousThumbprint : {}\r\n", self.certs[p].tp));
        }
        if with_use {
            text.push_str("Use                : OAuthTokenIssuer\r\n");
        }
        let dir = self.dir.join(format!("current-{}", self.trace.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Get-CsCertificate.txt"), text).unwrap();
        (
            dir,
            format!(
                "shows {} EffectiveDate {date}{}",
                self.certs[s.cert].name,
                match form {
                    Form::Local => format!(" (UTC{:+})", tz_minutes as f64 / 60.0),
                    Form::Iso => String::new(),
                }
            ),
        )
    }

    // --- the steps ------------------------------------------------------------------------

    async fn setup(&mut self) -> Result<(), String> {
        self.log(format!(
            "setup: t0 {}, skew {} s, C0 valid {}..{}, B onboarded {}, timers A {} B {}",
            fmt_t(self.p.t0),
            self.p.skew_secs,
            fmt_t(self.certs[0].tc.not_before),
            fmt_t(self.certs[0].tc.not_after),
            self.p.b_onboarded,
            self.p.timers[0],
            self.p.timers[1]
        ));
        self.log("  [A] onboard: credential upload C0".into());
        self.upload(H::A, None).await;
        if self.p.b_onboarded {
            self.log("  [B] onboard: credential upload C0".into());
            self.upload(H::B, None).await;
        }
        // Onboarding is before the promise: the admin waits for the first key to start in
        // Entra's time (a gap there is clock skew at onboarding, not a lapse).
        if self.p.skew_secs < 0 {
            self.env.sim.advance(std::time::Duration::from_secs(
                self.p.skew_secs.unsigned_abs() + 60,
            ));
        }
        self.keys = self.read_keys().await;
        self.log(format!("      keys: {}", self.keys_text(&self.keys)));
        if !self.valid(&self.keys, 0, self.now()) {
            return Err("setup: onboarding left no valid key".into());
        }
        self.checked_at = self.now();
        for h in [H::A, H::B] {
            self.status_check(h, "daily");
            self.remind(h).await;
        }
        Ok(())
    }

    async fn upload(&mut self, h: H, crash: Option<(u64, bool)>) {
        let now = self.now();
        let active = self.fe.at(now);
        let c = self.cert_of(active);
        match KeyOp::upload(&c, None, None, now) {
            Ok((op, _)) => self.change_keys(h, op, crash).await,
            Err(e) => self.log(format!("      refused: {e}")),
        }
    }

    async fn step(&mut self, i: usize, s: &Step) -> Result<(), String> {
        let hn = self.hosts[s.host.i()].name;
        *self.stats.by_kind.entry(s.act.kind()).or_default() += 1;
        self.stats.steps += 1;
        let crash = s
            .crash
            .map(|(k, a)| {
                format!(
                    " (kill -9 at request {k}, {})",
                    if a { "applied" } else { "not applied" }
                )
            })
            .unwrap_or_default();
        let tnow = fmt_t(self.now());
        let head = |what: String| format!("#{i} {tnow} [{hn}] {what}{crash}");
        match &s.act {
            Act::Jump { minutes } => {
                let to = self.now() + TimeDelta::minutes(*minutes);
                self.log(format!(
                    "#{i} {} clock jump {} h → {}",
                    fmt_t(self.now()),
                    minutes / 60,
                    fmt_t(to)
                ));
                // Day by day: each morning's monitoring (and timers) at 06:00.
                loop {
                    let now = self.now();
                    let next_morning = (now - TimeDelta::hours(6))
                        .date_naive()
                        .and_hms_opt(6, 0, 0)
                        .unwrap()
                        .and_utc()
                        + TimeDelta::days(1);
                    let stop = next_morning.min(to);
                    self.env.sim.set(stop);
                    let keys = self.keys.clone();
                    self.pass_time(&keys, stop)?;
                    if stop == next_morning {
                        self.daily().await?;
                    }
                    if stop >= to {
                        break;
                    }
                }
                self.check("the clock jump").await?;
            }
            Act::Upload => {
                self.log(head(
                    "credential upload (the Front Ends' certificate)".into(),
                ));
                self.upload(s.host, s.crash).await;
                self.check("credential upload").await?;
            }
            Act::Renew => {
                self.log(head("renew".into()));
                self.renew(s.host, None, s.crash).await;
                self.check("renew").await?;
            }
            Act::NewCert { days, back_hours } => {
                let now = self.now();
                let active = self.fe.at(now);
                let end = (self.certs[active].tc.not_after + TimeDelta::days(*days))
                    .max(now + TimeDelta::days(1));
                let c = self.add_cert(now - TimeDelta::hours(*back_hours), end);
                self.log(head(format!(
                    "renew --new-cert {} (valid {}..{})",
                    self.certs[c].name,
                    fmt_t(self.certs[c].tc.not_before),
                    fmt_t(self.certs[c].tc.not_after)
                )));
                self.renew(s.host, Some(c), s.crash).await;
                self.check("renew --new-cert").await?;
            }
            Act::RunScript => {
                let now = self.now();
                let Some(path) = self.hosts[s.host.i()].scripts.last().cloned() else {
                    self.log(head("run the roll script: none written".into()));
                    return Ok(());
                };
                let (tp, e) = read_script(&path);
                let Some(c) = self
                    .certs
                    .iter()
                    .position(|c| c.tp.eq_ignore_ascii_case(&tp))
                else {
                    return Err(format!(
                        "the roll script names {tp}, no certificate of the world"
                    ));
                };
                let active = self.fe.at(now);
                if c == active || self.certs[c].tc.not_after <= now {
                    self.log(head(format!(
                        "run the roll script to {}: not run (the Front Ends use it, or it expired)",
                        self.certs[c].name
                    )));
                    return Ok(());
                }
                self.log(head(format!(
                    "run the roll script: Set-CsCertificate -Roll {} -EffectiveDate {} ({})",
                    self.certs[c].name,
                    fmt_t(e),
                    path.file_name().unwrap().to_string_lossy()
                )));
                self.stats.roll_scripts_run += 1;
                self.fe.pending = Some((c, e.max(now)));
                self.fe.shown = Shown {
                    cert: c,
                    effective: e,
                    previous: Some(active),
                };
                self.check_offline()?;
            }
            Act::ConfirmPlain => {
                let now = self.now();
                let active = self.fe.at(now);
                let next = self.record(s.host).and_then(|t| t.next_cert);
                match next {
                    Some(n)
                        if n.thumbprint_sha1
                            .eq_ignore_ascii_case(&self.certs[active].tp) =>
                    {
                        self.log(head(format!(
                            "renew --confirm-roll (the Front Ends sign with {})",
                            self.certs[active].name
                        )));
                        self.confirm(s.host, None);
                    }
                    _ => {
                        self.log(head(
                            "renew --confirm-roll: not asked (the admin does not believe the roll is done)"
                                .into(),
                        ));
                        return Ok(());
                    }
                }
                self.check_offline()?;
            }
            Act::ConfirmCurrent {
                tz_minutes,
                form,
                with_use,
            } => {
                let (dir, shows) = self.saved_output(*tz_minutes, *form, *with_use);
                self.log(head(format!("renew --confirm-roll --current ({shows})")));
                self.confirm(s.host, Some(&dir));
                self.check_offline()?;
            }
            Act::Verify { pick } => {
                let c = (*pick as usize) % self.certs.len();
                self.log(head(format!("verify --cert {}", self.certs[c].name)));
                self.verify(s.host, c, s.crash).await;
                self.check("verify").await?;
            }
            Act::PruneForeign => {
                self.log(head("credential prune --foreign".into()));
                self.change_keys(s.host, KeyOp::Prune(Prune::Foreign), s.crash)
                    .await;
                self.check("credential prune --foreign").await?;
            }
            Act::PruneExpired => {
                self.log(head("credential prune --expired".into()));
                self.change_keys(s.host, KeyOp::Prune(Prune::Expired), s.crash)
                    .await;
                self.check("credential prune --expired").await?;
            }
            Act::Remove { pick } => {
                let known = self
                    .record(s.host)
                    .map(|t| known_certs(&t))
                    .unwrap_or_default();
                if known.is_empty() {
                    self.log(head(
                        "credential remove: this host's ledger knows no certificate".into(),
                    ));
                    return Ok(());
                }
                let tp = known[(*pick as usize) % known.len()].clone();
                self.log(head(format!(
                    "credential remove --thumbprint {}",
                    self.cert_name(&tp)
                )));
                self.change_keys(
                    s.host,
                    KeyOp::Remove(hybrid_trust::ids::Thumbprint::parse(&tp).expect("a thumbprint")),
                    s.crash,
                )
                .await;
                self.check("credential remove").await?;
            }
            Act::Check => {
                self.log(head("status --check".into()));
                self.status_check(s.host, "explicit");
            }
        }
        self.front_ends_token().await
    }

    fn state_text(&mut self) -> String {
        let now = self.now();
        let active = self.fe.at(now);
        let mut s = format!(
            "world at {}: the Front Ends sign with {}{}; Entra's keys: {}\n",
            fmt_t(now),
            self.certs[active].name,
            self.fe
                .pending
                .map(|(c, t)| format!(" (rolling to {} at {})", self.certs[c].name, fmt_t(t)))
                .unwrap_or_default(),
            self.keys_text(&self.keys)
        );
        for c in &self.certs {
            s.push_str(&format!(
                "  {} = {} valid {}..{}\n",
                c.name,
                c.tp,
                fmt_t(c.tc.not_before),
                fmt_t(c.tc.not_after)
            ));
        }
        for h in [H::A, H::B] {
            match self.record(h) {
                None => s.push_str(&format!("  ledger {}: no record\n", self.hosts[h.i()].name)),
                Some(t) => {
                    let n = |c: &Option<hybrid_trust::ledger::CertRecord>| {
                        c.as_ref()
                            .map(|c| self.cert_name(&c.thumbprint_sha1))
                            .unwrap_or("-".into())
                    };
                    s.push_str(&format!(
                        "  ledger {}: cert {} next {} (E {}) previous {}\n",
                        self.hosts[h.i()].name,
                        n(&t.cert),
                        n(&t.next_cert),
                        t.roll_effective.map(fmt_t).unwrap_or("-".into()),
                        n(&t.previous_cert)
                    ));
                }
            }
        }
        s
    }
}

/// The certificates a ledger record knows (what an admin on that host would name).
fn known_certs(t: &TenantRecord) -> Vec<String> {
    let mut v: Vec<String> = [&t.cert, &t.next_cert, &t.previous_cert]
        .into_iter()
        .flatten()
        .map(|c| c.thumbprint_sha1.to_ascii_uppercase())
        .chain(
            t.credentials
                .iter()
                .map(|c| c.thumbprint_sha1.to_ascii_uppercase()),
        )
        .collect();
    v.sort();
    v.dedup();
    v
}

/// What the roll script says: the thumbprint and the EffectiveDate (as it is given to
/// `Set-CsCertificate`: an instant with its offset).
fn read_script(path: &Path) -> (String, DateTime<Utc>) {
    let s = std::fs::read_to_string(path).unwrap();
    let line = s
        .lines()
        .find(|l| l.trim_start().starts_with("Set-CsCertificate"))
        .unwrap();
    let tp = line
        .split("-Thumbprint '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let date = line.split("[datetimeoffset]'").nth(1).unwrap();
    let date = &date[..date.find('\'').unwrap()];
    (
        tp,
        DateTime::parse_from_rfc3339(date)
            .unwrap()
            .with_timezone(&Utc),
    )
}

// ---------------------------------------------------------------------------------------------
// Running cases.

struct Failed {
    step: Option<usize>,
    message: String,
    trace: String,
}

async fn play(env: &Env, case: &Case, keep: Option<&[usize]>) -> Result<(Stats, String), Failed> {
    let mut w = World::new(env, case.params.clone()).await;
    w.stats.cases = 1;
    let fail = |w: &mut World<'_>, step: Option<usize>, message: String| {
        let state = w.state_text();
        Failed {
            step,
            message,
            trace: format!("{}\n{state}", w.trace.join("\n")),
        }
    };
    if let Err(m) = w.setup().await {
        return Err(fail(&mut w, None, m));
    }
    for (i, s) in case.steps.iter().enumerate() {
        if keep.is_some_and(|k| !k.contains(&i)) {
            continue;
        }
        if let Err(m) = w.step(i, s).await {
            return Err(fail(&mut w, Some(i), m));
        }
    }
    let state = w.state_text();
    Ok((w.stats, format!("{}\n{state}", w.trace.join("\n"))))
}

/// Steps of a failing case that still fail without the others (greedy, within a budget).
async fn shrink(env: &Env, case: &Case, failing: usize) -> Vec<usize> {
    let mut keep: Vec<usize> = (0..=failing).collect();
    let budget = std::time::Instant::now();
    let mut chunk = keep.len().div_ceil(2);
    let limit =
        std::time::Duration::from_secs(env_u64("HYBRID_TRUST_MODEL_SHRINK_SECS").unwrap_or(60));
    while chunk >= 1 && budget.elapsed() < limit {
        let mut i = 0;
        let mut progressed = false;
        while i < keep.len() {
            let mut trial = keep.clone();
            let end = (i + chunk).min(trial.len());
            trial.drain(i..end);
            if !trial.is_empty() && play(env, case, Some(&trial)).await.is_err() {
                keep = trial;
                progressed = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !progressed {
            break;
        }
        chunk = (chunk / 2).max(1);
        if !progressed && chunk == 1 {
            continue;
        }
    }
    keep
}

fn case_text(case: &Case, keep: Option<&[usize]>) -> String {
    let mut s = format!("seed {} params {:?}\n", case.seed, case.params);
    for (i, st) in case.steps.iter().enumerate() {
        if keep.is_some_and(|k| !k.contains(&i)) {
            continue;
        }
        s.push_str(&format!(
            "  #{i} {:?} {:?}{}\n",
            st.host,
            st.act,
            st.crash
                .map(|c| format!(" crash {c:?}"))
                .unwrap_or_default()
        ));
    }
    s
}

/// Plays the cases `seeds` (or the one `HYBRID_TRUST_MODEL_SEED` names) and prints the summary.
async fn suite(
    name: &str,
    seeds: std::ops::Range<u64>,
    steps: std::ops::RangeInclusive<u64>,
    resend: m365_emulator::KeyResend,
) {
    let started = std::time::Instant::now();
    // `HYBRID_TRUST_MODEL_RESEND=full|unchanged|minimal` replays under another Graph.
    let resend = std::env::var("HYBRID_TRUST_MODEL_RESEND")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(resend);
    let env = Env::start(resend).await;
    let _ = rsa_keys();
    let only = env_u64("HYBRID_TRUST_MODEL_SEED");
    if only.is_some() && !name.ends_with("_1") {
        return;
    }
    let keep: Option<Vec<usize>> = std::env::var("HYBRID_TRUST_MODEL_KEEP")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let seeds: Vec<u64> = match only {
        Some(s) => vec![s],
        None => seeds.collect(),
    };
    let mut total = Stats::default();
    let keep_going = env_u64("HYBRID_TRUST_MODEL_KEEP_GOING") == Some(1);
    let mut failures: Vec<String> = vec![];
    for seed in seeds {
        let case = generate(seed, steps.clone());
        let r = play(&env, &case, keep.as_deref()).await;
        if keep_going && let Err(f) = &r {
            // A census of what breaks: each failing seed in a line, the case shrunk.
            let k = match f.step {
                Some(step) => shrink(&env, &case, step).await,
                None => vec![],
            };
            let again = play(&env, &case, Some(&k)).await.err();
            let list: Vec<String> = k.iter().map(|i| i.to_string()).collect();
            let line = format!(
                "FAILING seed {seed} step {:?} keep {}: {}",
                f.step,
                list.join(","),
                again
                    .as_ref()
                    .map_or(f.message.as_str(), |a| a.message.as_str())
            );
            println!("{line}");
            if let Some(a) = again {
                println!("{}{}\n", case_text(&case, Some(&k)), a.trace);
            }
            failures.push(line);
            total.cases += 1;
            continue;
        }
        match r {
            Ok((s, trace)) => {
                total.add(&s);
                if only.is_some() {
                    // A replay prints its trace.
                    println!("{}\n{trace}", case_text(&case, keep.as_deref()));
                }
            }
            Err(f) => {
                let shrunk = match (f.step, env_u64("HYBRID_TRUST_MODEL_SHRINK"), &keep) {
                    (Some(step), s, None) if s != Some(0) => {
                        let k = shrink(&env, &case, step).await;
                        let again = play(&env, &case, Some(&k)).await.err();
                        Some((k, again))
                    }
                    _ => None,
                };
                let mut msg = format!(
                    "\nINVARIANT BROKEN in case seed {seed} at step {:?}: {}\n\n{}\ntrace:\n{}\n",
                    f.step,
                    f.message,
                    case_text(&case, keep.as_deref()),
                    f.trace
                );
                if let Some((k, Some(again))) = shrunk {
                    let list: Vec<String> = k.iter().map(|i| i.to_string()).collect();
                    msg.push_str(&format!(
                        "\nshrunk to steps {}: {}\n{}\ntrace:\n{}\n\nreplay: HYBRID_TRUST_MODEL_RESEND={resend} HYBRID_TRUST_MODEL_SEED={seed} HYBRID_TRUST_MODEL_KEEP={} cargo nextest run --test key_invariant {name}\n",
                        list.join(","),
                        again.message,
                        case_text(&case, Some(&k)),
                        again.trace,
                        list.join(",")
                    ));
                } else {
                    msg.push_str(&format!(
                        "\nreplay: HYBRID_TRUST_MODEL_RESEND={resend} HYBRID_TRUST_MODEL_SEED={seed} cargo nextest run --test key_invariant {name}\n"
                    ));
                }
                panic!("{msg}");
            }
        }
    }
    if !failures.is_empty() {
        panic!("{} failing cases:\n{}", failures.len(), failures.join("\n"));
    }
    let kinds: Vec<String> = total
        .by_kind
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "model {name} (key-resend {resend}): {} cases, {} steps ({}), {} invariant checks, {} Front End tokens, {} kills, {} simulated days monitored, {} timer renewals, {} roll scripts run, {} confirmations refused, {} announced lapses, {:.1} s",
        total.cases,
        total.steps,
        kinds.join(", "),
        total.checks,
        total.tokens,
        total.crashes,
        total.days_monitored,
        total.timer_renewals,
        total.roll_scripts_run,
        total.refused_confirms,
        total.excused_lapses,
        started.elapsed().as_secs_f64()
    );
}

/// Steps per case.
const STEPS: std::ops::RangeInclusive<u64> = 10..=30;

/// The suite's cases: `HYBRID_TRUST_MODEL_CASES` (default 200) over four test functions, which
/// nextest runs side by side.
fn share(part: u64) -> std::ops::Range<u64> {
    let n = env_u64("HYBRID_TRUST_MODEL_CASES").unwrap_or(200);
    let per = n.div_ceil(4);
    let base = env_u64("HYBRID_TRUST_MODEL_BASE").unwrap_or(0);
    base + part * per..base + ((part + 1) * per).min(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_the_front_ends_key_part_1() {
    suite(
        "random_sequences_keep_the_front_ends_key_part_1",
        share(0),
        STEPS,
        m365_emulator::KeyResend::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_the_front_ends_key_part_2() {
    suite(
        "random_sequences_keep_the_front_ends_key_part_2",
        share(1),
        STEPS,
        m365_emulator::KeyResend::Full,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_the_front_ends_key_part_3() {
    suite(
        "random_sequences_keep_the_front_ends_key_part_3",
        share(2),
        STEPS,
        m365_emulator::KeyResend::Unchanged,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_the_front_ends_key_part_4() {
    suite(
        "random_sequences_keep_the_front_ends_key_part_4",
        share(3),
        STEPS,
        m365_emulator::KeyResend::Minimal,
    )
    .await;
}
