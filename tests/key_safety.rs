//! Never lose a key (issue 14): races between two hosts with their own ledgers, a plan that went
//! stale while the admin read it, one tenant named two ways, a `Sign` key of the same
//! certificate, and a state dir that others can write. Each of these lost or exposed a key before.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::*;

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn thumb_of(k: &Value) -> Option<String> {
    use base64::Engine as _;
    use sha1::Digest as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(k["key"].as_str()?)
        .ok()?;
    Some(
        sha1::Sha1::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
    )
}

/// A private directory (0700), as the tool makes its own.
fn private_dir(p: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Copies a state dir (flat files and the locks folder): a second admin's ledger.
/// Copies a state dir (the ledger is a directory of per-tenant records).
fn copy_state(from: &Path, to: &Path) {
    private_dir(to);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        } else if e.file_type().unwrap().is_dir() {
            copy_state(&e.path(), &to.join(e.file_name()));
        }
    }
}

/// The tool with another state dir (another host or admin), JSON output, the admin secret.
fn run_in(tool: &Tool, state: &Path, args: &[&str]) -> std::process::Output {
    let mut c = tool.command();
    c.env("HYBRID_TRUST_STATE_DIR", state)
        .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
        .args(args);
    c.output().unwrap()
}

async fn run_in_async(tool: &Tool, state: PathBuf, args: Vec<String>) -> std::process::Output {
    let mut c = tool.command();
    c.env("HYBRID_TRUST_STATE_DIR", &state)
        .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
        .args(&args);
    output(c).await
}

async fn output(mut c: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn ledger_at(state: &Path) -> Value {
    read_ledger(state)
}

/// Defect 1: two hosts (two state dirs, each with its own ledger) renew one tenant at nearly the
/// same moment. Before, each run's second step removed every key of the certificate but its own
/// window, so together they removed both windows and left the service principal with none. Now a
/// removal removes only the windows it identified as superseded, after reading back that its
/// replacement is there; every round must end with a valid year-long key, and every key either
/// ledger records as the current window must be on Graph.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_renewing_at_once_never_leave_the_service_principal_without_a_key() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    for (round, delay_ms) in [700u64, 0, 300, 1200, 700].into_iter().enumerate() {
        let (s, v) = emu.patch_keys(SFB, json!([])).await;
        assert_eq!(s, 204, "{v}");
        let now = Utc::now();
        let cert = make_cert(
            "sfb.contoso.com",
            now - TimeDelta::days(30),
            now + TimeDelta::days(700),
        );
        let p = tool.write_cert(&format!("c{round}.pem"), &cert);
        let a = tool.dir.path().join(format!("host-a-{round}"));
        let b = tool.dir.path().join(format!("host-b-{round}"));
        private_dir(&a);
        let end = (now + TimeDelta::days(20)).format("%Y-%m-%d").to_string();
        let o = run_in(
            &tool,
            &a,
            &[
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--end",
                &end,
                "--yes",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        copy_state(&a, &b);

        let args: Vec<String> = ["renew", "--tenant", &t, "--yes"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut c = tool.command();
        c.env("HYBRID_TRUST_STATE_DIR", &a)
            .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
            .args(&args);
        let first = tokio::spawn(output(c));
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let second = run_in_async(&tool, b.clone(), args).await;
        let first = first.await.unwrap();
        for (host, o) in [("a", &first), ("b", &second)] {
            assert!(
                matches!(o.status.code(), Some(0) | Some(1)),
                "round {round} host {host}: {}",
                stderr(o)
            );
        }

        let after = Utc::now();
        let ks = keys(&emu.sp(SFB).await);
        let mine: Vec<&Value> = ks
            .iter()
            .filter(|k| thumb_of(k).as_deref() == Some(cert.sha1_hex().as_str()))
            .collect();
        assert!(
            mine.iter().any(|k| k["usage"] == "Verify"
                && date(&k["startDateTime"]) <= after
                && date(&k["endDateTime"]) > now + TimeDelta::days(300)),
            "round {round} (second host {delay_ms} ms later): no valid year-long key left: {ks:#?}\nA: {}\nB: {}",
            stderr(&first),
            stderr(&second)
        );
        // No ledger claims a window that Graph does not cover. (Its keyId may name the other
        // host's twin window of the same certificate: with no ETag on keyCredentials, a PATCH
        // built from a read taken a moment earlier can replace one twin with the other after both
        // hosts read back. The coverage the ledger reports, which is what status and reminders
        // read, stays true to within the seconds between the two runs.)
        let covered = mine
            .iter()
            .filter(|k| k["usage"] == "Verify")
            .map(|k| date(&k["endDateTime"]))
            .max()
            .unwrap();
        for state in [&a, &b] {
            let l = ledger_at(state);
            for c in l["tenants"][0]["credentials"].as_array().unwrap() {
                assert!(
                    date(&c["end"]) <= covered + TimeDelta::seconds(30),
                    "round {round}: the ledger in {} says {} is covered until {}, Graph only until {covered}: {ks:#?}\nA: {}\nB: {}",
                    state.display(),
                    c["thumbprint_sha1"],
                    c["end"],
                    stderr(&first),
                    stderr(&second),
                );
            }
        }
    }
}

/// Defect 7: a key of the same certificate with another type/usage (`X509CertAndPassword`/`Sign`)
/// is not the `Verify` key Entra needs: the upload adds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_sign_key_of_the_same_certificate_does_not_stand_for_the_verify_key() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = fresh_cert("sfb.contoso.com");
    let now = Utc::now();
    let (s, v) = emu
        .patch_keys(
            SFB,
            json!([{
                "type": "X509CertAndPassword",
                "usage": "Sign",
                "key": cert.b64(),
                "keyId": uuid::Uuid::new_v4().to_string(),
                "startDateTime": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "endDateTime": (now + TimeDelta::days(300)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let p = tool.write_cert("c.pem", &cert);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &p,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["results"][0]["action"], "applied");
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(
        ks.len(),
        2,
        "the Sign key kept, the Verify key added: {ks:#?}"
    );
    assert!(
        ks.iter()
            .any(|k| k["usage"] == "Verify" && k["type"] == "AsymmetricX509Cert")
    );
    assert!(ks.iter().any(|k| k["usage"] == "Sign"));
}

/// Defect 2 (second part): one machine, a ledger that does not know the tenant yet, one run
/// naming it by domain and one by GUID at the same time. Both must take the same lock and land in
/// one ledger record.
#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_named_by_domain_and_by_guid_has_one_lock_and_one_record() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let c1 = fresh_cert("a.contoso.com");
    let c2 = fresh_cert("b.contoso.com");
    let p1 = tool.write_cert("a.pem", &c1);
    let p2 = tool.write_cert("b.pem", &c2);
    let a1 = [
        "credential",
        "upload",
        "--tenant",
        &emu.tenant.domain,
        "--cert",
        &p1,
        "--yes",
    ];
    let a2 = [
        "credential",
        "upload",
        "--tenant",
        &emu.tenant.tenant_id,
        "--cert",
        &p2,
        "--yes",
    ];
    let (by_domain, by_id) = (tool.run_async(&a1), tool.run_async(&a2));
    let (o1, o2) = futures_util::join!(by_domain, by_id);
    assert_eq!(o1.status.code(), Some(0), "{}", stderr(&o1));
    assert_eq!(o2.status.code(), Some(0), "{}", stderr(&o2));
    let l = ledger_at(&tool.state_dir);
    let tenants = l["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "one tenant, one record: {l:#}");
    assert_eq!(tenants[0]["tenant_id"], emu.tenant.tenant_id);
    assert_eq!(tenants[0]["credentials"].as_array().unwrap().len(), 2);
    let locks: Vec<_> = std::fs::read_dir(tool.state_dir.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(locks.len(), 1, "one lock file: {locks:?}");
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 2, "{ks:#?}");
}

/// Defect 2: admin 1 waits at "Apply this change?" while admin 2 (another state dir) uploads
/// another certificate. Before, admin 1's PATCH was built from the read taken before the prompt
/// and erased admin 2's key. Now the tool reads again after the answer, shows what changed, asks
/// again, and keeps admin 2's key.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_added_while_the_prompt_is_open_is_kept() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let c1 = fresh_cert("admin1.contoso.com");
    let c2 = fresh_cert("admin2.contoso.com");
    let p1 = tool.write_cert("a1.pem", &c1);
    let p2 = tool.write_cert("a2.pem", &c2);
    let other = tool.dir.path().join("admin2-state");
    private_dir(&other);
    let admin2 = [
        "credential",
        "upload",
        "--tenant",
        &t,
        "--cert",
        &p2,
        "--yes",
    ];
    let o = with_prompt_open(
        &tool,
        &["credential", "upload", "--tenant", &t, "--cert", &p1],
        &other,
        &admin2,
    )
    .await;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("changed since"),
        "the difference is shown before asking again: {text}"
    );
    assert!(
        text.matches("Apply this change?").count() >= 2,
        "asked again: {text}"
    );
    let ks = keys(&emu.sp(SFB).await);
    let tps: Vec<String> = ks.iter().filter_map(thumb_of).collect();
    assert!(tps.contains(&c1.sha1_hex()), "{ks:#?}");
    assert!(
        tps.contains(&c2.sha1_hex()),
        "admin 2's key was erased: {ks:#?}"
    );
}

/// Runs `args` on a pseudo-terminal as admin 1; while its first "[y/N]" prompt is open, runs
/// `meanwhile` with `--yes` from another state dir as admin 2 (which must succeed); then answers
/// every prompt with "y". Returns admin 1's output (the terminal's text on stdout).
async fn with_prompt_open(
    tool: &Tool,
    args: &[&str],
    other_state: &Path,
    meanwhile: &[&str],
) -> std::process::Output {
    let marker = tool
        .dir
        .path()
        .join(format!("prompted-{}", uuid::Uuid::new_v4()));
    let go = tool.dir.path().join(format!("go-{}", uuid::Uuid::new_v4()));
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tty_confirm.py");
    let mut c = Command::new("python3");
    c.arg(driver)
        .arg(&marker)
        .arg(&go)
        .arg(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--client-secret-env", "HT_TEST_SECRET"])
        .args(args)
        .env("HYBRID_TRUST_CLOUD_FILE", &tool.cloud_file)
        .env("HYBRID_TRUST_STATE_DIR", &tool.state_dir)
        .env("HYBRID_TRUST_CLIENT_ID", &tool.client_id)
        .env("HT_TEST_SECRET", &tool.secret)
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env("NO_COLOR", "1")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(Stdio::null());
    let admin1 = tokio::task::spawn_blocking(move || c.output().expect("python3 runs"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "admin 1 never reached the prompt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let o = run_in_async(
        tool,
        other_state.to_path_buf(),
        meanwhile.iter().map(|s| s.to_string()).collect(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(&go, b"").unwrap();
    admin1.await.unwrap()
}

/// Defect 2, for service principal names: a name another admin adds while the prompt is open is
/// kept (the list is rebuilt from a read taken after the answer).
#[tokio::test(flavor = "multi_thread")]
async fn a_name_added_while_the_prompt_is_open_is_kept() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let other = tool.dir.path().join("admin2-state");
    private_dir(&other);
    let o = with_prompt_open(
        &tool,
        &[
            "spn",
            "add",
            "--tenant",
            &t,
            "--pool-fqdn",
            "webext1.contoso.com",
        ],
        &other,
        &[
            "spn",
            "add",
            "--tenant",
            &t,
            "--pool-fqdn",
            "webext2.contoso.com",
            "--yes",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{text}");
    let names = emu.sp(SFB).await["servicePrincipalNames"].clone();
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for fqdn in ["webext1.contoso.com", "webext2.contoso.com"] {
        assert!(
            names.contains(&format!("{SFB}/{fqdn}").as_str()),
            "{fqdn} is missing: {names:?}"
        );
    }
}

/// Defect 8: a state dir or ledger that others can write is refused, as ssh refuses a loose
/// `~/.ssh`: exit 2, the chmod to run, nothing changed. And a ledger whose stored certificate was
/// swapped (DER no longer matching the recorded thumbprint) is never uploaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_dir_others_can_write_is_refused_and_a_swapped_certificate_is_not_uploaded() {
    use std::os::unix::fs::PermissionsExt as _;
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
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--end",
            &end,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ledger_path = tenant_file(&tool.state_dir, &t);
    let before = std::fs::read(&ledger_path).unwrap();

    for (what, path, mode) in [
        ("state dir", tool.state_dir.clone(), 0o777),
        ("state dir", tool.state_dir.clone(), 0o770),
        // Per-tenant records (issue 19): their directory is what others must not write; a
        // record file itself is unreachable through a 0700 directory.
        (
            "ledger",
            tool.state_dir.join("ledger").join("tenants"),
            0o777,
        ),
    ] {
        let old = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [
            vec!["renew", "--tenant", t.as_str(), "--yes"],
            vec!["status", "--all"],
        ] {
            let o = tool.run_async(&args).await;
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{what} {mode:o} {args:?}: {err}");
            assert_eq!(
                err.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "{err}"
            );
            assert!(err.contains("chmod"), "{err}");
            assert!(o.stdout.is_empty());
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(old)).unwrap();
        assert_eq!(
            std::fs::read(&ledger_path).unwrap(),
            before,
            "nothing changed"
        );
    }
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1);

    // Someone who could write the ledger swapped in another certificate's DER.
    let evil = fresh_cert("evil.example.com");
    let mut l: Value = serde_json::from_slice(&before).unwrap();
    l["tenant"]["cert"]["der_base64"] = json!(evil.b64());
    std::fs::write(&ledger_path, serde_json::to_vec(&l).unwrap()).unwrap();
    std::fs::set_permissions(&ledger_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = tool.run_async(&["renew", "--tenant", &t, "--yes"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("thumbprint"), "{}", stderr(&o));
    let ks = keys(&emu.sp(SFB).await);
    assert!(
        ks.iter()
            .all(|k| thumb_of(k).as_deref() == Some(cert.sha1_hex().as_str())),
        "the swapped certificate was uploaded: {ks:#?}"
    );
}
