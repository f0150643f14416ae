//! Graph calls of the Exchange hybrid trust (docs/protocol.md §5): the dedicated application
//! found by display name or appId, its keys read with `key` and replaced with one PATCH
//! (`applications/{id}`), and the app management policies that cap a key's lifetime (§5.5).

use super::client::{
    Graph, GraphError, ServicePrincipal, parse_service_principal, parse_service_principals,
};
use serde_json::Value;

/// An application as found by a `$filter` (no keys), with when it was created (a policy's
/// `restrictForAppsCreatedAfterDateTime` compares with it).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundApp {
    pub id: String,
    pub app_id: String,
    pub display_name: Option<String>,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

fn found(body: &[u8]) -> Result<Vec<FoundApp>, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GraphError::Decode(e.to_string()))?;
    let created: Vec<Option<chrono::DateTime<chrono::Utc>>> = v["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x["createdDateTime"]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|d| d.with_timezone(&chrono::Utc))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(parse_service_principals(body)?
        .into_iter()
        .zip(created.into_iter().chain(std::iter::repeat(None)))
        .map(|(a, created)| FoundApp {
            id: a.id,
            app_id: a.app_id,
            display_name: a.display_name,
            created,
        })
        .collect())
}

impl Graph<'_> {
    /// Applications whose display name is `name` (`$filter=displayName eq '…'`, as
    /// ConfigureExchangeHybridApplication.ps1 finds its application).
    pub async fn find_applications_named(&self, name: &str) -> Result<Vec<FoundApp>, GraphError> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let resp = self
            .call(
                reqwest::Method::GET,
                "applications",
                &[
                    ("$filter", &filter),
                    ("$select", "id,appId,displayName,createdDateTime"),
                ],
                None,
                true,
            )
            .await?;
        found(&resp.body)
    }

    /// The applications of appId `app_id` (none or one).
    pub async fn find_applications_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Vec<FoundApp>, GraphError> {
        let filter = format!("appId eq '{}'", app_id.replace('\'', "''"));
        let resp = self
            .call(
                reqwest::Method::GET,
                "applications",
                &[
                    ("$filter", &filter),
                    ("$select", "id,appId,displayName,createdDateTime"),
                ],
                None,
                true,
            )
            .await?;
        found(&resp.body)
    }

    /// An application's keys with `key` (a single-object GET selecting keyCredentials), in the
    /// shape of a service principal's, so the safe key change works on either.
    pub async fn read_application_keys(&self, id: &str) -> Result<ServicePrincipal, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("applications/{id}"),
                &[("$select", "id,appId,displayName,keyCredentials")],
                None,
                true,
            )
            .await?;
        parse_service_principal(&resp.body)
    }

    /// PATCH an application's keyCredentials (replace semantics). Not retried on a lost
    /// connection (the caller reads back).
    pub async fn patch_application_keys(&self, id: &str, body: &Value) -> Result<(), GraphError> {
        self.call(
            reqwest::Method::PATCH,
            &format!("applications/{id}"),
            &[],
            Some(body),
            false,
        )
        .await
        .map(|_| ())
    }

    /// The tenant's default app management policy, as Graph returns it.
    pub async fn default_app_management_policy(&self) -> Result<Value, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                "policies/defaultAppManagementPolicy",
                &[],
                None,
                true,
            )
            .await?;
        serde_json::from_slice(&resp.body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// The app management policies applied to one application (its own, overriding the
    /// tenant's default).
    pub async fn application_policies(&self, id: &str) -> Result<Vec<Value>, GraphError> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("applications/{id}/appManagementPolicies"),
                &[],
                None,
                true,
            )
            .await?;
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|e| GraphError::Decode(e.to_string()))?;
        Ok(v["value"].as_array().cloned().unwrap_or_default())
    }
}
