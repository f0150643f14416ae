//! Microsoft Graph v1.0 (and beta) `servicePrincipals`, as docs/protocol.md §1 documents it:
//! collection with `$filter=appId eq '…'` and `$select`; single object by id or by the alternate
//! key `(appId='…')`; PATCH with replace semantics for `keyCredentials` and
//! `servicePrincipalNames` (204); `addKey`/`removeKey` with a proof-of-possession JWT.
//!
//! `key` is returned only on a single-object GET that `$select`s `keyCredentials` (the collection
//! form is switchable, [U]); `$select=keyCredentials` is throttled per tenant per minute (429 +
//! Retry-After). Key validation: type/usage, Base64 DER `key`, UTC dates, end after start, start
//! not before the certificate's notBefore, end not after its notAfter, no expired key
//! (`KeyCredentialsInvalidEndDate`), dates from the certificate when omitted, an optional tenant
//! lifetime policy (`CredentialInvalidLifetimeAsPerAppPolicy`).

use super::app_ids;
use super::certinfo::{self, hex_upper};
use super::errors::GraphError;
use super::filter;
use super::jose;
use super::server::Shared;
use super::state::{
    Behaviour, CustomKeyIdForm, Directory, KeyResend, ServicePrincipal, StoredKey, Tenant,
    first_party_sp,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Timelike as _, Utc};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use uuid::Uuid;

const READ_PERMISSIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_PERMISSIONS: &[&str] = &["Application.ReadWrite.All", "Directory.ReadWrite.All"];

/// The properties of a servicePrincipal (v1.0), in the order real Graph returns them (captures in
/// fixtures/graph-captures). `$select` accepts any of them.
const PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "accountEnabled",
    "alternativeNames",
    "appDisplayName",
    "appDescription",
    "appId",
    "applicationTemplateId",
    "appOwnerOrganizationId",
    "appRoleAssignmentRequired",
    "createdDateTime",
    "description",
    "disabledByMicrosoftStatus",
    "displayName",
    "homepage",
    "loginUrl",
    "logoutUrl",
    "notes",
    "notificationEmailAddresses",
    "preferredSingleSignOnMode",
    "preferredTokenSigningKeyThumbprint",
    "replyUrls",
    "servicePrincipalNames",
    "servicePrincipalType",
    "signInAudience",
    "tags",
    "tokenEncryptionKeyId",
    "samlSingleSignOnSettings",
    "verifiedPublisher",
    "addIns",
    "appRoles",
    "info",
    "keyCredentials",
    "oauth2PermissionScopes",
    "passwordCredentials",
    "resourceSpecificApplicationPermissions",
];

/// The properties of a keyCredential (GDC `resources/keycredential.md`).
const KEY_PROPERTIES: &[&str] = &[
    "customKeyIdentifier",
    "displayName",
    "endDateTime",
    "key",
    "keyId",
    "startDateTime",
    "type",
    "usage",
];

/// The caller, from a verified access token.
struct Caller {
    tenant_id: Uuid,
    permissions: Vec<String>,
}

enum Target {
    Collection,
    ById(String),
    ByAppId(String),
}

pub async fn dispatch(
    State(s): State<Arc<Shared>>,
    method: Method,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = s.clock.now();
    match handle(
        &s,
        &method,
        &version,
        &rest,
        query.as_deref(),
        &headers,
        &body,
        now,
    ) {
        Ok(r) => r,
        Err(e) => e.into_response_at(now),
    }
}

#[allow(clippy::too_many_arguments)]
fn handle(
    s: &Shared,
    method: &Method,
    version: &str,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Response, GraphError> {
    if version != "v1.0" && version != "beta" {
        return Err(GraphError::bad_request(
            "BadRequest",
            format!("Invalid version: {version}"),
        ));
    }
    let caller = authenticate(s, headers, now)?;
    if let Some(user) = send_mail_user(rest) {
        if *method != Method::POST {
            return Err(GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                format!("The HTTP method '{method}' is not allowed on sendMail."),
            ));
        }
        let msg = super::mail::send_mail(
            &s.dir(),
            caller.tenant_id,
            &caller.permissions,
            &user,
            headers,
            body,
            now,
        )?;
        s.mail.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let (target, action) = parse_path(rest)?;
    let params = query_params(query);
    let select = parse_select(
        params
            .iter()
            .find(|(k, _)| k == "$select")
            .map(|(_, v)| v.as_str()),
    )?;
    let selects_keys = select
        .as_ref()
        .is_some_and(|s| s.iter().any(|p| p == "keyCredentials"));

    match (method.clone(), &target, action) {
        (Method::GET, Target::Collection, None) => {
            require(&caller, READ_PERMISSIONS)?;
            if selects_keys {
                throttle(s, caller.tenant_id, now)?;
            }
            let filter = params
                .iter()
                .find(|(k, _)| k == "$filter")
                .map(|(_, v)| v.as_str());
            let dir = s.dir();
            let t = tenant(&dir, caller.tenant_id)?;
            let matching: Vec<&ServicePrincipal> = match filter {
                None => t.service_principals.iter().collect(),
                Some(f) => {
                    let expr = filter::parse(f).ok_or_else(|| {
                        GraphError::bad_request(
                            "Request_UnsupportedQuery",
                            format!("Unsupported or invalid query filter clause specified: {f}"),
                        )
                    })?;
                    t.service_principals
                        .iter()
                        .filter(|sp| filter::matches(&expr, sp))
                        .collect()
                }
            };
            let include_key =
                selects_keys && dir.behaviour.key_in_collection && !dir.behaviour.never_return_key;
            let value: Vec<Value> = matching
                .iter()
                .map(|sp| Value::Object(render_sp(sp, select.as_deref(), include_key)))
                .collect();
            let ctx = format!(
                "{}/{version}/$metadata#servicePrincipals{}",
                s.urls.graph,
                select_suffix(select.as_deref())
            );
            Ok(axum::Json(json!({"@odata.context": ctx, "value": value})).into_response())
        }
        (Method::GET, _, None) => {
            require(&caller, READ_PERMISSIONS)?;
            if selects_keys {
                throttle(s, caller.tenant_id, now)?;
            }
            let dir = s.dir();
            let t = tenant(&dir, caller.tenant_id)?;
            let sp = find_sp(t, &target)?;
            let mut obj = Map::new();
            obj.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/{version}/$metadata#servicePrincipals{}/$entity",
                    s.urls.graph,
                    select_suffix(select.as_deref())
                )),
            );
            obj.extend(render_sp(
                sp,
                select.as_deref(),
                selects_keys && !dir.behaviour.never_return_key,
            ));
            Ok(axum::Json(Value::Object(obj)).into_response())
        }
        (Method::POST, Target::Collection, None) => {
            require(&caller, WRITE_PERMISSIONS)?;
            let req = without_annotations(parse_json_object(body)?, "servicePrincipal")?;
            let app_id = req.get("appId").and_then(Value::as_str).ok_or_else(|| {
                GraphError::bad_request(
                    "Request_BadRequest",
                    "A value is required for property 'appId' of resource 'ServicePrincipal'.",
                )
            })?;
            if let Some(p) = req.keys().find(|k| *k != "appId") {
                // Creating with more than the appId is not something this emulator models.
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!(
                        "Property '{p}' cannot be set when creating a service principal in the emulator."
                    ),
                ));
            }
            let mut dir = s.dir();
            let ti = tenant_index(&dir, caller.tenant_id)?;
            if dir.tenants[ti].sp_by_app_id(app_id).is_some() {
                // The message is real (azure-cli and PowerShell users quote it); the status
                // Graph pairs with this code is [U].
                return Err(GraphError::new(
                    StatusCode::CONFLICT,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Another object with the same value for property servicePrincipalNames already exists.",
                ));
            }
            // Only Microsoft's first-party applications the emulator knows have an application
            // object behind them (the real message; Graph's code is Request_BadRequest).
            let mut sp = first_party_sp(app_id).ok_or_else(|| {
                GraphError::bad_request(
                    "Request_BadRequest",
                    format!("The appId '{app_id}' of the service principal does not reference a valid application object."),
                )
            })?;
            sp.created = now;
            let mut obj = Map::new();
            obj.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/{version}/$metadata#servicePrincipals/$entity",
                    s.urls.graph
                )),
            );
            obj.extend(render_sp(&sp, None, false));
            dir.tenants[ti].service_principals.push(sp);
            s.persist(&dir);
            Ok((StatusCode::CREATED, axum::Json(Value::Object(obj))).into_response())
        }
        (Method::PATCH, Target::ById(_) | Target::ByAppId(_), None) => {
            require(&caller, WRITE_PERMISSIONS)?;
            let patch = without_annotations(parse_json_object(body)?, "servicePrincipal")?;
            let mut dir = s.dir();
            let behaviour = dir.behaviour.clone();
            let ti = tenant_index(&dir, caller.tenant_id)?;
            let t = &dir.tenants[ti];
            let spi = sp_index(t, &target)?;
            let sp = &t.service_principals[spi];
            let policy = (t.policy.max_key_lifetime_days, t.id);
            let mut updated = sp.clone();
            for (k, v) in &patch {
                match k.as_str() {
                    "keyCredentials" => {
                        let arr = v.as_array().ok_or_else(|| {
                            GraphError::bad_request(
                                "BadRequest",
                                "keyCredentials must be an array.",
                            )
                        })?;
                        let mut keys = Vec::with_capacity(arr.len());
                        for item in arr {
                            keys.push(patched_key(item, sp, now, policy, &behaviour)?);
                        }
                        let mut ids: Vec<Uuid> = keys.iter().map(|k| k.key_id).collect();
                        ids.sort();
                        if ids.windows(2).any(|w| w[0] == w[1]) {
                            return Err(GraphError::bad_request(
                                "Request_BadRequest",
                                "Duplicate keyId in keyCredentials.",
                            ));
                        }
                        updated.key_credentials = keys;
                    }
                    "servicePrincipalNames" => {
                        let arr = v.as_array().ok_or_else(|| {
                            GraphError::bad_request(
                                "BadRequest",
                                "servicePrincipalNames must be an array.",
                            )
                        })?;
                        let mut names = Vec::new();
                        for n in arr {
                            match n.as_str() {
                                Some(n) if !n.trim().is_empty() => names.push(n.to_string()),
                                _ => {
                                    return Err(GraphError::bad_request(
                                        "Request_BadRequest",
                                        "Invalid value specified for property 'servicePrincipalNames' of resource 'ServicePrincipal'.",
                                    ));
                                }
                            }
                        }
                        updated.service_principal_names = names;
                    }
                    "accountEnabled" => {
                        updated.account_enabled = v.as_bool().ok_or_else(|| {
                            GraphError::bad_request(
                                "BadRequest",
                                "accountEnabled must be a boolean.",
                            )
                        })?;
                    }
                    p if PROPERTIES.contains(&p) => {
                        return Err(GraphError::bad_request(
                            "Request_BadRequest",
                            format!("Property '{p}' is read-only and cannot be set."),
                        ));
                    }
                    p => {
                        return Err(GraphError::bad_request(
                            "Request_BadRequest",
                            format!("Invalid property '{p}'."),
                        ));
                    }
                }
            }
            dir.tenants[ti].service_principals[spi] = updated;
            s.persist(&dir);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (
            Method::POST,
            Target::ById(_) | Target::ByAppId(_),
            Some(action @ ("addKey" | "removeKey")),
        ) => {
            require(&caller, WRITE_PERMISSIONS)?;
            let req = parse_json_object(body)?;
            let mut dir = s.dir();
            let behaviour = dir.behaviour.clone();
            let ti = tenant_index(&dir, caller.tenant_id)?;
            let t = &dir.tenants[ti];
            let policy = (t.policy.max_key_lifetime_days, t.id);
            let spi = sp_index(t, &target)?;
            let sp = &t.service_principals[spi];
            let proof = req.get("proof").and_then(Value::as_str).unwrap_or("");
            verify_proof(proof, sp, now)?;
            if action == "addKey" {
                let kc = req.get("keyCredential").ok_or_else(|| {
                    GraphError::bad_request(
                        "Request_BadRequest",
                        "The keyCredential parameter is required.",
                    )
                })?;
                if req.get("passwordCredential").is_some_and(|p| !p.is_null()) {
                    return Err(GraphError::bad_request(
                        "Request_BadRequest",
                        "passwordCredential must be null when adding an AsymmetricX509Cert key.",
                    ));
                }
                let kc = match kc {
                    Value::Object(m) => {
                        Value::Object(without_annotations(m.clone(), "keyCredential")?)
                    }
                    other => other.clone(),
                };
                let key = validate_key(&kc, now, policy, &behaviour)?;
                let rendered = render_key(&key, false);
                dir.tenants[ti].service_principals[spi]
                    .key_credentials
                    .push(key);
                s.persist(&dir);
                let mut obj = Map::new();
                obj.insert(
                    "@odata.context".into(),
                    json!(format!(
                        "{}/{version}/$metadata#microsoft.graph.keyCredential",
                        s.urls.graph
                    )),
                );
                if let Value::Object(m) = rendered {
                    obj.extend(m);
                }
                Ok((StatusCode::OK, axum::Json(Value::Object(obj))).into_response())
            } else {
                let key_id = req
                    .get("keyId")
                    .and_then(Value::as_str)
                    .and_then(|k| Uuid::parse_str(k).ok())
                    .ok_or_else(|| {
                        GraphError::bad_request("Request_BadRequest", "keyId must be a GUID.")
                    })?;
                let keys = &mut dir.tenants[ti].service_principals[spi].key_credentials;
                let before = keys.len();
                keys.retain(|k| k.key_id != key_id);
                if keys.len() == before {
                    return Err(GraphError::not_found(&key_id.to_string()));
                }
                s.persist(&dir);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
        }
        _ => Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request uri.",
        )),
    }
}

fn select_suffix(select: Option<&[String]>) -> String {
    select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default()
}

fn tenant(dir: &Directory, id: Uuid) -> Result<&Tenant, GraphError> {
    Ok(&dir.tenants[tenant_index(dir, id)?])
}

fn tenant_index(dir: &Directory, id: Uuid) -> Result<usize, GraphError> {
    dir.tenants.iter().position(|t| t.id == id).ok_or_else(|| {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The tenant of the token does not exist.",
        )
    })
}

fn find_sp<'a>(t: &'a Tenant, target: &Target) -> Result<&'a ServicePrincipal, GraphError> {
    Ok(&t.service_principals[sp_index(t, target)?])
}

fn sp_index(t: &Tenant, target: &Target) -> Result<usize, GraphError> {
    let (found, name) = match target {
        Target::ById(id) => (
            t.service_principals
                .iter()
                .position(|sp| sp.id.to_string().eq_ignore_ascii_case(id)),
            id,
        ),
        Target::ByAppId(app) => (
            t.service_principals
                .iter()
                .position(|sp| sp.app_id.eq_ignore_ascii_case(app)),
            app,
        ),
        Target::Collection => (None, &String::new()),
    };
    found.ok_or_else(|| GraphError::not_found(name))
}

fn require(caller: &Caller, any_of: &[&str]) -> Result<(), GraphError> {
    if caller
        .permissions
        .iter()
        .any(|p| any_of.contains(&p.as_str()))
    {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

fn unauthenticated(message: &str) -> GraphError {
    GraphError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    )
}

fn authenticate(s: &Shared, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Caller, GraphError> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() {
        return Err(unauthenticated("Access token is empty."));
    }
    let jws = jose::decode(token, jose::Padding::Tolerated)
        .map_err(|_| unauthenticated("IDX14100: JWT is not well formed."))?;
    if jws.verify_rsa(&s.signing.public_pkcs1) != Some(true) {
        return Err(unauthenticated(
            "Access token validation failure. Invalid signature.",
        ));
    }
    let aud = jws.claim_str("aud").unwrap_or("");
    if aud != s.urls.graph && aud != app_ids::MICROSOFT_GRAPH {
        return Err(unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    if jws.claim_i64("exp").is_none_or(|exp| exp < now.timestamp()) {
        return Err(unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    let tenant_id = jws
        .claim_str("tid")
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or_else(|| unauthenticated("Access token validation failure. Invalid tenant."))?;
    let mut permissions: Vec<String> = jws
        .claims
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if let Some(scp) = jws.claim_str("scp") {
        permissions.extend(scp.split_whitespace().map(String::from));
    }
    Ok(Caller {
        tenant_id,
        permissions,
    })
}

/// `users/{id|upn}/sendMail` (segments case-insensitive, the user percent-decoded).
fn send_mail_user(rest: &str) -> Option<String> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        [users, user, action]
            if users.eq_ignore_ascii_case("users") && action.eq_ignore_ascii_case("sendMail") =>
        {
            Some(percent_encoding_decode(user).trim_matches('\'').to_string())
        }
        _ => None,
    }
}

fn percent_encoding_decode(s: &str) -> String {
    form_urlencoded::parse(format!("u={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn parse_path(rest: &str) -> Result<(Target, Option<&str>), GraphError> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let unknown = |seg: &str| {
        GraphError::bad_request(
            "BadRequest",
            format!("Resource not found for the segment '{seg}'."),
        )
    };
    let first = segments.first().copied().unwrap_or("");
    let target = if first == "servicePrincipals" {
        if segments.len() == 1 {
            return Ok((Target::Collection, None));
        }
        Target::ById(segments[1].to_string())
    } else if let Some(inner) = first
        .strip_prefix("servicePrincipals(appId=")
        .and_then(|r| r.strip_suffix(')'))
    {
        let app = inner
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .ok_or_else(|| unknown(first))?;
        Target::ByAppId(app.to_string())
    } else {
        return Err(unknown(first));
    };
    let action_index = if matches!(target, Target::ById(_)) {
        2
    } else {
        1
    };
    match segments.get(action_index..) {
        None | Some([]) => Ok((target, None)),
        Some([a]) if *a == "addKey" || *a == "removeKey" => Ok((
            target,
            Some(if *a == "addKey" {
                "addKey"
            } else {
                "removeKey"
            }),
        )),
        Some([a, ..]) => Err(unknown(a)),
    }
}

fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn parse_select(select: Option<&str>) -> Result<Option<Vec<String>>, GraphError> {
    let Some(select) = select else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for p in select.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let canonical = PROPERTIES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(p))
            .ok_or_else(|| GraphError::bad_request(
                "Request_BadRequest",
                format!("Could not find a property named '{p}' on type 'microsoft.graph.servicePrincipal'."),
            ))?;
        out.push((*canonical).to_string());
    }
    Ok(Some(out))
}

fn throttle(s: &Shared, tenant: Uuid, now: DateTime<Utc>) -> Result<(), GraphError> {
    let limit = s.dir().behaviour.select_key_limit_per_minute;
    let minute = now.timestamp().div_euclid(60);
    let mut map = s.throttle.lock().unwrap_or_else(|e| e.into_inner());
    let entry = map.entry(tenant).or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    if entry.1 >= limit {
        let mut e = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests to read keyCredentials in this tenant. Retry after the time in the Retry-After header.",
        );
        e.retry_after = Some((60 - now.timestamp().rem_euclid(60)).max(1) as u64);
        return Err(e);
    }
    entry.1 += 1;
    Ok(())
}

fn render_sp(
    sp: &ServicePrincipal,
    select: Option<&[String]>,
    include_key: bool,
) -> Map<String, Value> {
    // Every property real Graph returns, in its order (fixtures/graph-captures); those the
    // emulator does not model carry the values a first-party principal has by default.
    let all: Vec<(&str, Value)> = vec![
        ("id", json!(sp.id.to_string())),
        ("deletedDateTime", Value::Null),
        ("accountEnabled", json!(sp.account_enabled)),
        ("alternativeNames", json!([])),
        ("appDisplayName", json!(sp.display_name)),
        ("appDescription", Value::Null),
        ("appId", json!(sp.app_id)),
        ("applicationTemplateId", Value::Null),
        (
            "appOwnerOrganizationId",
            json!(sp.app_owner_organization_id),
        ),
        ("appRoleAssignmentRequired", json!(false)),
        ("createdDateTime", json!(graph_date(sp.created))),
        ("description", Value::Null),
        ("disabledByMicrosoftStatus", Value::Null),
        ("displayName", json!(sp.display_name)),
        ("homepage", Value::Null),
        ("loginUrl", Value::Null),
        ("logoutUrl", Value::Null),
        ("notes", Value::Null),
        ("notificationEmailAddresses", json!([])),
        ("preferredSingleSignOnMode", Value::Null),
        ("preferredTokenSigningKeyThumbprint", Value::Null),
        ("replyUrls", json!([])),
        ("servicePrincipalNames", json!(sp.service_principal_names)),
        ("servicePrincipalType", json!("Application")),
        ("signInAudience", json!("AzureADMultipleOrgs")),
        ("tags", json!([])),
        ("tokenEncryptionKeyId", Value::Null),
        ("samlSingleSignOnSettings", Value::Null),
        (
            "verifiedPublisher",
            json!({"displayName": null, "verifiedPublisherId": null, "addedDateTime": null}),
        ),
        ("addIns", json!([])),
        ("appRoles", json!([])),
        (
            "info",
            json!({"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null}),
        ),
        (
            "keyCredentials",
            Value::Array(
                sp.key_credentials
                    .iter()
                    .map(|k| render_key(k, include_key))
                    .collect(),
            ),
        ),
        ("oauth2PermissionScopes", json!([])),
        ("passwordCredentials", json!([])),
        ("resourceSpecificApplicationPermissions", json!([])),
    ];
    all.into_iter()
        .filter(|(name, _)| select.is_none_or(|s| s.iter().any(|p| p == name)))
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// Drops OData instance and property annotations (`@odata.type`, `@odata.context`,
/// `keyCredentials@odata.type`, …) as real Graph does with what Microsoft's SDKs send; an
/// `@odata.type` naming another type than `expected` is refused with OData's message.
fn without_annotations(
    obj: Map<String, Value>,
    expected: &str,
) -> Result<Map<String, Value>, GraphError> {
    let mut out = Map::new();
    for (k, v) in obj {
        if k == "@odata.type" {
            let t = v.as_str().unwrap_or("");
            let name = t.strip_prefix('#').unwrap_or(t);
            if !name.eq_ignore_ascii_case(&format!("microsoft.graph.{expected}")) {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!(
                        "A type named '{name}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type."
                    ),
                ));
            }
        } else if !k.contains('@') {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// Edm.Binary as Graph reads it: Base64 with any whitespace ignored (azure-cli sends `key` with a
/// line break every 64 characters, captures 3 and 83 in fixtures/graph-captures, and Graph takes it,
/// as .NET's `Convert.FromBase64String` does).
fn decode_binary(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

fn update_not_allowed(key_id: Uuid) -> GraphError {
    // The message users of azure-cli, Azure PowerShell and Microsoft's own products quote
    // (Dynamics 365 on-premises and Azure Backup troubleshooting pages); its code is [U].
    GraphError::bad_request(
        "Request_BadRequest",
        format!("Update to existing credential with KeyId '{key_id}' is not allowed."),
    )
}

/// Whether a sent (non-null) property of a retained key differs from the stored key.
fn differs(name: &str, sent: &Value, stored: &StoredKey) -> bool {
    let Some(text) = sent.as_str() else {
        return true;
    };
    let date = |d: DateTime<Utc>| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .is_none_or(|t| t.with_timezone(&Utc) != d)
    };
    match name {
        "keyId" => Uuid::parse_str(text).ok() != Some(stored.key_id),
        "key" => decode_binary(text).is_none_or(|der| der != stored.der()),
        "startDateTime" => date(stored.start),
        "endDateTime" => date(stored.end),
        "customKeyIdentifier" => match &stored.custom_key_identifier {
            None => true,
            Some(c) => c != text && STANDARD.decode(c).ok() != STANDARD.decode(text).ok(),
        },
        "displayName" => stored.display_name.as_deref() != Some(text),
        "type" => stored.kind != text,
        "usage" => stored.usage != text,
        _ => true,
    }
}

/// A stored key as the properties a PATCH would carry.
fn stored_as_sent(k: &StoredKey) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(c) = &k.custom_key_identifier {
        m.insert("customKeyIdentifier".into(), json!(c));
    }
    if let Some(d) = &k.display_name {
        m.insert("displayName".into(), json!(d));
    }
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    m.insert("startDateTime".into(), json!(t(k.start)));
    m.insert("endDateTime".into(), json!(t(k.end)));
    m.insert("key".into(), json!(k.key));
    m.insert("keyId".into(), json!(k.key_id.to_string()));
    m.insert("type".into(), json!(k.kind));
    m.insert("usage".into(), json!(k.usage));
    m
}

/// One element of a PATCHed `keyCredentials`, under the `--key-resend` mode. A key Graph knows
/// by its `keyId` keeps what the PATCH does not send (null counts as not sent) as long as the
/// certificate is the same: a retained key re-sent with `key: null`, as clients must when reads
/// return `key` null, keeps its certificate. A key without a known `keyId` is new, and Graph
/// fills in what it lacks.
fn patched_key(
    item: &Value,
    sp: &ServicePrincipal,
    now: DateTime<Utc>,
    policy: (Option<u32>, Uuid),
    behaviour: &Behaviour,
) -> Result<StoredKey, GraphError> {
    let obj = match item {
        Value::Object(m) => without_annotations(m.clone(), "keyCredential")?,
        _ => {
            return Err(GraphError::bad_request(
                "BadRequest",
                "A keyCredential must be an object.",
            ));
        }
    };
    let key_id = match obj.get("keyId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| {
                    GraphError::bad_request("Request_BadRequest", "keyId must be a GUID.")
                })?,
        ),
    };
    let by_id = key_id.and_then(|id| sp.key_credentials.iter().find(|k| k.key_id == id));
    let sent_der = obj
        .get("key")
        .and_then(Value::as_str)
        .and_then(decode_binary);
    let by_cert = sent_der
        .as_ref()
        .and_then(|d| sp.key_credentials.iter().find(|k| k.der() == *d));
    let sent: Vec<(&String, &Value)> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
    match behaviour.key_resend {
        KeyResend::Full => {}
        KeyResend::Unchanged => {
            if let Some(stored) = by_id
                && sent.iter().any(|(k, v)| differs(k, v, stored))
            {
                return Err(update_not_allowed(stored.key_id));
            }
        }
        KeyResend::Minimal => {
            let retained = by_id.or(if key_id.is_none() { by_cert } else { None });
            if let Some(stored) = retained
                && let Some((p, _)) = sent
                    .iter()
                    .find(|(k, _)| !matches!(k.as_str(), "type" | "usage" | "key"))
            {
                // [U] A realistic refusal for the CSS-Exchange hypothesis ("only pass these
                // three values, otherwise the PATCH call will fail"); Graph's words are unknown.
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!(
                        "Property '{p}' cannot be sent for existing credential with KeyId '{}'. Send only type, usage and key.",
                        stored.key_id
                    ),
                ));
            }
        }
    }
    let mut merged = obj.clone();
    // Kept only while it is the same certificate: a keyId re-sent with another certificate is
    // that certificate's key, and Graph fills in its names anew.
    let same_cert = |stored: &StoredKey| sent_der.as_ref().is_none_or(|d| *d == stored.der());
    if let Some(stored) = by_id.filter(|k| same_cert(k)) {
        for (k, v) in stored_as_sent(stored) {
            if merged.get(&k).is_none_or(Value::is_null) {
                merged.insert(k, v);
            }
        }
    }
    // An app management policy restricts new credentials, not the ones already there that a
    // PATCH re-sends.
    let policy = if by_id.is_some() || by_cert.is_some() {
        (None, policy.1)
    } else {
        policy
    };
    validate_key(&Value::Object(merged), now, policy, behaviour)
}

fn graph_date(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn render_key(k: &StoredKey, include_key: bool) -> Value {
    json!({
        "customKeyIdentifier": k.custom_key_identifier,
        "displayName": k.display_name,
        "endDateTime": graph_date(k.end),
        "key": if include_key { json!(k.key) } else { Value::Null },
        "keyId": k.key_id.to_string(),
        "startDateTime": graph_date(k.start),
        "type": k.kind,
        "usage": k.usage,
    })
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::bad_request(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

fn invalid_end() -> GraphError {
    GraphError::bad_request(
        "KeyCredentialsInvalidEndDate",
        "Key credential end date is invalid.",
    )
}

fn invalid_start() -> GraphError {
    // The start-date twin of the documented end-date error; its exact code is [U].
    GraphError::bad_request(
        "KeyCredentialsInvalidStartDate",
        "Key credential start date is invalid.",
    )
}

fn parse_utc(
    v: Option<&Value>,
    on_error: fn() -> GraphError,
) -> Result<Option<DateTime<Utc>>, GraphError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let d = DateTime::parse_from_rfc3339(s).map_err(|_| on_error())?;
            // Non-UTC offsets are what triggered KeyCredentialsInvalidEndDate in the wild.
            if d.offset().local_minus_utc() != 0 {
                return Err(on_error());
            }
            Ok(Some(d.with_timezone(&Utc)))
        }
        Some(_) => Err(on_error()),
    }
}

fn validate_key(
    v: &Value,
    now: DateTime<Utc>,
    (max_days, tenant_id): (Option<u32>, Uuid),
    behaviour: &Behaviour,
) -> Result<StoredKey, GraphError> {
    let obj = v.as_object().ok_or_else(|| {
        GraphError::bad_request("BadRequest", "A keyCredential must be an object.")
    })?;
    if let Some(p) = obj.keys().find(|k| !KEY_PROPERTIES.contains(&k.as_str())) {
        return Err(GraphError::bad_request(
            "BadRequest",
            format!(
                "The property '{p}' does not exist on type 'microsoft.graph.keyCredential'. Make sure to only use property names that are defined by the type."
            ),
        ));
    }
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let usage = obj.get("usage").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "AsymmetricX509Cert" | "X509CertAndPassword") {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "The value for the property \"type\" in one of your credentials is invalid. Acceptable values are AsymmetricX509Cert, X509CertAndPassword.",
        ));
    }
    if !matches!(
        (kind, usage),
        ("AsymmetricX509Cert", "Verify") | ("X509CertAndPassword", "Sign")
    ) {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "The value for the property \"usage\" in one of your credentials is invalid. Acceptable values are Sign, Verify.",
        ));
    }
    let invalid_cert = || {
        GraphError::bad_request(
            "Request_BadRequest",
            "Invalid certificate: Key value is invalid certificate",
        )
    };
    let key_b64 = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(invalid_cert)?;
    let der = decode_binary(key_b64).ok_or_else(invalid_cert)?;
    let info = certinfo::parse(&der).ok_or_else(invalid_cert)?;
    // Kept to the second, as every date Graph returns here is (captures; whether real Graph
    // keeps a fraction is [U], docs/protocol.md §6 item 10): what a client reads back is what is
    // stored, so re-sending a key as read is re-sending it unchanged.
    let whole = |d: DateTime<Utc>| d.with_nanosecond(0).unwrap_or(d);
    let start =
        whole(parse_utc(obj.get("startDateTime"), invalid_start)?.unwrap_or(info.not_before));
    let end = whole(parse_utc(obj.get("endDateTime"), invalid_end)?.unwrap_or(info.not_after));
    if end <= start || end < now || end > info.not_after {
        return Err(invalid_end());
    }
    if start < info.not_before {
        return Err(invalid_start());
    }
    if let Some(days) = max_days.filter(|d| end - start > TimeDelta::days(i64::from(*d))) {
        let _ = days;
        let policy_id =
            Uuid::from_u128(tenant_id.as_u128() ^ 0x0a11_c0de_0000_4000_8000_0000_0000_0001);
        let msg = format!(
            "Credential lifetime exceeds the max value allowed as per assigned policy '{policy_id}'."
        );
        return Err(GraphError::bad_request(
            "CredentialInvalidLifetimeAsPerAppPolicy",
            msg,
        ));
    }
    let key_id = match obj.get("keyId") {
        None | Some(Value::Null) => Uuid::new_v4(),
        Some(Value::String(s)) => {
            let id = Uuid::parse_str(s).map_err(|_| {
                GraphError::bad_request("Request_BadRequest", "keyId must be a GUID.")
            })?;
            if behaviour.regenerate_key_ids {
                Uuid::new_v4()
            } else {
                id
            }
        }
        Some(_) => {
            return Err(GraphError::bad_request(
                "Request_BadRequest",
                "keyId must be a GUID.",
            ));
        }
    };
    let custom_key_identifier = match obj.get("customKeyIdentifier") {
        Some(Value::String(s)) => {
            STANDARD.decode(s).map_err(|_| {
                GraphError::bad_request(
                    "Request_BadRequest",
                    "customKeyIdentifier is not valid Base64.",
                )
            })?;
            Some(s.clone())
        }
        None | Some(Value::Null) => match behaviour.custom_key_id_form {
            CustomKeyIdForm::Hex => Some(hex_upper(&info.sha1)),
            CustomKeyIdForm::Base64 => Some(STANDARD.encode(info.sha1)),
            CustomKeyIdForm::Double => Some(STANDARD.encode(STANDARD.encode(info.sha1))),
            CustomKeyIdForm::Null => None,
        },
        Some(_) => {
            return Err(GraphError::bad_request(
                "Request_BadRequest",
                "customKeyIdentifier must be a string.",
            ));
        }
    };
    // Sent with no displayName, a key gets its certificate's subject, Windows style (captures).
    let display_name = Some(
        obj.get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(&info.subject_windows)
            .chars()
            .take(90)
            .collect::<String>(),
    );
    Ok(StoredKey {
        key_id,
        custom_key_identifier,
        display_name,
        start,
        end,
        kind: kind.to_string(),
        usage: usage.to_string(),
        key: STANDARD.encode(&der),
    })
}

fn malformed_proof(detail: &str) -> GraphError {
    // Documented code; the HTTP status Graph pairs with it is [U].
    GraphError::bad_request(
        "Authentication_MissingOrMalformed",
        format!("Proof of possession is invalid: {detail}"),
    )
}

/// Verifies an addKey/removeKey proof (GDC `concepts/application-rollkey-prooftoken.md`): signed
/// by the private key of one of the principal's currently valid certificates, `aud` the AAD Graph
/// app id, `iss` the principal's object id, a lifetime of at most 10 minutes.
fn verify_proof(proof: &str, sp: &ServicePrincipal, now: DateTime<Utc>) -> Result<(), GraphError> {
    let jws =
        // Graph refuses padded proofs (docs/protocol.md §1.5, Graph's rollkey proof docs).
        jose::decode(proof, jose::Padding::Refused)
            .map_err(|_| malformed_proof("not a compact JWT without padding"))?;
    let valid: Vec<_> = sp
        .key_credentials
        .iter()
        .filter(|k| k.kind == "AsymmetricX509Cert" && k.start <= now && now <= k.end)
        .filter_map(|k| certinfo::parse(&k.der()))
        .collect();
    if valid.is_empty() {
        return Err(malformed_proof(
            "the service principal has no currently valid certificate; add the first key with PATCH",
        ));
    }
    let signed = valid.iter().any(|info| {
        info.rsa_public_pkcs1
            .as_deref()
            .and_then(|pk| jws.verify_rsa(pk))
            .unwrap_or(false)
    });
    if !signed {
        return Err(malformed_proof(
            "not signed by a currently valid certificate of this service principal",
        ));
    }
    if jws.claim_str("aud") != Some(app_ids::AAD_GRAPH) {
        return Err(malformed_proof(
            "aud must be 00000002-0000-0000-c000-000000000000",
        ));
    }
    if !jws
        .claim_str("iss")
        .is_some_and(|i| i.eq_ignore_ascii_case(&sp.id.to_string()))
    {
        return Err(malformed_proof(
            "iss must be the service principal's object id",
        ));
    }
    let (Some(nbf), Some(exp)) = (jws.claim_i64("nbf"), jws.claim_i64("exp")) else {
        return Err(malformed_proof("nbf and exp are required"));
    };
    if exp - nbf > 600 {
        return Err(malformed_proof("the lifetime must not exceed 10 minutes"));
    }
    let t = now.timestamp();
    if t + 300 < nbf || t > exp + 300 {
        return Err(malformed_proof(
            "the proof is not within its valid time range",
        ));
    }
    Ok(())
}
