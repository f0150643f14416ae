//! Interoperability (issue 24, item 9): Microsoft's async azure-identity for Python
//! (`azure.identity.aio.CertificateCredential`, pinned in scripts/test-requirements.txt) gets a
//! token as 00000004 from the emulator. Its client assertion is built with
//! `base64.urlsafe_b64encode`, padding kept, PS256 with `x5t#S256`: Entra accepts it
//! (docs/protocol.md §5.7), so the emulator must too. See tests/interop/aio_certificate.py.

mod support;

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
        "the Python test venv is missing: run scripts/test.sh (it installs azure-identity)"
    );
    local.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn async_azure_identity_gets_a_token_with_its_padded_ps256_assertion() {
    let cert = fresh_cert("sfb.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key-and-cert.pem");
    std::fs::write(&pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let scope = format!("{}/.default", emu.cloud.exchange_url);
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/aio_certificate.py"
    ))
    .args([&emu.cloud.login_url, &emu.tenant.tenant_id, SFB])
    .arg(&pem)
    .arg(&scope)
    .arg(&ca)
    .env_remove("REQUESTS_CA_BUNDLE")
    .env_remove("SSL_CERT_FILE")
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aio_certificate.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    // The form this test is about was sent: padded segments, PS256, x5t#S256.
    let assertion = r["assertions"][0].as_str().expect("an assertion was sent");
    assert!(
        assertion.split('.').any(|s| s.ends_with('=')),
        "padded: {assertion}"
    );
    assert_eq!(r["headers"][0]["alg"], "PS256", "{r}");
    assert!(r["headers"][0].get("x5t#S256").is_some(), "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["claims"]["appid"], SFB);
    assert_eq!(r["claims"]["appidacr"], "2", "a certificate");
    assert_eq!(r["claims"]["tid"], emu.tenant.tenant_id);
    assert_eq!(r["claims"]["aud"], emu.cloud.exchange_url);
}
