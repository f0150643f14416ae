//! The fault matrix: for every HTTP request of upload, verify, renew and onboard, each fault kind
//! (429, 503, connection reset, timeout, a lost write, malformed JSON) is injected at that request
//! once. Each run either completes, with its work done exactly once, or fails with one clear
//! error and a hint; afterwards the tenant still has every key that was valid before (no
//! credential lost) and the ledger loads. The requests of each flow are counted on a run without
//! faults, so "every request" is what the flow makes, not a number written here.
//!
//! The matrix runs in process, through the library calls each command makes
//! (`src/cli/credential_cmd.rs`, `onboard_cmd.rs`, `verify_cmd.rs`, `renew_cmd.rs`), a new HTTP
//! client and sign-in per run as a new process has, on one simulated clock
//! ([`hybrid_trust::clock::SimTime`]) that the library and the emulator share: `Retry-After`,
//! the backoff, a renewal's wait before it retires the old window and verify's wait for a key's
//! start take simulated time. Only a held request's timeout is waited in real time (the client's
//! request timeout, set through the library below the 1 s minimum users have). The retry budget
//! is the one `HYBRID_TRUST_HTTP_TIMEOUT_SECS=1` gives the binary. A few runs go through the
//! binary, in real time, so the command line's exit codes and `error:`/`hint:` lines stay
//! covered.
//!
//! Under each `--key-resend` mode (docs/protocol.md §6 item 9): the whole matrix under `full` (the
//! default); under `unchanged` and `minimal` upload and renew, the two flows that re-send kept
//! keys, and under `minimal` meet a refused PATCH and a second one (onboard and verify re-send
//! nothing that upload does not).

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use hybrid_trust::clock::{Clock, SimTime};
use hybrid_trust::cloud::Cloud;
use hybrid_trust::credential::Approval;
use hybrid_trust::http::HttpClient;
use hybrid_trust::ledger::LedgerStore;
use hybrid_trust::renew::Policy;
use hybrid_trust::session::keys::KeyOp;
use hybrid_trust::session::onboard::{self, OnboardError, OnboardPlan};
use hybrid_trust::session::{Session, SessionError, renew_all};
use hybrid_trust::sts::{AdminCredential, AssertionAlg, TokenProvider};
use hybrid_trust::verify::report::{Listing, Proven, Refusal};
use m365_emulator::KeyResend;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::*;

const KINDS: &[&str] = &["429", "503", "reset", "timeout", "lost-write", "malformed"];

/// The request timeout of the in-process runs: a request held by a `timeout` fault costs this
/// much real time.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The retry budget of the in-process runs (simulated time): three timeouts of
/// `HYBRID_TRUST_HTTP_TIMEOUT_SECS=1`, what the binary had in this matrix.
const BUDGET: Duration = Duration::from_secs(3);

/// Faults the client is meant to ride out when they happen once (issue 19): throttling and
/// unavailability with `Retry-After`, a dropped connection, a request held past the timeout,
/// and a PATCH that answers 204 without applying (the read-back finds it). A malformed body is
/// not: the client may stop there, with one clear error.
fn rides_out(kind: &str) -> bool {
    kind != "malformed"
}

fn thumbprint_of(k: &Value) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(k["key"].as_str().unwrap_or(""))
        .unwrap_or_default();
    sha1::Sha1::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The certificate's keys on the service principal (their ends), for "done exactly once".
fn windows_of(sp: &Value, thumbprint: &str) -> Vec<String> {
    sp["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| thumbprint_of(k) == thumbprint)
        .map(|k| k["endDateTime"].as_str().unwrap_or("").to_string())
        .collect()
}

fn valid_thumbprints(sp: &Value, now: DateTime<Utc>) -> Vec<String> {
    sp["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| {
            chrono::DateTime::parse_from_rfc3339(k["endDateTime"].as_str().unwrap()).unwrap() > now
        })
        .map(thumbprint_of)
        .collect()
}

/// The key credentials of 00000004 in the emulator's state (for a PUT that restores them).
async fn sfb_keys(emu: &Emu, tenant: usize) -> Value {
    let st = emu.control_get("state").await;
    st["tenants"][tenant]["service_principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["app_id"] == SFB)
        .unwrap()["key_credentials"]
        .clone()
}

/// A flow as its command runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flow {
    /// `credential upload --tenant T --cert C --yes`
    Upload,
    /// `onboard --tenant T --cert C --sip-domain contoso.com --pool-fqdn webext.contoso.com --yes`
    Onboard,
    /// `verify --tenant T --cert C`
    Verify,
    /// `renew --tenant T --yes`
    Renew,
}

/// A failed run as the command line reports it: the `error:` line, the hint, and whether it
/// is the user's input (exit 2) rather than the run (exit 1).
#[derive(Debug)]
struct Failed {
    error: String,
    hint: String,
    usage: bool,
}

impl Failed {
    fn new(error: impl std::fmt::Display, hint: impl Into<Option<String>>) -> Failed {
        Failed {
            error: error.to_string(),
            hint: hint.into().unwrap_or_default(),
            usage: false,
        }
    }

    /// The command's exit 2 (`Failure::input`) when `usage`.
    fn usage(self, usage: bool) -> Failed {
        Failed { usage, ..self }
    }

    /// Exit 1 with one `error:` line and a hint: what a failure under a fault must be.
    fn assert_clear(&self, what: &str) {
        assert!(!self.usage, "{what}: exit 2, not 1: {self:?}");
        assert!(
            !self.error.is_empty() && !self.error.contains('\n'),
            "{what}: not one error line: {self:?}"
        );
        assert!(!self.hint.trim().is_empty(), "{what}: no hint: {self:?}");
    }
}

/// The library against the in-process emulator, on simulated time both share.
struct Lib {
    emu: Emu,
    clock: Clock,
    cloud: Cloud,
    /// The client each run's is made from (its TLS set-up, which takes a while, shared).
    base: HttpClient,
    state: PathBuf,
    /// The certificate under test with its private key (PEM).
    pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lib {
    /// An emulator started with `cfg` on simulated time, which the library's runs share.
    async fn start(cfg: m365_emulator::Config) -> Lib {
        let emu = Emu::start_with(cfg).await;
        let clock = Clock::Simulated(SimTime::leak(Utc::now()));
        assert!(
            emu.running
                .clock()
                .follow(std::sync::Arc::new(move || clock.now()))
        );
        Lib::on(emu, clock)
    }

    /// The library's runs against `emu` on `clock`.
    fn on(emu: Emu, clock: Clock) -> Lib {
        // On tmpfs where there is one: the ledger and the audit log sync every write, and the
        // matrix writes a few thousand.
        let shm = std::path::Path::new("/dev/shm");
        let dir = match shm.is_dir() {
            true => tempfile::tempdir_in(shm).unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.running.ca_pem()).unwrap();
        let cloud = support::emulated_cloud(&emu.cloud, ca);
        let base = HttpClient::for_cloud(&cloud).unwrap().with_clock(clock);
        Lib {
            emu,
            clock,
            cloud,
            base,
            state: dir.path().join("state"),
            pem: dir.path().join("oauth.pem"),
            _dir: dir,
        }
    }

    /// The HTTPS client of one run: its connections and what it learns of the servers' clock
    /// are its own, as a process's are.
    fn http(&self) -> HttpClient {
        let mut http = self.base.with_request_timeout(TIMEOUT).unwrap();
        http.retry.budget = BUDGET;
        http
    }

    fn admin(&self, tenant: usize) -> AdminCredential {
        let a = &self.emu.running.ready.tenants[tenant].admin;
        AdminCredential::Secret {
            client_id: a.client_id.clone(),
            secret: hybrid_trust::secret::SecretString::new(a.client_secret.clone()),
        }
    }

    fn domain(&self) -> String {
        self.emu.tenant.domain.clone()
    }

    fn loaded(&self) -> hybrid_trust::cert::Loaded {
        hybrid_trust::cert::load_file(&self.pem, &mut || Ok(None)).unwrap()
    }

    async fn run(&self, flow: Flow) -> Result<(), Failed> {
        let http = self.http();
        match flow {
            Flow::Upload => self.upload(http, &self.domain(), 0, None).await,
            Flow::Onboard => self.onboard(http).await,
            Flow::Verify => self.verify(http).await,
            Flow::Renew => self
                .renew(http, &[self.domain()], 0, 1000, false)
                .await
                .map(drop),
        }
    }

    /// `credential upload` (`credential_cmd::run`): the window, then `change_each` with `--yes`.
    async fn upload(
        &self,
        http: HttpClient,
        tenant: &str,
        admin: usize,
        end: Option<DateTime<Utc>>,
    ) -> Result<(), Failed> {
        let loaded = self.loaded();
        let c = loaded.leaf;
        let (op, _warning) = KeyOp::upload(&c, None, end, self.clock.now()).unwrap();
        let mut session = Session::signed_in(
            self.cloud.clone(),
            http,
            tenant,
            self.admin(admin),
            self.state.clone(),
            self.clock,
            false,
        );
        let apps = [SFB.to_string()];
        let outcomes = session
            .change_keys_creating(&apps, &op, &mut |_, _, _| Approval::Standing, &mut |_| {
                Approval::Refused
            })
            .await
            .map_err(|e| Failed::new(&e, e.hint()).usage(e.is_usage()))?;
        let audit = hybrid_trust::audit::AuditLog::in_dir(&self.state);
        let changes = hybrid_trust::credential::report::KeyChanges::new(
            tenant,
            session.tenant_id.clone(),
            false,
            audit.path(),
            outcomes,
            Some(c.thumbprint_sha1()),
            self.clock.now(),
        );
        serde_json::to_value(&changes).unwrap();
        Ok(())
    }

    /// `onboard` (`onboard_cmd::run`) with `--yes`: discovery, the certificate, sign-in, the
    /// plan, then the library's steps 5 to 8.
    async fn onboard(&self, http: HttpClient) -> Result<(), Failed> {
        use hybrid_trust::onprem::Fqdn;
        use hybrid_trust::tenant::{self, TenantRef};
        let t = TenantRef::parse(&self.domain()).unwrap();
        let apps = [SFB.to_string()];
        let pools = [Fqdn::parse("--pool-fqdn", "webext.contoso.com").unwrap()];
        let sip = Fqdn::parse("--sip-domain", "contoso.com").unwrap();
        let not_ready = |e: onboard::NotReady| {
            let (hint, usage) = (e.hint(), e.is_usage());
            Failed::new(e, hint).usage(usage)
        };
        let mut done: Vec<String> = Vec::new();
        // 1. The tenant and its metadata.
        let d = tenant::discover(&http, &self.cloud, &t, self.clock.now())
            .await
            .map_err(|e| Failed::new(&e, e.hint()))?;
        done.push(onboard::metadata_ready(&t, &d).map_err(not_ready)?);
        let tid = d.tenant_id.clone();
        // 2. The certificate.
        let loaded = self.loaded();
        let (start, end, line) =
            onboard::certificate_ready(&loaded, &sip, self.clock.now()).map_err(not_ready)?;
        let thumb = loaded.leaf.thumbprint_sha1();
        done.push(line);
        // 3. Sign in (the provider the session reuses), 4. the plan.
        let tokens = Arc::new(
            TokenProvider::new(http.clone(), self.cloud.clone(), &tid, self.admin(0))
                .with_clock(self.clock),
        );
        tokens
            .token(&self.cloud.graph_scope())
            .await
            .map_err(|e| Failed::new(&e, e.hint()))?;
        done.push("signed in".into());
        let plan = OnboardPlan {
            domain: match &t {
                TenantRef::Domain(dn) => Some(dn.as_str()),
                TenantRef::Id(_) => None,
            },
            apps: &apps,
            cert: &loaded,
            start,
            end,
            pools: &pools,
            metadata_url: &d.metadata_url,
            autodiscover_url: None,
        };
        let _ = plan.summary(&tid);
        done.push("plan confirmed".into());
        // 5.-8.
        let mut session = Session::new(
            self.cloud.clone(),
            &tid,
            tokens,
            http,
            self.state.clone(),
            self.clock,
            false,
        );
        let mut said = Vec::new();
        let r = session
            .onboard(&plan, &mut |_, what| said.push(what), &mut |_| ())
            .await;
        done.extend(said);
        let onboarded = r.map_err(|e| {
            let (error, hint, usage) = match e {
                OnboardError::Session(e) => (e.to_string(), Some(e.hint()), e.is_usage()),
                OnboardError::Verify(e) => {
                    let (_cause, fix) = e.cause_and_fix();
                    (e.to_string(), Some(fix), false)
                }
                OnboardError::Script(m) => (m, None, false),
            };
            let undo = onboard::undo_hint(&done, &tid, &thumb);
            Failed::new(
                error,
                Some(match hint {
                    Some(h) => format!("{h}; {undo}"),
                    None => undo,
                }),
            )
            .usage(usage)
        })?;
        let report = onboard::OnboardReport::new(&plan, &tid, onboarded, done);
        serde_json::to_value(&report).unwrap();
        Ok(())
    }

    /// `verify` (`verify_cmd::run`): the listing (an admin identity is at hand), the wait for a
    /// key that starts in a moment, the token, and the report of a refusal.
    async fn verify(&self, http: HttpClient) -> Result<(), Failed> {
        let tenant = self.domain();
        let loaded = self.loaded();
        let token_url = self.cloud.token_url(&tenant);
        let alg = AssertionAlg::Rs256;
        hybrid_trust::verify::assertion(&loaded, &token_url, alg, self.clock.now()).unwrap();
        let thumb = loaded.leaf.thumbprint_sha1();
        let tokens = TokenProvider::new(http.clone(), self.cloud.clone(), &tenant, self.admin(0))
            .with_clock(self.clock);
        let g = hybrid_trust::graph::Graph::new(&http, &self.cloud, &tokens);
        let listing = Listing::read(&g, &thumb, self.clock.now()).await;
        if let Some(wait) = listing.starts_in(self.clock.now()) {
            self.clock
                .sleep(wait.to_std().unwrap_or_default() + Duration::from_millis(1100))
                .await;
        }
        let now = self.clock.now();
        let assertion = hybrid_trust::verify::assertion(&loaded, &token_url, alg, now)
            .map_err(|e| Failed::new(&e, None::<String>).usage(true))?;
        match hybrid_trust::verify::verify(&http, &self.cloud, &tenant, &assertion, now).await {
            Ok(v) => {
                let proven = Proven::new(v, alg, &thumb, Some(listing));
                serde_json::to_value(&proven).unwrap();
                let store = LedgerStore::in_dir(&self.state);
                let _ = hybrid_trust::verify::roll_note(&store, &tenant, &thumb, self.clock.now());
                Ok(())
            }
            Err(e) => {
                let r = Refusal::new(&e, &tenant, &thumb, now, Some(listing));
                // `error:` the headline; `caused by:` the cause (a line of its own).
                assert!(!r.cause.contains('\n'), "{}", r.cause);
                Err(Failed::new(r.headline(), Some(r.fix)))
            }
        }
    }

    /// `renew --tenant T --yes` / `renew --all --yes` (`renew_cmd::run`): the decisions, then
    /// each tenant in its own session, signed in as the admin app of tenant `admin`. With
    /// `own_pools` each tenant's session has a connection of its own (the command shares one
    /// for up to 100 tenants): on simulated time the tenants' tasks never drift apart as the
    /// waits spread them in real time, so an injected reset, which drops the whole HTTP/2
    /// connection, would fail the request in flight of every tenant at once, again and again.
    async fn renew(
        &self,
        http: HttpClient,
        tenants: &[String],
        admin: usize,
        concurrency: usize,
        own_pools: bool,
    ) -> Result<renew_all::RenewReport, Failed> {
        let policy = Policy {
            horizon_days: 30,
            ..Policy::default()
        };
        let store = LedgerStore::in_dir(&self.state);
        let ledger = store.load().map_err(|e| {
            use hybrid_trust::ledger::LedgerError::{DateOutOfRange, Duplicate};
            let usage = matches!(e, DateOutOfRange { .. } | Duplicate { .. });
            Failed::new(&e, e.hint()).usage(usage)
        })?;
        let records: Vec<_> = tenants
            .iter()
            .map(|t| ledger.tenant(t).cloned().expect("in the ledger"))
            .collect();
        let decisions = renew_all::plan(&records, None, self.clock, policy);
        let cred = self.admin(admin);
        let session = |name: &str, _: usize| {
            let http = match own_pools {
                true => http.with_own_pool().map_err(|e| e.to_string())?,
                false => http.clone(),
            };
            Ok::<_, String>(Session::signed_in(
                self.cloud.clone(),
                http,
                name,
                cred.clone(),
                self.state.clone(),
                self.clock,
                false,
            ))
        };
        let results = renew_all::renew_many(
            &store,
            records.into_iter().zip(decisions).collect(),
            None,
            policy,
            self.clock,
            false,
            concurrency,
            &session,
            &hybrid_trust::progress::Silent,
        )
        .await
        .map_err(|e: SessionError| Failed::new(&e, e.hint()).usage(e.is_usage()))?;
        let report = renew_all::RenewReport::new(false, results);
        match report.failure() {
            Some((e, hint)) => Err(Failed::new(e, Some(hint))),
            None => Ok(report),
        }
    }
}

/// What "done exactly once" means for a flow, from the certificate's windows.
type Check = dyn Fn(&[String]) -> bool + Sync;
type Done<'a> = &'a Check;

struct Matrix {
    lib: Lib,
    /// The service principal names before the runs (onboard adds one).
    baseline_names: Value,
    baseline_keys: Value,
    baseline_ledger: Option<Value>,
    /// The certificate under test.
    thumbprint: String,
}

/// The service principal of 00000004 as Graph shows it, read with `token` (the test's admin's).
async fn sp_as(emu: &Emu, token: &str) -> Value {
    let path = format!(
        "servicePrincipals(appId='{SFB}')?$select=id,appId,keyCredentials,servicePrincipalNames"
    );
    let (s, _, v) = emu.graph_as(token, Method::GET, &path, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

impl Matrix {
    /// Back to the keys, names and ledger before the runs, with no fault scripted. Returns a
    /// token of the test's admin for its reads.
    async fn reset(&self) -> String {
        let emu = &self.lib.emu;
        let token = emu.admin_token().await;
        let empty = json!({"rules": []});
        assert_eq!(emu.control(Method::POST, "faults", empty).await, 204);
        let path = format!(
            "tenants/{}/servicePrincipals/{SFB}/keyCredentials",
            emu.tenant.domain
        );
        let keys = self.baseline_keys.clone();
        assert_eq!(emu.control(Method::PUT, &path, keys).await, 204);
        let names = json!({"servicePrincipalNames": self.baseline_names});
        let (s, _, v) = emu
            .graph_as(
                &token,
                Method::PATCH,
                &format!("servicePrincipals(appId='{SFB}')"),
                Some(names),
            )
            .await;
        assert_eq!(s, 204, "{v}");
        match &self.baseline_ledger {
            Some(b) => write_ledger(&self.lib.state, b),
            None => {
                let _ = std::fs::remove_dir_all(self.lib.state.join("ledger"));
            }
        }
        token
    }

    /// The requests `flow` makes without faults (the work done, once), and how many of them
    /// are PATCHes: the steps to fault.
    async fn requests_of(&self, name: &str, flow: Flow, done: Done<'_>) -> (usize, usize) {
        let token = self.reset().await;
        let emu = &self.lib.emu;
        assert_eq!(
            emu.control(Method::DELETE, "requests", json!({})).await,
            204
        );
        if let Err(f) = self.lib.run(flow).await {
            panic!("{name} without faults: {f:?}");
        }
        let counts = emu.control_get("requests").await;
        let n = counts["total"].as_u64().unwrap();
        let patches = counts["by_route"]["PATCH graph servicePrincipals"]
            .as_u64()
            .unwrap_or(0);
        let ws = windows_of(&sp_as(emu, &token).await, &self.thumbprint);
        assert!(done(&ws), "{name} without faults: not done once: {ws:?}");
        (n as usize, patches as usize)
    }

    /// Runs `flow` once per (request, kind); checks the invariants; returns how many runs
    /// completed, how many ended in a clear error, and the number of requests.
    async fn run(&self, name: &str, flow: Flow, done: Done<'_>) -> (usize, usize, usize) {
        let (steps, patches) = self.requests_of(name, flow, done).await;
        let emu = &self.lib.emu;
        let (mut ok, mut failed) = (0, 0);
        for step in 0..steps {
            for kind in KINDS {
                // A lost write is a PATCH's fault: at each PATCH.
                let rule = match *kind {
                    "lost-write" if step >= patches => continue,
                    "lost-write" => {
                        json!({"rules": [{"kind": kind, "method": "PATCH", "skip": step, "times": 1}]})
                    }
                    _ => json!({"rules": [{"kind": kind, "skip": step, "times": 1}]}),
                };
                let token = self.reset().await;
                let before = valid_thumbprints(&sp_as(emu, &token).await, self.lib.clock.now());
                assert_eq!(emu.control(Method::POST, "faults", rule).await, 204);
                let result = self.lib.run(flow).await;
                let what = format!("{name}, fault {kind} at request {step}");
                // The fault met the run (a fired rule is gone).
                let left = emu.control_get("faults").await;
                assert_eq!(left["rules"], json!([]), "{what}: the fault never fired");
                let sp = sp_as(emu, &token).await;
                match result {
                    Ok(()) => {
                        let ws = windows_of(&sp, &self.thumbprint);
                        assert!(
                            done(&ws),
                            "{what}: the work was not done exactly once: {ws:?}"
                        );
                        ok += 1
                    }
                    Err(f) if rides_out(kind) => {
                        panic!("{what}: a fault met once must be ridden out: {f:?}")
                    }
                    Err(f) => {
                        f.assert_clear(&what);
                        failed += 1;
                    }
                }
                let after = valid_thumbprints(&sp, self.lib.clock.now());
                for t in &before {
                    assert!(after.contains(t), "{what}: key {t} was lost");
                }
                LedgerStore::in_dir(&self.lib.state)
                    .load()
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
        (ok, failed, steps)
    }
}

/// The emulator of the matrix: faults held 5 s (past any client timeout), reads not throttled.
fn matrix_config(mode: KeyResend) -> m365_emulator::Config {
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = mode;
    cfg.timeout_fault_secs = 5;
    // Hundreds of reads a minute, the test's own among them: lift the 150/min throttle here
    // (tests/emulator_graph.rs covers it).
    cfg.behaviour.select_key_limit_per_minute = 1_000_000;
    cfg
}

/// The certificate under test (valid from a day ago for 700 days) and another valid key that
/// must survive everything.
async fn certificates(emu: &Emu, now: DateTime<Utc>) -> TestCert {
    let other = fresh_cert("other.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&other)])).await.0, 204);
    make_cert(
        "contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_step_of_every_flow_survives_every_fault() {
    matrix(KeyResend::Full, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_and_renew_survive_every_fault_when_graph_refuses_changed_resends() {
    matrix(KeyResend::Unchanged, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_and_renew_survive_every_fault_when_graph_takes_only_type_usage_and_key() {
    matrix(KeyResend::Minimal, false).await;
}

/// The matrix under `mode`: every flow when `all`, else upload and renew.
async fn matrix(mode: KeyResend, all: bool) {
    let lib = Lib::start(matrix_config(mode)).await;
    let now = lib.clock.now();
    let cert = certificates(&lib.emu, now).await;
    std::fs::write(&lib.pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let mut m = Matrix {
        baseline_names: lib.emu.sp(SFB).await["servicePrincipalNames"].clone(),
        baseline_keys: sfb_keys(&lib.emu, 0).await,
        lib,
        baseline_ledger: None,
        thumbprint: cert.sha1_hex(),
    };
    // Done exactly once: one window of the certificate (a first upload, onboard), or one that
    // lasts a year (renew's new window; the old one is retired or, if its retirement met the
    // fault, left to end).
    let one = |ws: &[String]| ws.len() == 1;
    // (Under `minimal`, Graph takes kept keys anew with the certificate's whole validity: the
    // new window kept by the retire step then lasts to the certificate's end, and the old window,
    // re-taken the same way, must be gone too (issue 28): one window lasting at least a year.)
    let lo = now + TimeDelta::days(360);
    let renewed = move |ws: &[String]| {
        ws.iter()
            .filter(|e| chrono::DateTime::parse_from_rfc3339(e).is_ok_and(|e| e > lo))
            .count()
            == 1
    };
    let unchanged = |_: &[String]| true;

    let mut report = Vec::new();
    report.push((
        "upload",
        m.run("credential upload", Flow::Upload, &one).await,
    ));
    if all {
        report.push(("onboard", m.run("onboard", Flow::Onboard, &one).await));
    }

    // A tenant with this certificate's key about to end, for verify and renew.
    m.reset().await;
    let end = m.lib.clock.now() + TimeDelta::days(10);
    let domain = m.lib.domain();
    if let Err(f) = m.lib.upload(m.lib.http(), &domain, 0, Some(end)).await {
        panic!("the upload for renew: {f:?}");
    }
    m.baseline_keys = sfb_keys(&m.lib.emu, 0).await;
    m.baseline_ledger = Some(read_ledger(&m.lib.state));
    if all {
        report.push(("verify", m.run("verify", Flow::Verify, &unchanged).await));
    }
    report.push(("renew", m.run("renew", Flow::Renew, &renewed).await));
    for (name, (ok, failed, steps)) in &report {
        eprintln!(
            "{mode}: {name}: {steps} requests, {ok} runs completed, {failed} failed with a clear error"
        );
        assert!(
            *ok > 0,
            "{mode}: {name}: faults must not make every run fail (retries work)"
        );
    }
    eprintln!(
        "{mode}: {} s of simulated time",
        (m.lib.clock.now() - now).num_seconds()
    );
}

/// Issue 19: with random faults on every request (`--faults 429:0.1,503:0.1,reset:0.05`), 50
/// uploads, one per tenant, ten at a time, each complete the first time, and one renewal of all
/// 50 tenants (`renew --all --concurrency 50`) renews them all; each certificate ends up with
/// exactly one window that lasts a year.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_uploads_and_fifty_renewals_complete_through_random_faults() {
    let mut cfg = quiet_tls();
    cfg.generated_tenants = 50;
    cfg.faults = "429:0.1,503:0.1,reset:0.05".parse().unwrap();
    cfg.seed = 19;
    cfg.behaviour.select_key_limit_per_minute = 1_000_000;
    let lib = Lib::start(cfg).await;
    let tenants = lib.emu.running.ready.tenants.clone();
    assert_eq!(tenants.len(), 50);
    let now = lib.clock.now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    std::fs::write(&lib.pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let end = now + TimeDelta::days(10);
    // Ten at a time, each its own run (client, sign-in), which must complete the first time.
    for (b, batch) in tenants.chunks(10).enumerate() {
        let runs = batch.iter().enumerate().map(|(i, t)| {
            let lib = &lib;
            async move {
                let r = lib
                    .upload(lib.http_default(), &t.domain, b * 10 + i, Some(end))
                    .await;
                (t.domain.clone(), r)
            }
        });
        for (d, r) in futures_util::future::join_all(runs).await {
            if let Err(f) = r {
                panic!("{d}: {f:?}");
            }
        }
    }
    // A fault on every try cannot be ridden out: one clear error, no key lost, the ledger
    // loadable (the retries stop within the budget of three 1 s timeouts).
    let t0 = &tenants[0];
    let before = sfb_keys(&lib.emu, 0).await;
    let rule =
        json!({"rules": [{"kind": "reset", "path_contains": "/servicePrincipals", "times": 1000}]});
    assert_eq!(lib.emu.control(Method::POST, "faults", rule).await, 204);
    let f = lib
        .renew(lib.http(), std::slice::from_ref(&t0.domain), 0, 1000, false)
        .await
        .expect_err("a reset on every try fails the renewal");
    f.assert_clear("renew with a reset on every try");
    LedgerStore::in_dir(&lib.state).load().unwrap();
    assert_eq!(sfb_keys(&lib.emu, 0).await, before, "nothing changed");
    assert_eq!(
        lib.emu
            .control(Method::POST, "faults", json!({"rules": []}))
            .await,
        204
    );
    let all: Vec<String> = tenants.iter().map(|t| t.domain.clone()).collect();
    let store = LedgerStore::in_dir(&lib.state);
    assert_eq!(store.load().unwrap().tenants.len(), 50);
    let report = match lib.renew(lib.http_default(), &all, 0, 50, true).await {
        Ok(r) => r,
        Err(f) => panic!("renew --all: {f:?}"),
    };
    let applied = report
        .results
        .iter()
        .filter(|r| r.outcome == "applied")
        .count();
    assert_eq!(applied, 50, "{}", report.text());
    let st = lib.emu.control_get("state").await;
    let year = now + TimeDelta::days(300);
    for t in st["tenants"].as_array().unwrap() {
        let sp = t["service_principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|sp| sp["app_id"] == SFB)
            .unwrap();
        let long: Vec<&Value> = sp["key_credentials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| {
                chrono::DateTime::parse_from_rfc3339(k["end"].as_str().unwrap())
                    .is_ok_and(|e| e > year)
            })
            .collect();
        assert_eq!(long.len(), 1, "one new window in {}", t["domains"][0]);
    }
}

impl Lib {
    /// A run's client with the request timeout of a user who sets nothing (60 s), on the
    /// simulated clock, for many tenants at once. Its retry budget is out of reach (an hour):
    /// on simulated time the waits of concurrent tasks add up (each moves the one clock on),
    /// so fifty tenants' waits would count against each request's budget, which in real time
    /// they overlap. (The matrix, and the renewal below that meets a reset on every try, keep
    /// the budget of three 1 s timeouts.)
    fn http_default(&self) -> HttpClient {
        let mut http = self
            .base
            .with_request_timeout(self.base.request_timeout())
            .unwrap();
        http.retry.budget = Duration::from_secs(3600);
        http
    }
}

// ---------------------------------------------------------------------------------------------
// Through the binary, in real time: the command line's exit codes and its error lines.

/// The runs the binary keeps: for upload and renew, a fault it rides out (exit 0, the work done
/// once) and one it stops at (exit 1, one `error:` line and a `hint:` line); and a renewal that
/// meets a reset on every try (exit 1). Each leaves every valid key and a ledger that loads.
#[tokio::test(flavor = "multi_thread")]
async fn faults_through_the_binary_end_in_exit_0_or_one_error_with_a_hint() {
    let emu = Emu::start_with(matrix_config(KeyResend::Full)).await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let cert = certificates(&emu, now).await;
    let pem = tool.dir.path().join("oauth.pem");
    std::fs::write(&pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let p = pem.to_str().unwrap().to_string();
    let t = emu.tenant.domain.clone();
    let tp = cert.sha1_hex();
    let keys_path = format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials");
    let baseline = sfb_keys(&emu, 0).await;

    // `rules`, then `args`: the exit code is `code`, and the work is done once (`done`) on exit
    // 0, or the error is one line with a hint on exit 1.
    let run = |rules: Value, args: Vec<String>, code: i32, done: Box<Check>| {
        let (emu, tool, tp) = (&emu, &tool, &tp);
        async move {
            let before = valid_thumbprints(&emu.sp(SFB).await, Utc::now());
            let times = rules["rules"][0]["times"].as_u64().unwrap_or(1);
            assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
            let mut cmd = tool.command();
            cmd.env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "1")
                .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
                .args(&args);
            let o = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap();
            let what = args.join(" ");
            // The fault met the run (a rule that fired its last time is gone).
            let left = emu.control_get("faults").await["rules"][0]["times"].as_u64();
            assert!(
                left.is_none_or(|l| l < times),
                "{what}: the fault never fired"
            );
            let empty = json!({"rules": []});
            assert_eq!(emu.control(Method::POST, "faults", empty).await, 204);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert_eq!(o.status.code(), Some(code), "{what}: {err}");
            if code == 0 {
                let ws = windows_of(&emu.sp(SFB).await, tp);
                assert!(
                    done(&ws),
                    "{what}: the work was not done exactly once: {ws:?}"
                );
            } else {
                assert_eq!(
                    err.lines().filter(|l| l.starts_with("error:")).count(),
                    1,
                    "{what}: {err}"
                );
                assert!(err.lines().any(|l| l.starts_with("hint:")), "{what}: {err}");
            }
            let after = valid_thumbprints(&emu.sp(SFB).await, Utc::now());
            for k in &before {
                assert!(after.contains(k), "{what}: key {k} was lost");
            }
            LedgerStore::in_dir(&tool.state_dir)
                .load()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    };
    let one = |rule: Value| json!({ "rules": [rule] });
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let upload = args(&[
        "credential",
        "upload",
        "--tenant",
        &t,
        "--cert",
        &p,
        "--yes",
    ]);

    // Upload: a 503 at the third request is ridden out; a malformed answer to the first (the
    // sign-in) is one clear error.
    run(
        one(json!({"kind": "503", "skip": 2})),
        upload.clone(),
        0,
        Box::new(|ws| ws.len() == 1),
    )
    .await;
    assert_eq!(
        emu.control(Method::PUT, &keys_path, baseline.clone()).await,
        204
    );
    run(
        one(json!({"kind": "malformed", "skip": 0})),
        upload.clone(),
        1,
        Box::new(|ws| ws.is_empty()),
    )
    .await;

    // Renew a key about to end: a reset at the fourth request is ridden out; a malformed answer
    // to the first is one clear error; a reset on every try of Graph is one clear error.
    assert_eq!(emu.control(Method::PUT, &keys_path, baseline).await, 204);
    std::fs::remove_dir_all(tool.state_dir.join("ledger")).unwrap();
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    let mut with_end = upload.clone();
    with_end.extend(args(&["--end", &end]));
    let with_end: Vec<&str> = with_end.iter().map(String::as_str).collect();
    let o = tool.run_async(&with_end).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let renew_keys = sfb_keys(&emu, 0).await;
    let renew_ledger = read_ledger(&tool.state_dir);
    let renew = args(&["renew", "--tenant", &t, "--yes"]);
    run(
        one(json!({"kind": "malformed", "skip": 0})),
        renew.clone(),
        1,
        Box::new(|_| true),
    )
    .await;
    run(
        one(json!({"kind": "reset", "path_contains": "/servicePrincipals", "times": 1000})),
        renew.clone(),
        1,
        Box::new(|_| true),
    )
    .await;
    assert_eq!(emu.control(Method::PUT, &keys_path, renew_keys).await, 204);
    write_ledger(&tool.state_dir, &renew_ledger);
    let lo = now + TimeDelta::days(360);
    run(
        one(json!({"kind": "reset", "skip": 3})),
        renew,
        0,
        Box::new(move |ws| {
            ws.iter()
                .filter(|e| chrono::DateTime::parse_from_rfc3339(e).is_ok_and(|e| e > lo))
                .count()
                == 1
        }),
    )
    .await;
}

/// The in-process runs make the requests each command makes (by route, without faults): the
/// matrix faults the requests of the command line, not of a flow of its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_library_runs_make_the_requests_each_command_makes() {
    let emu = Emu::start_with(matrix_config(KeyResend::Full)).await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let cert = certificates(&emu, now).await;
    let t = emu.tenant.domain.clone();
    let keys_path = format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials");
    let baseline = sfb_keys(&emu, 0).await;
    let names = json!({"servicePrincipalNames": emu.sp(SFB).await["servicePrincipalNames"]});
    // On the system time, as the binary.
    let lib = Lib::on(emu, Clock::System);
    std::fs::write(&lib.pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let p = lib.pem.to_str().unwrap().to_string();
    let emu = &lib.emu;
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    let flows = [
        (
            Flow::Upload,
            vec![
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--yes",
            ],
        ),
        (
            Flow::Onboard,
            vec![
                "onboard",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--sip-domain",
                "contoso.com",
                "--pool-fqdn",
                "webext.contoso.com",
                "--yes",
            ],
        ),
        (Flow::Verify, vec!["verify", "--tenant", &t, "--cert", &p]),
        (Flow::Renew, vec!["renew", "--tenant", &t, "--yes"]),
    ];
    let mut ledger: Option<Value> = None;
    let mut keys = baseline.clone();
    for (flow, args) in flows {
        if flow == Flow::Verify {
            // A tenant with this certificate's key about to end, for verify and renew.
            assert_eq!(
                emu.control(Method::PUT, &keys_path, baseline.clone()).await,
                204
            );
            let _ = std::fs::remove_dir_all(tool.state_dir.join("ledger"));
            let upload = [
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--yes",
            ];
            let o = tool
                .run_async(&[&upload[..], &["--end", &end]].concat())
                .await;
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            keys = sfb_keys(emu, 0).await;
            ledger = Some(read_ledger(&tool.state_dir));
        }
        let mut seen = Vec::new();
        for binary in [false, true] {
            assert_eq!(
                emu.control(Method::PUT, &keys_path, keys.clone()).await,
                204
            );
            let (s, _, v) = emu
                .graph(
                    Method::PATCH,
                    &format!("servicePrincipals(appId='{SFB}')"),
                    Some(names.clone()),
                )
                .await;
            assert_eq!(s, 204, "{v}");
            for state in [&tool.state_dir, &lib.state] {
                match &ledger {
                    Some(l) => write_ledger(state, l),
                    None => {
                        let _ = std::fs::remove_dir_all(state.join("ledger"));
                    }
                }
            }
            assert_eq!(
                emu.control(Method::DELETE, "requests", json!({})).await,
                204
            );
            if binary {
                let o = tool.run_async(&args).await;
                assert_eq!(o.status.code(), Some(0), "{flow:?}: {}", stderr(&o));
            } else if let Err(f) = lib.run(flow).await {
                panic!("{flow:?}: {f:?}");
            }
            seen.push(emu.control_get("requests").await["by_route"].clone());
        }
        assert_eq!(
            seen[0], seen[1],
            "{flow:?}: the library's requests, then the binary's"
        );
    }
}
