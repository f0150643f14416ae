//! Interoperability: Microsoft's MSAL for Python (from PyPI, installed by scripts/test.sh) gets a
//! token from the emulator as 00000004 with a certificate whose public key was PATCHed onto that
//! service principal, and is refused (AADSTS700027) for a certificate that was not and for an
//! assertion signed by the wrong private key.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use support::*;

/// The test venv's Python (scripts/test.sh exports HYBRID_TRUST_TEST_PYTHON).
pub fn python() -> String {
    if let Ok(p) = std::env::var("HYBRID_TRUST_TEST_PYTHON") {
        return p;
    }
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python");
    assert!(
        std::path::Path::new(local).exists(),
        "the Python test venv is missing: run scripts/test.sh (it installs msal, pyjwt, aiosmtpd)"
    );
    local.to_string()
}

fn msal(emu: &Emu, dir: &std::path::Path, cert: &TestCert, key_pem: &str, mode: &str) -> Value {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();
    let authority = format!("{}/{}", emu.cloud.login_url, emu.tenant.tenant_id);
    let scope = format!("{}/.default", emu.cloud.exchange_url);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.running.ca_pem()).unwrap();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/msal_token.py"
        ))
        .args([&authority, SFB])
        .arg(&cert_path)
        .arg(&key_path)
        .args([&cert.sha1_hex(), &scope])
        .arg(&ca)
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "msal script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_python_gets_a_token_only_with_the_uploaded_certificate() {
    let cert = fresh_cert("sfb.contoso.com");
    let stranger = fresh_cert("stranger.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();

    let r = msal(&emu, &d, &cert, &cert.key_pem, "sha1");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["claims"]["appid"], SFB);
    assert_eq!(r["claims"]["appidacr"], "2");
    assert_eq!(r["claims"]["tid"], emu.tenant.tenant_id);
    assert_eq!(r["claims"]["aud"], emu.cloud.exchange_url);

    let r = msal(&emu, &d, &cert, &cert.key_pem, "sha256");
    assert_eq!(r["ok"], true, "PS256 + x5t#S256: {r}");

    let r = msal(&emu, &d, &stranger, &stranger.key_pem, "sha1");
    assert_eq!(r["ok"], false);
    assert_eq!(r["error_codes"], json!([700027]), "{r}");
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains("The key was not found.")
    );

    // The uploaded certificate's thumbprint, but the stranger's private key.
    let r = msal(&emu, &d, &cert, &stranger.key_pem, "sha1");
    assert_eq!(r["error_codes"], json!([700027]), "{r}");
    assert!(
        r["error_description"]
            .as_str()
            .unwrap()
            .contains("verify the signature failed")
    );
}
