//! `verify` against the emulator: the whole matrix (uploaded, not uploaded, expired key, wrong
//! key, no key, wrong tenant, skewed clock), and PyJWT accepting the tool's assertions.

mod support;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use std::process::Command;
use support::*;

/// A PEM with the certificate and its private key (or another key).
fn pem_with_key(tool: &Tool, name: &str, cert: &TestCert, key_of: &TestCert) -> String {
    let p = tool.dir.path().join(name);
    std::fs::write(&p, format!("{}{}", key_of.key_pem, cert.cert_pem)).unwrap();
    p.display().to_string()
}

async fn verify(tool: &Tool, tenant: &str, cert: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", "--tenant", tenant, "--cert", cert];
    args.extend_from_slice(extra);
    tool.run_async(&args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_matrix() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let cert = fresh_cert("sfb.contoso.com");
    let stranger = fresh_cert("stranger.contoso.com");
    let good = pem_with_key(&tool, "good.pem", &cert, &cert);

    // Not uploaded yet: AADSTS700027 "key was not found", explained.
    let o = verify(&tool, &t, &good, &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_code"], "AADSTS700027");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .contains("not a key credential")
    );
    assert!(v["fix"].as_str().unwrap().contains("credential upload"));
    assert!(v["correlation_id"].is_string());
    let e = stderr(&o);
    let error_line = e.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        error_line.contains("AADSTS700027") && error_line.contains("correlation id"),
        "{e}"
    );
    assert!(
        e.contains("is NOT a key of 00000004"),
        "the listing check says why: {e}"
    );

    // Uploaded: a token for Exchange Online as 00000004, verified against the JWKS.
    let cer = tool.write_cert("c.pem", &cert);
    assert_eq!(
        tool.run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &cer,
            "--yes"
        ])
        .await
        .status
        .code(),
        Some(0)
    );
    for alg in ["rs256", "ps256"] {
        let o = verify(&tool, &t, &good, &["--assertion-alg", alg]).await;
        assert_eq!(o.status.code(), Some(0), "{alg}: {}", stderr(&o));
        let v = json_out(&o);
        assert_eq!(v["ok"], true);
        assert_eq!(v["token"]["appid"], SFB);
        assert_eq!(v["token"]["appidacr"], "2");
        assert_eq!(v["token"]["tid"], emu.tenant.tenant_id);
        assert_eq!(v["token"]["aud"], emu.cloud.exchange_url);
        assert_eq!(v["signature_verified"], true);
        assert!(v["clock_skew_secs"].as_i64().unwrap().abs() < 5);
        // The admin identity is at hand, so the listing was checked too.
        assert_eq!(v["listing"]["present"], true, "{v}");
        assert_eq!(v["listing"]["in_window"], true);
        // Microsoft's dates that bear on what was proved (issue 18), on stderr; not the one
        // about reminder email.
        let e = stderr(&o);
        assert!(
            e.contains("advisory: 2027-04-01")
                && e.contains("Get-OrganizationConfig | Format-List Ews*"),
            "{e}"
        );
        assert!(!e.contains("SMTP AUTH"), "{e}");
    }

    // The certificate with someone else's private key: caught before any request.
    let wrong = pem_with_key(&tool, "wrong.pem", &cert, &stranger);
    let o = verify(&tool, &t, &wrong, &[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not belong"));
    // No private key at all.
    let o = verify(&tool, &t, &cer, &[]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no private key"));
    // Wrong tenant.
    let o = verify(&tool, "nosuch.onmicrosoft.com", &good, &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_out(&o)["error_code"], "AADSTS90002");

    // Entra's clock an hour ahead: AADSTS700024 with both times.
    assert_eq!(
        emu.control(Method::POST, "clock", json!({"offset_secs": 3600}))
            .await,
        200
    );
    let o = verify(&tool, &t, &good, &[]).await;
    assert_eq!(o.status.code(), Some(1));
    let v = json_out(&o);
    assert_eq!(v["error_code"], "AADSTS700024");
    assert!(
        v["cause"].as_str().unwrap().contains("this machine:")
            && v["cause"].as_str().unwrap().contains("Entra ID:"),
        "{v}"
    );
    assert_eq!(
        emu.control(Method::POST, "clock", json!({"offset_secs": 0}))
            .await,
        200
    );

    // The key credential expired (planted: Graph would not store it).
    let now = Utc::now();
    let planted = json!([{"key_id": uuid::Uuid::new_v4(), "custom_key_identifier": null, "display_name": "old", "start": now - TimeDelta::days(400), "end": now - TimeDelta::days(1), "type": "AsymmetricX509Cert", "usage": "Verify", "key": cert.b64()}]);
    assert_eq!(
        emu.control(
            Method::PUT,
            &format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials"),
            planted
        )
        .await,
        204
    );
    let o = verify(&tool, &t, &good, &[]).await;
    let v = json_out(&o);
    assert_eq!(
        (o.status.code(), v["error_code"].as_str()),
        (Some(1), Some("AADSTS700027"))
    );
    assert!(v["cause"].as_str().unwrap().contains("expired"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pyjwt_accepts_the_tools_assertions() {
    let python = std::env::var("HYBRID_TRUST_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python").to_string()
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "the Python test venv is missing: run scripts/test.sh"
    );
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = fresh_cert("sfb.contoso.com");
    let good = pem_with_key(&tool, "good.pem", &cert, &cert);
    let cer = tool.write_cert("c.pem", &cert);
    for alg in ["rs256", "ps256"] {
        let o = verify(
            &tool,
            &emu.tenant.tenant_id,
            &good,
            &["--print-assertion", "--assertion-alg", alg],
        )
        .await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json_out(&o);
        let (assertion, aud) = (
            v["assertion"].as_str().unwrap().to_string(),
            v["token_url"].as_str().unwrap().to_string(),
        );
        let out = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/pyjwt_check.py"
            ))
            .args([&assertion, &cer, &aud])
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(r["ok"], true, "{alg}: {r}");
        assert_eq!(r["x5t_matches"], true);
        assert_eq!(r["header"]["alg"], alg.to_uppercase());
        let c = &r["claims"];
        assert_eq!(
            (c["iss"].as_str(), c["sub"].as_str()),
            (Some(SFB), Some(SFB))
        );
        assert!(c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap() <= 600);
        assert!(c["jti"].as_str().unwrap().len() >= 32);
        // And the emulator accepts the same assertion.
        assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
        let (s, b) = emu
            .post_form(
                &aud,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", SFB),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", &format!("{}/.default", emu.cloud.exchange_url)),
                ],
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
}
