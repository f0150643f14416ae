//! End-to-end tests of the emulated Entra ID over HTTPS: discovery, JWKS, ACS metadata, the token
//! endpoint's client-secret and client-assertion rules, and the device code flow.

mod support;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn code(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn discovery_by_domain_and_guid_names_the_tenant_guid() {
    let emu = Emu::start().await;
    for name in [
        emu.tenant.domain.clone(),
        emu.tenant.tenant_id.clone(),
        emu.tenant.domain.to_uppercase(),
    ] {
        let d: Value = emu
            .client
            .get(format!(
                "{}/{name}/v2.0/.well-known/openid-configuration",
                emu.cloud.login_url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            d["issuer"],
            format!("{}/{}/v2.0", emu.cloud.login_url, emu.tenant.tenant_id)
        );
        for k in [
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "device_authorization_endpoint",
        ] {
            assert!(
                d[k].as_str().unwrap().starts_with(&emu.cloud.login_url),
                "{k}"
            );
        }
        assert!(
            d["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt"))
        );
    }
}

#[tokio::test]
async fn unknown_tenant_gets_aadsts90002_in_entra_error_shape_with_echoed_correlation_id() {
    let emu = Emu::start().await;
    let cid = "8a4b1a4e-5c43-4e1b-9d3c-7f6a0e2b1c11";
    let r = emu
        .client
        .get(format!(
            "{}/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration",
            emu.cloud.login_url
        ))
        .header("client-request-id", cid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request");
    assert_eq!(code(&b), 90002);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002: Tenant 'nosuch.onmicrosoft.com' not found")
    );
    assert_eq!(b["correlation_id"], cid);
    for k in ["trace_id", "timestamp", "error_uri"] {
        assert!(b[k].is_string(), "{k}");
    }
    let (s, b) = emu
        .post_form(
            &emu.token_url("nosuch.onmicrosoft.com"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!((s.as_u16(), code(&b)), (400, 90002));
}

#[tokio::test]
async fn jwks_keys_have_kid_equal_to_sha1_of_x5c() {
    use base64::Engine as _;
    use sha1::Digest as _;
    let emu = Emu::start().await;
    let j: Value = emu
        .client
        .get(format!(
            "{}/{}/discovery/v2.0/keys",
            emu.cloud.login_url, emu.tenant.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = &j["keys"][0];
    let der = base64::engine::general_purpose::STANDARD
        .decode(k["x5c"][0].as_str().unwrap())
        .unwrap();
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der));
    assert_eq!(k["x5t"], x5t);
    assert_eq!(k["kid"], x5t);
    assert_eq!(k["kty"], "RSA");
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(n.len(), 256, "2048-bit modulus without a leading zero");
}

#[tokio::test]
async fn acs_metadata_has_realm_issuer_signing_key_and_oauth2_endpoint() {
    let emu = Emu::start().await;
    let m: Value = emu
        .client
        .get(format!(
            "{}/{}/metadata/json/1",
            emu.cloud.acs_url, emu.tenant.domain
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = &emu.tenant.tenant_id;
    assert_eq!(m["realm"], tid.as_str());
    assert_eq!(
        m["issuer"],
        format!("00000001-0000-0000-c000-000000000000@{tid}")
    );
    assert_eq!(m["keys"][0]["usage"], "signing");
    assert_eq!(m["keys"][0]["keyValue"]["type"], "x509Certificate");
    assert!(
        m["keys"][0]["keyValue"]["value"]
            .as_str()
            .unwrap()
            .starts_with("MII")
    );
    assert_eq!(m["endpoints"][0]["protocol"], "OAuth2");
    let r = emu
        .client
        .get(format!(
            "{}/nosuch.example/metadata/json/1",
            emu.cloud.acs_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn client_secret_grant_v2_and_v1_and_their_errors() {
    let emu = Emu::start().await;
    let t = emu.tenant.clone();
    let url = emu.token_url(&t.domain);
    let scope = format!("{}/.default", emu.cloud.graph_url);
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", t.admin.client_id.as_str()),
    ];
    let (s, b) = emu
        .post_form(
            &url,
            &[
                base[0],
                base[1],
                ("client_secret", &t.admin.client_secret),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "Bearer");
    assert!(b["expires_in"].is_number());
    let c = decode_claims(b["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], emu.cloud.graph_url);
    assert_eq!(c["tid"], t.tenant_id);
    assert_eq!(c["appid"], t.admin.client_id);
    assert_eq!(c["appidacr"], "1");
    assert_eq!(
        c["roles"],
        // Policy.Read.All: reading the app management policies' key-lifetime caps (issue 27).
        json!(["Application.ReadWrite.All", "Mail.Send", "Policy.Read.All"])
    );
    assert_eq!(
        c["iss"],
        format!("https://sts.windows.net/{}/", t.tenant_id)
    );

    // v1 with `resource`: numbers as strings.
    let v1 = format!("{}/{}/oauth2/token", emu.cloud.login_url, t.tenant_id);
    let (s, b) = emu
        .post_form(
            &v1,
            &[
                base[0],
                base[1],
                ("client_secret", &t.admin.client_secret),
                ("resource", &emu.cloud.graph_url),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["expires_in"].is_string() && b["expires_on"].is_string());
    assert_eq!(b["resource"], emu.cloud.graph_url);

    let (s, b) = emu
        .post_form(
            &url,
            &[
                base[0],
                base[1],
                ("client_secret", "wrong"),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(
        (s.as_u16(), code(&b), b["error"].as_str().unwrap()),
        (401, 7000215, "invalid_client")
    );
    let (s, b) = emu
        .post_form(
            &url,
            &[
                base[0],
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                ("client_secret", "x"),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), code(&b)), (400, 700016));
    let (s, b) = emu
        .post_form(
            &url,
            &[
                base[0],
                base[1],
                ("client_secret", &t.admin.client_secret),
                ("scope", &format!("{}/User.Read", emu.cloud.graph_url)),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), code(&b)), (400, 1002012));
    let (s, b) = emu
        .post_form(
            &url,
            &[
                base[0],
                base[1],
                ("client_secret", &t.admin.client_secret),
                ("scope", "https://nosuch.example/.default"),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), code(&b)), (400, 500011));
    let (s, b) = emu
        .post_form(&url, &[base[0], base[1], ("scope", &scope)])
        .await;
    assert_eq!((s.as_u16(), code(&b)), (401, 7000218));
    let (s, b) = emu
        .post_form(&url, &[("grant_type", "password"), base[1]])
        .await;
    assert_eq!((s.as_u16(), code(&b)), (400, 70003));
    let (s, b) = emu.post_form(&url, &[base[0], ("scope", &scope)]).await;
    assert_eq!((s.as_u16(), code(&b)), (400, 900144));
}

/// Uploads `cert` to the 00000004 service principal and returns the emulator.
async fn emu_with_uploaded(cert: &TestCert) -> Emu {
    let emu = Emu::start().await;
    let (s, v) = emu.patch_keys(SFB, json!([key_body(cert)])).await;
    assert_eq!(s, 204, "{v}");
    emu
}

async fn assert_token(emu: &Emu, assertion: &str, expect_status: u16, expect_code: u64) -> Value {
    let scope = format!("{}/.default", emu.cloud.exchange_url);
    let (s, b) = emu
        .post_form(
            &emu.token_url(&emu.tenant.tenant_id),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", SFB),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), expect_status, "{b}");
    if expect_code != 0 {
        assert_eq!(code(&b), expect_code, "{b}");
        let d = b["error_description"].as_str().unwrap();
        assert!(d.starts_with(&format!("AADSTS{expect_code}:")), "{d}");
        assert!(b["correlation_id"].is_string());
    }
    b
}

#[tokio::test]
async fn certificate_assertion_rules_match_entra() {
    let cert = fresh_cert("sfb.contoso.com");
    let emu = emu_with_uploaded(&cert).await;
    let now = Utc::now();
    let aud = emu.token_url(&emu.tenant.tenant_id);
    let good = assertion_claims(SFB, &aud, now);

    // RS256 + x5t: token for Exchange Online as 00000004, certificate-authenticated.
    let b = assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &good),
        200,
        0,
    )
    .await;
    let c = decode_claims(b["access_token"].as_str().unwrap());
    assert_eq!(
        (
            c["appid"].as_str(),
            c["appidacr"].as_str(),
            c["aud"].as_str()
        ),
        (Some(SFB), Some("2"), Some(emu.cloud.exchange_url.as_str()))
    );
    // PS256 + x5t#S256 as the current Entra doc shows.
    assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "PS256", Thumb::X5tS256, &good),
        200,
        0,
    )
    .await;
    // The aud may name the tenant by domain too.
    let by_domain = assertion_claims(SFB, &emu.token_url(&emu.tenant.domain), now);
    assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &by_domain),
        200,
        0,
    )
    .await;

    // No thumbprint header.
    let b = assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::None, &good),
        400,
        50027,
    )
    .await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("No certificate thumbprint")
    );
    // A certificate that is not on the service principal.
    let other = fresh_cert("other.contoso.com");
    let b = assert_token(
        &emu,
        &assertion(&other, &other.pkcs8, "RS256", Thumb::X5t, &good),
        401,
        700027,
    )
    .await;
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("The key was not found.") && d.contains(&other.sha1_hex()),
        "{d}"
    );
    // The right certificate's thumbprint, signed by another private key.
    let b = assert_token(
        &emu,
        &assertion(&cert, &other.pkcs8, "RS256", Thumb::X5t, &good),
        401,
        700027,
    )
    .await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("use of the key to verify the signature failed")
    );
    // iss/sub not the client id.
    let wrong_iss = assertion_claims("7557eb47-c689-4224-abcf-aef9bd7573df", &aud, now);
    assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &wrong_iss),
        401,
        700021,
    )
    .await;
    // aud not the token URL (the v1 URL sent to v2).
    let wrong_aud = assertion_claims(
        SFB,
        &format!(
            "{}/{}/oauth2/token",
            emu.cloud.login_url, emu.tenant.tenant_id
        ),
        now,
    );
    assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &wrong_aud),
        401,
        700023,
    )
    .await;
    // Expired assertion beyond the five-minute skew; inside the skew it passes.
    let old = assertion_claims(SFB, &aud, now - TimeDelta::minutes(20));
    let b = assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &old),
        400,
        700024,
    )
    .await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("Current time:")
    );
    let mut slightly_old = assertion_claims(SFB, &aud, now - TimeDelta::minutes(12));
    slightly_old["exp"] = json!((now - TimeDelta::minutes(2)).timestamp());
    assert_token(
        &emu,
        &assertion(&cert, &cert.pkcs8, "RS256", Thumb::X5t, &slightly_old),
        200,
        0,
    )
    .await;
    // Unsupported algorithm.
    let b = assert_token(
        &emu,
        &sign_jwt(
            &cert.pkcs8,
            "RS256",
            json!({"x5t": cert.x5t(), "alg": "ES256"}),
            &good,
        ),
        400,
        5002738,
    )
    .await;
    assert!(b["error_description"].as_str().unwrap().contains("ES256"));
    // Garbage.
    assert_token(&emu, "not.a.jwt", 400, 50027).await;
}

#[tokio::test]
async fn server_clock_skew_yields_700024() {
    let cert = fresh_cert("sfb.contoso.com");
    let emu = emu_with_uploaded(&cert).await;
    let aud = emu.token_url(&emu.tenant.tenant_id);
    let a = assertion(
        &cert,
        &cert.pkcs8,
        "RS256",
        Thumb::X5t,
        &assertion_claims(SFB, &aud, Utc::now()),
    );
    assert_eq!(
        emu.control(Method::POST, "clock", json!({"offset_secs": 3600}))
            .await,
        200
    );
    assert_token(&emu, &a, 400, 700024).await;
    assert_eq!(
        emu.control(Method::POST, "clock", json!({"offset_secs": 0}))
            .await,
        200
    );
    assert_token(&emu, &a, 200, 0).await;
}

#[tokio::test]
async fn an_expired_key_credential_yields_700027_expired() {
    let now = Utc::now();
    let cert = fresh_cert("sfb.contoso.com");
    let emu = Emu::start().await;
    // Graph refuses to store an expired key, so plant one through the control API.
    let planted = json!([{
        "key_id": uuid::Uuid::new_v4(), "custom_key_identifier": null, "display_name": "old",
        "start": now - TimeDelta::days(400), "end": now - TimeDelta::days(1),
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": cert.b64()
    }]);
    let path = format!(
        "tenants/{}/servicePrincipals/{SFB}/keyCredentials",
        emu.tenant.domain
    );
    assert_eq!(emu.control(Method::PUT, &path, planted).await, 204);
    let a = assertion(
        &cert,
        &cert.pkcs8,
        "RS256",
        Thumb::X5t,
        &assertion_claims(SFB, &emu.token_url(&emu.tenant.tenant_id), now),
    );
    let b = assert_token(&emu, &a, 401, 700027).await;
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("The key used is expired.") && d.contains("Found key 'Start="),
        "{d}"
    );
}

#[tokio::test]
async fn device_code_flow_is_pending_then_approved_with_delegated_scopes() {
    let mut cfg = quiet_tls();
    cfg.behaviour.device_code_approve_after_ms = 300;
    cfg.behaviour.device_code_interval_secs = 1;
    let emu = Emu::start_with(cfg).await;
    let cli = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
    let scope = format!(
        "{}/Application.ReadWrite.All offline_access",
        emu.cloud.graph_url
    );
    let (s, dc) = emu
        .post_form(
            &format!(
                "{}/{}/oauth2/v2.0/devicecode",
                emu.cloud.login_url, emu.tenant.domain
            ),
            &[("client_id", cli), ("scope", &scope)],
        )
        .await;
    assert_eq!(s, 200, "{dc}");
    assert_eq!(dc["interval"], 1);
    assert!(
        dc["message"]
            .as_str()
            .unwrap()
            .contains(dc["user_code"].as_str().unwrap())
    );
    let device_code = dc["device_code"].as_str().unwrap().to_string();
    let token_url = emu.token_url(&emu.tenant.domain);
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", cli),
        ("device_code", device_code.as_str()),
    ];
    let poll = || emu.post_form(&token_url, &form);
    let (s, b) = poll().await;
    assert_eq!(
        (s.as_u16(), b["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    assert_eq!(code(&b), 70016);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (s, b) = poll().await;
    assert_eq!(s, 200, "{b}");
    let c = decode_claims(b["access_token"].as_str().unwrap());
    assert_eq!(c["scp"], "Application.ReadWrite.All");
    assert_eq!(c["idtyp"], "user");
    assert!(c["upn"].as_str().unwrap().starts_with("admin@"));
    // The token works on Graph; the device code is single-use.
    let (s, _, _) = emu
        .graph_as(
            b["access_token"].as_str().unwrap(),
            Method::GET,
            "servicePrincipals",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = poll().await;
    assert_eq!((s.as_u16(), code(&b)), (400, 70000));
    // A confidential client cannot use the device flow.
    let (s, b) = emu
        .post_form(
            &format!(
                "{}/{}/oauth2/v2.0/devicecode",
                emu.cloud.login_url, emu.tenant.domain
            ),
            &[
                ("client_id", &emu.tenant.admin.client_id),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), code(&b)), (401, 7000218));
}

/// `--reuse-tokens` (a benchmark aid) hands the same app-only token out again; by default every
/// request gets a freshly signed one, as from Entra.
#[tokio::test]
async fn tokens_are_fresh_per_request_unless_reuse_is_asked_for() {
    let emu = Emu::start().await;
    assert_ne!(emu.admin_token().await, emu.admin_token().await);
    let mut cfg = quiet_tls();
    cfg.reuse_tokens = true;
    let emu = Emu::start_with(cfg).await;
    let a = emu.admin_token().await;
    assert_eq!(a, emu.admin_token().await);
    // Still a valid token for Graph.
    let (status, _, _) = emu
        .graph_as(&a, Method::GET, "servicePrincipals?$select=appId", None)
        .await;
    assert_eq!(status, 200);
}
