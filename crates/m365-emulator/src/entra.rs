//! Entra ID (ESTS): OpenID discovery, JWKS, the token endpoint (v2 with `scope`, v1 with
//! `resource`) for client credentials with a secret or an RFC 7523 client assertion, and the
//! device code flow (RFC 8628) with an emulated admin who approves after a delay.
//!
//! Assertion checks follow Entra's documented behaviour
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>, docs/protocol.md
//! §2.2–2.4): a thumbprint header (`x5t` or `x5t#S256`, else AADSTS50027), the key among the
//! service principal's `Verify` key credentials (AADSTS700027 "The key was not found."), inside
//! its window (AADSTS700027 "The key used is expired."), the RS/PS signature (AADSTS700027 "Key
//! was found, but use of the key to verify the signature failed."), `iss` = `sub` = `client_id`
//! (AADSTS700021), `aud` = the token URL (AADSTS700023), `nbf`/`exp` within five minutes of skew
//! (AADSTS700024). The signature is checked before any claim is trusted. Base64url segments may
//! carry `=` padding, as Entra takes them from Microsoft's async azure-identity for Python
//! (docs/protocol.md §5.7).

use super::app_ids;
use super::certinfo::{self, hex_upper};
use super::errors::EntraError;
use super::jose;
use super::server::{Shared, correlation_id, form_params};
use super::state::{ServicePrincipal, Tenant};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Clock skew Entra tolerates on assertion `nbf`/`exp`.
const SKEW_SECS: i64 = 300;
/// Application Administrator role template id, carried in `wids` of the emulated admin's tokens.
const APPLICATION_ADMINISTRATOR: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V1,
    V2,
}

fn unknown_tenant(tenant: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn missing(param: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{param}'."),
    )
}

pub async fn openid_configuration(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = s.clock.now();
    let login = &s.urls.login;
    let (segment, issuer_tid) = if tenant == "common" || tenant == "organizations" {
        (tenant.clone(), "{tenantid}".to_string())
    } else {
        let dir = s.dir();
        match dir.tenant_index(&tenant) {
            Some(i) => (tenant.clone(), dir.tenants[i].id.to_string()),
            None => {
                return unknown_tenant(&tenant).into_response_at(now, correlation_id(&headers));
            }
        }
    };
    // Field set and order follow a real capture (fixtures/metadata/entra-*-openid-configuration.json).
    let body = json!({
        "token_endpoint": format!("{login}/{segment}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{login}/{segment}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{login}/{issuer_tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{}/oidc/userinfo", s.urls.graph),
        "authorization_endpoint": format!("{login}/{segment}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{login}/{segment}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{login}/{segment}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{login}/{segment}/kerberos"),
        "tenant_region_scope": if issuer_tid.starts_with('{') { Value::Null } else { json!("NA") },
        "cloud_instance_name": "m365-emulator.local",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host_of(&s.urls.graph),
        "rbac_url": "https://pas.windows.net",
    });
    Json(body).into_response()
}

fn host_of(url: &str) -> String {
    url.split_once("://").map_or(url, |(_, r)| r).to_string()
}

pub async fn jwks(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = s.clock.now();
    let issuer = if tenant == "common" || tenant == "organizations" {
        format!("{}/{{tenantid}}/v2.0", s.urls.login)
    } else {
        let dir = s.dir();
        match dir.tenant_index(&tenant) {
            Some(i) => format!("{}/{}/v2.0", s.urls.login, dir.tenants[i].id),
            None => return unknown_tenant(&tenant).into_response_at(now, correlation_id(&headers)),
        }
    };
    let k = &s.signing;
    Json(json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": k.x5t,
            "x5t": k.x5t,
            "n": URL_SAFE_NO_PAD.encode(&k.n),
            "e": URL_SAFE_NO_PAD.encode(&k.e),
            "x5c": [STANDARD.encode(&k.cert_der)],
            "issuer": issuer,
        }]
    }))
    .into_response()
}

/// A pending device authorisation.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub approve_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn devicecode(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = s.clock.now();
    let cid = correlation_id(&headers);
    let params = form_params(&body);
    let result = (|| {
        let dir = s.dir();
        let t = &dir.tenants[dir
            .tenant_index(&tenant)
            .ok_or_else(|| unknown_tenant(&tenant))?];
        let client_id = params
            .get("client_id")
            .ok_or_else(|| missing("client_id"))?;
        let scope = params.get("scope").cloned().unwrap_or_default();
        if t.sp_by_app_id(client_id).is_none() {
            return Err(app_not_found(client_id, t));
        }
        if !client_id.eq_ignore_ascii_case(app_ids::GRAPH_CLI_TOOLS) {
            // Confidential clients cannot use the device flow without a credential.
            return Err(no_credential());
        }
        let b = &dir.behaviour;
        let code = DeviceCode {
            tenant_id: t.id,
            client_id: client_id.clone(),
            scope,
            approve_at: now + TimeDelta::milliseconds(b.device_code_approve_after_ms as i64),
            expires_at: now + TimeDelta::seconds(900),
        };
        Ok((code, b.device_code_interval_secs))
    })();
    match result {
        Err(e) => e.into_response_at(now, cid),
        Ok((code, interval)) => {
            let device_code = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
            let user_code = Uuid::new_v4().simple().to_string()[..9].to_ascii_uppercase();
            s.device_codes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(device_code.clone(), code);
            let uri = format!("{}/devicelogin", s.urls.login);
            Json(json!({
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": 900,
                "interval": interval,
                "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
            }))
            .into_response()
        }
    }
}

pub async fn devicelogin() -> &'static str {
    "m365-emulator: device codes are approved automatically by the emulated admin.\n"
}

fn app_not_found(client_id: &str, t: &Tenant) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            t.domains[0]
        ),
    )
}

/// A disabled service principal (`accountEnabled: false`). AADSTS7000112 is
/// "UnauthorizedClientApplicationDisabled - The application is disabled." in Microsoft's AADSTS
/// error-code reference (ENTRA `reference-error-codes.md`, and its azure-docs predecessor
/// `reference-aadsts-error-codes.md`); the wording and the `unauthorized_client` error are as
/// real responses carry them, e.g. `{"error": "unauthorized_client", "error_description":
/// "AADSTS7000112: Application '<appId>'(<name>) is disabled."}` (quoted in Worklytics/psoxy
/// PR #74, and in many user reports). The HTTP status is [U]; 400 as for unauthorized_client.
fn app_disabled(sp: &super::state::ServicePrincipal) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        7000112,
        format!(
            "Application '{}'({}) is disabled.",
            sp.app_id, sp.display_name
        ),
    )
}

fn no_credential() -> EntraError {
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

pub async fn token_v2(s: State<Arc<Shared>>, p: Path<String>, h: HeaderMap, b: Bytes) -> Response {
    token(s, p, h, b, Version::V2)
}

pub async fn token_v1(s: State<Arc<Shared>>, p: Path<String>, h: HeaderMap, b: Bytes) -> Response {
    token(s, p, h, b, Version::V1)
}

/// What a successful grant yields before it becomes a token.
struct Grant {
    tenant_id: Uuid,
    resource: String,
    claims: serde_json::Map<String, Value>,
    refresh_token: Option<String>,
}

fn token(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    version: Version,
) -> Response {
    let now = s.clock.now();
    let cid = correlation_id(&headers);
    let params = form_params(&body);
    let grant = match params.get("grant_type").map(String::as_str) {
        None => Err(missing("grant_type")),
        Some("client_credentials") => client_credentials(&s, &tenant, &params, version, now),
        Some(DEVICE_CODE_GRANT) => device_code_grant(&s, &tenant, &params, now),
        Some("refresh_token") => refresh_token_grant(&s, &tenant, &params),
        Some(other) => Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    };
    match grant {
        Err(e) => e.into_response_at(now, cid),
        Ok(g) => issue(&s, g, version, now),
    }
}

/// The delegated session a refresh token stands for.
#[derive(Debug, Clone)]
pub struct RefreshSession {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub scope: String,
}

fn refresh_token_grant(
    s: &Shared,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<Grant, EntraError> {
    let rt = params
        .get("refresh_token")
        .ok_or_else(|| missing("refresh_token"))?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| missing("client_id"))?;
    let session = {
        let dir = s.dir();
        let t = &dir.tenants[dir
            .tenant_index(tenant)
            .ok_or_else(|| unknown_tenant(tenant))?];
        let sessions = s.refresh_tokens.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(rt)
            .filter(|r| r.tenant_id == t.id && r.client_id.eq_ignore_ascii_case(client_id))
            .cloned()
            .ok_or_else(|| EntraError::new(StatusCode::BAD_REQUEST, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is not valid."))?
    };
    let dc = DeviceCode {
        tenant_id: session.tenant_id,
        client_id: session.client_id,
        scope: session.scope,
        approve_at: DateTime::<Utc>::MIN_UTC,
        expires_at: DateTime::<Utc>::MAX_UTC,
    };
    delegated_grant(s, &dc)
}

fn issue(s: &Shared, g: Grant, version: Version, now: DateTime<Utc>) -> Response {
    let lifetime = s.dir().behaviour.access_token_lifetime_secs;
    let iat = now.timestamp();
    // `--reuse-tokens`: an app-only token still over half-lived is handed out again.
    let reuse_key = s
        .minted
        .as_ref()
        .filter(|_| g.refresh_token.is_none())
        .map(|_| {
            format!(
                "{version:?}|{}|{}|{}",
                g.tenant_id,
                g.resource,
                Value::Object(g.claims.clone())
            )
        });
    let reused = match (&s.minted, &reuse_key) {
        (Some(m), Some(k)) => m
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(k)
            .filter(|(_, exp)| exp - iat > lifetime / 2)
            .cloned(),
        _ => None,
    };
    let (token, exp) = match reused {
        Some(t) => t,
        None => {
            let (token, exp) = mint(s, &g, iat, lifetime);
            if let (Some(m), Some(k)) = (&s.minted, reuse_key) {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(k, (token.clone(), exp));
            }
            (token, exp)
        }
    };
    respond(g, version, token, iat, exp)
}

/// Signs an access token for `g` issued at `iat`: the token and its expiry.
fn mint(s: &Shared, g: &Grant, iat: i64, lifetime: i64) -> (String, i64) {
    let exp = iat + lifetime;
    let mut claims = json!({
        "aud": g.resource,
        "iss": format!("https://sts.windows.net/{}/", g.tenant_id),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "tid": g.tenant_id.to_string(),
        "ver": "1.0",
        "uti": URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
    });
    if let Value::Object(m) = &mut claims {
        m.extend(g.claims.clone());
    }
    (
        jose::sign_rs256(&s.signing.key, &s.signing.x5t, &claims),
        exp,
    )
}

/// The token endpoint's answer in the shape of `version`.
fn respond(g: Grant, version: Version, token: String, now: i64, exp: i64) -> Response {
    // What is left of the token's life (all of it unless `--reuse-tokens` handed it out again).
    let lifetime = exp - now;
    let iat = now;
    let mut body = match version {
        Version::V2 => json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
        // v1 returns the numbers as strings (which the oauth2 crate rejects; docs/protocol.md).
        Version::V1 => json!({
            "token_type": "Bearer",
            "expires_in": lifetime.to_string(),
            "ext_expires_in": lifetime.to_string(),
            "expires_on": exp.to_string(),
            "not_before": iat.to_string(),
            "resource": g.resource,
            "access_token": token,
        }),
    };
    if let (Some(rt), Value::Object(m)) = (g.refresh_token, &mut body) {
        m.insert("refresh_token".into(), json!(rt));
        m.insert(
            "scope".into(),
            json!("Application.ReadWrite.All offline_access"),
        );
    }
    Json(body).into_response()
}

/// Maps a requested resource (URI or app id) to the audience of the token and its application.
fn resolve_resource(s: &Shared, t: &Tenant, resource: &str) -> Option<(String, String)> {
    let r = resource.trim_end_matches('/');
    let graph = s.urls.graph.trim_end_matches('/');
    let exo = s.urls.exchange.trim_end_matches('/');
    if r.eq_ignore_ascii_case(graph) || r.eq_ignore_ascii_case(app_ids::MICROSOFT_GRAPH) {
        return Some((s.urls.graph.clone(), app_ids::MICROSOFT_GRAPH.to_string()));
    }
    if r.eq_ignore_ascii_case(exo) || r.eq_ignore_ascii_case(app_ids::EXCHANGE_ONLINE) {
        return Some((
            s.urls.exchange.clone(),
            app_ids::EXCHANGE_ONLINE.to_string(),
        ));
    }
    t.sp_by_app_id(r)
        .map(|sp| (sp.app_id.clone(), sp.app_id.clone()))
}

fn client_credentials(
    s: &Shared,
    tenant: &str,
    params: &HashMap<String, String>,
    version: Version,
    now: DateTime<Utc>,
) -> Result<Grant, EntraError> {
    let dir = s.dir();
    let t = &dir.tenants[dir
        .tenant_index(tenant)
        .ok_or_else(|| unknown_tenant(tenant))?];
    let client_id = params
        .get("client_id")
        .ok_or_else(|| missing("client_id"))?;
    let resource = match version {
        Version::V2 => {
            let scope = params.get("scope").ok_or_else(|| missing("scope"))?;
            scope
                .strip_suffix("/.default")
                .filter(|r| !r.is_empty() && !r.contains(' '))
                .ok_or_else(|| EntraError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1002012,
                    format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                ))?
                .to_string()
        }
        Version::V1 => params
            .get("resource")
            .ok_or_else(|| missing("resource"))?
            .clone(),
    };
    let sp = t
        .sp_by_app_id(client_id)
        .ok_or_else(|| app_not_found(client_id, t))?;
    if !sp.account_enabled {
        return Err(app_disabled(sp));
    }
    let acr = if let Some(secret) = params.get("client_secret") {
        let ok = sp.app_id == dir.admin_app.client_id
            && constant_time_eq(secret.as_bytes(), dir.admin_app.client_secret.as_bytes());
        if !ok {
            return Err(EntraError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
        "1"
    } else if let Some(assertion) = params.get("client_assertion") {
        if params.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(EntraError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                format!("Invalid JWT token. client_assertion_type must be '{JWT_BEARER}'."),
            ));
        }
        let path_version = match version {
            Version::V1 => "oauth2/token",
            Version::V2 => "oauth2/v2.0/token",
        };
        let audiences: Vec<String> = std::iter::once(t.id.to_string())
            .chain(t.domains.iter().cloned())
            .map(|seg| format!("{}/{seg}/{path_version}", s.urls.login))
            .collect();
        verify_assertion(assertion, sp, client_id, &audiences, now)?;
        "2"
    } else {
        return Err(no_credential());
    };
    let (aud, resource_app) = resolve_resource(s, t, &resource).ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!("The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", t.domains[0]),
        )
    })?;
    if t.sp_by_app_id(&resource_app)
        .is_some_and(|r| !r.account_enabled)
    {
        // Real words (Microsoft's support pages for Forms and Teams polls quote them, typo
        // included); the `error` value and HTTP status Entra pairs with AADSTS500014 are [U].
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500014,
            format!(
                "The service principal for resource '{resource}' is disabled. This indicate that a subscription within the tenant has lapsed, or that the administrator for this tenant has disabled the application, preventing tokens from being issued for it."
            ),
        ));
    }
    let mut claims = serde_json::Map::new();
    claims.insert("appid".into(), json!(sp.app_id));
    claims.insert("appidacr".into(), json!(acr));
    claims.insert("idtyp".into(), json!("app"));
    claims.insert("oid".into(), json!(sp.id.to_string()));
    claims.insert("sub".into(), json!(sp.id.to_string()));
    if resource_app == app_ids::MICROSOFT_GRAPH && !sp.graph_roles.is_empty() {
        claims.insert("roles".into(), json!(sp.graph_roles));
    }
    // The admin app holds Exchange Online's `SMTP.SendAsApp` (SMTP AUTH with OAuth as an app;
    // Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth"), so a reminder
    // channel with `oauth` can be tested against an SMTP server that checks the role.
    if resource_app == app_ids::EXCHANGE_ONLINE && sp.app_id == dir.admin_app.client_id {
        claims.insert("roles".into(), json!(["SMTP.SendAsApp"]));
    }
    Ok(Grant {
        tenant_id: t.id,
        resource: aud,
        claims,
        refresh_token: None,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn invalid_signature(
    reason: &str,
    thumbprint: &str,
    found: Option<(DateTime<Utc>, DateTime<Utc>)>,
    client_id: &str,
) -> EntraError {
    let found = found
        .map(|(a, b)| {
            format!(
                " Found key 'Start={}, End={}',",
                a.format("%m/%d/%Y %H:%M:%S"),
                b.format("%m/%d/%Y %H:%M:%S")
            )
        })
        .unwrap_or_default();
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700027,
        format!(
            "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}',{found} Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']"
        ),
    )
}

fn malformed(detail: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        50027,
        format!("Invalid JWT token. {detail}"),
    )
}

/// Verifies an RFC 7523 client assertion the way Entra does (module docs).
pub fn verify_assertion(
    assertion: &str,
    sp: &ServicePrincipal,
    client_id: &str,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<(), EntraError> {
    // Padded segments are taken: Entra accepts the assertions azure-identity's async
    // CertificateCredential signs with `base64.urlsafe_b64encode` (docs/protocol.md §5.7).
    let jws = jose::decode(assertion, jose::Padding::Tolerated)
        .map_err(|_| malformed("Token format not valid."))?;
    // The thumbprint header: SHA-1 (`x5t`) or SHA-256 (`x5t#S256`), base64url.
    let (thumb, sha256) = if let Some(t) = jws.header_str("x5t#S256") {
        (t, true)
    } else if let Some(t) = jws.header_str("x5t") {
        (t, false)
    } else {
        return Err(malformed(
            "No certificate thumbprint specified in token header.",
        ));
    };
    let thumb_bytes = URL_SAFE_NO_PAD
        .decode(thumb.trim_end_matches('='))
        .map_err(|_| malformed("Certificate thumbprint in token header is not base64url."))?;
    let thumb_hex = hex_upper(&thumb_bytes);
    let alg = jws.alg().to_string();
    if !matches!(
        alg.as_str(),
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
    ) {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            5002738,
            format!(
                "Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, RS384, RS512, PS256, PS384, PS512'"
            ),
        ));
    }
    let candidates: Vec<_> = sp
        .key_credentials
        .iter()
        .filter(|k| k.usage == "Verify" && k.kind == "AsymmetricX509Cert")
        .filter_map(|k| {
            let info = certinfo::parse(&k.der())?;
            let matches = if sha256 {
                info.sha256[..] == thumb_bytes[..]
            } else {
                info.sha1[..] == thumb_bytes[..]
            };
            matches.then_some((k, info))
        })
        .collect();
    if candidates.is_empty() {
        return Err(invalid_signature(
            "The key was not found.",
            &thumb_hex,
            None,
            client_id,
        ));
    }
    let Some((key, info)) = candidates
        .iter()
        .find(|(k, _)| k.start <= now && now <= k.end)
    else {
        let (k, _) = &candidates[0];
        return Err(invalid_signature(
            "The key used is expired.",
            &thumb_hex,
            Some((k.start, k.end)),
            client_id,
        ));
    };
    let verified = info
        .rsa_public_pkcs1
        .as_deref()
        .and_then(|pk| jws.verify_rsa(pk))
        .unwrap_or(false);
    if !verified {
        return Err(invalid_signature(
            "Key was found, but use of the key to verify the signature failed.",
            &thumb_hex,
            Some((key.start, key.end)),
            client_id,
        ));
    }
    if jws.claim_str("iss") != Some(client_id) || jws.claim_str("sub") != Some(client_id) {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let aud_ok = match jws.claims.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|x| x.eq_ignore_ascii_case(a)),
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x.eq_ignore_ascii_case(a))),
        _ => false,
    };
    if !aud_ok {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let Some(exp) = jws.claim_i64("exp") else {
        return Err(malformed("The 'exp' claim is missing."));
    };
    let nbf = jws.claim_i64("nbf").unwrap_or(i64::MIN);
    let t = now.timestamp();
    if t + SKEW_SECS < nbf || t - SKEW_SECS > exp {
        let fmt = |secs: i64| {
            DateTime::<Utc>::from_timestamp(secs, 0)
                .map(|d| format!("{}.0000000Z", d.format("%Y-%m-%dT%H:%M:%S")))
                .unwrap_or_else(|| secs.to_string())
        };
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
                fmt(now.timestamp()),
                if nbf == i64::MIN {
                    "(none)".to_string()
                } else {
                    fmt(nbf)
                },
                fmt(exp)
            ),
        ));
    }
    Ok(())
}

fn device_code_grant(
    s: &Shared,
    tenant: &str,
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Grant, EntraError> {
    let code = params
        .get("device_code")
        .ok_or_else(|| missing("device_code"))?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| missing("client_id"))?;
    let dir = s.dir();
    let t = &dir.tenants[dir
        .tenant_index(tenant)
        .ok_or_else(|| unknown_tenant(tenant))?];
    let mut codes = s.device_codes.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dc) = codes
        .get(code)
        .filter(|dc| dc.tenant_id == t.id && dc.client_id.eq_ignore_ascii_case(client_id))
        .cloned()
    else {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed.",
        ));
    };
    if now > dc.expires_at {
        codes.remove(code);
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        ));
    }
    if now < dc.approve_at {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ));
    }
    codes.remove(code);
    drop(codes);
    drop(dir);
    delegated_grant(s, &dc)
}

/// A token for the emulated admin, who consented to Application.ReadWrite.All on Microsoft Graph.
fn delegated_grant(s: &Shared, dc: &DeviceCode) -> Result<Grant, EntraError> {
    let dir = s.dir();
    let Some(t) = dir.tenants.iter().find(|t| t.id == dc.tenant_id) else {
        return Err(unknown_tenant(&dc.tenant_id.to_string()));
    };
    let mut claims = serde_json::Map::new();
    let first = dc
        .scope
        .split_whitespace()
        .find(|sc| sc.contains('/'))
        .unwrap_or("");
    let resource = first.rsplit_once('/').map_or("", |(r, _)| r);
    let (aud, app) = resolve_resource(s, t, resource)
        .unwrap_or((s.urls.graph.clone(), app_ids::MICROSOFT_GRAPH.to_string()));
    let scopes: Vec<&str> = dc
        .scope
        .split_whitespace()
        .filter_map(|sc| sc.rsplit_once('/').map(|(_, n)| n))
        .filter(|n| *n != ".default")
        .collect();
    let scp = if scopes.is_empty() && app == app_ids::MICROSOFT_GRAPH {
        "Application.ReadWrite.All".to_string()
    } else {
        scopes.join(" ")
    };
    claims.insert("appid".into(), json!(dc.client_id));
    claims.insert("appidacr".into(), json!("0"));
    claims.insert("idtyp".into(), json!("user"));
    claims.insert("oid".into(), json!(t.admin_user_id.to_string()));
    claims.insert("sub".into(), json!(t.admin_user_id.to_string()));
    claims.insert("upn".into(), json!(t.admin_upn()));
    claims.insert("scp".into(), json!(scp));
    claims.insert("wids".into(), json!([APPLICATION_ADMINISTRATOR]));
    // Entra issues a refresh token when offline_access is asked for.
    let refresh = dc
        .scope
        .split_whitespace()
        .any(|sc| sc == "offline_access")
        .then(|| {
            let token = format!(
                "emu-rt.{}{}",
                Uuid::new_v4().simple(),
                Uuid::new_v4().simple()
            );
            s.refresh_tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    token.clone(),
                    RefreshSession {
                        tenant_id: t.id,
                        client_id: dc.client_id.clone(),
                        scope: dc.scope.clone(),
                    },
                );
            token
        });
    Ok(Grant {
        tenant_id: t.id,
        resource: aud,
        claims,
        refresh_token: refresh,
    })
}
