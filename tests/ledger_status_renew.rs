//! The ledger (formats, corruption, atomicity under kill -9, concurrent runs), `status` (states,
//! --check codes, formats, --live drift) and `renew` end to end against the emulator (re-window,
//! roll, finish a roll, blocked, --all isolation, dry run).

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use support::*;

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

fn ledger(tool: &Tool) -> Value {
    read_ledger(&tool.state_dir)
}

#[test]
fn every_ledger_format_ever_written_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ledger");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let l = hybrid_trust::ledger::store::parse(&std::fs::read(&p).unwrap(), &p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(l.format, hybrid_trust::ledger::FORMAT);
            assert!(!l.tenants.is_empty());
            n += 1;
        }
    }
    assert!(n >= 1);
    // And the CLI reads it.
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{dir}/v1.json"), state.path().join("ledger.json")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--output", "json", "status", "--all"])
        .env("HYBRID_TRUST_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(
        v["tenants"][0]["cert_thumbprint_sha1"],
        "C018A043066A6F5CEC76253A1D3CAE84C0E2F730"
    );
    assert_eq!(v["tenants"][1]["state"], "missing");
    // Format 1 was migrated to one file per tenant; the old file is kept beside it, and the
    // migrated ledger reads the same again.
    assert!(state.path().join("ledger.json.v1").exists());
    assert!(!state.path().join("ledger.json").exists());
    let again = json_out(
        &Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args(["--output", "json", "status", "--all"])
            .env("HYBRID_TRUST_STATE_DIR", state.path())
            .output()
            .unwrap(),
    );
    assert_eq!(again["tenants"], v["tenants"]);
}

fn ht(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_corrupt_ledger_is_never_overwritten_and_names_the_last_good_copy() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    assert_eq!(
        ht(s, &["tenant", "add", "a.example.com", "--cert", cert])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        ht(s, &["tenant", "add", "b.example.com", "--cert", cert])
            .status
            .code(),
        Some(0)
    );
    // A second write of b keeps its first record as the last good copy.
    assert_eq!(
        ht(
            s,
            &[
                "tenant",
                "add",
                "b.example.com",
                "--cert",
                cert,
                "--notify",
                "ops@b.example.com"
            ]
        )
        .status
        .code(),
        Some(0)
    );
    let path = tenant_file(s, "b.example.com");
    let garbage = b"{\"format\": 2, \"tenant\": {\"domain\": ";
    std::fs::write(&path, garbage).unwrap();
    for args in [
        vec!["status", "--all"],
        vec![
            "tenant",
            "add",
            "b.example.com",
            "--notify",
            "x@b.example.com",
        ],
    ] {
        let o = ht(s, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("damaged") && e.contains("b.example.com.json.bak"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "left untouched");
    }
    // One damaged record does not stop changes to the others (one file per tenant).
    assert_eq!(
        ht(s, &["tenant", "add", "c.example.com"]).status.code(),
        Some(0)
    );
    let o = ht(s, &["status", "--all", "--check"]);
    assert_eq!(o.status.code(), Some(3), "UNKNOWN for monitoring");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("HYBRID-TRUST UNKNOWN - ") && out.lines().count() == 1,
        "{out}"
    );
    // With --output json, the same as one JSON document; a check that cannot run for bad
    // input (an unknown tenant, thresholds the wrong way round) is UNKNOWN too, not CRITICAL.
    let o = ht(s, &["--output", "json", "status", "--all", "--check"]);
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(
        (v["status"].as_str(), v["code"].as_u64()),
        (Some("UNKNOWN"), Some(3)),
        "{v}"
    );
    // On a healthy state dir, so the check gets as far as the tenant and the thresholds.
    let clean = tempfile::tempdir().unwrap();
    assert_eq!(
        ht(clean.path(), &["tenant", "add", "c.example.com"])
            .status
            .code(),
        Some(0)
    );
    for args in [
        &["status", "--tenant", "nowhere.example.com", "--check"][..],
        &[
            "status",
            "--all",
            "--check",
            "--warn-days",
            "3",
            "--crit-days",
            "9",
        ][..],
    ] {
        let o = ht(clean.path(), args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with("HYBRID-TRUST UNKNOWN - "),
            "{args:?}: {out}"
        );
        assert!(
            out.contains("nowhere.example.com is not in the ledger") || out.contains("--crit-days"),
            "{args:?}: {out}"
        );
    }
    // The backup is the last good record.
    let bak = path.with_file_name("b.example.com.json.bak");
    let bak_v: Value = serde_json::from_slice(&std::fs::read(&bak).unwrap()).unwrap();
    assert_eq!(bak_v["tenant"]["domain"], "b.example.com");
    assert!(bak_v["tenant"]["notify"].as_array().unwrap().is_empty());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&bak).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn kill_9_during_writes_never_leaves_a_ledger_that_does_not_load() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    // A ledger of some size, so each write takes a while.
    for i in 0..40 {
        assert_eq!(
            ht(
                s,
                &[
                    "tenant",
                    "add",
                    &format!("t{i}.example.com"),
                    "--cert",
                    cert,
                    "--credential-end",
                    "2027-06-01"
                ]
            )
            .status
            .code(),
            Some(0)
        );
    }
    let mut killed = 0;
    for i in 0..300u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args([
                "tenant",
                "add",
                &format!("k{i}.example.com"),
                "--cert",
                cert,
            ])
            .env("HYBRID_TRUST_STATE_DIR", s)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros((i * 7919) % 12_000));
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            killed += 1;
        }
        let _ = child.wait();
        hybrid_trust::ledger::LedgerStore::in_dir(s)
            .load()
            .unwrap_or_else(|e| panic!("iteration {i}: {e}"));
    }
    assert!(
        killed > 10,
        "the loop must really interrupt runs ({killed} killed)"
    );
    assert!(ht(s, &["status", "--all"]).status.success());
}

#[test]
fn concurrent_runs_keep_every_change() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path().to_path_buf();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || ht(&s, &["tenant", "add", &format!("c{i}.example.com")]))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().status.success());
    }
    let v = read_ledger(&s);
    assert_eq!(v["tenants"].as_array().unwrap().len(), 8);
}

#[test]
fn status_states_check_codes_and_formats() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let now = Utc::now();
    let d = |n: i64| (now + TimeDelta::days(n)).format("%Y-%m-%d").to_string();
    assert!(
        ht(
            s,
            &[
                "tenant",
                "add",
                "ok.example.com",
                "--cert",
                cert,
                "--credential-end",
                &d(200)
            ]
        )
        .status
        .success()
    );
    let o = ht(s, &["status", "--check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("HYBRID-TRUST OK - "));
    assert!(
        ht(
            s,
            &[
                "tenant",
                "add",
                "due.example.com",
                "--cert",
                cert,
                "--credential-end",
                &d(20)
            ]
        )
        .status
        .success()
    );
    assert_eq!(ht(s, &["status", "--check"]).status.code(), Some(1));
    assert_eq!(
        ht(
            s,
            &["status", "--check", "--warn-days", "10", "--crit-days", "5"]
        )
        .status
        .code(),
        Some(0)
    );
    assert!(
        ht(
            s,
            &[
                "tenant",
                "add",
                "soon.example.com",
                "--cert",
                cert,
                "--credential-end",
                &d(3)
            ]
        )
        .status
        .success()
    );
    assert_eq!(ht(s, &["status", "--check"]).status.code(), Some(2));
    let o = ht(s, &["--output", "json", "status", "--all"]);
    let v = json_out(&o);
    let states: Vec<&str> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["ok", "due", "expiring"]);
    for t in v["tenants"].as_array().unwrap() {
        for k in [
            "tenant_id",
            "domain",
            "app_ids",
            "cert_thumbprint_sha1",
            "cert_not_after",
            "credential_end",
            "days_left",
            "state",
            "next_action",
        ] {
            assert!(t.get(k).is_some(), "{k}");
        }
    }
    assert!(
        v["tenants"][1]["next_action"]
            .as_str()
            .unwrap()
            .contains("hybrid-trust renew --tenant due.example.com")
    );
    // Planning ahead with --as-of: in 250 days the first one is expired.
    let as_of = (now + TimeDelta::days(250)).to_rfc3339();
    let v = json_out(&ht(
        s,
        &[
            "--output",
            "json",
            "--as-of",
            &as_of,
            "status",
            "--tenant",
            "ok.example.com",
        ],
    ));
    assert_eq!(v["tenants"][0]["state"], "expired");
    // Table with a timeline; Prometheus; iCalendar.
    let table = String::from_utf8(ht(s, &["status"]).stdout).unwrap();
    assert!(table.contains("NEXT 12 MONTHS") && table.lines().nth(1).unwrap().contains('#'));
    let prom = String::from_utf8(ht(s, &["status", "--format", "prometheus"]).stdout).unwrap();
    assert!(prom.contains("# TYPE hybrid_trust_credential_expiry_seconds gauge"));
    assert!(
        prom.lines().filter(|l| !l.starts_with('#')).all(|l| l
            .rsplit_once(' ')
            .is_some_and(|(_, v)| v.parse::<i64>().is_ok())),
        "{prom}"
    );
    assert!(prom.contains("hybrid_trust_state{tenant=\"due.example.com\",state=\"due\"} 1"));
    let ics = String::from_utf8(ht(s, &["status", "--format", "ics"]).stdout).unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"));
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 3);
    assert_eq!(ics.matches("TRIGGER:-P30D").count(), 3);
    assert!(
        ics.split("\r\n").all(|l| l.len() <= 75),
        "folded at 75 octets"
    );
    // Bad thresholds are usage errors.
    assert_eq!(
        ht(s, &["status", "--warn-days", "5", "--crit-days", "9"])
            .status
            .code(),
        Some(2)
    );
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_rewindows_rolls_and_finishes_a_roll() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(20)).format("%Y-%m-%d").to_string();
    assert_eq!(
        tool.run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--end",
            &end
        ])
        .await
        .status
        .code(),
        Some(0)
    );
    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "due");
    assert_eq!(v["tenants"][0]["tenant_id"], emu.tenant.tenant_id);

    // Dry run: the decision, no change.
    let o = tool
        .run_async(&["renew", "--tenant", &t, "--dry-run"])
        .await;
    assert_eq!(json_out(&o)["results"][0]["decision"]["action"], "rewindow");
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1);

    // Re-window: a new year for the same certificate, the old key removed once the new one is in.
    let o = tool.run_async(&["renew", "--tenant", &t, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 1, "{ks:?}");
    let new_end = date(&ks[0]["endDateTime"]);
    assert!(new_end > now + TimeDelta::days(360), "{new_end}");
    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "ok");
    assert_eq!(date(&v["tenants"][0]["credential_end"]), new_end);
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap();
    let patches: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last_two = &patches[patches.len() - 2..];
    assert_eq!(
        last_two[0]["after"].as_array().unwrap().len(),
        2,
        "first the new window next to the old"
    );
    assert_eq!(
        last_two[1]["after"].as_array().unwrap().len(),
        1,
        "then the old window removed"
    );

    // Nothing to do now.
    let o = tool.run_async(&["renew", "--tenant", &t, "--yes"]).await;
    assert_eq!(json_out(&o)["results"][0]["decision"]["action"], "nothing");

    // Roll to a new certificate: uploaded next to the old one, on-prem step written.
    let next = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(900),
    );
    let np = tool.write_cert("next.pem", &next);
    let o = tool
        .run_async(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = &json_out(&o)["results"][0];
    assert_eq!(r["decision"]["action"], "roll");
    let effective = date(&r["decision"]["effective"]);
    assert!(effective > Utc::now() + TimeDelta::hours(23));
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 2, "old and new side by side");
    let script = std::fs::read_to_string(r["onprem_script"].as_str().unwrap()).unwrap();
    assert!(script.contains(&format!("Set-CsCertificate -Identity Global -Type OAuthTokenIssuer -Thumbprint '{}' -Roll -EffectiveDate ([datetimeoffset]'{}').LocalDateTime", next.sha1_hex(), effective.format("%Y-%m-%dT%H:%M:%S+00:00"))), "{script}");
    let l = ledger(&tool);
    assert_eq!(
        l["tenants"][0]["next_cert"]["thumbprint_sha1"],
        next.sha1_hex()
    );

    // The roll is pending: the old certificate is still the one the Front Ends sign with.
    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "roll-pending", "{v}");
    assert_eq!(v["tenants"][0]["phase"], "roll-scheduled");
    // Confirming before the EffectiveDate is refused; saved Get-CsCertificate output that shows
    // the new thumbprint as current confirms it.
    let o = tool
        .run_async(&["renew", "--tenant", &t, "--confirm-roll"])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Output that shows the new certificate current, saved before the EffectiveDate, is
    // refused too (issue 24: the ledger's EffectiveDate decides, however early the output's).
    let saved = tool.state_dir.parent().unwrap().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    std::fs::write(
        saved.join("Get-CsCertificate.txt"),
        format!(
            "Thumbprint : {}\r\nEffectiveDate : {}\r\nUse : OAuthTokenIssuer\r\n",
            next.sha1_hex(),
            (now - TimeDelta::hours(1)).format("%m/%d/%Y %I:%M:%S %p")
        ),
    )
    .unwrap();
    let o = tool
        .run_async(&[
            "renew",
            "--tenant",
            &t,
            "--confirm-roll",
            "--current",
            saved.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(ledger(&tool)["tenants"][0]["roll_confirmed"].is_null());
    // Once the EffectiveDate has passed, it confirms.
    roll_took_effect(
        &tool.state_dir,
        &saved,
        &next.sha1_hex(),
        now - TimeDelta::hours(1),
    );
    let o = tool
        .run_async(&[
            "renew",
            "--tenant",
            &t,
            "--confirm-roll",
            "--current",
            saved.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = ledger(&tool);
    assert_eq!(l["tenants"][0]["cert"]["thumbprint_sha1"], next.sha1_hex());
    assert_eq!(l["tenants"][0]["roll_confirmed"]["by"], "onprem-output");
    assert!(l["tenants"][0]["next_cert"].is_null());
    // The next renew retires the old key, with the audit log and read-back.
    let o = tool.run_async(&["renew", "--tenant", &t, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["results"][0]["decision"]["action"], "retire");
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 1, "{ks:?}");
    let listed = json_out(
        &tool
            .run_async(&["credential", "list", "--tenant", &t])
            .await,
    );
    assert_eq!(
        listed["credentials"][0]["thumbprint_sha1"],
        next.sha1_hex(),
        "the new key stays: {listed}"
    );
    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "ok", "{v}");
    assert_eq!(v["tenants"][0]["phase"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_all_isolates_failures_records_them_and_live_status_finds_drift() {
    let mut cfg = quiet_tls();
    cfg.tenants = vec!["a.onmicrosoft.com".into(), "b.onmicrosoft.com".into()];
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    for t in ["a.onmicrosoft.com", "b.onmicrosoft.com"] {
        assert_eq!(
            tool.run_async(&[
                "credential",
                "upload",
                "--tenant",
                t,
                "--cert",
                &p,
                "--yes",
                "--end",
                &end
            ])
            .await
            .status
            .code(),
            Some(0)
        );
    }
    // A third tenant whose certificate ends in 5 days, its key with it (within a day): blocked,
    // it needs a new certificate. (A key ending days before its certificate is re-windowed to
    // the certificate's end first: that gains days of trust.)
    let short = make_cert(
        "x.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(5),
    );
    let sp = tool.write_cert("s.pem", &short);
    let mut c = tool.command();
    let st = tokio::task::spawn_blocking(move || {
        c.args([
            "tenant",
            "add",
            "c.example.com",
            "--cert",
            &sp,
            "--credential-end",
            &(Utc::now() + TimeDelta::days(5))
                .format("%Y-%m-%d")
                .to_string(),
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(st.status.success(), "{}", stderr(&st));
    let o = tool.run_async(&["renew", "--all", "--yes"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_out(&o);
    let outcomes: Vec<(&str, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tenant"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a.onmicrosoft.com", "applied"),
            ("b.onmicrosoft.com", "applied"),
            ("c.example.com", "blocked")
        ]
    );
    let l = ledger(&tool);
    assert!(
        l["tenants"][2]["last_renewal_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("new"),
        "{l}"
    );
    let v = json_out(
        &tool
            .run_async(&["status", "--tenant", "c.example.com"])
            .await,
    );
    assert!(
        v["tenants"][0]["next_action"]
            .as_str()
            .unwrap()
            .contains("the last renewal failed")
    );

    // Someone removes the key out of band: --live sees it.
    assert_eq!(
        emu.control(
            Method::PUT,
            &format!("tenants/b.onmicrosoft.com/servicePrincipals/{SFB}/keyCredentials"),
            json!([])
        )
        .await,
        204
    );
    let o = tool.run_async(&["status", "--all", "--live"]).await;
    let v = json_out(&o);
    let b = &v["tenants"][1];
    assert_eq!(b["domain"], "b.onmicrosoft.com");
    assert_eq!(b["state"], "missing");
    assert_eq!(b["drift"][0]["kind"], "missing-in-tenant");
    assert_eq!(v["tenants"][0]["state"], "ok", "{v}");
    assert!(v["tenants"][0]["drift"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_renews_of_one_tenant_renew_it_once_and_lose_no_key() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(15)).format("%Y-%m-%d").to_string();
    assert_eq!(
        tool.run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--end",
            &end
        ])
        .await
        .status
        .code(),
        Some(0)
    );
    let args = ["renew", "--tenant", t.as_str(), "--yes"];
    let runs = (0..4).map(|_| tool.run_async(&args));
    let outs = futures_util::future::join_all(runs).await;
    let mut outcomes = Vec::new();
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        outcomes.push(
            json_out(o)["results"][0]["outcome"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec!["applied", "nothing", "nothing", "nothing"],
        "decided under the lock: renewed once"
    );
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 1, "{ks:?}");
    assert!(date(&ks[0]["endDateTime"]) > now + TimeDelta::days(360));
    let l = ledger(&tool);
    assert_eq!(l["tenants"][0]["credentials"].as_array().unwrap().len(), 1);
}

#[test]
fn status_json_output_stays_one_json_document() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let end = (Utc::now() + TimeDelta::days(20))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        ht(
            s,
            &[
                "tenant",
                "add",
                "due.example.com",
                "--cert",
                cert,
                "--credential-end",
                &end
            ]
        )
        .status
        .success()
    );
    let o = ht(s, &["--output", "json", "status", "--check"]);
    assert_eq!(o.status.code(), Some(1), "the monitoring code is kept");
    let v = json_out(&o);
    assert_eq!(
        (v["status"].as_str(), v["code"].as_u64()),
        (Some("WARNING"), Some(1))
    );
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("HYBRID-TRUST WARNING")
    );
    let o = ht(s, &["--output", "json", "status", "--format", "prometheus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

/// `status --live` over more tenants than one connection's streams: the reads spread over
/// several connection pools ("lanes"), each lane's first token alone. Every tenant is read with
/// exactly two requests, each tenant's keys land on that tenant only, and one tenant's failure
/// (an unknown domain) stays that tenant's.
#[tokio::test(flavor = "multi_thread")]
async fn live_status_reads_a_fleet_over_several_connections_with_two_requests_each() {
    let mut cfg = quiet_tls();
    cfg.generated_tenants = 230;
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let tenants = emu.running.ready.tenants.clone();
    let cert = fresh_cert("sfb.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let now = Utc::now().to_rfc3339();
    let mut records: Vec<Value> = tenants
        .iter()
        .map(|t| {
            json!({"domain": t.domain, "tenant_id": t.tenant_id, "cloud": "emulator",
                   "app_ids": [SFB], "cert": null, "added_at": now})
        })
        .collect();
    records.push(
        json!({"domain": "nowhere.example.com", "tenant_id": null, "cloud": "emulator",
                        "app_ids": [SFB], "cert": null, "added_at": now}),
    );
    std::fs::create_dir_all(&tool.state_dir).unwrap();
    write_ledger(&tool.state_dir, &json!({"format": 2, "tenants": records}));
    assert_eq!(
        emu.control(Method::DELETE, "requests", json!(null)).await,
        204
    );
    let o = tool
        .run_async(&["status", "--all", "--live", "--concurrency", "250"])
        .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "one tenant unreadable: {}",
        stderr(&o)
    );
    let v = json_out(&o);
    let rows = v["tenants"].as_array().unwrap();
    assert_eq!(rows.len(), 231);
    let read: Vec<&Value> = rows.iter().filter(|r| r["live_error"].is_null()).collect();
    assert_eq!(read.len(), 230, "{}", stderr(&o));
    assert!(rows[230]["live_error"].is_string());
    // The key is in the first tenant only.
    let with_key: Vec<&str> = read
        .iter()
        .filter(|r| !r["drift"].as_array().unwrap().is_empty())
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(with_key, vec![tenants[0].domain.as_str()], "{}", rows[0]);
    let counts = emu.control_get("requests").await;
    assert_eq!(
        counts["by_route"]["GET graph servicePrincipals"], 230,
        "{counts}"
    );
    // 230 tokens, plus what the unknown tenant's failure took (retries included).
    let tokens = counts["by_route"]["POST login token"].as_u64().unwrap();
    assert!((231..=236).contains(&tokens), "{counts}");
}
