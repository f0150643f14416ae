//! Resolving a tenant through the cloud's OpenID discovery and fetching its ACS metadata the way
//! `New-CsOAuthServer -MetadataUrl` downloads it (an HTTPS GET of JSON). Each way the download can
//! fail (DNS, TLS, proxy, HTTP status, body) is its own error, so the admin learns why the cmdlet
//! would say "The metadata document could not be downloaded from the URL in the MetadataUrl
//! parameter or downloaded data is not a valid metadata document".

use super::TenantRef;
use super::metadata::{MetadataDoc, MetadataError, parse_document};
use crate::cloud::Cloud;
use crate::http::{HttpClient, HttpError};
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug)]
pub struct Discovery {
    pub tenant_id: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub metadata_url: String,
    pub metadata: MetadataDoc,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: HttpError,
    },
    #[error(
        "tenant {tenant} does not exist in the {cloud} cloud (AADSTS90002; correlation id {correlation_id})"
    )]
    TenantNotFound {
        tenant: String,
        cloud: String,
        correlation_id: String,
    },
    #[error("{what}: {url} answered HTTP {status}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
        snippet: String,
    },
    #[error("{what}: {url} did not return a valid document: {reason}")]
    Body {
        what: &'static str,
        url: String,
        #[source]
        reason: MetadataError,
    },
    #[error("OpenID discovery for {tenant} returned an issuer without a tenant id: {issuer:?}")]
    NoTenantId { tenant: String, issuer: String },
}

impl DiscoverError {
    pub fn hint(&self) -> String {
        match self {
            DiscoverError::Http { source, .. } => source.hint().to_string(),
            DiscoverError::TenantNotFound { .. } => {
                "check the spelling of the domain (it must be verified in the tenant) or use the tenant id, and the cloud (--cloud)".to_string()
            }
            DiscoverError::Status { status: 404, .. } => "the URL does not exist: check the tenant id and the cloud".to_string(),
            DiscoverError::Status { status, .. } if *status >= 500 => "the service is failing: try again later".to_string(),
            DiscoverError::Status { .. } => "check the URL and any proxy in between".to_string(),
            DiscoverError::Body { .. } => "something between you and Microsoft (a proxy or captive portal) may be answering instead; open the URL in a browser on the Front End".to_string(),
            DiscoverError::NoTenantId { .. } => "give the tenant id (GUID) instead".to_string(),
        }
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).replace(['\r', '\n'], " ")
}

/// Resolves `tenant` to its id and validates its ACS metadata.
pub async fn discover(
    http: &HttpClient,
    cloud: &Cloud,
    tenant: &TenantRef,
    now: DateTime<Utc>,
) -> Result<Discovery, DiscoverError> {
    const WHAT: &str = "OpenID discovery";
    let url = cloud.openid_configuration_url(&tenant.as_path_segment());
    let resp = http
        .send(|c| c.get(&url), true)
        .await
        .map_err(|source| DiscoverError::Http { what: WHAT, source })?;
    if !resp.is_success() {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let codes = body["error_codes"].as_array().cloned().unwrap_or_default();
        if resp.status == 400 && codes.iter().any(|c| c.as_u64() == Some(90002)) {
            return Err(DiscoverError::TenantNotFound {
                tenant: tenant.to_string(),
                cloud: cloud.name.clone(),
                correlation_id: body["correlation_id"].as_str().unwrap_or("-").to_string(),
            });
        }
        return Err(DiscoverError::Status {
            what: WHAT,
            url,
            status: resp.status,
            snippet: snippet(&resp.body),
        });
    }
    let conf: Value = serde_json::from_slice(&resp.body).map_err(|e| DiscoverError::Body {
        what: WHAT,
        url: url.clone(),
        reason: MetadataError::NotJson(e.to_string()),
    })?;
    let issuer = conf["issuer"].as_str().unwrap_or_default().to_string();
    let tenant_id = issuer
        .split('/')
        .find(|p| p.len() == 36 && uuid::Uuid::parse_str(p).is_ok())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| DiscoverError::NoTenantId {
            tenant: tenant.to_string(),
            issuer: issuer.clone(),
        })?;
    let token_endpoint = conf["token_endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let metadata_url = cloud.acs_metadata_url(&tenant_id);
    let metadata = fetch_metadata(http, &metadata_url, now).await?;
    Ok(Discovery {
        tenant_id,
        issuer,
        token_endpoint,
        metadata_url,
        metadata,
    })
}

/// Downloads and validates a metadata document.
pub async fn fetch_metadata(
    http: &HttpClient,
    url: &str,
    now: DateTime<Utc>,
) -> Result<MetadataDoc, DiscoverError> {
    const WHAT: &str = "ACS metadata";
    let resp = http
        .send(|c| c.get(url), true)
        .await
        .map_err(|source| DiscoverError::Http { what: WHAT, source })?;
    if !resp.is_success() {
        return Err(DiscoverError::Status {
            what: WHAT,
            url: crate::secret::redact_url(url),
            status: resp.status,
            snippet: snippet(&resp.body),
        });
    }
    parse_document(&resp.body, now).map_err(|reason| DiscoverError::Body {
        what: WHAT,
        url: crate::secret::redact_url(url),
        reason,
    })
}
