//! HTTP calls to Microsoft Graph v1.0 and its error model
//! (`{"error":{"code","message","innerError":{"request-id"}}}`, learn.microsoft.com/graph/errors).

use super::keys::KeyCredential;
use crate::cloud::Cloud;
use crate::http::{HttpClient, HttpError, Response};
use crate::sts::{StsError, TokenProvider};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(
        "Microsoft Graph refused the request: HTTP {status} {code}: {message} (request id {request_id})"
    )]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("Microsoft Graph request failed")]
    Http(#[source] HttpError),
    #[error("cannot sign in to Microsoft Graph")]
    Sts(#[source] StsError),
    #[error("Microsoft Graph's answer could not be read: {0}")]
    Decode(String),
    #[error(
        "the tenant has no service principal for application {app_id} (it was never provisioned here)"
    )]
    NoServicePrincipal { app_id: String },
    #[error("the tenant has {count} service principals for application {app_id}")]
    Ambiguous { app_id: String, count: usize },
    /// No application object answers the look-up (`what`: "named 'X'" or "with appId X").
    #[error("the tenant has no application {what}")]
    NoApplication { what: String },
    #[error("the tenant has {count} applications named '{display_name}'")]
    AmbiguousApplication { display_name: String, count: usize },
    /// A key date outside the years 1..=9999 (`crate::dates`): refused where Graph's answer is
    /// read, so no later arithmetic sees it.
    #[error(
        "Microsoft Graph returned key {key_id} of service principal {sp_id} with {field} {}, {}",
        crate::dates::show(.date.0),
        crate::dates::OUT_OF_RANGE
    )]
    DateOutOfRange {
        sp_id: String,
        key_id: String,
        field: &'static str,
        date: crate::dates::OutOfRange,
    },
}

impl GraphError {
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the request may have been applied even though no answer came (reset, timeout).
    pub fn maybe_applied(&self) -> bool {
        matches!(
            self,
            GraphError::Http(HttpError::Reset { .. } | HttpError::Timeout { .. })
        )
    }

    pub fn hint(&self) -> String {
        match self {
            GraphError::Api { code, status, .. } => match code.as_str() {
                "Authorization_RequestDenied" => "the admin identity needs Application.ReadWrite.All (application permission with admin consent), or a delegated admin with the Application Administrator or Cloud Application Administrator role".into(),
                "InvalidAuthenticationToken" => "sign in again (hybrid-trust login), and check --cloud".into(),
                "CredentialInvalidLifetimeAsPerAppPolicy" => "the tenant's app management policy caps credential lifetime: pass an earlier --end, or ask the tenant admin about the policy".into(),
                "KeyCredentialsInvalidEndDate" | "KeyCredentialsInvalidStartDate" => "the dates were refused: check the certificate's validity and this machine's clock".into(),
                "TooManyRequests" => "Graph is throttling this tenant: wait a minute and run again".into(),
                "Request_ResourceNotFound" => "the object does not exist (any more): run the command again".into(),
                _ if *status >= 500 => "Microsoft Graph is failing: try again later; the request id helps Microsoft support".into(),
                _ => "read the message above; the request id helps Microsoft support".into(),
            },
            GraphError::Http(e) => e.hint().into(),
            GraphError::Sts(e) => e.hint(),
            GraphError::Decode(_) => "a proxy may be answering instead of Microsoft Graph".into(),
            GraphError::NoServicePrincipal { app_id } => format!("check the tenant and the cloud; if they are right, create it: hybrid-trust credential upload --create-service-principal (or New-MgServicePrincipal -AppId {app_id}, as Microsoft's scripts do)"),
            GraphError::Ambiguous { .. } => "resolve the duplicate service principals in the Entra admin center first".into(),
            GraphError::NoApplication { .. } => "check --tenant and the organization GUID; Exchange Server hybrid's application is created by Microsoft's ConfigureExchangeHybridApplication.ps1 -FullyConfigureExchangeHybridApplication (or name an existing one with --exchange-app-id)".into(),
            GraphError::AmbiguousApplication { .. } => "name the application by its appId (--exchange-app-id), or delete the duplicate in the Entra admin center".into(),
            GraphError::DateOutOfRange { .. } => "no real key has such a date: look at that key in the Entra admin center (or Graph Explorer) and remove it if nobody knows it; if this is not Microsoft Graph, check --cloud / --cloud-file and HTTPS_PROXY".into(),
        }
    }
}

/// A service principal as the tool reads it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: String,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
    #[serde(default)]
    pub service_principal_names: Vec<String>,
    /// `accountEnabled`, when the read selected it.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// The keys exactly as Graph returned them (the JSON objects), for a re-send "as read"
    /// ([`super::resend::ResendForm::Unchanged`]).
    #[serde(skip)]
    pub raw_keys: Vec<Value>,
}

/// Keeps the JSON of the keys as Graph sent them beside the typed ones.
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
fn from_value(v: Value) -> Result<ServicePrincipal, GraphError> {
    let raw = v
        .get("keyCredentials")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut sp: ServicePrincipal =
        serde_json::from_value(v).map_err(|e| GraphError::Decode(e.to_string()))?;
    sp.raw_keys = raw;
    Ok(sp)
}

/// A servicePrincipal object as Graph answers it: key dates outside the years 1..=9999 are refused
/// here ([`GraphError::DateOutOfRange`], exit 1), at the boundary, rather than met by arithmetic
/// later (issue 14, defect 4: `endDateTime` `+262142-12-31T23:59:59Z` crashed `status --live`).
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
pub fn parse_service_principal(body: &[u8]) -> Result<ServicePrincipal, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))?;
    check_dates(from_value(v)?)
}

/// The collection form (`{"value":[…]}`), with the same date check.
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
pub fn parse_service_principals(body: &[u8]) -> Result<Vec<ServicePrincipal>, GraphError> {
    #[derive(Deserialize)]
    struct List {
        value: Vec<Value>,
    }
    let list: List = serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))?;
    list.value
        .into_iter()
        .map(|v| from_value(v).and_then(check_dates))
        .collect()
}

#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
fn check_dates(sp: ServicePrincipal) -> Result<ServicePrincipal, GraphError> {
    check_key_dates(&sp.id, &sp.key_credentials)?;
    Ok(sp)
}

/// The boundary check of the key dates of an object Graph returned (a service principal or an
/// application, `owner` its object id): a date outside years 1 to 9999 is refused where it is read.
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
pub(super) fn check_key_dates(owner: &str, keys: &[KeyCredential]) -> Result<(), GraphError> {
    for k in keys {
        for (field, d) in [
            ("startDateTime", k.start_date_time),
            ("endDateTime", k.end_date_time),
        ] {
            if let Some(Err(date)) = d.map(crate::dates::check) {
                return Err(GraphError::DateOutOfRange {
                    sp_id: owner.to_string(),
                    key_id: k.key_id.clone().unwrap_or_else(|| "(no keyId)".into()),
                    field,
                    date,
                });
            }
        }
    }
    Ok(())
}

pub struct Graph<'a> {
    http: &'a HttpClient,
    cloud: &'a Cloud,
    tokens: &'a TokenProvider,
}

fn api_error(resp: &Response) -> GraphError {
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let e = &v["error"];
    GraphError::Api {
        status: resp.status,
        code: e["code"].as_str().unwrap_or("(none)").to_string(),
        message: e["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned(),
            str::to_string,
        ),
        request_id: e["innerError"]["request-id"]
            .as_str()
            .or_else(|| resp.header("request-id"))
            .unwrap_or("-")
            .to_string(),
    }
}

impl<'a> Graph<'a> {
    pub fn new(http: &'a HttpClient, cloud: &'a Cloud, tokens: &'a TokenProvider) -> Graph<'a> {
        Graph {
            http,
            cloud,
            tokens,
        }
    }

    /// Graph's clock now, from the `Date` of its latest answer ([`HttpClient::server_now`]).
    pub fn server_now(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.http.server_now()
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Response, GraphError> {
        let token = self
            .tokens
            .token(&self.cloud.graph_scope())
            .await
            .map_err(GraphError::Sts)?;
        let url = format!("{}/v1.0/{path}", self.cloud.graph_url);
        let resp = self
            .http
            .send(
                |c| {
                    let mut b = c
                        .request(method.clone(), &url)
                        .bearer_auth(token.expose())
                        .query(query);
                    if let Some(v) = body {
                        b = b.json(v);
                    }
                    b
                },
                idempotent,
            )
            .await
            .map_err(GraphError::Http)?;
        if resp.is_success() {
            Ok(resp)
        } else {
            Err(api_error(&resp))
        }
    }

    /// The service principal of `app_id` (validated GUID), by the collection `$filter` form.
    pub async fn find_service_principal(&self, app_id: &str) -> Result<String, GraphError> {
        Ok(self.find_service_principal_full(app_id).await?.id)
    }

    /// The keys of `app_id`'s service principal for reading only: one collection query (Graph
    /// omits `key` there, but `customKeyIdentifier` names the certificate); a single-object GET
    /// only when some key cannot be identified without its `key`.
    pub async fn list_keys(&self, app_id: &str) -> Result<ServicePrincipal, GraphError> {
        let sp = self
            .by_app_id(app_id, "id,appId,displayName,keyCredentials")
            .await?;
        if sp.key_credentials.iter().any(|k| k.thumbprint().is_none()) {
            return self.read_service_principal(&sp.id).await;
        }
        Ok(sp)
    }

    /// A single-object GET selecting keyCredentials: the only form that returns `key`.
    pub async fn read_service_principal(&self, id: &str) -> Result<ServicePrincipal, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("servicePrincipals/{id}"),
                &[(
                    "$select",
                    "id,appId,displayName,keyCredentials,servicePrincipalNames",
                )],
                None,
                true,
            )
            .await?;
        parse_service_principal(&resp.body)
    }

    /// Creates the service principal of a Microsoft application (`POST /servicePrincipals
    /// {"appId"}`, as Microsoft's scripts do with `New-MgServicePrincipal -AppId`); returns its
    /// object id. Not retried on a lost connection: the caller looks it up again.
    pub async fn create_service_principal(&self, app_id: &str) -> Result<String, GraphError> {
        let resp = self
            .call(
                reqwest::Method::POST,
                "servicePrincipals",
                &[],
                Some(&serde_json::json!({ "appId": app_id })),
                false,
            )
            .await?;
        Ok(parse_service_principal(&resp.body)?.id)
    }

    /// The service principal of `app_id` with whether it is enabled (`accountEnabled`).
    pub async fn find_service_principal_full(
        &self,
        app_id: &str,
    ) -> Result<ServicePrincipal, GraphError> {
        self.by_app_id(app_id, "id,appId,displayName,accountEnabled")
            .await
    }

    /// The one service principal of `app_id` (a collection query with `$select`): none or
    /// several is an error.
    async fn by_app_id(&self, app_id: &str, select: &str) -> Result<ServicePrincipal, GraphError> {
        let filter = format!("appId eq '{app_id}'");
        let resp = self
            .call(
                reqwest::Method::GET,
                "servicePrincipals",
                &[("$filter", &filter), ("$select", select)],
                None,
                true,
            )
            .await?;
        let mut list = parse_service_principals(&resp.body)?;
        match list.len() {
            0 => Err(GraphError::NoServicePrincipal {
                app_id: app_id.to_string(),
            }),
            1 => Ok(list.remove(0)),
            n => Err(GraphError::Ambiguous {
                app_id: app_id.to_string(),
                count: n,
            }),
        }
    }

    /// PATCH with replace semantics. Not retried on a lost connection (the caller reads back).
    pub async fn patch_service_principal(&self, id: &str, body: &Value) -> Result<(), GraphError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("servicePrincipals/{id}"),
            &[],
            Some(body),
            false,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(start: &str, end: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"sp-1","appId":"a","keyCredentials":[{{"keyId":"k1","type":"AsymmetricX509Cert","usage":"Verify","startDateTime":"{start}","endDateTime":"{end}"}}]}}"#
        )
        .into_bytes()
    }

    /// Issue 14, defect 4: a key `endDateTime` of `+262142-12-31T23:59:59Z` crashed
    /// `status --live`; it is now refused where Graph's answer is read.
    #[test]
    fn key_dates_outside_years_1_to_9999_are_refused_where_graph_is_read() {
        for (s, e, field) in [
            (
                "2026-01-01T00:00:00Z",
                "+262142-12-31T23:59:59Z",
                "endDateTime",
            ),
            (
                "-262143-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
                "startDateTime",
            ),
            (
                "2026-01-01T00:00:00Z",
                "+10000-01-01T00:00:00Z",
                "endDateTime",
            ),
        ] {
            let err = parse_service_principal(&sp(s, e)).unwrap_err();
            assert!(
                matches!(&err, GraphError::DateOutOfRange { field: f, key_id, .. } if *f == field && key_id == "k1"),
                "{err:?}"
            );
            assert!(err.to_string().contains(crate::dates::OUT_OF_RANGE));
            let list = format!(r#"{{"value":[{}]}}"#, String::from_utf8(sp(s, e)).unwrap());
            assert!(matches!(
                parse_service_principals(list.as_bytes()),
                Err(GraphError::DateOutOfRange { .. })
            ));
        }
        // .NET's DateTime.MinValue and RFC 5280's "no expiry" still read.
        let ok = parse_service_principal(&sp("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"));
        assert_eq!(ok.unwrap().key_credentials.len(), 1);
    }
}
