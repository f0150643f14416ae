//! `tenant discover` against the emulator (success and each way the download fails) and
//! `tenant metadata --file` on real Entra documents and made ones.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

fn meta(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/metadata")).join(name)
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .output()
        .unwrap()
}

/// Writes the emulator's cloud (optionally altered) as a cloud file.
fn cloud_file(emu: &Emu, dir: &Path, alter: impl FnOnce(&mut Value)) -> PathBuf {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let mut c = json!({"name": "emulator", "login_url": emu.cloud.login_url, "graph_url": emu.cloud.graph_url, "acs_url": emu.cloud.acs_url, "exchange_url": emu.cloud.exchange_url, "ca_file": ca});
    alter(&mut c);
    let p = dir.join("cloud.json");
    std::fs::write(&p, c.to_string()).unwrap();
    p
}

async fn discover(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// [`discover`] with a 3 s request timeout, so that retrying a refused connection gives up
/// within its budget (three timeouts) instead of the default three minutes' worth.
async fn discover_quick(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args(&args)
            .stdin(Stdio::null())
            .env_remove("HYBRID_TRUST_OUTPUT")
            .env_remove("HYBRID_TRUST_CLOUD_FILE")
            .env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "3")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_resolves_domain_and_guid_and_validates_acs_metadata() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cf = cloud_file(&emu, dir.path(), |_| {});
    for t in [emu.tenant.domain.clone(), emu.tenant.tenant_id.clone()] {
        let out = discover(vec![
            "--output".into(),
            "json".into(),
            "--cloud-file".into(),
            cf.display().to_string(),
            "tenant".into(),
            "discover".into(),
            t,
        ])
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["tenant_id"], emu.tenant.tenant_id);
        assert_eq!(
            v["metadata_url"],
            format!(
                "{}/{}/metadata/json/1",
                emu.cloud.acs_url, emu.tenant.tenant_id
            )
        );
        assert_eq!(v["kind"], "acs-metadata");
        assert_eq!(
            v["issuer"],
            format!(
                "00000001-0000-0000-c000-000000000000@{}",
                emu.tenant.tenant_id
            )
        );
        let k = &v["signing_keys"][0];
        assert!(
            k["thumbprint_sha1"].as_str().unwrap().len() == 40
                && k["subject"].is_string()
                && k["not_after"].is_string()
        );
        assert_eq!(v["findings"], json!([]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_way_the_download_fails_has_its_own_error() {
    let emu = Emu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = |cf: &Path| {
        vec![
            "--cloud-file".to_string(),
            cf.display().to_string(),
            "tenant".into(),
            "discover".into(),
            emu.tenant.domain.clone(),
        ]
    };
    let expect = |out: &Output, code: i32, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{want}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("error:") && l.contains(want)),
            "{want}: {err}"
        );
        assert!(err.lines().any(|l| l.starts_with("hint:")), "{err}");
    };
    // Unknown tenant.
    let cf = cloud_file(&emu, dir.path(), |_| {});
    let mut a = base(&cf);
    a[4] = "nosuch.onmicrosoft.com".into();
    expect(&discover_quick(a).await, 1, "does not exist");
    // Bad tenant text: usage error, no network.
    let mut a = base(&cf);
    a[4] = "not a tenant".into();
    expect(&discover_quick(a).await, 2, "is not a tenant");
    // TLS: the emulator's CA is not trusted.
    let cf = cloud_file(&emu, dir.path(), |c| {
        c.as_object_mut().unwrap().remove("ca_file");
    });
    expect(&discover_quick(base(&cf)).await, 1, "TLS handshake");
    // Connection refused.
    let cf = cloud_file(&emu, dir.path(), |c| {
        c["login_url"] = json!("https://127.0.0.1:9/login")
    });
    expect(&discover_quick(base(&cf)).await, 1, "cannot connect");
    // HTTP status: an ACS URL that does not exist.
    let cf = cloud_file(&emu, dir.path(), |c| {
        c["acs_url"] = json!(format!("{}/nosuch", emu.cloud.acs_url))
    });
    expect(&discover_quick(base(&cf)).await, 1, "answered HTTP 404");
    // Body: malformed JSON from the metadata URL (persistent, so retries do not hide it).
    let cf = cloud_file(&emu, dir.path(), |_| {});
    let rules =
        json!({"rules": [{"kind": "malformed", "path_contains": "/metadata/json/1", "times": 10}]});
    assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
    expect(
        &discover_quick(base(&cf)).await,
        1,
        "did not return a valid document",
    );
    // Transient 503s are retried (Retry-After) and the run succeeds.
    let rules =
        json!({"rules": [{"kind": "503", "path_contains": "/metadata/json/1", "times": 2}]});
    assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
    let out = discover_quick(base(&cf)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metadata_json(file: &str) -> (i32, Value) {
    let out = cli(&[
        "--output",
        "json",
        "tenant",
        "metadata",
        "--file",
        meta(file).to_str().unwrap(),
    ]);
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

#[test]
fn offline_validation_of_real_and_made_documents() {
    let (c, v) = metadata_json("entra-common-v2.0-openid-configuration.json");
    assert_eq!(
        (c, v["kind"].as_str(), v["tenant_id"].clone()),
        (0, Some("openid-configuration"), Value::Null),
        "{{tenantid}} is not a tenant"
    );
    assert_eq!(v["findings"][0]["code"], "tenant-independent");
    let (c, v) = metadata_json("entra-common-discovery-v2.0-keys.json");
    assert_eq!((c, v["kind"].as_str()), (0, Some("jwks")));
    let n = v["signing_keys"].as_array().unwrap().len();
    assert!(n >= 5, "{n}");
    // ACS and Entra share signing keys (docs/protocol.md §3.1): most carry the ACS subject.
    assert!(
        v["signing_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["subject"] == "CN=accounts.accesscontrol.windows.net")
    );
    let (_, v) = metadata_json("entra-organizations-discovery-v2.0-keys.json");
    assert_eq!(v["kind"], "jwks");
    // Lenient about case; realm from `realm` or from `issuer` after '@'.
    let (c, v) = metadata_json("acs-lenient.json");
    assert_eq!(
        (c, v["kind"].as_str(), v["tenant_id"].as_str()),
        (
            0,
            Some("acs-metadata"),
            Some("0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f")
        )
    );
    assert_eq!(v["signing_keys"].as_array().unwrap().len(), 1);
    let (c, v) = metadata_json("sharepoint-style.json");
    assert_eq!(v["tenant_id"], "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f");
    assert_eq!(
        (c, v["findings"][0]["code"].as_str()),
        (1, Some("no-oauth2-endpoint"))
    );
}

#[test]
fn truncated_foreign_and_html_documents_exit_2() {
    for f in ["truncated.json", "foreign.json", "html.json", "nosuch.json"] {
        let out = cli(&["tenant", "metadata", "--file", meta(f).to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{f}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{f}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// Issue 28, item 4: `tenant add --notify` recorded an address no mail channel can deliver to
/// (a quoted local part: Graph refuses it on every run, and that tenant's reminders reached
/// nobody). It is checked with the channels' own parser: exit 2, one error line with the fix,
/// nothing written; a plain address is recorded.
#[test]
fn tenant_add_refuses_a_recipient_no_channel_can_deliver_to() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let add = |notify: &str| {
        Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args([
                "tenant",
                "add",
                "fabrikam.com",
                "--cert",
                cert,
                "--notify",
                notify,
            ])
            .env("HYBRID_TRUST_STATE_DIR", &state)
            .env_remove("HYBRID_TRUST_OUTPUT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for bad in [
        r#""<script>alert(9)</script>"@fabrikam.com"#,
        "Ops <ops@fabrikam.com>",
        "ops@",
    ] {
        let o = add(bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(
            errors[0].contains("is not an address mail can be delivered to")
                && err.contains("give a plain address such as uc-admins@fabrikam.com"),
            "{err}"
        );
        assert!(
            hybrid_trust::ledger::LedgerStore::in_dir(&state)
                .load()
                .unwrap()
                .tenants
                .is_empty(),
            "nothing written"
        );
    }
    let o = add("uc-admins@fabrikam.com");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ledger = hybrid_trust::ledger::LedgerStore::in_dir(&state)
        .load()
        .unwrap();
    assert_eq!(ledger.tenants[0].notify, ["uc-admins@fabrikam.com"]);
}
