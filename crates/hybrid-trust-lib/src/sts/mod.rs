//! Entra ID's token service (ESTS): RFC 7523 client assertions, token requests through the
//! `oauth2` crate over our HTTP client, Entra's typed errors (with `error_codes`, `trace_id` and
//! `correlation_id` kept), and an in-memory token cache. Decides no policy and reads no files.

mod assertion;
mod error;
mod provider;

pub use assertion::{Assertion, AssertionAlg, JWT_BEARER, sign_assertion, sign_jwt};
pub use error::{EntraErrorResponse, StsError, explain};
pub use provider::{AdminCredential, DeviceCodePrompt, Token, TokenProvider, parse_token_response};

/// A claim of a JWT read without verifying it (for display: the `tid` of our own token).
pub fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name).and_then(|c| c.as_str()).map(str::to_string)
}
