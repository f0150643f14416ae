//! Error bodies in the shapes the real services use: Entra's token-endpoint error (docs/protocol.md
//! §2.4) and Microsoft Graph's `{"error":{"code","message","innerError"}}` (§1.8).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An Entra (ESTS) OAuth error.
#[derive(Debug)]
pub struct EntraError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl EntraError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    pub fn into_response_at(self, now: DateTime<Utc>, correlation_id: Uuid) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: &'static str,
            error_description: String,
            error_codes: Vec<u32>,
            timestamp: String,
            trace_id: String,
            correlation_id: String,
            error_uri: String,
        }
        let trace_id = Uuid::new_v4().to_string();
        let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = Body {
            error: self.error,
            error_description: format!(
                "AADSTS{}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
                self.code, self.description, trace_id, correlation_id, ts
            ),
            error_codes: vec![self.code],
            timestamp: ts,
            trace_id,
            correlation_id: correlation_id.to_string(),
            error_uri: format!("https://login.microsoftonline.com/error?code={}", self.code),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A Microsoft Graph error.
#[derive(Debug)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn into_response_at(self, now: DateTime<Utc>) -> Response {
        let request_id = Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": request_id,
                }
            }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("request-id", v);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}
