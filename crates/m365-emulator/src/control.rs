//! The control API under `/_emulator/` (not a Microsoft API): tests and scripts use it to skew the
//! clock, script faults, set a tenant's credential-lifetime policy, plant raw key credentials
//! (an already-expired key, say, which Graph itself would refuse), flip [U] behaviours, and read
//! the state and request counters; set the `--key-resend` mode; remove a tenant's service
//! principal (a tenant that never had it) or disable one (`accountEnabled: false`); set the
//! Graph application permissions of a service principal (`…/servicePrincipals/{appId}/graphRoles`,
//! to take `Mail.Send` away); list (and clear) the mail `sendMail` accepted (`/_emulator/mail`).

use super::faults::FaultRule;
use super::server::Shared;
use super::state::{Behaviour, KeyResend, StoredKey};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/clock", post(clock))
        .route("/_emulator/faults", post(faults).get(get_faults))
        .route("/_emulator/behaviour", post(behaviour))
        .route("/_emulator/key-resend", post(key_resend))
        .route("/_emulator/requests", get(requests).delete(reset_requests))
        .route("/_emulator/tenants/{tenant}/policy", post(policy))
        .route(
            "/_emulator/tenants/{tenant}/servicePrincipals/{app_id}/keyCredentials",
            put(put_keys),
        )
        .route(
            "/_emulator/tenants/{tenant}/servicePrincipals/{app_id}",
            delete(delete_sp).post(set_sp),
        )
        .route(
            "/_emulator/tenants/{tenant}/servicePrincipals/{app_id}/graphRoles",
            put(put_graph_roles),
        )
        .route("/_emulator/mail", get(mail).delete(clear_mail))
        // docs/contract.md writes the list as `<control_url>/_emulator/mail`, and `control_url`
        // already ends in `/_emulator`: both readings answer.
        .route("/_emulator/_emulator/mail", get(mail).delete(clear_mail))
}

/// `{"messages":[{"from","to","subject","body_html","body_text","received_at"}]}` (docs/contract.md).
async fn mail(State(s): State<Arc<Shared>>) -> Response {
    let m = s.mail.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({"messages": *m})).into_response()
}

async fn clear_mail(State(s): State<Arc<Shared>>) -> Response {
    s.mail.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct GraphRolesReq {
    roles: Vec<String>,
}

/// Sets the Microsoft Graph application permissions of a service principal (`{"roles":[…]}`);
/// tokens issued afterwards carry them.
async fn put_graph_roles(
    State(s): State<Arc<Shared>>,
    Path((tenant, app_id)): Path<(String, String)>,
    Json(r): Json<GraphRolesReq>,
) -> Response {
    change_sp(&s, &tenant, &app_id, |sp| sp.graph_roles = r.roles)
}

/// Changes one service principal of one tenant and persists the directory: 204, or 400 naming
/// what is not there.
fn change_sp(
    s: &Shared,
    tenant: &str,
    app_id: &str,
    f: impl FnOnce(&mut super::state::ServicePrincipal),
) -> Response {
    let mut dir = s.dir();
    let Some(i) = dir.tenant_index(tenant) else {
        return bad(format!("no tenant {tenant}"));
    };
    let Some(sp) = dir.tenants[i]
        .service_principals
        .iter_mut()
        .find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
    else {
        return bad(format!("no service principal {app_id}"));
    };
    f(sp);
    s.persist(&dir);
    StatusCode::NO_CONTENT.into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

/// The whole directory, secrets and key material included: this is a test emulator.
async fn state(State(s): State<Arc<Shared>>) -> Response {
    let dir = s.dir();
    Json(json!({
        "tenants": dir.tenants,
        "behaviour": dir.behaviour,
        "clock_offset_secs": s.clock.offset_secs(),
        "now": s.clock.now(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ClockReq {
    offset_secs: i64,
}

async fn clock(State(s): State<Arc<Shared>>, Json(r): Json<ClockReq>) -> Response {
    s.clock.set_offset_secs(r.offset_secs);
    Json(json!({"offset_secs": r.offset_secs, "now": s.clock.now()})).into_response()
}

#[derive(Deserialize)]
struct FaultsReq {
    rules: Vec<FaultRule>,
}

async fn faults(State(s): State<Arc<Shared>>, Json(r): Json<FaultsReq>) -> Response {
    s.script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(r.rules);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    let rules = s
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .rules()
        .to_vec();
    Json(json!({"rules": rules})).into_response()
}

async fn behaviour(State(s): State<Arc<Shared>>, Json(b): Json<Behaviour>) -> Response {
    let mut dir = s.dir();
    dir.behaviour = b;
    s.persist(&dir);
    Json(json!(dir.behaviour)).into_response()
}

async fn requests(State(s): State<Arc<Shared>>) -> Response {
    let counts = s
        .request_counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let total: u64 = counts.values().sum();
    Json(json!({"total": total, "by_route": counts})).into_response()
}

async fn reset_requests(State(s): State<Arc<Shared>>) -> Response {
    s.request_counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct PolicyReq {
    max_key_lifetime_days: Option<u32>,
}

async fn policy(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Json(r): Json<PolicyReq>,
) -> Response {
    let mut dir = s.dir();
    let Some(i) = dir.tenant_index(&tenant) else {
        return bad(format!("no tenant {tenant}"));
    };
    dir.tenants[i].policy.max_key_lifetime_days = r.max_key_lifetime_days;
    s.persist(&dir);
    StatusCode::NO_CONTENT.into_response()
}

/// Replaces a service principal's key credentials without any validation.
async fn put_keys(
    State(s): State<Arc<Shared>>,
    Path((tenant, app_id)): Path<(String, String)>,
    Json(keys): Json<Vec<StoredKey>>,
) -> Response {
    change_sp(&s, &tenant, &app_id, |sp| sp.key_credentials = keys)
}

#[derive(Deserialize)]
struct KeyResendReq {
    mode: KeyResend,
}

/// Sets `--key-resend` (`{"mode": "full" | "unchanged" | "minimal"}`), leaving the other
/// behaviours as they are.
async fn key_resend(State(s): State<Arc<Shared>>, Json(r): Json<KeyResendReq>) -> Response {
    let mut dir = s.dir();
    dir.behaviour.key_resend = r.mode;
    s.persist(&dir);
    Json(json!({"mode": r.mode})).into_response()
}

/// Removes a service principal, as in a tenant that never had it.
async fn delete_sp(
    State(s): State<Arc<Shared>>,
    Path((tenant, app_id)): Path<(String, String)>,
) -> Response {
    let mut dir = s.dir();
    let Some(i) = dir.tenant_index(&tenant) else {
        return bad(format!("no tenant {tenant}"));
    };
    let sps = &mut dir.tenants[i].service_principals;
    let before = sps.len();
    sps.retain(|sp| !sp.app_id.eq_ignore_ascii_case(&app_id));
    if sps.len() == before {
        return bad(format!("no service principal {app_id}"));
    }
    s.persist(&dir);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct SetSpReq {
    account_enabled: bool,
}

/// Enables or disables a service principal (`{"account_enabled": false}`).
async fn set_sp(
    State(s): State<Arc<Shared>>,
    Path((tenant, app_id)): Path<(String, String)>,
    Json(r): Json<SetSpReq>,
) -> Response {
    change_sp(&s, &tenant, &app_id, |sp| {
        sp.account_enabled = r.account_enabled
    })
}
