//! ACS JSON metadata (`<acs_url>/<tenant>/metadata/json/1`), the document `New-CsOAuthServer
//! -MetadataUrl` downloads. Shape per docs/protocol.md §3.1: `realm`, `issuer`
//! (`00000001-0000-0000-c000-000000000000@<tenant>`), `keys[]` with `usage: signing` and an
//! `x509Certificate` value, and an `OAuth2` issuance endpoint. The fields beyond `keys` and
//! `endpoints` are unconfirmed ([U]) and modelled on the commonly published form.

use super::server::{Shared, correlation_id};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::sync::Arc;

const ACS_PRINCIPAL: &str = "00000001-0000-0000-c000-000000000000";

pub async fn metadata(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tid = {
        let dir = s.dir();
        dir.tenant_index(&tenant).map(|i| dir.tenants[i].id)
    };
    let Some(tid) = tid else {
        // Shape of ACS's answer for an unknown realm is [U]; Entra's error shape is used.
        return super::errors::EntraError::new(
            StatusCode::NOT_FOUND,
            "invalid_tenant",
            90002,
            format!("Tenant '{tenant}' not found."),
        )
        .into_response_at(s.clock.now(), correlation_id(&headers));
    };
    let host = s
        .urls
        .acs
        .split_once("://")
        .map_or(s.urls.acs.as_str(), |(_, h)| h);
    Json(json!({
        "version": "1.0",
        "realm": tid.to_string(),
        "name": "Microsoft Azure ACS Tenant",
        "allowedAudiences": [format!("{ACS_PRINCIPAL}/{host}@{tid}")],
        "issuer": format!("{ACS_PRINCIPAL}@{tid}"),
        "keys": [{
            "usage": "signing",
            "keyInfo": {"x5t": s.signing.x5t},
            "keyValue": {"type": "x509Certificate", "value": STANDARD.encode(&s.signing.cert_der)},
        }],
        "endpoints": [{
            "location": format!("{}/{tid}/tokens/OAuth/2", s.urls.acs),
            "protocol": "OAuth2",
            "usage": "issuance",
        }],
    }))
    .into_response()
}
