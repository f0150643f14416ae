//! Entra's token-endpoint errors (docs/protocol.md §2.3–2.4), kept whole: the `oauth2` crate is given
//! [`EntraErrorResponse`] as its error type so `error_codes`, `trace_id` and `correlation_id`
//! survive, and [`explain`] turns the codes that matter into a cause and a fix.

use crate::http::HttpError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Entra's error body: `{"error","error_description","error_codes","timestamp","trace_id",
/// "correlation_id","error_uri"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntraErrorResponse {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u64>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
}

impl EntraErrorResponse {
    /// The first AADSTS code, from `error_codes` or the description's `AADSTSnnnn:` prefix.
    pub fn code(&self) -> Option<u64> {
        self.error_codes.first().copied().or_else(|| {
            let d = self.error_description.as_deref()?;
            let rest = d.get(d.to_ascii_uppercase().find("AADSTS")? + 6..)?;
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
    }

    /// The description's first sentence-ish part, without Entra's trailing trace lines.
    pub fn summary(&self) -> String {
        let d = self.error_description.as_deref().unwrap_or(&self.error);
        d.split(" Trace ID:").next().unwrap_or(d).trim().to_string()
    }
}

impl fmt::Display for EntraErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

impl oauth2::ErrorResponse for EntraErrorResponse {}

#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// Entra refused the request.
    #[error("Entra ID refused the token request: {response} (correlation id {})", .response.correlation_id.as_deref().unwrap_or("-"))]
    Entra { response: EntraErrorResponse },
    #[error("token request failed")]
    Http(#[source] HttpError),
    #[error("Entra ID's answer could not be read: {0}")]
    Parse(String),
    #[error("cannot build the client assertion: {0}")]
    Assertion(String),
    /// A lifetime that ends past the year 9999 (see `crate::dates`).
    #[error(
        "the token endpoint's answer has expires_in {expires_in} s, which ends {}",
        crate::dates::OUT_OF_RANGE
    )]
    Lifetime { expires_in: u64 },
    #[error("{0}")]
    Other(String),
}

impl StsError {
    pub fn code(&self) -> Option<u64> {
        match self {
            StsError::Entra { response } => response.code(),
            _ => None,
        }
    }
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            StsError::Entra { response } => response.correlation_id.as_deref(),
            _ => None,
        }
    }
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            StsError::Entra { response } => explain(response).1.to_string(),
            StsError::Http(e) => e.hint().to_string(),
            StsError::Parse(_) => {
                "a proxy may be answering instead of Entra ID; check HTTPS_PROXY".to_string()
            }
            StsError::Assertion(_) => {
                "check that the certificate file has its RSA private key".to_string()
            }
            StsError::Lifetime { .. } => "Entra ID's tokens live about an hour: something else answers at the token endpoint; check --cloud / --cloud-file and HTTPS_PROXY".to_string(),
            StsError::Other(_) => "try again; if it persists, run with -v".to_string(),
        }
    }
}

/// Plain-language cause and fix for the Entra errors that matter here.
pub fn explain(e: &EntraErrorResponse) -> (&'static str, &'static str) {
    let d = e.error_description.as_deref().unwrap_or("");
    match e.code() {
        Some(700027) if d.contains("The key was not found") => (
            "the certificate is not a key credential of the service principal",
            "upload it: hybrid-trust credential upload --tenant T --cert CERT",
        ),
        Some(700027) if d.contains("expired") => (
            "the certificate's key credential on the service principal has expired",
            "renew it: hybrid-trust renew --tenant T (or credential upload with a new window)",
        ),
        Some(700027) => (
            "the signature does not verify with the uploaded certificate: the private key is not this certificate's",
            "use the PFX that holds this certificate's own private key",
        ),
        Some(700024) => (
            "the assertion is outside its valid time range: this machine's clock and Entra's differ by more than 5 minutes",
            "fix this machine's clock (NTP) and try again",
        ),
        Some(700016) => (
            "the application does not exist in this tenant (wrong tenant, or the service principal is missing)",
            "check --tenant and --cloud; for an admin app, grant it in this tenant (admin consent)",
        ),
        // "UnauthorizedClientApplicationDisabled - The application is disabled." (Entra's AADSTS
        // reference); Entra says "Application '<appId>'(<name>) is disabled."
        Some(7000112) => (
            "the application's service principal is disabled in this tenant (accountEnabled false), so Entra issues it no token",
            "enable it: Entra admin center > Enterprise applications > (remove the filter) the application > Properties > Enabled for users to sign-in: Yes; or Update-MgServicePrincipal -ServicePrincipalId <object id> -AccountEnabled:$true",
        ),
        Some(50027) => (
            "the assertion is malformed (for example no thumbprint header)",
            "report this as a bug in hybrid-trust",
        ),
        Some(700021) => (
            "the assertion's issuer/subject is not the client id",
            "report this as a bug in hybrid-trust",
        ),
        Some(700023) => (
            "the assertion's audience is not the token URL",
            "check the cloud's login URL (--cloud / --cloud-file)",
        ),
        Some(7000215) => (
            "the client secret is wrong or expired",
            "create a new secret for the admin app and pass it with --client-secret-env",
        ),
        Some(7000222) => (
            "the client secret has expired",
            "create a new secret for the admin app",
        ),
        Some(7000218) => (
            "no client credential was sent",
            "give --client-secret-env or --client-cert, or run hybrid-trust login",
        ),
        Some(90002) => (
            "the tenant does not exist in this cloud",
            "check the tenant and --cloud",
        ),
        Some(500011) => (
            "the resource is not in this tenant",
            "check the cloud (--cloud)",
        ),
        Some(1002012) => (
            "the scope is not valid for this flow",
            "report this as a bug in hybrid-trust",
        ),
        Some(5002738) => (
            "the signing algorithm is not accepted",
            "use --assertion-alg rs256",
        ),
        _ => (
            "Entra ID refused the request",
            "read the message and correlation id above; Microsoft support can trace the correlation id",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_comes_from_error_codes_or_the_description() {
        let e = EntraErrorResponse {
            error: "invalid_client".into(),
            error_description: Some("AADSTS700027: Client assertion ... Trace ID: x".into()),
            ..Default::default()
        };
        assert_eq!(e.code(), Some(700027));
        assert_eq!(e.summary(), "AADSTS700027: Client assertion ...");
        let e = EntraErrorResponse {
            error_codes: vec![700024],
            ..Default::default()
        };
        assert_eq!(e.code(), Some(700024));
    }

    #[test]
    fn a_disabled_application_is_explained_with_its_fix() {
        let e = EntraErrorResponse {
            error: "unauthorized_client".into(),
            error_description: Some(
                "AADSTS7000112: Application '00000004-0000-0ff1-ce00-000000000000'(Skype for Business Online) is disabled. Trace ID: x".into(),
            ),
            ..Default::default()
        };
        assert_eq!(e.code(), Some(7000112));
        let (cause, fix) = explain(&e);
        assert!(cause.contains("disabled") && cause.contains("accountEnabled"));
        assert!(
            fix.contains("Enabled for users to sign-in") && fix.contains("-AccountEnabled:$true")
        );
    }
}
