//! Microsoft Graph `applications` for Exchange Server hybrid's dedicated application
//! (`ExchangeServerApp-<organization guid>`, docs/protocol.md §5): find it by display name or
//! appId, read it with its keys, PATCH its `keyCredentials` and read them back; and Exchange
//! Online's shared principal (`00000002-…`), whose on-premises keys Microsoft's
//! ConfigureExchangeHybridApplication.ps1 removes by re-sending the kept ones as `key`, `type`
//! and `usage` only. Plans, confirmation and the ledger live elsewhere.

use super::client::{Graph, GraphError, ServicePrincipal};
use super::keys::KeyCredential;
use serde::Deserialize;
use serde_json::{Value, json};

/// Office 365 Exchange Online, the shared first-party principal (CVE-2025-53786).
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// Exchange Online's `full_access_as_app` app role.
pub const FULL_ACCESS_AS_APP_ROLE_ID: &str = "dc890d15-9560-4a4c-9b7f-a736ec74ec40";

/// The display name Microsoft's script gives the dedicated application.
pub fn exchange_app_display_name(organization_guid: &uuid::Uuid) -> String {
    format!("ExchangeServerApp-{organization_guid}")
}

/// An application object as the tool reads it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The object id (what `PATCH applications/{id}` takes).
    pub id: String,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `createdDateTime`: whether a policy's `restrictForAppsCreatedAfterDateTime` applies.
    #[serde(default)]
    pub created_date_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
    /// The keys exactly as Graph returned them, for a re-send "as read".
    #[serde(skip)]
    pub raw_keys: Vec<Value>,
}

const SELECT: &str = "id,appId,displayName,createdDateTime,keyCredentials";

#[allow(
    clippy::result_large_err,
    reason = "the error type of the async calls these serve; a failed parse is the cold path"
)]
fn from_value(v: Value) -> Result<Application, GraphError> {
    let raw = v
        .get("keyCredentials")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut app: Application =
        serde_json::from_value(v).map_err(|e| GraphError::Decode(e.to_string()))?;
    app.raw_keys = raw;
    // The same boundary check of key dates as for service principals.
    super::client::check_key_dates(&app.id, &app.key_credentials)?;
    Ok(app)
}

/// An application object as Graph answers a single GET or a POST.
#[allow(
    clippy::result_large_err,
    reason = "the error type of the async calls these serve; a failed parse is the cold path"
)]
pub fn parse_application(body: &[u8]) -> Result<Application, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))?;
    from_value(v)
}

/// The collection form (`{"value":[…]}`).
#[allow(
    clippy::result_large_err,
    reason = "the error type of the async calls these serve; a failed parse is the cold path"
)]
pub fn parse_applications(body: &[u8]) -> Result<Vec<Application>, GraphError> {
    #[derive(Deserialize)]
    struct List {
        value: Vec<Value>,
    }
    let list: List = serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))?;
    list.value.into_iter().map(from_value).collect()
}

/// An OData string literal's content: `'` doubled.
fn odata_quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// A key as Microsoft's script re-sends a kept key of the shared principal: `key`, `type` and
/// `usage` only ("otherwise the PATCH call will fail"). `None` when Graph did not return `key`.
pub fn first_party_form(k: &KeyCredential) -> Option<Value> {
    Some(json!({
        "key": k.key.as_deref()?,
        "type": k.kind.as_deref().unwrap_or("AsymmetricX509Cert"),
        "usage": k.usage.as_deref().unwrap_or("Verify"),
    }))
}

impl Graph<'_> {
    /// The one application named `display_name` (`$filter=displayName eq '…'`, as Microsoft's
    /// script finds it); none is [`GraphError::NoApplication`], two or more
    /// [`GraphError::AmbiguousApplication`]. Keys come without `key` (a collection read).
    pub async fn find_application_by_name(
        &self,
        display_name: &str,
    ) -> Result<Application, GraphError> {
        let filter = format!("displayName eq '{}'", odata_quote(display_name));
        let mut list = self.list_applications(&filter).await?;
        match list.len() {
            0 => Err(GraphError::NoApplication {
                what: format!("named '{display_name}'"),
            }),
            1 => Ok(list.remove(0)),
            count => Err(GraphError::AmbiguousApplication {
                display_name: display_name.to_string(),
                count,
            }),
        }
    }

    /// The application with `app_id` (`$filter=appId eq '…'`); none is
    /// [`GraphError::NoApplication`] (an appId is unique in a tenant).
    pub async fn find_application_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Application, GraphError> {
        let filter = format!("appId eq '{}'", odata_quote(app_id));
        self.list_applications(&filter)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| GraphError::NoApplication {
                what: format!("with appId {app_id}"),
            })
    }

    async fn list_applications(&self, filter: &str) -> Result<Vec<Application>, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                "applications",
                &[("$filter", filter), ("$select", SELECT)],
                None,
                true,
            )
            .await?;
        parse_applications(&resp.body)
    }

    /// A single-object GET selecting keyCredentials: the only form that returns `key`.
    pub async fn read_application(&self, id: &str) -> Result<Application, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("applications/{id}"),
                &[("$select", SELECT)],
                None,
                true,
            )
            .await?;
        parse_application(&resp.body)
    }

    /// `PATCH applications/{id} {"keyCredentials": keys}` (replace semantics, 204), then the
    /// application read back with its keys. Not retried on a lost connection (the read-back
    /// tells what happened). A kept key may be sent as read (`key` absent or null, its `keyId`):
    /// Graph keeps its certificate, as Microsoft's script relies on.
    pub async fn patch_application_keys(
        &self,
        id: &str,
        keys: &[KeyCredential],
    ) -> Result<Application, GraphError> {
        let body: Vec<Value> = keys
            .iter()
            .map(|k| serde_json::to_value(k).unwrap_or(Value::Null))
            .collect();
        self.patch_application_keys_raw(id, body).await
    }

    /// [`Graph::patch_application_keys`] with the JSON of each key as given (e.g. from
    /// [`super::resend::body`]).
    pub async fn patch_application_keys_raw(
        &self,
        id: &str,
        keys: Vec<Value>,
    ) -> Result<Application, GraphError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("applications/{id}"),
            &[],
            Some(&json!({ "keyCredentials": keys })),
            false,
        )
        .await?;
        self.read_application(id).await
    }

    /// The app role values granted to the service principal `sp_id` (its `appRoleAssignments`)
    /// on the resource principal `resource_sp_id`, as app role ids.
    pub async fn app_role_ids_granted(
        &self,
        sp_id: &str,
        resource_sp_id: &str,
    ) -> Result<Vec<String>, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("servicePrincipals/{sp_id}/appRoleAssignments"),
                &[],
                None,
                true,
            )
            .await?;
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|e| GraphError::Decode(e.to_string()))?;
        Ok(v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| {
                        x["resourceId"]
                            .as_str()
                            .is_some_and(|r| r.eq_ignore_ascii_case(resource_sp_id))
                    })
                    .filter_map(|x| x["appRoleId"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Exchange Online's shared principal (`00000002-…`) with its keys, `key` included (a
    /// single-object GET after the look-up).
    pub async fn exchange_online_principal(&self) -> Result<ServicePrincipal, GraphError> {
        let id = self.find_service_principal(EXCHANGE_ONLINE_APP_ID).await?;
        self.read_service_principal(&id).await
    }

    /// Replaces the shared principal's keys with `kept`, each re-sent as Microsoft's script
    /// does (`key`, `type`, `usage` only, [`first_party_form`]), then reads it back. A kept key
    /// without `key` (not read with a single-object GET) is refused here, before any change.
    pub async fn patch_exchange_online_keys(
        &self,
        sp_id: &str,
        kept: &[KeyCredential],
    ) -> Result<ServicePrincipal, GraphError> {
        let mut body = Vec::with_capacity(kept.len());
        for k in kept {
            body.push(first_party_form(k).ok_or_else(|| {
                GraphError::Decode(format!(
                    "key {} was read without its certificate; read the principal with read_service_principal first",
                    k.key_id.as_deref().unwrap_or("(no keyId)")
                ))
            })?);
        }
        self.patch_service_principal(sp_id, &json!({ "keyCredentials": body }))
            .await?;
        self.read_service_principal(sp_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_and_quoting() {
        let g = uuid::Uuid::parse_str("3f1e2d4c-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            exchange_app_display_name(&g),
            "ExchangeServerApp-3f1e2d4c-0000-4000-8000-000000000001"
        );
        assert_eq!(odata_quote("O'Brien"), "O''Brien");
    }

    #[test]
    fn first_party_form_is_key_type_usage_only() {
        let k = KeyCredential {
            key: Some("AAAA".into()),
            key_id: Some("k".into()),
            display_name: Some("CN=x".into()),
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            ..Default::default()
        };
        assert_eq!(
            first_party_form(&k).unwrap(),
            json!({"key": "AAAA", "type": "AsymmetricX509Cert", "usage": "Verify"})
        );
        assert!(first_party_form(&KeyCredential { key: None, ..k }).is_none());
    }
}
