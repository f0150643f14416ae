//! The emulator behaves as the real Graph and Entra do for the clients people use (issue 17):
//! OData annotations from Microsoft's SDKs, the `any()` look-up azure-cli sends in both of its
//! encodings, the fields Graph fills in, retained keys re-sent with `key: null`, the three
//! `--key-resend` answers to docs/protocol.md §6 item 9, creating a first-party service principal,
//! and Entra's refusal for a disabled one.

mod support;

use chrono::{TimeDelta, Utc};
use m365_emulator::{KeyResend, Seed};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const EXO: &str = "00000002-0000-0ff1-ce00-000000000000";
const TEAMS_SCHEDULER: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";

fn err(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap_or(""),
        v["error"]["message"].as_str().unwrap_or(""),
    )
}

async fn emu_with(mode: KeyResend) -> Emu {
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = mode;
    Emu::start_with(cfg).await
}

/// The service principal's keys as a single-object GET selecting keyCredentials returns them
/// (the form that carries `key`).
async fn keys(emu: &Emu) -> Vec<Value> {
    emu.sp(SFB).await["keyCredentials"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn odata_annotations_from_sdks_are_accepted_and_ignored() {
    let a = fresh_cert("a.contoso.com");
    let emu = Emu::start().await;
    let mut key = key_body(&a);
    key["@odata.type"] = json!("#microsoft.graph.keyCredential");
    let body = json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
        "keyCredentials@odata.type": "#Collection(microsoft.graph.keyCredential)",
        "keyCredentials": [key],
    });
    let path = format!("servicePrincipals(appId='{SFB}')");
    let (s, _, v) = emu.graph(Method::PATCH, &path, Some(body)).await;
    assert_eq!(s, 204, "{v}");
    let k = &keys(&emu).await[0];
    assert_eq!(k["key"], a.b64());
    assert!(
        k.get("@odata.type").is_none(),
        "annotations are not stored: {k}"
    );

    // An @odata.type that names another type is refused, as OData does; so is a property the
    // keyCredential type does not have.
    let mut wrong = key_body(&a);
    wrong["@odata.type"] = json!("#microsoft.graph.passwordCredential");
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &path,
            Some(json!({"keyCredentials": [wrong]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(err(&v).1.contains("could not be resolved"), "{v}");
    let mut extra = key_body(&a);
    extra["hint"] = json!("x");
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &path,
            Some(json!({"keyCredentials": [extra]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        err(&v)
            .1
            .contains("'hint' does not exist on type 'microsoft.graph.keyCredential'")
    );
    assert_eq!(keys(&emu).await.len(), 1, "a refused PATCH changes nothing");
}

#[tokio::test]
async fn the_any_lookup_is_answered_in_both_encodings_with_select() {
    let emu = Emu::start().await;
    let token = emu.admin_token().await;
    let sfb_id = emu.sp(SFB).await["id"].as_str().unwrap().to_string();
    for query in [
        // azure-cli's two encodings (fixtures/graph-captures, docs/protocol.md §1.11).
        format!("$filter=servicePrincipalNames/any(c:c%20eq%20'{SFB}')"),
        format!("%24filter=servicePrincipalNames%2Fany%28c%3Ac%20eq%20%27{SFB}%27%29"),
        format!(
            "$filter=servicePrincipalNames/any(x:x+eq+'{SFB}')&$select=id,appId,keyCredentials"
        ),
        format!("$select=id,appId&$filter=appId%20eq%20%27{SFB}%27"),
        format!(
            "$filter=servicePrincipalNames/any(c:startswith(c,'{SFB}')) and accountEnabled eq true"
        ),
    ] {
        let (s, _, v) = emu
            .graph_as(
                &token,
                Method::GET,
                &format!("servicePrincipals?{query}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{query}: {v}");
        let value = v["value"].as_array().unwrap();
        assert_eq!(value.len(), 1, "{query}: {v}");
        assert_eq!(value[0]["id"], sfb_id.as_str(), "{query}");
        if query.contains("select") {
            let keys: Vec<&String> = value[0].as_object().unwrap().keys().collect();
            assert!(keys.len() <= 3, "{query}: only what was selected: {keys:?}");
        }
    }
    // A name nobody has: an empty list, not an error.
    let (s, _, v) = emu
        .graph_as(
            &token,
            Method::GET,
            "servicePrincipals?$filter=servicePrincipalNames/any(c:c eq 'https://nobody.example/')",
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["value"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (s, _, v) = emu
        .graph_as(
            &token,
            Method::GET,
            "servicePrincipals?$filter=startswith(displayName,'Skype')",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["appId"], SFB);
    // endswith needs advanced query parameters on real Graph: unsupported here as there.
    let (s, _, v) = emu
        .graph_as(
            &token,
            Method::GET,
            "servicePrincipals?$filter=endswith(displayName,'Online')",
            None,
        )
        .await;
    assert_eq!((s.as_u16(), err(&v).0), (400, "Request_UnsupportedQuery"));
}

#[tokio::test]
async fn graph_fills_in_display_name_and_identifier_and_returns_key_only_when_selected() {
    let now = Utc::now();
    let a = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    let emu = Emu::start().await;
    let bare = json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": a.b64(), "displayName": null});
    assert_eq!(emu.patch_keys(SFB, json!([bare])).await.0, 204);
    let k = &keys(&emu).await[0];
    assert_eq!(k["displayName"], "CN=sfb.contoso.com");
    assert_eq!(k["customKeyIdentifier"], a.sha1_hex());
    assert_eq!(k["key"], a.b64());
    // Plain GET by id, by alternate key, the collection and the any() look-up: key is null.
    let id = emu.sp(SFB).await["id"].as_str().unwrap().to_string();
    for path in [
        format!("servicePrincipals/{id}"),
        format!("servicePrincipals(appId='{SFB}')"),
        format!("servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{SFB}')"),
        format!("servicePrincipals?$filter=appId eq '{SFB}'&$select=id,appId,keyCredentials"),
        "servicePrincipals".to_string(),
    ] {
        let (s, _, v) = emu.graph(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}");
        let sp = if v["value"].is_array() {
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .find(|sp| sp["appId"] == SFB)
                .unwrap()
                .clone()
        } else {
            v
        };
        let k = &sp["keyCredentials"][0];
        assert!(k["key"].is_null(), "{path}: {k}");
        assert_eq!(k["displayName"], "CN=sfb.contoso.com", "{path}");
    }
}

#[tokio::test]
async fn a_retained_key_resent_with_key_null_keeps_its_certificate() {
    let a = fresh_cert("a.contoso.com");
    let b = fresh_cert("b.contoso.com");
    for mode in [KeyResend::Full, KeyResend::Unchanged] {
        let emu = emu_with(mode).await;
        assert_eq!(emu.patch_keys(SFB, json!([key_body(&a)])).await.0, 204);
        let stored = keys(&emu).await[0].clone();
        // As a client keeps a key whose `key` a read returned null: the key as read.
        let mut kept = stored.clone();
        kept["key"] = Value::Null;
        let (s, v) = emu.patch_keys(SFB, json!([kept, key_body(&b)])).await;
        assert_eq!(s, 204, "{mode}: {v}");
        let now = keys(&emu).await;
        assert_eq!(now.len(), 2, "{mode}");
        assert_eq!(now[0], stored, "{mode}: the retained key is unchanged");
        assert_eq!(now[1]["key"], b.b64());
    }
    // A keyId nobody has with key null is a new key without a certificate: refused.
    let emu = Emu::start().await;
    let ghost = json!({"keyId": uuid::Uuid::new_v4().to_string(), "type": "AsymmetricX509Cert", "usage": "Verify", "key": null});
    assert_eq!(emu.patch_keys(SFB, json!([ghost])).await.0, 400);
}

#[tokio::test]
async fn key_resend_full_accepts_any_properties_on_retained_keys() {
    let a = fresh_cert("a.contoso.com");
    let emu = emu_with(KeyResend::Full).await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&a)])).await.0, 204);
    let mut k = keys(&emu).await[0].clone();
    k["displayName"] = json!("renamed");
    k["endDateTime"] = json!(
        (a.not_after - TimeDelta::days(30))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    assert_eq!(emu.patch_keys(SFB, json!([k.clone()])).await.0, 204);
    let now = keys(&emu).await;
    assert_eq!(now[0]["displayName"], "renamed");
    assert_eq!(now[0]["endDateTime"], k["endDateTime"]);
    assert_eq!(now[0]["keyId"], k["keyId"]);
}

#[tokio::test]
async fn key_resend_unchanged_refuses_a_changed_retained_key_with_graphs_message() {
    let a = fresh_cert("a.contoso.com");
    let b = fresh_cert("b.contoso.com");
    let emu = emu_with(KeyResend::Unchanged).await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&a)])).await.0, 204);
    let stored = keys(&emu).await[0].clone();
    let key_id = stored["keyId"].as_str().unwrap().to_string();
    // Every property as read, plus a new key: accepted (what the tool sends).
    let (s, v) = emu
        .patch_keys(SFB, json!([stored.clone(), key_body(&b)]))
        .await;
    assert_eq!(s, 204, "{v}");
    // The same instants in another notation are not a change.
    let mut same = stored.clone();
    same["startDateTime"] = json!(
        stored["startDateTime"]
            .as_str()
            .unwrap()
            .replace('Z', "+00:00")
    );
    assert_eq!(emu.patch_keys(SFB, json!([same])).await.0, 204);
    // Any changed property of a re-sent keyId: 400 with Graph's words, and nothing changes.
    for (prop, value) in [
        ("displayName", json!("renamed")),
        (
            "endDateTime",
            json!(
                (a.not_after - TimeDelta::days(1))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            ),
        ),
        ("customKeyIdentifier", json!(b.sha1_hex())),
        ("key", json!(b.b64())),
    ] {
        let mut changed = stored.clone();
        changed[prop] = value;
        let (s, v) = emu.patch_keys(SFB, json!([changed])).await;
        assert_eq!(s, 400, "{prop}: {v}");
        assert_eq!(
            err(&v).1,
            format!("Update to existing credential with KeyId '{key_id}' is not allowed."),
            "{prop}"
        );
        assert!(v["error"]["innerError"]["request-id"].is_string());
    }
    assert_eq!(keys(&emu).await, vec![stored]);
}

/// A key sent with a fraction of a second comes back, and is kept, to the second; re-sent as read
/// it is unchanged (what `hybrid-trust credential upload` does on its second upload).
#[tokio::test]
async fn a_key_sent_with_a_fraction_of_a_second_is_unchanged_when_resent_as_read() {
    let a = fresh_cert("a.contoso.com");
    let b = fresh_cert("b.contoso.com");
    let emu = emu_with(KeyResend::Unchanged).await;
    let start = Utc::now() + TimeDelta::milliseconds(1500);
    let mut ka = key_body(&a);
    ka["keyId"] = json!(uuid::Uuid::new_v4().to_string());
    ka["startDateTime"] = json!(start.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    assert_eq!(emu.patch_keys(SFB, json!([ka])).await.0, 204);
    let read = keys(&emu).await[0].clone();
    assert_eq!(
        read["startDateTime"],
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let (s, v) = emu.patch_keys(SFB, json!([read, key_body(&b)])).await;
    assert_eq!(s, 204, "{v}");
}

#[tokio::test]
async fn key_resend_minimal_takes_only_type_usage_and_key_and_widens_the_window() {
    let now = Utc::now();
    let a = make_cert(
        "a.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(900),
    );
    let b = fresh_cert("b.contoso.com");
    let emu = emu_with(KeyResend::Minimal).await;
    // A narrow window for a (a new key: any properties).
    let start = (now - TimeDelta::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let end = (now + TimeDelta::days(300))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut ka = key_body(&a);
    ka["keyId"] = json!(uuid::Uuid::new_v4().to_string());
    ka["startDateTime"] = json!(start);
    ka["endDateTime"] = json!(end);
    assert_eq!(emu.patch_keys(SFB, json!([ka])).await.0, 204);
    let stored = keys(&emu).await[0].clone();
    // Re-sent with its keyId (every property, or keyId + key only): refused.
    for resent in [
        stored.clone(),
        json!({"keyId": stored["keyId"], "type": "AsymmetricX509Cert", "usage": "Verify", "key": a.b64()}),
        // No keyId but the same certificate with a display name: still the retained key.
        json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": a.b64(), "displayName": "x"}),
    ] {
        let (s, v) = emu.patch_keys(SFB, json!([resent, key_body(&b)])).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(err(&v).0, "Request_BadRequest");
        assert!(err(&v).1.contains("Send only type, usage and key"), "{v}");
    }
    assert_eq!(keys(&emu).await, vec![stored.clone()]);
    // type, usage and key only: accepted; the key is taken anew, its window the certificate's.
    let minimal = json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": a.b64(), "@odata.type": "#microsoft.graph.keyCredential"});
    let (s, v) = emu.patch_keys(SFB, json!([minimal, key_body(&b)])).await;
    assert_eq!(s, 204, "{v}");
    let after = keys(&emu).await;
    assert_eq!(after.len(), 2);
    let ka = &after[0];
    assert_eq!(ka["key"], a.b64());
    assert_ne!(ka["keyId"], stored["keyId"], "a new keyId");
    assert_eq!(
        ka["startDateTime"],
        a.not_before.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(
        ka["endDateTime"],
        a.not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "the window widened to the certificate's validity"
    );
    assert_eq!(ka["displayName"], "CN=a.contoso.com");
}

#[tokio::test]
async fn the_key_resend_mode_is_set_through_the_control_api() {
    let a = fresh_cert("a.contoso.com");
    let emu = Emu::start().await;
    assert_eq!(
        emu.control_get("state").await["behaviour"]["key_resend"],
        "full"
    );
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&a)])).await.0, 204);
    let mut k = keys(&emu).await[0].clone();
    k["displayName"] = json!("renamed");
    assert_eq!(
        emu.control(Method::POST, "key-resend", json!({"mode": "unchanged"}))
            .await,
        200
    );
    assert_eq!(
        emu.control_get("state").await["behaviour"]["key_resend"],
        "unchanged"
    );
    assert_eq!(emu.patch_keys(SFB, json!([k.clone()])).await.0, 400);
    assert_eq!(
        emu.control(Method::POST, "key-resend", json!({"mode": "full"}))
            .await,
        200
    );
    assert_eq!(emu.patch_keys(SFB, json!([k])).await.0, 204);
    assert_eq!(
        emu.control(Method::POST, "key-resend", json!({"mode": "lenient"}))
            .await
            .as_u16()
            / 100,
        4
    );
}

#[tokio::test]
async fn a_missing_first_party_service_principal_is_created_with_post() {
    let mut cfg = quiet_tls();
    cfg.seed_tenants = Seed {
        without_service_principals: vec![SFB.to_string()],
        ..Seed::default()
    };
    let emu = Emu::start_with(cfg).await;
    let filter = format!("servicePrincipals?$filter=appId eq '{SFB}'");
    let (s, _, v) = emu.graph(Method::GET, &filter, None).await;
    assert_eq!(
        (s.as_u16(), v["value"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (s, _, v) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals(appId='{SFB}')"),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), err(&v).0), (404, "Request_ResourceNotFound"));

    let (s, _, v) = emu
        .graph(
            Method::POST,
            "servicePrincipals",
            Some(json!({"@odata.type": "#microsoft.graph.servicePrincipal", "appId": SFB})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["appId"], SFB);
    assert_eq!(v["displayName"], "Skype for Business Online");
    assert_eq!(v["accountEnabled"], true);
    assert_eq!(v["servicePrincipalNames"], json!([SFB]));
    assert_eq!(v["keyCredentials"], json!([]));
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#servicePrincipals/$entity")
    );
    assert!(v["createdDateTime"].as_str().unwrap().ends_with('Z'));
    let (_, _, found) = emu.graph(Method::GET, &filter, None).await;
    assert_eq!(found["value"][0]["id"], v["id"]);

    // Again: it exists. An app id with no application behind it: Graph's refusal.
    let (s, _, again) = emu
        .graph(
            Method::POST,
            "servicePrincipals",
            Some(json!({"appId": SFB})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), err(&again).0),
        (409, "Request_MultipleObjectsWithSameKeyValue")
    );
    let stranger = "5b0d6c55-1111-2222-3333-444444444444";
    let (s, _, v) = emu
        .graph(
            Method::POST,
            "servicePrincipals",
            Some(json!({"appId": stranger})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        err(&v).1,
        format!(
            "The appId '{stranger}' of the service principal does not reference a valid application object."
        )
    );
    let (s, _, _) = emu
        .graph(Method::POST, "servicePrincipals", Some(json!({})))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_disabled_service_principal_gets_aadsts7000112_from_the_token_endpoint() {
    let cert = fresh_cert("sfb.contoso.com");
    let mut cfg = quiet_tls();
    cfg.seed_tenants = Seed {
        disabled_service_principals: vec![TEAMS_SCHEDULER.to_string()],
        ..Seed::default()
    };
    let emu = Emu::start_with(cfg).await;
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&cert)])).await.0, 204);
    let state = emu.control_get("state").await;
    let enabled = |app: &str| {
        state["tenants"][0]["service_principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|sp| sp["app_id"] == app)
            .unwrap()["account_enabled"]
            .clone()
    };
    assert_eq!(
        (enabled(TEAMS_SCHEDULER), enabled(SFB)),
        (json!(false), json!(true))
    );

    let url = emu.token_url(&emu.tenant.tenant_id);
    let (cert, url, emu) = (&cert, &url, &emu);
    let ask = move || async move {
        let jwt = assertion(
            cert,
            &cert.pkcs8,
            "RS256",
            Thumb::X5t,
            &assertion_claims(SFB, url, Utc::now()),
        );
        let scope = format!("{}/.default", emu.cloud.exchange_url);
        emu.post_form(
            url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", SFB),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &jwt),
                ("scope", &scope),
            ],
        )
        .await
    };
    assert_eq!(ask().await.0, 200);
    let control = format!("tenants/{}/servicePrincipals/{SFB}", emu.tenant.tenant_id);
    assert_eq!(
        emu.control(Method::POST, &control, json!({"account_enabled": false}))
            .await,
        204
    );
    let (s, v) = ask().await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(v["error_codes"], json!([7000112]));
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "AADSTS7000112: Application '{SFB}'(Skype for Business Online) is disabled."
            )),
        "{v}"
    );
    assert_eq!(
        emu.control(Method::POST, &control, json!({"account_enabled": true}))
            .await,
        204
    );
    assert_eq!(ask().await.0, 200);
    // Removed through the control API: as a tenant that never had it (AADSTS700016).
    assert_eq!(emu.control(Method::DELETE, &control, json!({})).await, 204);
    let (s, v) = ask().await;
    assert_eq!(
        (s.as_u16(), v["error_codes"].clone()),
        (400, json!([700016]))
    );
}

#[tokio::test]
async fn a_token_for_a_disabled_resource_gets_aadsts500014() {
    let emu = Emu::start().await;
    let url = emu.token_url(&emu.tenant.tenant_id);
    let scope = format!("{}/.default", emu.cloud.exchange_url);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", emu.tenant.admin.client_id.as_str()),
        ("client_secret", emu.tenant.admin.client_secret.as_str()),
        ("scope", scope.as_str()),
    ];
    assert_eq!(emu.post_form(&url, &form).await.0, 200);
    let control = format!("tenants/{}/servicePrincipals/{EXO}", emu.tenant.tenant_id);
    assert_eq!(
        emu.control(Method::POST, &control, json!({"account_enabled": false}))
            .await,
        204
    );
    let (s, v) = emu.post_form(&url, &form).await;
    assert_eq!(
        (s.as_u16(), v["error_codes"].clone()),
        (400, json!([500014])),
        "{v}"
    );
    assert!(
        v["error_description"].as_str().unwrap().contains(
            "is disabled. This indicate that a subscription within the tenant has lapsed"
        )
    );
}
