//! End-to-end tests of the emulated Microsoft Graph `servicePrincipals` subset over HTTPS.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn finds_service_principals_by_filter_id_and_alternate_key() {
    let emu = Emu::start().await;
    let (s, _, v) = emu
        .graph(Method::GET, &format!("servicePrincipals?$filter=appId eq '{SFB}'&$select=id,appDisplayName,keyCredentials"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let list = v["value"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["appDisplayName"], "Skype for Business Online");
    assert!(
        list[0].get("appId").is_none(),
        "only selected properties are returned"
    );
    // Graph PowerShell sends "AppId eq"; property names are case-insensitive in $filter.
    let (_, _, v) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals?$filter=AppId eq '{SFB}'"),
            None,
        )
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    for app in [
        "00000002-0000-0ff1-ce00-000000000000",
        "7557eb47-c689-4224-abcf-aef9bd7573df",
        "db7de2b5-2149-435e-8043-e080dd50afae",
    ] {
        let (_, _, v) = emu
            .graph(
                Method::GET,
                &format!("servicePrincipals?$filter=appId eq '{app}'"),
                None,
            )
            .await;
        assert_eq!(v["value"].as_array().unwrap().len(), 1, "{app}");
    }
    let (s, _, v) = emu
        .graph(Method::GET, &format!("servicePrincipals/{id}"), None)
        .await;
    assert_eq!((s.as_u16(), v["appId"].as_str()), (200, Some(SFB)));
    let (s, _, v) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals(appId='{SFB}')"),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), v["id"].as_str()), (200, Some(id.as_str())));
    // Missing object, bad filter, bad select, bad segment.
    let (s, _, v) = emu
        .graph(
            Method::GET,
            "servicePrincipals/5b0d6c55-0000-0000-0000-000000000000",
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (404, "Request_ResourceNotFound")
    );
    assert!(v["error"]["innerError"]["request-id"].is_string());
    let (s, _, v) = emu
        .graph(
            Method::GET,
            // endswith needs advanced query parameters (ConsistencyLevel) on real Graph.
            "servicePrincipals?$filter=endswith(displayName,'S')",
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (400, "Request_UnsupportedQuery")
    );
    let (s, _, _) = emu
        .graph(Method::GET, "servicePrincipals?$select=nosuch", None)
        .await;
    assert_eq!(s, 400);
    // A resource the emulator does not model (applications are, since issue 27).
    let (s, _, _) = emu.graph(Method::GET, "groups", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn key_is_returned_only_on_a_single_object_get_selecting_key_credentials() {
    let cert = fresh_cert("sfb.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let filter = format!("servicePrincipals?$filter=appId eq '{SFB}'&$select=id,keyCredentials");
    let (_, _, v) = emu.graph(Method::GET, &filter, None).await;
    assert!(v["value"][0]["keyCredentials"][0]["key"].is_null());
    let (_, _, v) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals(appId='{SFB}')"),
            None,
        )
        .await;
    assert!(
        v["keyCredentials"][0]["key"].is_null(),
        "not without $select"
    );
    let v = emu.sp(SFB).await;
    assert_eq!(v["keyCredentials"][0]["key"], cert.b64());
    // The [U] alternative: the collection returns key too.
    let mut b = emu.control_get("state").await["behaviour"].clone();
    b["key_in_collection"] = json!(true);
    assert_eq!(emu.control(Method::POST, "behaviour", b).await, 200);
    let (_, _, v) = emu.graph(Method::GET, &filter, None).await;
    assert_eq!(v["value"][0]["keyCredentials"][0]["key"], cert.b64());
}

#[tokio::test]
async fn patch_replaces_key_credentials_and_derives_dates_from_the_certificate() {
    let now = Utc::now();
    let a = make_cert(
        "a.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(500),
    );
    let b = fresh_cert("b.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&a)])).await.0, 204);
    let v = emu.sp(SFB).await;
    let k = &v["keyCredentials"][0];
    // No dates sent: Graph takes the certificate's validity (SFBDOCS Step 6/7).
    assert_eq!(
        k["startDateTime"],
        a.not_before.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(
        k["endDateTime"],
        a.not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(k["type"], "AsymmetricX509Cert");
    assert_eq!(k["usage"], "Verify");
    assert_eq!(
        k["customKeyIdentifier"],
        a.sha1_hex(),
        "default form: hex thumbprint"
    );
    let key_id = k["keyId"].as_str().unwrap().to_string();
    // Replace semantics: sending only b drops a; resending a with its keyId keeps the keyId.
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&b)])).await.0, 204);
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut ka = key_body(&a);
    ka["keyId"] = json!(key_id);
    assert_eq!(emu.patch_keys(SFB, json!([ka, key_body(&b)])).await.0, 204);
    let v = emu.sp(SFB).await;
    assert_eq!(v["keyCredentials"].as_array().unwrap().len(), 2);
    assert_eq!(v["keyCredentials"][0]["keyId"], key_id.as_str());
    assert_eq!(emu.patch_keys(SFB, json!([])).await.0, 204);
    assert!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // servicePrincipalNames: replaced as a whole.
    let names = json!([SFB, format!("{SFB}/webext.contoso.com")]);
    let (s, _, _) = emu
        .graph(
            Method::PATCH,
            &format!("servicePrincipals(appId='{SFB}')"),
            Some(json!({"servicePrincipalNames": names})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(emu.sp(SFB).await["servicePrincipalNames"], names);
}

fn with_dates(cert: &TestCert, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Value {
    let mut k = key_body(cert);
    if let Some(s) = start {
        k["startDateTime"] = json!(s.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    if let Some(e) = end {
        k["endDateTime"] = json!(e.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    k
}

#[tokio::test]
async fn patch_validates_key_credentials_as_graph_does_and_changes_nothing_on_error() {
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(400),
    );
    let keep = fresh_cert("keep.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&keep)])).await.0, 204);
    let before = emu.sp(SFB).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "usage Sign with AsymmetricX509Cert",
            json!({"type": "AsymmetricX509Cert", "usage": "Sign", "key": cert.b64()}),
            "Request_BadRequest",
        ),
        (
            "bad usage",
            json!({"type": "AsymmetricX509Cert", "usage": "Encrypt", "key": cert.b64()}),
            "Request_BadRequest",
        ),
        (
            "bad type",
            json!({"type": "Symmetric", "usage": "Verify", "key": cert.b64()}),
            "Request_BadRequest",
        ),
        (
            "key not base64",
            json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": "%%%"}),
            "Request_BadRequest",
        ),
        (
            "key not a certificate",
            json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": "aGVsbG8="}),
            "Request_BadRequest",
        ),
        (
            "end after the certificate",
            with_dates(
                &cert,
                Some(now + TimeDelta::minutes(5)),
                Some(now + TimeDelta::days(401)),
            ),
            "KeyCredentialsInvalidEndDate",
        ),
        (
            "end before start",
            with_dates(
                &cert,
                Some(now + TimeDelta::days(2)),
                Some(now + TimeDelta::days(1)),
            ),
            "KeyCredentialsInvalidEndDate",
        ),
        (
            "start before the certificate",
            with_dates(
                &cert,
                Some(now - TimeDelta::days(3)),
                Some(now + TimeDelta::days(30)),
            ),
            "KeyCredentialsInvalidStartDate",
        ),
        (
            "local-time end date",
            {
                let mut k = key_body(&cert);
                k["endDateTime"] = json!(
                    (now + TimeDelta::days(30))
                        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
                        .to_rfc3339()
                );
                k
            },
            "KeyCredentialsInvalidEndDate",
        ),
    ];
    for (what, key, code) in cases {
        let (s, v) = emu.patch_keys(SFB, json!([key_body(&keep), key])).await;
        assert_eq!((s.as_u16(), err_code(&v)), (400, code), "{what}: {v}");
    }
    let (s, v) = emu
        .patch_keys(
            SFB,
            json!([{"type": "AsymmetricX509Cert", "usage": "Encrypt", "key": cert.b64()}]),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "The value for the property \"usage\" in one of your credentials is invalid. Acceptable values are Sign, Verify."
    );
    assert_eq!(
        emu.sp(SFB).await,
        before,
        "a rejected PATCH changes nothing"
    );
    // An explicit UTC window inside the certificate is accepted as sent.
    let start = now + TimeDelta::minutes(1);
    let end = now + TimeDelta::days(365);
    assert_eq!(
        emu.patch_keys(SFB, json!([with_dates(&cert, Some(start), Some(end))]))
            .await
            .0,
        204
    );
    let v = emu.sp(SFB).await;
    assert_eq!(
        v["keyCredentials"][0]["endDateTime"],
        end.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
}

#[tokio::test]
async fn resubmitting_an_expired_key_rejects_the_whole_patch() {
    let now = Utc::now();
    let old = make_cert(
        "old.contoso.com",
        now - TimeDelta::days(400),
        now - TimeDelta::days(1),
    );
    let new = fresh_cert("new.contoso.com");
    let emu = Emu::start().await;
    let (s, v) = emu
        .patch_keys(SFB, json!([key_body(&new), key_body(&old)]))
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (400, "KeyCredentialsInvalidEndDate")
    );
    assert!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tenant_lifetime_policy_is_enforced_with_graphs_error() {
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(800),
    );
    let emu = Emu::start().await;
    let path = format!("tenants/{}/policy", emu.tenant.tenant_id);
    assert_eq!(
        emu.control(Method::POST, &path, json!({"max_key_lifetime_days": 365}))
            .await,
        204
    );
    let (s, v) = emu.patch_keys(SFB, json!([key_body(&cert)])).await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (400, "CredentialInvalidLifetimeAsPerAppPolicy")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Credential lifetime exceeds the max value allowed")
    );
    let (s, _) = emu
        .patch_keys(
            SFB,
            json!([with_dates(
                &cert,
                Some(now + TimeDelta::minutes(1)),
                Some(now + TimeDelta::days(364))
            )]),
        )
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn custom_key_identifier_forms_are_configurable() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let cert = fresh_cert("sfb.contoso.com");
    let thumb: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&cert.sha1_hex()[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    let emu = Emu::start().await;
    let expected = [
        ("hex", json!(cert.sha1_hex())),
        ("base64", json!(STANDARD.encode(&thumb))),
        ("double", json!(STANDARD.encode(STANDARD.encode(&thumb)))),
        ("null", Value::Null),
    ];
    for (form, want) in expected {
        let mut b = emu.control_get("state").await["behaviour"].clone();
        b["custom_key_id_form"] = json!(form);
        assert_eq!(emu.control(Method::POST, "behaviour", b).await, 200);
        assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
        assert_eq!(
            emu.sp(SFB).await["keyCredentials"][0]["customKeyIdentifier"],
            want,
            "{form}"
        );
    }
}

#[tokio::test]
async fn regenerated_key_ids_when_configured() {
    let cert = fresh_cert("sfb.contoso.com");
    let mut cfg = quiet_tls();
    cfg.behaviour.regenerate_key_ids = true;
    let emu = Emu::start_with(cfg).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut k = key_body(&cert);
    k["keyId"] = json!(id);
    assert_eq!(emu.patch_keys(SFB, json!([k])).await.0, 204);
    assert_ne!(emu.sp(SFB).await["keyCredentials"][0]["keyId"], id.as_str());
}

#[tokio::test]
async fn authorization_comes_from_the_tokens_roles() {
    let cert = fresh_cert("sfb.contoso.com");
    let emu = Emu::start().await;
    let (s, _, v) = emu
        .graph_as("", Method::GET, "servicePrincipals", None)
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (401, "InvalidAuthenticationToken")
    );
    let (s, _, _) = emu
        .graph_as("abc.def.ghi", Method::GET, "servicePrincipals", None)
        .await;
    assert_eq!(s, 401);
    // A token signed by someone else.
    let forged = sign_jwt(
        &cert.pkcs8,
        "RS256",
        json!({}),
        &json!({"aud": emu.cloud.graph_url, "tid": emu.tenant.tenant_id, "roles": ["Application.ReadWrite.All"], "exp": Utc::now().timestamp() + 600}),
    );
    let (s, _, _) = emu
        .graph_as(&forged, Method::GET, "servicePrincipals", None)
        .await;
    assert_eq!(s, 401);
    // 00000004 itself gets a Graph token without roles: reads and writes are forbidden.
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let scope = format!("{}/.default", emu.cloud.graph_url);
    let a = assertion(
        &cert,
        &cert.pkcs8,
        "RS256",
        Thumb::X5t,
        &assertion_claims(SFB, &emu.token_url(&emu.tenant.tenant_id), Utc::now()),
    );
    let (s, b) = emu
        .post_form(
            &emu.token_url(&emu.tenant.tenant_id),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", SFB),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let t = b["access_token"].as_str().unwrap();
    let (s, _, v) = emu
        .graph_as(
            t,
            Method::PATCH,
            &format!("servicePrincipals(appId='{SFB}')"),
            Some(json!({"keyCredentials": []})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (403, "Authorization_RequestDenied")
    );
    // A token for Exchange Online is not a Graph token.
    let (_, b) = emu
        .post_form(
            &emu.token_url(&emu.tenant.tenant_id),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &emu.tenant.admin.client_id),
                ("client_secret", &emu.tenant.admin.client_secret),
                ("scope", &format!("{}/.default", emu.cloud.exchange_url)),
            ],
        )
        .await;
    let (s, _, _) = emu
        .graph_as(
            b["access_token"].as_str().unwrap(),
            Method::GET,
            "servicePrincipals",
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn select_key_credentials_is_throttled_per_tenant_with_retry_after() {
    let mut cfg = quiet_tls();
    cfg.behaviour.select_key_limit_per_minute = 3;
    let emu = Emu::start_with(cfg).await;
    let token = emu.admin_token().await;
    let path = format!("servicePrincipals(appId='{SFB}')?$select=keyCredentials");
    for _ in 0..3 {
        assert_eq!(emu.graph_as(&token, Method::GET, &path, None).await.0, 200);
    }
    let (s, h, v) = emu.graph_as(&token, Method::GET, &path, None).await;
    // (A minute boundary between the calls would reset the window; then the 4th passes.)
    if s == 429 {
        assert_eq!(err_code(&v), "TooManyRequests");
        let secs: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&secs));
        // Reads without keyCredentials are not counted.
        assert_eq!(
            emu.graph_as(
                &token,
                Method::GET,
                &format!("servicePrincipals(appId='{SFB}')?$select=id"),
                None
            )
            .await
            .0,
            200
        );
    } else {
        assert_eq!(s, 200);
        assert_eq!(emu.graph_as(&token, Method::GET, &path, None).await.0, 200);
        let (s, _, _) = emu.graph_as(&token, Method::GET, &path, None).await;
        let (s2, _, _) = emu.graph_as(&token, Method::GET, &path, None).await;
        assert!(
            s == 429 || s2 == 429,
            "the limit of 3 per minute is enforced"
        );
    }
}

fn proof(cert: &TestCert, sp_id: &str, lifetime_secs: i64) -> String {
    let now = Utc::now().timestamp();
    sign_jwt(
        &cert.pkcs8,
        "RS256",
        json!({"x5t": cert.x5t()}),
        &json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": sp_id, "nbf": now, "exp": now + lifetime_secs}),
    )
}

#[tokio::test]
async fn add_key_and_remove_key_need_a_proof_from_a_valid_certificate() {
    let current = fresh_cert("current.contoso.com");
    let next = fresh_cert("next.contoso.com");
    let emu = Emu::start().await;
    let sp_id = emu.sp(SFB).await["id"].as_str().unwrap().to_string();
    let add = |p: String| json!({"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": next.b64()}, "passwordCredential": null, "proof": p});
    let url = format!("servicePrincipals/{sp_id}/addKey");
    // No valid certificate yet: only PATCH works.
    let (s, _, v) = emu
        .graph(Method::POST, &url, Some(add(proof(&current, &sp_id, 600))))
        .await;
    assert_eq!(
        (s.as_u16(), err_code(&v)),
        (400, "Authentication_MissingOrMalformed")
    );
    assert_eq!(
        emu.patch_keys(SFB, json!([key_body(&current)])).await.0,
        204
    );
    // A proof living longer than 10 minutes, signed by a stranger, or for another principal.
    for bad in [
        proof(&current, &sp_id, 3600),
        proof(&next, &sp_id, 600),
        proof(&current, "00000000-0000-0000-0000-000000000001", 600),
    ] {
        let (s, _, v) = emu.graph(Method::POST, &url, Some(add(bad))).await;
        assert_eq!(
            (s.as_u16(), err_code(&v)),
            (400, "Authentication_MissingOrMalformed")
        );
    }
    let (s, _, v) = emu
        .graph(Method::POST, &url, Some(add(proof(&current, &sp_id, 600))))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["key"].is_null());
    let new_id = v["keyId"].as_str().unwrap().to_string();
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (s, _, _) = emu
        .graph(
            Method::POST,
            &format!("servicePrincipals(appId='{SFB}')/removeKey"),
            Some(json!({"keyId": new_id, "proof": proof(&current, &sp_id, 600)})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn tenants_are_isolated_and_share_one_admin_app() {
    let mut cfg = quiet_tls();
    cfg.generated_tenants = 3;
    let emu = Emu::start_with(cfg).await;
    let tenants = emu.running.ready.tenants.clone();
    assert_eq!(tenants.len(), 3);
    assert_eq!(tenants[2].domain, "tenant-0003.onmicrosoft.com");
    assert!(
        tenants
            .iter()
            .all(|t| t.admin.client_id == tenants[0].admin.client_id)
    );
    let cert = fresh_cert("sfb.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let other = emu.admin_token_for(&tenants[1]).await;
    let (_, _, v) = emu
        .graph_as(
            &other,
            Method::GET,
            &format!("servicePrincipals(appId='{SFB}')?$select=keyCredentials"),
            None,
        )
        .await;
    assert!(v["keyCredentials"].as_array().unwrap().is_empty());
}
