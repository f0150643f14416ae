//! Microsoft's Graph SDK for Python (msgraph-sdk) against the emulator's `/applications` and
//! app management policy (issue 27): tests/interop/exchange_app_sdk.py creates the Exchange
//! Server hybrid application, finds it by display name, PATCHes its keyCredentials (the kept key
//! re-sent as read, `key` null), PATCHes and reads the default policy, and meets the refusal of a
//! key longer than the policy allows. Python: `HYBRID_TRUST_TEST_PYTHON` (scripts/test.sh).

mod support;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;
use support::*;

fn python() -> String {
    if let Ok(p) = std::env::var("HYBRID_TRUST_TEST_PYTHON") {
        return p;
    }
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python");
    assert!(
        std::path::Path::new(local).exists(),
        "the Python test venv is missing: run scripts/test.sh (it installs msgraph-sdk, azure-identity, msal)"
    );
    local.to_string()
}

#[tokio::test]
async fn msgraph_sdk_keeps_the_exchange_application_and_reads_the_policy() {
    let emu = Emu::start().await;
    // The admin may change app management policies for this test.
    let path = format!(
        "tenants/{}/servicePrincipals/{}/graphRoles",
        emu.tenant.tenant_id, emu.tenant.admin.client_id
    );
    let roles = json!({"roles": ["Application.ReadWrite.All", "Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"]});
    assert_eq!(emu.control(Method::PUT, &path, roles).await, 204);
    let (a, b) = (fresh_cert("a.auth"), fresh_cert("b.auth"));
    let now = Utc::now();
    let long = make_cert(
        "meac",
        now - TimeDelta::days(1),
        now + TimeDelta::days(5 * 365),
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let name = "ExchangeServerApp-5c1a3f7e-2b4d-4e8f-9a0b-1c2d3e4f5a6b";
    let cfg = json!({
        "graph_url": emu.cloud.graph_url,
        "login_url": emu.cloud.login_url,
        "tenant_id": emu.tenant.tenant_id,
        "client_id": emu.tenant.admin.client_id,
        "ca_file": write("ca.pem", &emu.running.ca_pem()),
        "display_name": name,
        "cert_a_pem": write("a.pem", &a.cert_pem),
        "cert_b_pem": write("b.pem", &b.cert_pem),
        "cert_long_pem": write("long.pem", &long.cert_pem),
    });
    let cfg_path = write("config.json", &cfg.to_string());
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/exchange_app_sdk.py"
    ))
    .arg(&cfg_path)
    .env("HT_ADMIN_SECRET", &emu.tenant.admin.client_secret)
    .env_remove("REQUESTS_CA_BUNDLE")
    .env_remove("SSL_CERT_FILE")
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "exchange_app_sdk.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(r.get("error").is_none(), "the SDK failed: {r}");
    assert_eq!(r["created"]["name"], name);
    assert_eq!(
        r["found"],
        json!([{"id": r["created"]["id"], "appId": r["created"]["appId"]}])
    );
    assert_eq!(r["listed"][0]["key"], Value::Null, "a collection read: {r}");
    let back = r["read_back"].as_array().unwrap();
    assert_eq!(back.len(), 2, "{r}");
    assert_eq!(back[0]["keyId"], r["listed"][0]["keyId"], "the kept key");
    assert_eq!(back[0]["key"], a.b64(), "kept with its certificate");
    assert_eq!(back[1]["key"], b.b64());
    assert_eq!(
        r["policy"],
        json!({"id": "00000000-0000-0000-0000-000000000000", "isEnabled": true,
            "restrictionType": "asymmetricKeyLifetime", "maxLifetimeDays": 365, "state": "enabled"})
    );
    assert_eq!(r["refused"]["status"], 400, "{r}");
    assert_eq!(
        r["refused"]["code"],
        "CredentialInvalidLifetimeAsPerAppPolicy"
    );
    assert_eq!(
        r["refused"]["message"],
        "Credential lifetime exceeds the max value allowed as per assigned policy '00000000-0000-0000-0000-000000000000'."
    );
}
