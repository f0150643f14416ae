//! Metadata documents, parsed leniently and validated strictly (docs/protocol.md §3):
//! - ACS / SharePoint-family JSON metadata: `keys[]` with `usage` `signing` and a `keyValue` of
//!   type `x509Certificate` (any case), `endpoints[]` with an `OAuth2` one, `realm` or an `issuer`
//!   of the form `<principal>@<realm>`. Unknown fields are ignored.
//! - An OpenID configuration (`issuer`, `jwks_uri`, `token_endpoint`); a `{tenantid}` placeholder
//!   is not a tenant.
//! - A JWKS (`keys[]` with `kty`, and `x5c` certificates).
//!
//! Pure: the caller passes `now`.

use crate::cert::Certificate;
use crate::cert::{Finding, Severity};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocKind {
    AcsMetadata,
    OpenidConfiguration,
    Jwks,
}

#[derive(Debug, Clone, Serialize)]
pub struct SigningKey {
    pub thumbprint_sha1: String,
    pub subject: String,
    pub not_after: String,
}

#[derive(Debug, Clone)]
pub struct MetadataDoc {
    pub kind: DocKind,
    pub tenant_id: Option<String>,
    pub issuer: Option<String>,
    pub signing_keys: Vec<SigningKey>,
    pub oauth2_endpoint: Option<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetadataError {
    #[error("the document is empty")]
    Empty,
    #[error("the document is not JSON ({0}); it may be truncated, or an HTML error page")]
    NotJson(String),
    #[error("the document is JSON but not a metadata document, OpenID configuration or JWKS")]
    Foreign,
}

fn f(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
}

fn str_ci<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let obj = v.as_object()?;
    names.iter().find_map(|n| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    })
}

fn guid_in(s: &str) -> Option<String> {
    s.split(['/', '@'])
        .find(|p| p.len() == 36 && uuid::Uuid::parse_str(p).is_ok())
        .map(str::to_ascii_lowercase)
}

fn key_from_der(der: &[u8], now: DateTime<Utc>, findings: &mut Vec<Finding>) -> Option<SigningKey> {
    match Certificate::from_der(der) {
        Ok(c) => {
            if c.not_after < now {
                findings.push(f(
                    Severity::Warning,
                    "signing-key-expired",
                    format!(
                        "signing certificate {} expired on {}: it can no longer verify tokens",
                        c.thumbprint_sha1(),
                        c.not_after.format("%Y-%m-%d")
                    ),
                ));
            }
            Some(SigningKey {
                thumbprint_sha1: c.thumbprint_sha1(),
                subject: c.subject.clone(),
                not_after: c
                    .not_after
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        }
        Err(e) => {
            findings.push(f(Severity::Error, "signing-key-invalid", format!("a signing key is not a valid X.509 certificate ({e}): the publisher's document is damaged")));
            None
        }
    }
}

/// Parses and validates a metadata document.
pub fn parse_document(bytes: &[u8], now: DateTime<Utc>) -> Result<MetadataDoc, MetadataError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| MetadataError::NotJson("not UTF-8".into()))?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(MetadataError::Empty);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| MetadataError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(MetadataError::Foreign);
    }
    let keys = str_ci(&v, &["keys"]).and_then(Value::as_array);
    if let Some(keys) = keys {
        if keys.iter().any(|k| str_ci(k, &["keyValue"]).is_some())
            || (keys.is_empty() && str_ci(&v, &["endpoints", "realm"]).is_some())
        {
            return Ok(acs(&v, keys, now));
        }
        if keys.iter().any(|k| str_ci(k, &["kty"]).is_some()) {
            return Ok(jwks(keys, now));
        }
    }
    if str_ci(&v, &["issuer"]).is_some()
        && (str_ci(&v, &["jwks_uri"]).is_some() || str_ci(&v, &["token_endpoint"]).is_some())
    {
        return Ok(openid(&v));
    }
    Err(MetadataError::Foreign)
}

fn acs(v: &Value, keys: &[Value], now: DateTime<Utc>) -> MetadataDoc {
    let mut findings = Vec::new();
    let mut signing_keys = Vec::new();
    for k in keys {
        let usage = str_ci(k, &["usage"]).and_then(Value::as_str).unwrap_or("");
        if !usage.eq_ignore_ascii_case("signing") {
            continue;
        }
        let kv = str_ci(k, &["keyValue"]);
        let ty = kv
            .and_then(|kv| str_ci(kv, &["type"]))
            .and_then(Value::as_str)
            .unwrap_or("");
        let val = kv
            .and_then(|kv| str_ci(kv, &["value"]))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !ty.eq_ignore_ascii_case("x509Certificate") {
            findings.push(f(
                Severity::Warning,
                "signing-key-not-x509",
                format!("a signing key has type {ty:?}, not x509Certificate: it is ignored"),
            ));
            continue;
        }
        match STANDARD.decode(val.trim()) {
            Ok(der) => signing_keys.extend(key_from_der(&der, now, &mut findings)),
            Err(_) => findings.push(f(
                Severity::Error,
                "signing-key-invalid",
                "a signing key's value is not Base64: the publisher's document is damaged".into(),
            )),
        }
    }
    let oauth2_endpoint = str_ci(v, &["endpoints"])
        .and_then(Value::as_array)
        .and_then(|eps| {
            eps.iter().find(|e| {
                str_ci(e, &["protocol"])
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.eq_ignore_ascii_case("OAuth2"))
            })
        })
        .and_then(|e| str_ci(e, &["location"]).and_then(Value::as_str))
        .map(str::to_string);
    let issuer = str_ci(v, &["issuer"])
        .and_then(Value::as_str)
        .map(str::to_string);
    let realm = str_ci(v, &["realm"])
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            issuer
                .as_deref()
                .and_then(|i| i.rsplit_once('@'))
                .map(|(_, r)| r.to_string())
        });
    let tenant_id = realm.as_deref().and_then(guid_in);
    if signing_keys.is_empty() {
        findings.push(f(
            Severity::Error,
            "no-signing-key",
            "the document has no signing X.509 certificate: New-CsOAuthServer would reject it as not a valid metadata document".into(),
        ));
    } else if signing_keys
        .iter()
        .all(|k| DateTime::parse_from_rfc3339(&k.not_after).is_ok_and(|d| d < now))
    {
        findings.push(f(Severity::Error, "no-valid-signing-key", "every signing certificate in the document has expired: the publisher must roll its keys".into()));
    }
    if oauth2_endpoint.is_none() {
        findings.push(f(
            Severity::Error,
            "no-oauth2-endpoint",
            "the document names no OAuth2 issuance endpoint: the server would have nowhere to ask for tokens; check the metadata URL".into(),
        ));
    }
    if tenant_id.is_none() {
        findings.push(f(Severity::Warning, "no-realm", "the document names no realm (tenant id): check that the URL is the tenant's own metadata".into()));
    }
    MetadataDoc {
        kind: DocKind::AcsMetadata,
        tenant_id,
        issuer,
        signing_keys,
        oauth2_endpoint,
        findings,
    }
}

fn jwks(keys: &[Value], now: DateTime<Utc>) -> MetadataDoc {
    let mut findings = Vec::new();
    let mut signing_keys = Vec::new();
    let mut issuers = Vec::new();
    for k in keys {
        if let Some(i) = str_ci(k, &["issuer"]).and_then(Value::as_str) {
            issuers.push(i.to_string());
        }
        if let Some(x5c) = str_ci(k, &["x5c"])
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
        {
            match STANDARD.decode(x5c) {
                Ok(der) => signing_keys.extend(key_from_der(&der, now, &mut findings)),
                Err(_) => findings.push(f(
                    Severity::Error,
                    "signing-key-invalid",
                    "an x5c value is not Base64".into(),
                )),
            }
        }
    }
    if signing_keys.is_empty() {
        findings.push(f(
            Severity::Error,
            "no-signing-key",
            "the JWKS has no key with an X.509 certificate (x5c)".into(),
        ));
    }
    let tenant_id = issuers
        .first()
        .and_then(|i| guid_in(i))
        .filter(|t| issuers.iter().all(|i| guid_in(i).as_deref() == Some(t)));
    MetadataDoc {
        kind: DocKind::Jwks,
        tenant_id,
        issuer: None,
        signing_keys,
        oauth2_endpoint: None,
        findings,
    }
}

fn openid(v: &Value) -> MetadataDoc {
    let issuer = str_ci(v, &["issuer"])
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut findings = Vec::new();
    let tenant_id = issuer.as_deref().and_then(guid_in);
    if issuer.as_deref().is_some_and(|i| i.contains("{tenantid}")) {
        findings.push(f(
            Severity::Warning,
            "tenant-independent",
            "the issuer has a {tenantid} placeholder: this is the common/organizations document, not a tenant's; use the tenant's own URL".into(),
        ));
    }
    let oauth2_endpoint = str_ci(v, &["token_endpoint"])
        .and_then(Value::as_str)
        .map(str::to_string);
    MetadataDoc {
        kind: DocKind::OpenidConfiguration,
        tenant_id,
        issuer,
        signing_keys: Vec::new(),
        oauth2_endpoint,
        findings,
    }
}
