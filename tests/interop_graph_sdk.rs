//! Interoperability: Microsoft's Graph SDK for Python (`msgraph-sdk`, with `azure-identity` for
//! the admin's token) finds the 00000004 service principal with azure-cli's `any()` look-up,
//! reads its keyCredentials, PATCHes the kept list plus a new key and reads it back; then
//! azure-identity and MSAL get tokens as 00000004 with the new certificate in both assertion
//! forms (RS256 + `x5t`, PS256 + `x5t#S256`). All from PyPI, pinned in
//! scripts/test-requirements.txt; see tests/interop/graph_sdk.py for how each client is pointed
//! at the emulator and its CA.

mod support;

use m365_emulator::KeyResend;
use serde_json::{Value, json};
use std::process::Command;
use support::*;

/// The test venv's Python (scripts/test.sh exports HYBRID_TRUST_TEST_PYTHON).
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

async fn run_sdk(emu: &Emu, new: &TestCert) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let cert = dir.path().join("new.pem");
    let key = dir.path().join("new.key");
    std::fs::write(&cert, &new.cert_pem).unwrap();
    std::fs::write(&key, &new.key_pem).unwrap();
    let cfg = json!({
        "graph_url": emu.cloud.graph_url,
        "login_url": emu.cloud.login_url,
        "exchange_url": emu.cloud.exchange_url,
        "tenant_id": emu.tenant.tenant_id,
        "client_id": emu.tenant.admin.client_id,
        "ca_file": ca,
        "app_id": SFB,
        "new_cert_pem": cert,
        "new_key_pem": key,
    });
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/graph_sdk.py"
    ))
    .arg(&cfg_path)
    .env("HT_ADMIN_SECRET", &emu.tenant.admin.client_secret)
    // Only what the script is told: no CA bundle or proxy from the environment.
    .env_remove("REQUESTS_CA_BUNDLE")
    .env_remove("SSL_CERT_FILE")
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "graph_sdk.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "graph_sdk.py printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check_token(r: &Value, form: &str, emu: &Emu) {
    assert_eq!(r["ok"], true, "{form}: {r}");
    assert_eq!(r["claims"]["appid"], SFB, "{form}");
    assert_eq!(r["claims"]["appidacr"], "2", "{form}: a certificate");
    assert_eq!(r["claims"]["tid"], emu.tenant.tenant_id, "{form}");
}

async fn sdk_round_trip(mode: KeyResend) {
    let old = fresh_cert("old.sfb.contoso.com");
    let new = fresh_cert("new.sfb.contoso.com");
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = mode;
    let emu = Emu::start_with(cfg).await;
    // The key already there, put by another client with every property.
    let mut existing = key_body(&old);
    existing["keyId"] = json!(uuid::Uuid::new_v4().to_string());
    existing["displayName"] = json!("put there earlier");
    assert_eq!(emu.patch_keys(SFB, json!([existing])).await.0, 204);
    let before = emu.sp(SFB).await;

    let r = run_sdk(&emu, &new).await;
    assert!(
        r.get("graph_error").is_none(),
        "{mode}: the SDK failed: {r}"
    );
    assert_eq!(
        r["found"],
        json!([{"id": before["id"], "appId": SFB}]),
        "{mode}"
    );
    assert_eq!(r["read"].as_array().unwrap().len(), 1, "{mode}");
    assert_eq!(
        r["read"][0]["key"],
        old.b64(),
        "{mode}: key read with $select"
    );
    assert_eq!(r["patched"], true, "{mode}");
    let back = r["read_back"].as_array().unwrap();
    assert_eq!(back.len(), 2, "{mode}: {r}");
    // The kept key is unchanged; the new one has what Graph fills in.
    assert_eq!(
        back[0]["keyId"], before["keyCredentials"][0]["keyId"],
        "{mode}"
    );
    assert_eq!(back[0]["displayName"], "put there earlier", "{mode}");
    assert_eq!(back[0]["key"], old.b64(), "{mode}");
    assert_eq!(back[1]["key"], new.b64(), "{mode}");
    assert_eq!(back[1]["displayName"], "CN=new.sfb.contoso.com", "{mode}");
    assert_eq!(back[1]["customKeyIdentifier"], new.sha1_hex(), "{mode}");
    assert!(
        r["plain_get_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key"].is_null()),
        "{mode}: key null without $select: {r}"
    );
    // And the emulator's own record agrees with what the SDK read.
    let after = emu.sp(SFB).await;
    assert_eq!(
        after["keyCredentials"][0], before["keyCredentials"][0],
        "{mode}"
    );

    // Tokens as 00000004 with the new certificate.
    // MSAL for Python writes the thumbprints base64url *with* `=` padding; Entra (and the
    // emulator) take them either way.
    let thumb = |h: &Value, name: &str| {
        h[name]
            .as_str()
            .map(|t| t.trim_end_matches('=').to_string())
    };
    let ai = &r["azure_identity"];
    check_token(ai, "azure-identity", &emu);
    let h = &ai["assertion_headers"][0];
    assert_eq!(
        (h["alg"].as_str(), thumb(h, "x5t")),
        (Some("RS256"), Some(new.x5t())),
        "{ai}"
    );
    let rs = &r["msal_rs256_x5t"];
    check_token(rs, "msal RS256", &emu);
    let h = &rs["assertion_headers"][0];
    assert_eq!(
        (h["alg"].as_str(), thumb(h, "x5t")),
        (Some("RS256"), Some(new.x5t())),
        "{rs}"
    );
    let ps = &r["msal_ps256_x5t_s256"];
    check_token(ps, "msal PS256", &emu);
    let h = &ps["assertion_headers"][0];
    assert_eq!(h["alg"], "PS256", "{ps}");
    assert_eq!(thumb(h, "x5t#S256"), Some(new.x5t_s256()), "{ps}");
    assert!(h.get("x5t").is_none(), "{ps}");
}

#[tokio::test(flavor = "multi_thread")]
async fn msgraph_sdk_and_azure_identity_drive_the_emulator() {
    sdk_round_trip(KeyResend::Full).await;
}

/// The SDK re-sends every property it read, in its own notation (Python datetimes, Base64 of the
/// bytes it decoded): under `unchanged` that must still count as unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn msgraph_sdk_resends_retained_keys_unchanged() {
    sdk_round_trip(KeyResend::Unchanged).await;
}
