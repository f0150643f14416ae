//! Who else holds a key to 00000004 (issue 17): `credential list` marks the keys this host's
//! ledger did not put there, `credential prune --foreign|--expired` removes them with plan,
//! confirmation, audit and read-back and never a key of the certificate the Front Ends use; and a
//! tenant without the service principal, or with it disabled, gets a clear error that says what
//! to do (`credential upload --create-service-principal` creates it).

mod support;

use chrono::{TimeDelta, Utc};
use m365_emulator::{KeyResend, Seed};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

fn has(ks: &[Value], c: &TestCert) -> bool {
    ks.iter().any(|k| k["key"] == c.b64())
}

async fn upload(tool: &Tool, t: &str, p: &str) {
    let o = tool
        .run_async(&["credential", "upload", "--tenant", t, "--cert", p, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_keys_are_listed_and_pruned_never_the_front_ends_key() {
    for mode in [KeyResend::Full, KeyResend::Minimal] {
        let mut cfg = quiet_tls();
        cfg.behaviour.key_resend = mode;
        let emu = Emu::start_with(cfg).await;
        let tool = Tool::for_emulator(&emu);
        let t = emu.tenant.domain.clone();
        let ours = fresh_cert("sfb.contoso.com");
        let p = tool.write_cert("ours.pem", &ours);

        // Prune refuses a tenant this host knows nothing about: every key would be foreign.
        let o = tool
            .run_async(&["credential", "prune", "--tenant", &t, "--foreign", "--yes"])
            .await;
        assert_eq!(o.status.code(), Some(2), "{mode}: {}", stderr(&o));
        assert!(stderr(&o).contains("every key would count as foreign"));

        upload(&tool, &t, &p).await;
        // Someone else's key, added behind the tool's back, and an expired one.
        let theirs = fresh_cert("attacker.example");
        let now = Utc::now();
        let old = make_cert(
            "old.example",
            now - TimeDelta::days(400),
            now - TimeDelta::days(2),
        );
        let path = format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials");
        let mut planted: Vec<Value> =
            emu.control_get("state").await["tenants"][0]["service_principals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|sp| sp["app_id"] == SFB)
                .unwrap()["key_credentials"]
                .as_array()
                .unwrap()
                .clone();
        for c in [&theirs, &old] {
            planted.push(json!({"key_id": uuid::Uuid::new_v4(), "custom_key_identifier": c.sha1_hex(), "display_name": "planted", "start": c.not_before, "end": c.not_after, "type": "AsymmetricX509Cert", "usage": "Verify", "key": c.b64()}));
        }
        assert_eq!(emu.control(Method::PUT, &path, json!(planted)).await, 204);

        // credential list: JSON `foreign`, and the text says so.
        let l = json_out(
            &tool
                .run_async(&["credential", "list", "--tenant", &t])
                .await,
        );
        let foreign: Vec<(String, bool)> = l["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["thumbprint_sha1"].as_str().unwrap().to_string(),
                    c["foreign"].as_bool().unwrap(),
                )
            })
            .collect();
        assert!(foreign.contains(&(ours.sha1_hex(), false)), "{l}");
        assert!(foreign.contains(&(theirs.sha1_hex(), true)), "{l}");
        assert!(foreign.contains(&(old.sha1_hex(), true)), "{l}");
        let mut cmd = tool.command();
        cmd.args(["--client-secret-env", "HT_TEST_SECRET"]).args([
            "credential",
            "list",
            "--tenant",
            &t,
        ]);
        let text = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert_eq!(text.matches("FOREIGN").count(), 2, "{text}");

        // status --live names them; --check turns WARNING on them.
        let st = json_out(&tool.run_async(&["status", "--tenant", &t, "--live"]).await);
        let f = st["tenants"][0]["foreign"].as_array().unwrap().clone();
        assert_eq!(f.len(), 2, "{st}");
        assert!(f.iter().any(|k| k["thumbprint_sha1"] == theirs.sha1_hex()
            && k["display_name"] == "planted"
            && k["end"].is_string()));
        let o = tool
            .run_async(&["status", "--tenant", &t, "--live", "--check"])
            .await;
        assert_eq!(
            o.status.code(),
            Some(1),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("2 foreign key(s)"));

        // --expired --dry-run: the plan, nothing changed.
        let o = tool
            .run_async(&[
                "--dry-run",
                "credential",
                "prune",
                "--tenant",
                &t,
                "--expired",
            ])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert_eq!(
            json_out(&o)["results"][0]["removed"],
            json!([old.sha1_hex()])
        );
        assert_eq!(keys(&emu.sp(SFB).await).len(), 3);

        // Not confirmed (no --yes, and no terminal to ask on): exit 2, nothing changed.
        let o = tool
            .run_async(&["credential", "prune", "--tenant", &t, "--foreign"])
            .await;
        assert_eq!(o.status.code(), Some(2), "{mode}: {}", stderr(&o));
        assert!(stderr(&o).contains("no terminal to confirm on"));
        assert_eq!(keys(&emu.sp(SFB).await).len(), 3, "{mode}: not confirmed");

        // --foreign --yes: theirs and the old one go, ours stays with a valid window.
        let o = tool
            .run_async(&["credential", "prune", "--tenant", &t, "--foreign", "--yes"])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let r = &json_out(&o)["results"][0];
        assert_eq!(r["action"], "applied", "{r}");
        let ks = keys(&emu.sp(SFB).await);
        assert_eq!(ks.len(), 1, "{mode}: {ks:?}");
        assert!(has(&ks, &ours));
        let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap();
        assert!(audit.contains("credential prune --foreign"), "audited");
        let ledger = read_ledger(&tool.state_dir).to_string();
        assert!(ledger.contains("credential prune"), "in the history");
        // Nothing foreign left: nothing changes.
        let o = tool
            .run_async(&["credential", "prune", "--tenant", &t, "--foreign", "--yes"])
            .await;
        assert_eq!(json_out(&o)["results"][0]["action"], "unchanged");
        let o = tool
            .run_async(&["status", "--tenant", &t, "--live", "--check"])
            .await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stdout)
        );

        // The Front Ends' certificate is never pruned, even when its key is not on record for
        // this application: the ledger's `cert` protects it.
        let mut v = read_ledger(&tool.state_dir);
        v["tenants"][0]["credentials"] = json!([]);
        write_ledger(&tool.state_dir, &v);
        let o = tool
            .run_async(&["credential", "prune", "--tenant", &t, "--foreign", "--yes"])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert!(has(&keys(&emu.sp(SFB).await), &ours), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_service_principal_is_explained_and_created_on_request() {
    let mut cfg = quiet_tls();
    cfg.seed_tenants = Seed {
        without_service_principals: vec![SFB.to_string()],
        ..Seed::default()
    };
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let c = fresh_cert("sfb.contoso.com");
    let p = tool.write_cert("c.pem", &c);
    let sp_exists = || async {
        let (s, _, v) = emu
            .graph(
                Method::GET,
                &format!("servicePrincipals?$filter=appId eq '{SFB}'"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        !v["value"].as_array().unwrap().is_empty()
    };

    // Without the flag: one error line that says how to create it.
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().filter(|l| l.starts_with("error:")).count(), 1);
    assert!(
        e.contains("no service principal for application 00000004"),
        "{e}"
    );
    assert!(e.contains("--create-service-principal"), "{e}");
    assert!(!sp_exists().await);

    // A dry run shows the creation and the upload, and changes nothing.
    let o = tool
        .run_async(&[
            "--dry-run",
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--create-service-principal",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("it would be created (dry run)"));
    assert_eq!(json_out(&o)["results"][0]["action"], "dry-run");
    assert!(!sp_exists().await);

    // Confirmed: created, then the key uploaded; the creation is audited.
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--create-service-principal",
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(sp_exists().await);
    assert!(has(&keys(&emu.sp(SFB).await), &c));
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"servicePrincipal.create\""),
        "{audit}"
    );
}

/// Issue 24, item 10: `--dry-run --create-service-principal` on a terminal asks nothing (it
/// asked "Apply this change? [y/N]" and ignored the answer). Run on a pseudo-terminal by
/// `tests/interop/tty_confirm.py`, which would answer "y" to any prompt and leaves a marker file
/// when one opens.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_creating_a_service_principal_asks_nothing_on_a_terminal() {
    let mut cfg = quiet_tls();
    cfg.seed_tenants = Seed {
        without_service_principals: vec![SFB.to_string()],
        ..Seed::default()
    };
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let p = tool.write_cert("c.pem", &fresh_cert("sfb.contoso.com"));
    let marker = tool.dir.path().join("prompted");
    let go = tool.dir.path().join("go");
    std::fs::write(&go, b"").unwrap();
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tty_confirm.py");
    let mut c = std::process::Command::new("python3");
    c.arg(driver)
        .arg(&marker)
        .arg(&go)
        .arg(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--client-secret-env", "HT_TEST_SECRET", "--dry-run"])
        .args(["credential", "upload", "--tenant", &t, "--cert", &p])
        .arg("--create-service-principal");
    for (k, v) in tool.command().get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("NO_COLOR", "1").stdin(std::process::Stdio::null());
    let o = tokio::task::spawn_blocking(move || c.output().expect("python3 runs"))
        .await
        .unwrap();
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{screen}");
    assert!(screen.contains("it would be created (dry run)"), "{screen}");
    assert!(!screen.contains("[y/N]"), "a dry run asked: {screen}");
    assert!(!marker.exists(), "a prompt was opened: {screen}");
    let (s, _, v) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals?$filter=appId eq '{SFB}'"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(v["value"].as_array().unwrap().is_empty(), "nothing created");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_a_disabled_service_principal_with_entras_code() {
    let mut cfg = quiet_tls();
    cfg.seed_tenants = Seed {
        disabled_service_principals: vec![SFB.to_string()],
        ..Seed::default()
    };
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let c = make_cert_with_key(
        "contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
        kp,
    );
    let p = tool.dir.path().join("oauth.pem");
    std::fs::write(&p, format!("{}{}", c.key_pem, c.cert_pem)).unwrap();
    let p = p.display().to_string();
    upload(&tool, &t, &p).await;
    let o = tool
        .run_async(&["verify", "--tenant", &t, "--cert", &p])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("AADSTS7000112"), "{e}");
    assert!(e.contains("disabled"), "{e}");
    assert!(e.contains("Enabled for users to sign-in"), "{e}");
    assert_eq!(json_out(&o)["error_code"], "AADSTS7000112");
}
