//! Exchange Server hybrid's dedicated application in the emulator and the library's Graph calls
//! for it (issue 27, docs/protocol.md §5): `/applications` as Microsoft's
//! ConfigureExchangeHybridApplication.ps1 uses it (a kept key re-sent with `key: null` keeps its
//! certificate), the app management policy's key-lifetime cap and Graph's refusal, app roles
//! granted with `appRoleAssignments` in the application's token, the shared principal
//! `00000002` PATCHed as the script does, and the client calls in-process.

mod support;

use chrono::{TimeDelta, Utc};
use hybrid_trust::cloud::Cloud;
use hybrid_trust::graph::applications::{EXCHANGE_ONLINE_APP_ID, exchange_app_display_name};
use hybrid_trust::graph::policy::CapSource;
use hybrid_trust::graph::{Graph, GraphError, KeyCredential};
use hybrid_trust::http::HttpClient;
use hybrid_trust::sts::{AdminCredential, TokenProvider};
use m365_emulator::KeyLifetimeRule;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const ORG: &str = "5c1a3f7e-2b4d-4e8f-9a0b-1c2d3e4f5a6b";

async fn seed(emu: &Emu, grant_role: bool) -> Value {
    emu.running
        .seed_exchange_app(
            &emu.tenant.domain,
            uuid::Uuid::parse_str(ORG).unwrap(),
            grant_role,
        )
        .unwrap()
}

fn five_year_cert(cn: &str) -> TestCert {
    let now = Utc::now();
    make_cert(cn, now - TimeDelta::days(1), now + TimeDelta::days(5 * 365))
}

/// Gives the admin application the Graph permission to change app management policies.
async fn allow_policy_writes(emu: &Emu) {
    let path = format!(
        "tenants/{}/servicePrincipals/{}/graphRoles",
        emu.tenant.tenant_id, emu.tenant.admin.client_id
    );
    let roles = json!({"roles": ["Application.ReadWrite.All", "Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"]});
    assert_eq!(emu.control(Method::PUT, &path, roles).await, 204);
}

async fn cap_default_policy(emu: &Emu, max: &str) {
    allow_policy_writes(emu).await;
    let restriction = json!({"passwordCredentials": [], "keyCredentials": [{
        "restrictionType": "asymmetricKeyLifetime", "maxLifetime": max,
        "restrictForAppsCreatedAfterDateTime": "2020-01-01T00:00:00Z"}]});
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            "policies/defaultAppManagementPolicy",
            Some(json!({"isEnabled": true, "applicationRestrictions": restriction, "servicePrincipalRestrictions": restriction})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
}

/// Microsoft's `-UpdateCertificate`: the app found by display name (a collection read: `key`
/// null), every unexpired key kept as read, the new certificate added with no dates, the whole
/// list PATCHed (204). The kept key keeps its certificate.
#[tokio::test]
async fn a_kept_key_re_sent_as_read_with_key_null_keeps_its_certificate() {
    let emu = Emu::start().await;
    let app = seed(&emu, true).await;
    let id = app["id"].as_str().unwrap();
    let (old, new) = (fresh_cert("old.auth"), fresh_cert("new.auth"));
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{id}"),
            Some(json!({"keyCredentials": [key_body(&old)]})),
        )
        .await;
    assert_eq!(s, 204, "{v}");

    let name = exchange_app_display_name(&uuid::Uuid::parse_str(ORG).unwrap());
    let (s, _, list) = emu
        .graph(
            Method::GET,
            &format!("applications?$filter=displayName eq '{name}'"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    let found = &list["value"][0];
    assert_eq!(
        (found["id"].as_str(), found["displayName"].as_str()),
        (Some(id), Some(name.as_str()))
    );
    let kept = found["keyCredentials"][0].clone();
    assert!(
        kept["key"].is_null(),
        "a list read returns key null: {kept}"
    );
    let added = json!({"displayName": "Added by ConfigureExchangeHybridApplication.ps1",
        "keyId": uuid::Uuid::new_v4().to_string(), "type": "AsymmetricX509Cert", "usage": "Verify", "key": new.b64()});
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{id}"),
            Some(json!({"keyCredentials": [kept.clone(), added]})),
        )
        .await;
    assert_eq!(s, 204, "{v}");

    let (s, _, back) = emu
        .graph(
            Method::GET,
            &format!("applications/{id}?$select=id,keyCredentials"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let keys = back["keyCredentials"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{back}");
    assert_eq!(keys[0]["keyId"], kept["keyId"]);
    assert_eq!(
        keys[0]["key"],
        old.b64(),
        "the kept key keeps its certificate"
    );
    assert_eq!(
        (&keys[0]["startDateTime"], &keys[0]["endDateTime"]),
        (&kept["startDateTime"], &kept["endDateTime"])
    );
    assert_eq!(keys[1]["key"], new.b64());
    assert_eq!(keys[1]["customKeyIdentifier"], new.sha1_hex());
    // Sent without dates, the key takes its certificate's.
    assert_eq!(
        keys[1]["endDateTime"],
        new.not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    // A null key under an unknown keyId is no certificate at all.
    let ghost = json!({"keyId": uuid::Uuid::new_v4().to_string(), "type": "AsymmetricX509Cert", "usage": "Verify", "key": null});
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{id}"),
            Some(json!({"keyCredentials": [ghost]})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("Request_BadRequest")),
        "{v}"
    );
}

#[tokio::test]
async fn a_key_longer_than_the_policy_allows_is_refused_in_graphs_words() {
    let emu = Emu::start().await;
    let app = seed(&emu, true).await;
    let id = app["id"].as_str().unwrap();
    // Without Policy.Read.All, the policy cannot be read.
    let (s, _, v) = emu
        .graph_as(
            &{
                let path = format!(
                    "tenants/{}/servicePrincipals/{}/graphRoles",
                    emu.tenant.tenant_id, emu.tenant.admin.client_id
                );
                assert_eq!(
                    emu.control(
                        Method::PUT,
                        &path,
                        json!({"roles": ["Application.ReadWrite.All"]})
                    )
                    .await,
                    204
                );
                emu.admin_token().await
            },
            Method::GET,
            "policies/defaultAppManagementPolicy",
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    cap_default_policy(&emu, "P365D").await;
    let (s, _, p) = emu
        .graph(Method::GET, "policies/defaultAppManagementPolicy", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["id"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(p["isEnabled"], true);
    assert_eq!(
        p["applicationRestrictions"]["keyCredentials"][0]["maxLifetime"],
        "P365D"
    );
    assert_eq!(
        p["applicationRestrictions"]["keyCredentials"][0]["state"],
        "enabled"
    );

    // MEAC's five-year certificate as Microsoft's script sends it (no dates): refused.
    let cert = five_year_cert("exchange auth");
    let patch = |k: Value| {
        let emu = &emu;
        async move {
            emu.graph(
                Method::PATCH,
                &format!("applications/{id}"),
                Some(json!({"keyCredentials": [k]})),
            )
            .await
        }
    };
    let (s, _, v) = patch(key_body(&cert)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["code"],
        "CredentialInvalidLifetimeAsPerAppPolicy"
    );
    assert_eq!(
        v["error"]["message"],
        "Credential lifetime exceeds the max value allowed as per assigned policy '00000000-0000-0000-0000-000000000000'."
    );
    assert_eq!(v["error"]["details"][0]["code"], "InvalidKeyEndDate");
    assert_eq!(v["error"]["details"][0]["target"], "EndDate");
    // The same certificate with a window inside the cap passes.
    let start = Utc::now();
    let mut within = key_body(&cert);
    within["startDateTime"] = json!(start.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    within["endDateTime"] = json!(
        (start + TimeDelta::days(365))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    let (s, _, v) = patch(within.clone()).await;
    assert_eq!(s, 204, "{v}");

    // [U] The stricter reading: the certificate's own validity counts too.
    let rule = json!({"rule": "certificate"});
    assert_eq!(emu.control(Method::POST, "key-lifetime", rule).await, 200);
    // (Another certificate: a key already there is not judged again when re-sent.)
    let other = five_year_cert("exchange auth next");
    within["key"] = json!(other.b64());
    let (s, _, v) = patch(within).await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (400, Some("CredentialInvalidLifetimeAsPerAppPolicy"))
    );

    // An application's own policy overrides the default.
    assert_eq!(
        emu.control(Method::POST, "key-lifetime", json!({"rule": "window"}))
            .await,
        200
    );
    let (s, _, pol) = emu
        .graph(
            Method::POST,
            "policies/appManagementPolicies",
            Some(json!({"displayName": "certs 90 days", "isEnabled": true, "restrictions": {"keyCredentials": [
                {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P90D"}]}})),
        )
        .await;
    assert_eq!(s, 201, "{pol}");
    let pid = pol["id"].as_str().unwrap();
    let (s, _, v) = emu
        .graph(
            Method::POST,
            &format!("applications/{id}/appManagementPolicies/$ref"),
            Some(json!({"@odata.id": format!("{}/v1.0/policies/appManagementPolicies/{pid}", emu.cloud.graph_url)})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, _, own) = emu
        .graph(
            Method::GET,
            &format!("applications/{id}/appManagementPolicies"),
            None,
        )
        .await;
    assert_eq!(own["value"][0]["id"], pid);
    let mut k = key_body(&cert);
    k["endDateTime"] = json!(
        (start + TimeDelta::days(180))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    k["startDateTime"] = json!(start.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let (s, _, v) = patch(k).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!(
            "Credential lifetime exceeds the max value allowed as per assigned policy '{pid}'."
        )
    );
}

/// `POST /applications`, its service principal, `full_access_as_app` granted with
/// `appRoleAssignments`, a key on the application: a token for Exchange Online as the
/// application carries the role; without the grant it carries none.
#[tokio::test]
async fn a_token_for_the_application_carries_the_roles_granted_to_its_principal() {
    let emu = Emu::start().await;
    let name = format!("ExchangeServerApp-{ORG}");
    let (s, _, app) = emu
        .graph(
            Method::POST,
            "applications",
            Some(json!({"displayName": name, "signInAudience": "AzureADMyOrg",
                "requiredResourceAccess": [{"resourceAppId": EXCHANGE_ONLINE_APP_ID,
                    "resourceAccess": [{"id": m365_emulator::FULL_ACCESS_AS_APP, "type": "Role"}]}]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert_eq!(app["keyCredentials"], json!([]));
    let app_id = app["appId"].as_str().unwrap();
    let (s, _, sp) = emu
        .graph(
            Method::POST,
            "servicePrincipals",
            Some(json!({"appId": app_id, "accountEnabled": true, "tags": ["WindowsAzureActiveDirectoryIntegratedApp", "HideApp"]})),
        )
        .await;
    assert_eq!(s, 201, "{sp}");
    assert_eq!(
        sp["tags"],
        json!(["WindowsAzureActiveDirectoryIntegratedApp", "HideApp"])
    );
    let exo = emu.sp(EXCHANGE_ONLINE_APP_ID).await;
    let (_, _, exo_full) = emu
        .graph(
            Method::GET,
            &format!("servicePrincipals/{}", exo["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(exo_full["appRoles"][0]["value"], "full_access_as_app");
    assert_eq!(
        exo_full["appRoles"][0]["id"],
        m365_emulator::FULL_ACCESS_AS_APP
    );

    let cert = fresh_cert("exchange auth");
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{}", app["id"].as_str().unwrap()),
            Some(json!({"keyCredentials": [key_body(&cert)]})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let token = |scope: String| {
        let emu = &emu;
        let cert = &cert;
        async move {
            let url = emu.token_url(&emu.tenant.tenant_id);
            let claims = assertion_claims(app_id, &url, Utc::now());
            let a = assertion(cert, &cert.pkcs8, "RS256", Thumb::X5t, &claims);
            emu.post_form(
                &url,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", app_id),
                    ("scope", &scope),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ],
            )
            .await
        }
    };
    let (s, b) = token("https://outlook.office365.com/.default".into()).await;
    assert_eq!(s, 200, "{b}");
    let c = decode_claims(b["access_token"].as_str().unwrap());
    assert_eq!(c["appid"], app_id);
    assert!(c.get("roles").is_none(), "nothing granted yet: {c}");

    let sp_id = sp["id"].as_str().unwrap();
    let grant = json!({"principalId": sp_id, "resourceId": exo["id"], "appRoleId": m365_emulator::FULL_ACCESS_AS_APP});
    let (s, _, a) = emu
        .graph(
            Method::POST,
            &format!("servicePrincipals/{sp_id}/appRoleAssignments"),
            Some(grant.clone()),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(
        (
            a["principalType"].as_str(),
            a["resourceDisplayName"].as_str()
        ),
        (Some("ServicePrincipal"), Some("Office 365 Exchange Online"))
    );
    let (s, _, v) = emu
        .graph(
            Method::POST,
            &format!("servicePrincipals/{sp_id}/appRoleAssignments"),
            Some(grant),
        )
        .await;
    assert_eq!(s, 400, "granted twice: {v}");
    for scope in [
        "https://outlook.office365.com/.default".to_string(),
        format!("{}/.default", emu.cloud.exchange_url),
    ] {
        let (s, b) = token(scope.clone()).await;
        assert_eq!(s, 200, "{scope}: {b}");
        let c = decode_claims(b["access_token"].as_str().unwrap());
        assert_eq!(c["roles"], json!(["full_access_as_app"]), "{scope}");
    }
    // A role Exchange Online does not offer.
    let bogus = json!({"principalId": sp_id, "resourceId": exo["id"], "appRoleId": uuid::Uuid::new_v4().to_string()});
    let (s, _, v) = emu
        .graph(
            Method::POST,
            &format!("servicePrincipals/{sp_id}/appRoleAssignments"),
            Some(bogus),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

/// `-ResetFirstPartyServicePrincipalKeyCredentials`: the kept keys of `00000002` re-sent as
/// `key`, `type`, `usage` only, under every `--key-resend` mode.
#[tokio::test]
async fn the_shared_principal_takes_kept_keys_as_key_type_usage_only() {
    for mode in [
        m365_emulator::KeyResend::Full,
        m365_emulator::KeyResend::Unchanged,
        m365_emulator::KeyResend::Minimal,
    ] {
        let mut cfg = quiet_tls();
        cfg.behaviour.key_resend = mode;
        let emu = Emu::start_with(cfg).await;
        let (keep, drop) = (fresh_cert("keep.onprem"), fresh_cert("drop.onprem"));
        let (s, v) = emu
            .patch_keys(
                EXCHANGE_ONLINE_APP_ID,
                json!([key_body(&keep), key_body(&drop)]),
            )
            .await;
        assert_eq!(s, 204, "{mode}: {v}");
        let sp = emu.sp(EXCHANGE_ONLINE_APP_ID).await;
        let kept: Vec<Value> = sp["keyCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["key"] == keep.b64())
            .map(|k| json!({"key": k["key"], "type": k["type"], "usage": k["usage"]}))
            .collect();
        let (s, v) = emu
            .patch_keys(EXCHANGE_ONLINE_APP_ID, Value::Array(kept))
            .await;
        assert_eq!(s, 204, "{mode}: {v}");
        let back = emu.sp(EXCHANGE_ONLINE_APP_ID).await;
        let keys = back["keyCredentials"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{mode}: {back}");
        assert_eq!(keys[0]["key"], keep.b64(), "{mode}");
    }
}

/// The library against the in-process emulator.
struct Lib {
    emu: Emu,
    cloud: Cloud,
    http: HttpClient,
    _dir: tempfile::TempDir,
}

impl Lib {
    async fn start() -> Lib {
        let emu = Emu::start().await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.running.ca_pem()).unwrap();
        let cloud = support::emulated_cloud(&emu.cloud, ca);
        let http = HttpClient::for_cloud(&cloud).unwrap();
        Lib {
            emu,
            cloud,
            http,
            _dir: dir,
        }
    }

    fn tokens(&self) -> TokenProvider {
        let a = &self.emu.tenant.admin;
        TokenProvider::new(
            self.http.clone(),
            self.cloud.clone(),
            &self.emu.tenant.tenant_id,
            AdminCredential::Secret {
                client_id: a.client_id.clone(),
                secret: hybrid_trust::secret::SecretString::new(a.client_secret.clone()),
            },
        )
    }
}

fn new_key(cert: &TestCert) -> KeyCredential {
    KeyCredential {
        key: Some(cert.b64()),
        key_id: Some(uuid::Uuid::new_v4().to_string()),
        kind: Some("AsymmetricX509Cert".into()),
        usage: Some("Verify".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_client_finds_reads_and_patches_the_dedicated_application() {
    let lib = Lib::start().await;
    let tokens = lib.tokens();
    let g = Graph::new(&lib.http, &lib.cloud, &tokens);
    let org = uuid::Uuid::parse_str(ORG).unwrap();
    let name = exchange_app_display_name(&org);
    // None yet: its own error, whose hint names Microsoft's script.
    let e = g.find_application_by_name(&name).await.unwrap_err();
    assert!(matches!(e, GraphError::NoApplication { .. }), "{e:?}");
    assert!(e.hint().contains(
        "ConfigureExchangeHybridApplication.ps1 -FullyConfigureExchangeHybridApplication"
    ));
    let seeded = seed(&lib.emu, true).await;
    let app = g.find_application_by_name(&name).await.unwrap();
    assert_eq!(app.id, seeded["id"].as_str().unwrap());
    assert_eq!(app.app_id, seeded["app_id"].as_str().unwrap());
    assert!(app.created_date_time.is_some());
    let by_app_id = g.find_application_by_app_id(&app.app_id).await.unwrap();
    assert_eq!(by_app_id.id, app.id);
    let e = g
        .find_application_by_app_id(&uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert!(matches!(e, GraphError::NoApplication { .. }), "{e:?}");

    // Upload, then keep it as read (key absent) beside a second one: the read-back has both.
    let (a, b) = (fresh_cert("a.auth"), fresh_cert("b.auth"));
    let after = g
        .patch_application_keys(&app.id, &[new_key(&a)])
        .await
        .unwrap();
    assert_eq!(after.key_credentials.len(), 1);
    assert_eq!(
        after.key_credentials[0].key.as_deref(),
        Some(a.b64().as_str()),
        "read back with key"
    );
    let listed = g.find_application_by_name(&name).await.unwrap();
    assert_eq!(listed.key_credentials[0].key, None, "a collection read");
    let mut keys = listed.key_credentials.clone();
    keys.push(new_key(&b));
    let after = g.patch_application_keys(&app.id, &keys).await.unwrap();
    let thumbs: Vec<_> = after
        .key_credentials
        .iter()
        .map(|k| k.thumbprint().unwrap())
        .collect();
    assert_eq!(thumbs, vec![a.sha1_hex(), b.sha1_hex()]);
    assert_eq!(after.raw_keys.len(), 2);

    // A second application of the same name: ambiguous.
    let (s, _, v) = lib
        .emu
        .graph(
            Method::POST,
            "applications",
            Some(json!({"displayName": name})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let e = g.find_application_by_name(&name).await.unwrap_err();
    assert!(
        matches!(e, GraphError::AmbiguousApplication { count: 2, .. }),
        "{e:?}"
    );
    assert!(e.hint().contains("--exchange-app-id"));
}

#[tokio::test]
async fn the_client_reads_the_key_lifetime_caps_from_the_policies() {
    let lib = Lib::start().await;
    let tokens = lib.tokens();
    let g = Graph::new(&lib.http, &lib.cloud, &tokens);
    seed(&lib.emu, true).await;
    let app = g
        .find_application_by_name(&exchange_app_display_name(
            &uuid::Uuid::parse_str(ORG).unwrap(),
        ))
        .await
        .unwrap();
    let caps = g.key_lifetime_caps(Some(&app)).await.unwrap();
    assert_eq!(
        (caps.application, caps.service_principal),
        (None, None),
        "no policy"
    );

    cap_default_policy(&lib.emu, "P365D").await;
    let caps = g.key_lifetime_caps(Some(&app)).await.unwrap();
    let app_cap = caps.application.unwrap();
    assert_eq!(
        (app_cap.max_lifetime, app_cap.source.clone()),
        (TimeDelta::days(365), CapSource::TenantDefault)
    );
    assert_eq!(caps.service_principal.unwrap().max_lifetime_iso, "P365D");
    // The cap learnt from the policy keeps a PATCH inside it.
    let cert = five_year_cert("exchange auth");
    let now = Utc::now();
    let mut k = new_key(&cert);
    k.start_date_time = Some(chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap());
    k.end_date_time = Some(app_cap.latest_end(now));
    let after = g.patch_application_keys(&app.id, &[k]).await.unwrap();
    assert_eq!(after.key_credentials.len(), 1);

    // The application's own policy overrides the default.
    let (s, _, pol) = lib
        .emu
        .graph(
            Method::POST,
            "policies/appManagementPolicies",
            Some(
                json!({"displayName": "certs 90 days", "restrictions": {"keyCredentials": [
                {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P90D"}]}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{pol}");
    let odata_id = format!(
        "{}/v1.0/policies/appManagementPolicies/{}",
        lib.emu.cloud.graph_url,
        pol["id"].as_str().unwrap()
    );
    let (s, _, _) = lib
        .emu
        .graph(
            Method::POST,
            &format!("applications/{}/appManagementPolicies/$ref", app.id),
            Some(json!({"@odata.id": odata_id})),
        )
        .await;
    assert_eq!(s, 204);
    let caps = g.key_lifetime_caps(Some(&app)).await.unwrap();
    let own = caps.application.unwrap();
    assert_eq!(own.max_lifetime, TimeDelta::days(90));
    assert!(
        matches!(own.source, CapSource::AppPolicy { display_name: Some(ref n), .. } if n == "certs 90 days")
    );
}

#[tokio::test]
async fn the_client_removes_on_premises_keys_from_the_shared_principal() {
    let lib = Lib::start().await;
    let tokens = lib.tokens();
    let g = Graph::new(&lib.http, &lib.cloud, &tokens);
    let (keep, drop) = (fresh_cert("keep.onprem"), fresh_cert("drop.onprem"));
    let (s, v) = lib
        .emu
        .patch_keys(
            EXCHANGE_ONLINE_APP_ID,
            json!([key_body(&keep), key_body(&drop)]),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let sp = g.exchange_online_principal().await.unwrap();
    assert_eq!(sp.app_id, EXCHANGE_ONLINE_APP_ID);
    assert_eq!(sp.key_credentials.len(), 2);
    let kept: Vec<KeyCredential> = sp
        .key_credentials
        .iter()
        .filter(|k| k.thumbprint() == Some(keep.sha1_hex()))
        .cloned()
        .collect();
    let after = g.patch_exchange_online_keys(&sp.id, &kept).await.unwrap();
    let thumbs: Vec<_> = after
        .key_credentials
        .iter()
        .map(|k| k.thumbprint().unwrap())
        .collect();
    assert_eq!(thumbs, vec![keep.sha1_hex()]);
    // A kept key read without its certificate is refused before any change.
    let mut blind = kept[0].clone();
    blind.key = None;
    assert!(
        g.patch_exchange_online_keys(&sp.id, &[blind])
            .await
            .is_err()
    );
    assert_eq!(
        g.exchange_online_principal()
            .await
            .unwrap()
            .key_credentials
            .len(),
        1
    );
}

#[tokio::test]
async fn the_control_api_seeds_the_dedicated_application() {
    let emu = Emu::start().await;
    let r = emu
        .client
        .post(format!(
            "{}/tenants/{}/exchangeApp",
            emu.running.ready.control_url, emu.tenant.domain
        ))
        .json(&json!({"organization_guid": ORG}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["display_name"], format!("ExchangeServerApp-{ORG}"));
    let (s, _, list) = emu
        .graph(
            Method::GET,
            &format!(
                "applications?$filter=appId eq '{}'",
                v["app_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["value"][0]["signInAudience"], "AzureADMyOrg");
    assert_eq!(
        list["value"][0]["requiredResourceAccess"][0]["resourceAccess"][0]["id"],
        m365_emulator::FULL_ACCESS_AS_APP
    );
    let (s, _, a) = emu
        .graph(
            Method::GET,
            &format!(
                "servicePrincipals/{}/appRoleAssignments",
                v["service_principal_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        a["value"][0]["appRoleId"],
        m365_emulator::FULL_ACCESS_AS_APP
    );
    let _ = KeyLifetimeRule::Window;
}
