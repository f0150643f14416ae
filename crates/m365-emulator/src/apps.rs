//! Microsoft Graph v1.0 `applications`, `servicePrincipals/{id}/appRoleAssignments` and the app
//! management policies, as Exchange Server hybrid's dedicated application needs them (issue 27;
//! Microsoft's ConfigureExchangeHybridApplication.ps1, docs/protocol.md §5):
//! - `POST /applications` (201, every property real Graph returns, in its order: captures in
//!   fixtures/graph-captures), `GET /applications/{id}` and `(appId='…')`, `GET /applications`
//!   with `$filter` (`displayName eq`, `appId eq`, `startswith`) and `$select`, `PATCH` (204) of
//!   `keyCredentials` with the same key validation as service principals: a kept key re-sent as
//!   a read returned it (`key: null`, its `keyId`) keeps its certificate, as the script relies on;
//!   `DELETE`;
//! - `POST /servicePrincipals/{id}/appRoleAssignments {principalId, resourceId, appRoleId}` (201)
//!   and its list; Exchange Online's principal offers `full_access_as_app`, and a token for an
//!   application carries the roles granted to its principal ([`roles_for`]);
//! - `GET|PATCH /policies/defaultAppManagementPolicy`, `GET|POST /policies/appManagementPolicies`,
//!   `GET /applications/{id}/appManagementPolicies` and `POST …/appManagementPolicies/$ref`
//!   ([`super::policy`]).

use super::app_ids;
use super::errors::GraphError;
use super::filter::{self, Filterable, Prop};
use super::graph::{
    Caller, READ_PERMISSIONS, WRITE_PERMISSIONS, graph_date, parse_json_object, patched_key,
    query_params, render_key, require, tenant_index, validate_key, without_annotations,
};
use super::policy::{self, CustomPolicy, ObjectKind};
use super::server::Shared;
use super::state::{ServicePrincipal, StoredKey, Tenant};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Exchange Online's application permission for EWS as an app (docs/protocol.md §5.1).
pub const FULL_ACCESS_AS_APP: &str = "dc890d15-9560-4a4c-9b7f-a736ec74ec40";

/// An app role an application offers (GDC `resources/approle.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    pub allowed_member_types: Vec<String>,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub id: Uuid,
    pub is_enabled: bool,
    pub origin: String,
    pub value: Option<String>,
}

/// An app role granted to a service principal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppRoleAssignment {
    pub id: String,
    pub app_role_id: Uuid,
    pub resource_id: Uuid,
    pub created: DateTime<Utc>,
}

/// An application object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Application {
    pub id: Uuid,
    pub app_id: String,
    pub display_name: String,
    pub created: DateTime<Utc>,
    pub key_credentials: Vec<StoredKey>,
    /// The other properties as set (normalised as Graph returns them).
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl Filterable for Application {
    fn prop(&self, prop: Prop) -> String {
        match prop {
            Prop::AppId => self.app_id.clone(),
            Prop::Id => self.id.to_string(),
            Prop::DisplayName | Prop::AppDisplayName => self.display_name.clone(),
        }
    }
    fn enabled(&self) -> Option<bool> {
        None
    }
    fn names(&self) -> &[String] {
        &[]
    }
}

/// The app roles of Office 365 Exchange Online the emulator models.
pub fn exchange_online_app_roles() -> Vec<AppRole> {
    vec![AppRole {
        allowed_member_types: vec!["Application".into()],
        description: Some(
            "Allows the app to have full access via Exchange Web Services to all mailboxes without a signed-in user."
                .into(),
        ),
        display_name: Some("Use Exchange Web Services with full access to all mailboxes".into()),
        id: Uuid::parse_str(FULL_ACCESS_AS_APP).unwrap_or_default(),
        is_enabled: true,
        origin: "Application".into(),
        value: Some("full_access_as_app".into()),
    }]
}

/// A new service principal for an application registered in the tenant.
pub fn sp_for_application(t: &Tenant, app_id: &str) -> Option<ServicePrincipal> {
    let app = t
        .applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(app_id))?;
    let mut names = vec![app.app_id.clone()];
    if let Some(uris) = app
        .properties
        .get("identifierUris")
        .and_then(Value::as_array)
    {
        names.extend(uris.iter().filter_map(Value::as_str).map(String::from));
    }
    let app_roles = app
        .properties
        .get("appRoles")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Some(ServicePrincipal {
        id: Uuid::new_v4(),
        app_id: app.app_id.clone(),
        display_name: app.display_name.clone(),
        account_enabled: true,
        service_principal_names: names,
        key_credentials: Vec::new(),
        graph_roles: Vec::new(),
        app_owner_organization_id: t.id.to_string(),
        created: app.created,
        app_roles,
        app_role_assignments: Vec::new(),
        tags: Vec::new(),
    })
}

/// The app role values granted to `sp` on the resource application `resource_app_id`.
pub fn roles_for(t: &Tenant, sp: &ServicePrincipal, resource_app_id: &str) -> Vec<String> {
    let Some(resource) = t.sp_by_app_id(resource_app_id) else {
        return Vec::new();
    };
    sp.app_role_assignments
        .iter()
        .filter(|a| a.resource_id == resource.id)
        .filter_map(|a| {
            resource
                .app_roles
                .iter()
                .find(|r| r.id == a.app_role_id && r.is_enabled)
                .and_then(|r| r.value.clone())
        })
        .collect()
}

/// The keys Entra checks a client assertion of `sp` against: its own and, for an application
/// of the tenant, the application's.
pub fn assertion_keys(t: &Tenant, sp: &ServicePrincipal) -> Vec<StoredKey> {
    let mut keys = sp.key_credentials.clone();
    if let Some(app) = t
        .applications
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(&sp.app_id))
    {
        keys.extend(app.key_credentials.iter().cloned());
    }
    keys
}

/// Application properties in the order real Graph returns them (newest captures), with the
/// values of an application created with a display name only.
fn defaults(t: &Tenant) -> Vec<(&'static str, Value)> {
    vec![
        ("id", Value::Null),
        ("deletedDateTime", Value::Null),
        ("appId", Value::Null),
        ("applicationTemplateId", Value::Null),
        ("disabledByMicrosoftStatus", Value::Null),
        ("createdDateTime", Value::Null),
        ("displayName", Value::Null),
        ("description", Value::Null),
        ("groupMembershipClaims", Value::Null),
        ("identifierUris", json!([])),
        ("isDeviceOnlyAuthSupported", Value::Null),
        ("isFallbackPublicClient", Value::Null),
        ("nativeAuthenticationApisEnabled", Value::Null),
        ("notes", Value::Null),
        ("publisherDomain", json!(t.domains[0])),
        ("serviceManagementReference", Value::Null),
        // The default since 2024 (captures: earlier answers show
        // AzureADandPersonalMicrosoftAccount and requestedAccessTokenVersion 2).
        ("signInAudience", json!("AzureADMyOrg")),
        ("tags", json!([])),
        ("tokenEncryptionKeyId", Value::Null),
        ("uniqueName", Value::Null),
        ("samlMetadataUrl", Value::Null),
        ("defaultRedirectUri", Value::Null),
        ("certification", Value::Null),
        ("servicePrincipalLockConfiguration", Value::Null),
        ("requestSignatureVerification", Value::Null),
        ("addIns", json!([])),
        (
            "api",
            json!({"acceptMappedClaims": null, "knownClientApplications": [], "requestedAccessTokenVersion": null, "oauth2PermissionScopes": [], "preAuthorizedApplications": []}),
        ),
        ("appRoles", json!([])),
        (
            "info",
            json!({"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null}),
        ),
        ("keyCredentials", json!([])),
        ("optionalClaims", Value::Null),
        (
            "parentalControlSettings",
            json!({"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"}),
        ),
        ("passwordCredentials", json!([])),
        ("publicClient", json!({"redirectUris": []})),
        ("requiredResourceAccess", json!([])),
        (
            "verifiedPublisher",
            json!({"displayName": null, "verifiedPublisherId": null, "addedDateTime": null}),
        ),
        (
            "web",
            json!({"homePageUrl": null, "logoutUrl": null, "redirectUris": [], "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false}, "redirectUriSettings": []}),
        ),
        ("spa", json!({"redirectUris": []})),
    ]
}

/// Set by Graph, never by a client.
const READ_ONLY: &[&str] = &[
    "id",
    "deletedDateTime",
    "appId",
    "createdDateTime",
    "publisherDomain",
    "disabledByMicrosoftStatus",
    "passwordCredentials",
    "verifiedPublisher",
    "applicationTemplateId",
];

/// Fills what a client left out of a sent complex value with what Graph fills in.
fn merge_over(default: &Value, sent: &Value) -> Value {
    match (default, sent) {
        (Value::Object(d), Value::Object(s)) => {
            let mut out = d.clone();
            for (k, v) in s {
                if k.contains('@') {
                    continue;
                }
                let merged = match d.get(k) {
                    Some(dv @ Value::Object(_)) => merge_over(dv, v),
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, s) => s.clone(),
    }
}

fn each(sent: &Value, element: &Value) -> Value {
    match sent {
        Value::Array(a) => Value::Array(a.iter().map(|e| merge_over(element, e)).collect()),
        other => other.clone(),
    }
}

/// A sent property as Graph stores and returns it.
fn normalise(name: &str, sent: &Value, default: &Value) -> Value {
    match name {
        "appRoles" => each(
            sent,
            &json!({"allowedMemberTypes": [], "description": null, "displayName": null, "id": null, "isEnabled": true, "origin": "Application", "value": null}),
        ),
        "optionalClaims" if sent.is_object() => {
            let claim = json!({"additionalProperties": [], "essential": false, "name": null, "source": null});
            let mut out = Map::new();
            for side in ["accessToken", "idToken", "saml2Token"] {
                out.insert(
                    side.into(),
                    each(sent.get(side).unwrap_or(&json!([])), &claim),
                );
            }
            Value::Object(out)
        }
        "web" => {
            let mut w = merge_over(default, sent);
            let settings: Vec<Value> = w["redirectUris"]
                .as_array()
                .map(|a| a.iter().map(|u| json!({"uri": u, "index": null})).collect())
                .unwrap_or_default();
            if let Some(o) = w.as_object_mut() {
                o.insert("redirectUriSettings".into(), Value::Array(settings));
            }
            w
        }
        _ if default.is_object() => merge_over(default, sent),
        _ => sent.clone(),
    }
}

fn render_app(
    t: &Tenant,
    app: &Application,
    select: Option<&[String]>,
    include_key: bool,
) -> Map<String, Value> {
    defaults(t)
        .into_iter()
        .filter(|(n, _)| select.is_none_or(|s| s.iter().any(|p| p == n)))
        .map(|(n, d)| {
            let v = match n {
                "id" => json!(app.id.to_string()),
                "appId" => json!(app.app_id),
                "createdDateTime" => json!(graph_date(app.created)),
                "displayName" => json!(app.display_name),
                "keyCredentials" => Value::Array(
                    app.key_credentials
                        .iter()
                        .map(|k| render_key(k, include_key))
                        .collect(),
                ),
                _ => app.properties.get(n).cloned().unwrap_or(d),
            };
            (n.to_string(), v)
        })
        .collect()
}

enum Path<'a> {
    Apps,
    App(AppRef<'a>, Option<&'a str>),
    RoleAssignments(&'a str),
    DefaultPolicy,
    Policies,
    Policy(&'a str),
}

enum AppRef<'a> {
    Id(&'a str),
    AppId(&'a str),
}

fn parse(rest: &str) -> Option<Path<'_>> {
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let alt = |s: &'_ str| -> Option<String> {
        s.strip_prefix("applications(appId=")
            .and_then(|r| r.strip_suffix(')'))
            .map(|r| r.trim_matches('\'').to_string())
    };
    match segs.as_slice() {
        ["applications"] => Some(Path::Apps),
        ["applications", id] => Some(Path::App(AppRef::Id(id), None)),
        ["applications", id, "appManagementPolicies"] => {
            Some(Path::App(AppRef::Id(id), Some("appManagementPolicies")))
        }
        ["applications", id, "appManagementPolicies", "$ref"] => {
            Some(Path::App(AppRef::Id(id), Some("$ref")))
        }
        [first] if alt(first).is_some() => {
            let inner = first
                .strip_prefix("applications(appId=")?
                .strip_suffix(')')?
                .trim_matches('\'');
            Some(Path::App(AppRef::AppId(inner), None))
        }
        ["servicePrincipals", id, "appRoleAssignments"] => Some(Path::RoleAssignments(id)),
        ["policies", "defaultAppManagementPolicy"] => Some(Path::DefaultPolicy),
        ["policies", "appManagementPolicies"] => Some(Path::Policies),
        ["policies", "appManagementPolicies", id] => Some(Path::Policy(id)),
        _ => None,
    }
}

fn app_index(t: &Tenant, r: &AppRef) -> Result<usize, GraphError> {
    let (found, name) = match r {
        AppRef::Id(id) => (
            t.applications
                .iter()
                .position(|a| a.id.to_string().eq_ignore_ascii_case(id)),
            *id,
        ),
        AppRef::AppId(app) => (
            t.applications
                .iter()
                .position(|a| a.app_id.eq_ignore_ascii_case(app)),
            *app,
        ),
    };
    found.ok_or_else(|| GraphError::not_found(name))
}

fn parse_select(
    params: &[(String, String)],
    t: &Tenant,
) -> Result<Option<Vec<String>>, GraphError> {
    let Some((_, sel)) = params.iter().find(|(k, _)| k == "$select") else {
        return Ok(None);
    };
    let names: Vec<&str> = defaults(t).into_iter().map(|(n, _)| n).collect();
    let mut out = Vec::new();
    for p in sel.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let canonical = names.iter().find(|n| n.eq_ignore_ascii_case(p)).ok_or_else(|| {
            GraphError::bad_request(
                "Request_BadRequest",
                format!("Could not find a property named '{p}' on type 'microsoft.graph.application'."),
            )
        })?;
        out.push((*canonical).to_string());
    }
    Ok(Some(out))
}

fn context(s: &Shared, version: &str, what: &str) -> Value {
    json!(format!("{}/{version}/$metadata#{what}", s.urls.graph))
}

fn with_context(ctx: Value, body: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("@odata.context".into(), ctx);
    m.extend(body);
    Value::Object(m)
}

const POLICY_READ: &[&str] = &[
    "Policy.Read.All",
    "Policy.Read.ApplicationConfiguration",
    "Policy.ReadWrite.ApplicationConfiguration",
];
const POLICY_WRITE: &[&str] = &["Policy.ReadWrite.ApplicationConfiguration"];
const ROLE_WRITE: &[&str] = &[
    "AppRoleAssignment.ReadWrite.All",
    "Application.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// Serves the paths this module owns; `None` for any other path.
#[allow(clippy::too_many_arguments)]
pub fn route(
    s: &Shared,
    caller: &Caller,
    method: &Method,
    version: &str,
    rest: &str,
    query: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Response>, GraphError> {
    let Some(path) = parse(rest) else {
        return Ok(None);
    };
    let params = query_params(query);
    let not_allowed = || {
        GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request uri.",
        )
    };
    let mut dir = s.dir();
    let behaviour = dir.behaviour.clone();
    let ti = tenant_index(&dir, caller.tenant_id)?;
    let resp = match (method.clone(), path) {
        (Method::GET, Path::Apps) => {
            require(caller, READ_PERMISSIONS)?;
            let t = &dir.tenants[ti];
            let select = parse_select(&params, t)?;
            let matching: Vec<&Application> = match params.iter().find(|(k, _)| k == "$filter") {
                None => t.applications.iter().collect(),
                Some((_, f)) => {
                    let expr = filter::parse(f).ok_or_else(|| {
                        GraphError::bad_request(
                            "Request_UnsupportedQuery",
                            format!("Unsupported or invalid query filter clause specified: {f}"),
                        )
                    })?;
                    t.applications
                        .iter()
                        .filter(|a| filter::matches(&expr, *a))
                        .collect()
                }
            };
            let include_key = select
                .as_ref()
                .is_some_and(|s| s.iter().any(|p| p == "keyCredentials"))
                && behaviour.key_in_collection
                && !behaviour.never_return_key;
            let value: Vec<Value> = matching
                .iter()
                .map(|a| Value::Object(render_app(t, a, select.as_deref(), include_key)))
                .collect();
            let what = match &select {
                Some(sel) => format!("applications({})", sel.join(",")),
                None => "applications".into(),
            };
            let mut m = Map::new();
            m.insert("value".into(), Value::Array(value));
            axum::Json(with_context(context(s, version, &what), m)).into_response()
        }
        (Method::POST, Path::Apps) => {
            require(caller, WRITE_PERMISSIONS)?;
            let req = without_annotations(parse_json_object(body)?, "application")?;
            let name = req
                .get("displayName")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| {
                    GraphError::bad_request(
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource 'Application'.",
                    )
                })?
                .to_string();
            let t = &dir.tenants[ti];
            let mut app = Application {
                id: Uuid::new_v4(),
                app_id: Uuid::new_v4().to_string(),
                display_name: name,
                created: now,
                key_credentials: Vec::new(),
                properties: Map::new(),
            };
            let cap = t
                .app_policies
                .cap(ObjectKind::Application, app.id, app.created);
            apply(t, &mut app, &req, now, cap.as_ref(), &behaviour, true)?;
            let rendered = render_app(t, &app, None, false);
            dir.tenants[ti].applications.push(app);
            s.persist(&dir);
            (
                StatusCode::CREATED,
                axum::Json(with_context(
                    context(s, version, "applications/$entity"),
                    rendered,
                )),
            )
                .into_response()
        }
        (Method::GET, Path::App(r, None)) => {
            require(caller, READ_PERMISSIONS)?;
            let t = &dir.tenants[ti];
            let app = &t.applications[app_index(t, &r)?];
            let select = parse_select(&params, t)?;
            let include_key = select
                .as_ref()
                .is_some_and(|s| s.iter().any(|p| p == "keyCredentials"))
                && !behaviour.never_return_key;
            let what = match &select {
                Some(sel) => format!("applications({})/$entity", sel.join(",")),
                None => "applications/$entity".into(),
            };
            axum::Json(with_context(
                context(s, version, &what),
                render_app(t, app, select.as_deref(), include_key),
            ))
            .into_response()
        }
        (Method::PATCH, Path::App(r, None)) => {
            require(caller, WRITE_PERMISSIONS)?;
            let req = without_annotations(parse_json_object(body)?, "application")?;
            let t = &dir.tenants[ti];
            let ai = app_index(t, &r)?;
            let mut app = t.applications[ai].clone();
            let cap = t
                .app_policies
                .cap(ObjectKind::Application, app.id, app.created);
            apply(t, &mut app, &req, now, cap.as_ref(), &behaviour, false)?;
            dir.tenants[ti].applications[ai] = app;
            s.persist(&dir);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::DELETE, Path::App(r, None)) => {
            require(caller, WRITE_PERMISSIONS)?;
            let ai = app_index(&dir.tenants[ti], &r)?;
            let app = dir.tenants[ti].applications.remove(ai);
            // Deleting an application deletes its service principal in its home tenant.
            dir.tenants[ti]
                .service_principals
                .retain(|sp| !sp.app_id.eq_ignore_ascii_case(&app.app_id));
            s.persist(&dir);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, Path::App(r, Some("appManagementPolicies"))) => {
            require(caller, READ_PERMISSIONS)?;
            let t = &dir.tenants[ti];
            let app = &t.applications[app_index(t, &r)?];
            let mut m = Map::new();
            m.insert(
                "value".into(),
                Value::Array(t.app_policies.assigned_to(app.id)),
            );
            axum::Json(with_context(
                context(s, version, "policies/appManagementPolicies"),
                m,
            ))
            .into_response()
        }
        (Method::POST, Path::App(r, Some("$ref"))) => {
            require(caller, POLICY_WRITE)?;
            let req = parse_json_object(body)?;
            let target = req
                .get("@odata.id")
                .and_then(Value::as_str)
                .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| {
                    GraphError::bad_request(
                        "Request_BadRequest",
                        "The @odata.id must name an appManagementPolicy.",
                    )
                })?;
            let app_id = {
                let t = &dir.tenants[ti];
                t.applications[app_index(t, &r)?].id
            };
            let policies = &mut dir.tenants[ti].app_policies;
            if policies
                .custom
                .iter()
                .any(|p| p.applies_to.contains(&app_id))
            {
                // One policy per object (GDC appManagementPolicy); the wording is [U].
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    "An appManagementPolicy is already assigned to this object.",
                ));
            }
            let p = policies
                .custom
                .iter_mut()
                .find(|p| p.id == target)
                .ok_or_else(|| GraphError::not_found(&target.to_string()))?;
            p.applies_to.push(app_id);
            s.persist(&dir);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, Path::RoleAssignments(sp_ref)) => {
            require(caller, ROLE_WRITE)?;
            let req = without_annotations(parse_json_object(body)?, "appRoleAssignment")?;
            let uuid = |k: &str| {
                req.get(k)
                    .and_then(Value::as_str)
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .ok_or_else(|| {
                        GraphError::bad_request(
                            "Request_BadRequest",
                            format!("A value is required for property '{k}' of resource 'AppRoleAssignment'."),
                        )
                    })
            };
            let (principal, resource, role) = (
                uuid("principalId")?,
                uuid("resourceId")?,
                uuid("appRoleId")?,
            );
            let t = &dir.tenants[ti];
            let pi = sp_position(t, sp_ref)?;
            if t.service_principals[pi].id != principal {
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    "The principalId must be the service principal of the request URL.",
                ));
            }
            let res = t
                .service_principals
                .iter()
                .find(|sp| sp.id == resource)
                .ok_or_else(|| GraphError::not_found(&resource.to_string()))?;
            if !res.app_roles.iter().any(|r| {
                r.id == role
                    && r.is_enabled
                    && r.allowed_member_types.iter().any(|m| m == "Application")
            }) {
                // Real words users quote; the code is [S].
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!(
                        "Permission being assigned was not found on application '{}'.",
                        res.app_id
                    ),
                ));
            }
            if t.service_principals[pi]
                .app_role_assignments
                .iter()
                .any(|a| a.resource_id == resource && a.app_role_id == role)
            {
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    "Permission being assigned already exists on the object",
                ));
            }
            let a = AppRoleAssignment {
                id: assignment_id(),
                app_role_id: role,
                resource_id: resource,
                created: now,
            };
            let rendered = render_assignment(t, &t.service_principals[pi], &a);
            dir.tenants[ti].service_principals[pi]
                .app_role_assignments
                .push(a);
            s.persist(&dir);
            let ctx = context(
                s,
                version,
                &format!("servicePrincipals('{principal}')/appRoleAssignments/$entity"),
            );
            (StatusCode::CREATED, axum::Json(with_context(ctx, rendered))).into_response()
        }
        (Method::GET, Path::RoleAssignments(sp_ref)) => {
            require(caller, READ_PERMISSIONS)?;
            let t = &dir.tenants[ti];
            let sp = &t.service_principals[sp_position(t, sp_ref)?];
            let value: Vec<Value> = sp
                .app_role_assignments
                .iter()
                .map(|a| Value::Object(render_assignment(t, sp, a)))
                .collect();
            let mut m = Map::new();
            m.insert("value".into(), Value::Array(value));
            let ctx = context(
                s,
                version,
                &format!("servicePrincipals('{}')/appRoleAssignments", sp.id),
            );
            axum::Json(with_context(ctx, m)).into_response()
        }
        (Method::GET, Path::DefaultPolicy) => {
            require(caller, POLICY_READ)?;
            let t = &dir.tenants[ti];
            axum::Json(with_context(
                context(s, version, "policies/defaultAppManagementPolicy/$entity"),
                render_default(&t.app_policies.default),
            ))
            .into_response()
        }
        (Method::PATCH, Path::DefaultPolicy) => {
            require(caller, POLICY_WRITE)?;
            let req = without_annotations(parse_json_object(body)?, "tenantAppManagementPolicy")?;
            let mut doc = dir.tenants[ti].app_policies.default.clone();
            for (k, v) in req {
                match k.as_str() {
                    "isEnabled" => {
                        let b = v.as_bool().ok_or_else(|| {
                            GraphError::bad_request("BadRequest", "isEnabled must be a boolean.")
                        })?;
                        doc.insert(k, json!(b));
                    }
                    "displayName" | "description" => {
                        doc.insert(k, v);
                    }
                    "applicationRestrictions" | "servicePrincipalRestrictions" => {
                        policy::validate_restrictions(&v, &k)?;
                        doc.insert(k, policy::render_restrictions(&v));
                    }
                    other => {
                        return Err(GraphError::bad_request(
                            "BadRequest",
                            format!(
                                "The property '{other}' does not exist on type 'microsoft.graph.tenantAppManagementPolicy'."
                            ),
                        ));
                    }
                }
            }
            dir.tenants[ti].app_policies.default = doc;
            s.persist(&dir);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, Path::Policies) => {
            require(caller, POLICY_READ)?;
            let value: Vec<Value> = dir.tenants[ti]
                .app_policies
                .custom
                .iter()
                .map(policy::render_custom)
                .collect();
            let mut m = Map::new();
            m.insert("value".into(), Value::Array(value));
            axum::Json(with_context(
                context(s, version, "policies/appManagementPolicies"),
                m,
            ))
            .into_response()
        }
        (Method::GET, Path::Policy(id)) => {
            require(caller, POLICY_READ)?;
            let p = dir.tenants[ti]
                .app_policies
                .custom
                .iter()
                .find(|p| p.id.to_string().eq_ignore_ascii_case(id))
                .ok_or_else(|| GraphError::not_found(id))?;
            let Value::Object(m) = policy::render_custom(p) else {
                return Err(GraphError::not_found(id));
            };
            axum::Json(with_context(
                context(s, version, "policies/appManagementPolicies/$entity"),
                m,
            ))
            .into_response()
        }
        (Method::POST, Path::Policies) => {
            require(caller, POLICY_WRITE)?;
            let req = without_annotations(parse_json_object(body)?, "appManagementPolicy")?;
            let mut doc = Map::new();
            doc.insert(
                "displayName".into(),
                req.get("displayName").cloned().unwrap_or(Value::Null),
            );
            doc.insert(
                "description".into(),
                req.get("description").cloned().unwrap_or(Value::Null),
            );
            doc.insert(
                "isEnabled".into(),
                json!(
                    req.get("isEnabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                ),
            );
            let restrictions = req.get("restrictions").cloned().unwrap_or(json!({}));
            policy::validate_restrictions(&restrictions, "restrictions")?;
            doc.insert(
                "restrictions".into(),
                policy::render_restrictions(&restrictions),
            );
            let p = CustomPolicy {
                id: Uuid::new_v4(),
                doc,
                applies_to: Vec::new(),
            };
            let Value::Object(rendered) = policy::render_custom(&p) else {
                return Err(not_allowed());
            };
            dir.tenants[ti].app_policies.custom.push(p);
            s.persist(&dir);
            (
                StatusCode::CREATED,
                axum::Json(with_context(
                    context(s, version, "policies/appManagementPolicies/$entity"),
                    rendered,
                )),
            )
                .into_response()
        }
        _ => return Err(not_allowed()),
    };
    Ok(Some(resp))
}

fn render_default(doc: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(policy::DEFAULT_POLICY_ID));
    for k in [
        "displayName",
        "description",
        "isEnabled",
        "applicationRestrictions",
        "servicePrincipalRestrictions",
    ] {
        m.insert(k.into(), doc.get(k).cloned().unwrap_or(Value::Null));
    }
    m
}

fn sp_position(t: &Tenant, id: &str) -> Result<usize, GraphError> {
    t.service_principals
        .iter()
        .position(|sp| sp.id.to_string().eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))
}

/// Graph's assignment ids are opaque base64url strings.
fn assignment_id() -> String {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(Uuid::new_v4().as_bytes());
    b.extend_from_slice(Uuid::new_v4().as_bytes());
    URL_SAFE_NO_PAD.encode(&b[..32])
}

fn render_assignment(
    t: &Tenant,
    sp: &ServicePrincipal,
    a: &AppRoleAssignment,
) -> Map<String, Value> {
    let resource_name = t
        .service_principals
        .iter()
        .find(|r| r.id == a.resource_id)
        .map(|r| r.display_name.clone());
    let Value::Object(m) = json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id.to_string(),
        "createdDateTime": graph_date(a.created),
        "principalDisplayName": sp.display_name,
        "principalId": sp.id.to_string(),
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource_name,
        "resourceId": a.resource_id.to_string(),
    }) else {
        return Map::new();
    };
    m
}

/// Applies a POST or PATCH body to an application.
fn apply(
    t: &Tenant,
    app: &mut Application,
    req: &Map<String, Value>,
    now: DateTime<Utc>,
    cap: Option<&policy::KeyCap>,
    behaviour: &super::state::Behaviour,
    creating: bool,
) -> Result<(), GraphError> {
    let defaults = defaults(t);
    for (k, v) in req {
        match k.as_str() {
            "displayName" => {
                app.display_name = v
                    .as_str()
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        GraphError::bad_request(
                            "Request_BadRequest",
                            "Invalid value specified for property 'displayName' of resource 'Application'.",
                        )
                    })?
                    .to_string();
            }
            "keyCredentials" => {
                let arr = v.as_array().ok_or_else(|| {
                    GraphError::bad_request("BadRequest", "keyCredentials must be an array.")
                })?;
                let mut keys = Vec::with_capacity(arr.len());
                for item in arr {
                    keys.push(if creating {
                        let obj = match item {
                            Value::Object(m) => {
                                Value::Object(without_annotations(m.clone(), "keyCredential")?)
                            }
                            other => other.clone(),
                        };
                        validate_key(&obj, now, cap, behaviour)?
                    } else {
                        patched_key(item, &app.key_credentials, now, cap, behaviour)?
                    });
                }
                let mut ids: Vec<Uuid> = keys.iter().map(|k| k.key_id).collect();
                ids.sort();
                if ids.windows(2).any(|w| w[0] == w[1]) {
                    return Err(GraphError::bad_request(
                        "Request_BadRequest",
                        "Duplicate keyId in keyCredentials.",
                    ));
                }
                app.key_credentials = keys;
            }
            p if READ_ONLY.contains(&p) => {
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!("Property '{p}' is read-only and cannot be set."),
                ));
            }
            p => {
                let Some((name, default)) = defaults.iter().find(|(n, _)| *n == p) else {
                    return Err(GraphError::bad_request(
                        "BadRequest",
                        format!(
                            "The property '{p}' does not exist on type 'microsoft.graph.application'. Make sure to only use property names that are defined by the type."
                        ),
                    ));
                };
                app.properties
                    .insert((*name).to_string(), normalise(name, v, default));
            }
        }
    }
    // Personal Microsoft accounts take v2 access tokens only: Graph sets the version.
    if req.contains_key("signInAudience")
        && matches!(
            app.properties.get("signInAudience").and_then(Value::as_str),
            Some("AzureADandPersonalMicrosoftAccount" | "PersonalMicrosoftAccount")
        )
    {
        let api = app.properties.entry("api").or_insert_with(|| {
            defaults
                .iter()
                .find(|(n, _)| *n == "api")
                .map(|(_, d)| d.clone())
                .unwrap_or_default()
        });
        if let Some(o) = api.as_object_mut()
            && o.get("requestedAccessTokenVersion")
                .is_none_or(Value::is_null)
        {
            o.insert("requestedAccessTokenVersion".into(), json!(2));
        }
    }
    Ok(())
}

/// The Exchange Server hybrid application as Microsoft's ConfigureExchangeHybridApplication.ps1
/// creates it (docs/protocol.md §5.1): `ExchangeServerApp-<org guid>`, single tenant, asking
/// for `full_access_as_app`; its enabled service principal (tags as the script sets them),
/// granted `full_access_as_app` on Exchange Online. Returns (application object id, appId).
pub fn seed_exchange_app(
    t: &mut Tenant,
    display_name: &str,
    grant_role: bool,
    now: DateTime<Utc>,
) -> Result<(Uuid, String), String> {
    let mut properties = Map::new();
    properties.insert("signInAudience".into(), json!("AzureADMyOrg"));
    properties.insert(
        "requiredResourceAccess".into(),
        json!([{"resourceAppId": app_ids::EXCHANGE_ONLINE, "resourceAccess": [{"id": FULL_ACCESS_AS_APP, "type": "Role"}]}]),
    );
    let app = Application {
        id: Uuid::new_v4(),
        app_id: Uuid::new_v4().to_string(),
        display_name: display_name.to_string(),
        created: now,
        key_credentials: Vec::new(),
        properties,
    };
    let ids = (app.id, app.app_id.clone());
    t.applications.push(app);
    let mut sp = sp_for_application(t, &ids.1).ok_or("the application just added")?;
    sp.tags = vec![
        "WindowsAzureActiveDirectoryIntegratedApp".into(),
        "HideApp".into(),
    ];
    if grant_role {
        let exo = t
            .sp_by_app_id(app_ids::EXCHANGE_ONLINE)
            .ok_or("the tenant has no Exchange Online service principal")?;
        sp.app_role_assignments.push(AppRoleAssignment {
            id: assignment_id(),
            app_role_id: Uuid::parse_str(FULL_ACCESS_AS_APP).unwrap_or_default(),
            resource_id: exo.id,
            created: now,
        });
    }
    t.service_principals.push(sp);
    Ok(ids)
}
