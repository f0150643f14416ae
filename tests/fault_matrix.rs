//! The fault matrix: for every HTTP step of upload, verify, renew and onboard, each fault kind
//! (429, 503, connection reset, timeout, malformed JSON) is injected at that step once. Each run
//! either completes or fails with one clear error; afterwards the tenant still has every key that
//! was valid before (no credential lost) and the ledger loads.
//!
//! Under each `--key-resend` mode (docs/protocol.md §6 item 9): the whole matrix under `full` (the
//! default); under `unchanged` and `minimal` a representative subset, upload and renew (the two
//! flows that re-send kept keys, and under `minimal` meet a refused PATCH and a second one, so
//! they run over a couple more steps), with every fault kind at every step, to keep the suite's
//! time reasonable (onboard and verify re-send nothing that upload does not).

mod support;

use chrono::{TimeDelta, Utc};
use hybrid_trust::emulator::KeyResend;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const KINDS: &[&str] = &["429", "503", "reset", "timeout", "lost-write", "malformed"];

/// Faults the client is meant to ride out when they happen once (issue 19): throttling and
/// unavailability with `Retry-After`, a dropped connection, a request held past the timeout,
/// and a PATCH that answers 204 without applying (the read-back finds it). A malformed body is
/// not: the client may stop there, with one clear error.
fn rides_out(kind: &str) -> bool {
    kind != "malformed"
}

/// The certificate's keys on the service principal (thumbprint, end), for "done exactly once".
fn windows_of(sp: &Value, thumbprint: &str) -> Vec<String> {
    use base64::Engine as _;
    use sha1::Digest as _;
    sp["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(k["key"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let tp: String = sha1::Sha1::digest(&der)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            tp == thumbprint
        })
        .map(|k| k["endDateTime"].as_str().unwrap_or("").to_string())
        .collect()
}

fn valid_thumbprints(sp: &Value) -> Vec<String> {
    let now = Utc::now();
    sp["keyCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| {
            chrono::DateTime::parse_from_rfc3339(k["endDateTime"].as_str().unwrap()).unwrap() > now
        })
        .map(|k| {
            use base64::Engine as _;
            use sha1::Digest as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(k["key"].as_str().unwrap())
                .unwrap();
            sha1::Sha1::digest(&der)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .collect()
}

struct Matrix {
    emu: Emu,
    tool: Tool,
    baseline_keys: Value,
    baseline_ledger: Option<serde_json::Value>,
    /// The certificate under test.
    thumbprint: String,
}

impl Matrix {
    async fn reset(&self) {
        assert_eq!(
            self.emu
                .control(Method::POST, "faults", json!({"rules": []}))
                .await,
            204
        );
        let path = format!(
            "tenants/{}/servicePrincipals/{SFB}/keyCredentials",
            self.emu.tenant.domain
        );
        assert_eq!(
            self.emu
                .control(Method::PUT, &path, self.baseline_keys.clone())
                .await,
            204
        );
        match &self.baseline_ledger {
            Some(b) => write_ledger(&self.tool.state_dir, b),
            None => {
                let _ = std::fs::remove_dir_all(self.tool.state_dir.join("ledger"));
            }
        }
    }

    /// Runs `args` once per (step, kind); checks the invariants; returns how many runs passed
    /// and how many ended in a clear error.
    async fn run(
        &self,
        name: &str,
        args: &[&str],
        steps: usize,
        done: &(dyn Fn(&[String]) -> bool + Sync),
    ) -> (usize, usize) {
        let (mut ok, mut failed) = (0, 0);
        for step in 0..steps {
            for kind in KINDS {
                // A lost write is a PATCH's fault: at the first, second and third PATCH.
                let rule = match *kind {
                    "lost-write" if step >= 3 => continue,
                    "lost-write" => {
                        json!({"rules": [{"kind": kind, "method": "PATCH", "skip": step, "times": 1}]})
                    }
                    _ => json!({"rules": [{"kind": kind, "skip": step, "times": 1}]}),
                };
                self.reset().await;
                let before = valid_thumbprints(&self.emu.sp(SFB).await);
                assert_eq!(self.emu.control(Method::POST, "faults", rule).await, 204);
                let mut cmd = self.tool.command();
                cmd.env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "1")
                    .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
                    .args(args);
                let o = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                    .await
                    .unwrap();
                assert_eq!(
                    self.emu
                        .control(Method::POST, "faults", json!({"rules": []}))
                        .await,
                    204
                );
                let err = stderr(&o);
                let what = format!("{name}, fault {kind} at request {step}");
                assert!(!err.contains("panicked"), "{what}: {err}");
                match o.status.code() {
                    Some(0) => {
                        let ws = windows_of(&self.emu.sp(SFB).await, &self.thumbprint);
                        assert!(
                            done(&ws),
                            "{what}: the work was not done exactly once: {ws:?}"
                        );
                        ok += 1
                    }
                    Some(1) if rides_out(kind) => {
                        panic!("{what}: a fault met once must be ridden out (exit 0): {err}")
                    }
                    Some(1) => {
                        assert_eq!(
                            err.lines().filter(|l| l.starts_with("error:")).count(),
                            1,
                            "{what}: {err}"
                        );
                        assert!(err.lines().any(|l| l.starts_with("hint:")), "{what}: {err}");
                        failed += 1;
                    }
                    other => panic!("{what}: exit {other:?}: {err}"),
                }
                let after = valid_thumbprints(&self.emu.sp(SFB).await);
                for t in &before {
                    assert!(after.contains(t), "{what}: key {t} was lost");
                }
                hybrid_trust::ledger::LedgerStore::in_dir(&self.tool.state_dir)
                    .load()
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
        (ok, failed)
    }
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

/// The matrix under `mode`: every flow when `all`, else upload and renew (over two more steps).
async fn matrix(mode: KeyResend, all: bool) {
    let extra = if all { 0 } else { 2 };
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = mode;
    cfg.timeout_fault_secs = 5;
    // Hundreds of reads a minute, the test's own among them: lift the 150/min throttle here
    // (tests/emulator_graph.rs covers it).
    cfg.behaviour.select_key_limit_per_minute = 1_000_000;
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    // An existing valid key that must survive everything, and the certificate under test.
    let other = fresh_cert("other.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&other)])).await.0, 204);
    let st = emu.control_get("state").await;
    let baseline_keys = st["tenants"][0]["service_principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["app_id"] == SFB)
        .unwrap()["key_credentials"]
        .clone();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = make_cert_with_key(
        "contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
        kp,
    );
    let pem = tool.dir.path().join("oauth.pem");
    std::fs::write(&pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let p = pem.to_str().unwrap().to_string();
    let t = emu.tenant.domain.clone();
    let mut m = Matrix {
        emu,
        tool,
        baseline_keys,
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
        m.run(
            "credential upload",
            &[
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--yes",
            ],
            5 + extra,
            &one,
        )
        .await,
    ));
    if all {
        report.push((
            "onboard",
            m.run(
                "onboard",
                &[
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
                14,
                &one,
            )
            .await,
        ));
    }

    // A tenant with this certificate's key about to end, for verify and renew.
    m.reset().await;
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    let o = m
        .tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--end",
            &end,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = m.emu.control_get("state").await;
    m.baseline_keys = st["tenants"][0]["service_principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["app_id"] == SFB)
        .unwrap()["key_credentials"]
        .clone();
    m.baseline_ledger = Some(read_ledger(&m.tool.state_dir));
    if all {
        report.push((
            "verify",
            m.run(
                "verify",
                &["verify", "--tenant", &t, "--cert", &p],
                6,
                &unchanged,
            )
            .await,
        ));
    }
    report.push((
        "renew",
        m.run(
            "renew",
            &["renew", "--tenant", &t, "--yes"],
            10 + extra,
            &renewed,
        )
        .await,
    ));
    for (name, (ok, failed)) in &report {
        eprintln!("{mode}: {name}: {ok} runs completed, {failed} failed with a clear error");
        assert!(
            *ok > 0,
            "{mode}: {name}: faults must not make every run fail (retries work)"
        );
    }
}

/// Issue 19: with random faults on every request (`--faults 429:0.1,503:0.1,reset:0.05`), 50
/// uploads in a row, one per tenant, each complete on their first invocation, and one
/// `renew --all` renews all 50 tenants; each certificate ends up with exactly one window.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_uploads_and_fifty_renewals_complete_through_random_faults() {
    let mut cfg = quiet_tls();
    cfg.generated_tenants = 50;
    cfg.faults = "429:0.1,503:0.1,reset:0.05".parse().unwrap();
    cfg.seed = 19;
    cfg.behaviour.select_key_limit_per_minute = 1_000_000;
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let tenants = emu.running.ready.tenants.clone();
    assert_eq!(tenants.len(), 50);
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    // Ten at a time (each one its own invocation, which must complete the first time).
    for batch in tenants.chunks(10) {
        let runs: Vec<_> = batch
            .iter()
            .map(|t| {
                let mut c = tool.command();
                c.env("HYBRID_TRUST_CLIENT_ID", &t.admin.client_id)
                    .env("HT_TEST_SECRET", &t.admin.client_secret)
                    .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
                    .args(["credential", "upload", "--tenant", &t.domain, "--cert", &p])
                    .args(["--end", &end, "--yes"]);
                let d = t.domain.clone();
                tokio::task::spawn_blocking(move || (d, c.output().unwrap()))
            })
            .collect();
        for r in runs {
            let (d, o) = r.await.unwrap();
            assert_eq!(o.status.code(), Some(0), "{d}: {}", stderr(&o));
        }
    }
    // A fault on every try cannot be ridden out: one clear error, exit 1, no key lost, the
    // ledger loadable (the retries stop within three HTTP timeouts).
    let t0 = &tenants[0];
    let rule =
        json!({"rules": [{"kind": "reset", "path_contains": "/servicePrincipals", "times": 1000}]});
    assert_eq!(emu.control(Method::POST, "faults", rule).await, 204);
    let mut c = tool.command();
    c.env("HYBRID_TRUST_CLIENT_ID", &t0.admin.client_id)
        .env("HT_TEST_SECRET", &t0.admin.client_secret)
        .env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "1")
        .args([
            "--client-secret-env",
            "HT_TEST_SECRET",
            "renew",
            "--tenant",
            &t0.domain,
            "--yes",
        ]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    hybrid_trust::ledger::LedgerStore::in_dir(&tool.state_dir)
        .load()
        .unwrap();
    assert_eq!(
        emu.control(Method::POST, "faults", json!({"rules": []}))
            .await,
        204
    );
    let admin = &tenants[0].admin;
    let mut c = tool.command();
    c.env("HYBRID_TRUST_CLIENT_ID", &admin.client_id)
        .env("HT_TEST_SECRET", &admin.client_secret)
        .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
        .args(["renew", "--all", "--yes", "--concurrency", "50"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    let applied = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "applied")
        .count();
    assert_eq!(applied, 50, "{v}");
    let st = emu.control_get("state").await;
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
