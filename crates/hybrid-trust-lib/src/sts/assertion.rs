//! Client assertions (RFC 7523 §2.2; Entra: learn.microsoft.com/entra/identity-platform/
//! certificate-credentials): a JWS (RFC 7515) with `x5t` (SHA-1) or `x5t#S256` (SHA-256) in the
//! header and `aud` = the token URL, `iss` = `sub` = client id, `jti`, `nbf`, `iat`, `exp` in the
//! claims. Header and claims are serde structs; nothing is assembled with `format!`.
//!
//! RS256 with `x5t` is the default: the on-prem server's CAPI/CSP keys may not do PSS, and the
//! older Entra text and Microsoft's CSS scripts use it (docs/protocol.md §2.2). PS256 with `x5t#S256`
//! is what the current Entra page shows.

use crate::cert::KeyType;
use crate::cert::{Certificate, PrivateKey};
use aws_lc_rs::signature::{self, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AssertionAlg {
    /// RS256 (PKCS#1 v1.5) with `x5t` (SHA-1 thumbprint).
    #[default]
    Rs256,
    /// PS256 (RSA-PSS) with `x5t#S256` (SHA-256 thumbprint).
    Ps256,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5t: Option<&'a str>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
}

/// The claims of a client assertion.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Assertion {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

impl Assertion {
    /// Claims for `client_id` at `token_url`, valid from `now` for `lifetime_secs` (at most 600).
    pub fn new(
        client_id: &str,
        token_url: &str,
        now: DateTime<Utc>,
        lifetime_secs: i64,
    ) -> Assertion {
        let t = now.timestamp();
        Assertion {
            aud: token_url.to_string(),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: t,
            iat: t,
            exp: t + lifetime_secs.clamp(60, 600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the certificate's key is {0}, but client assertions need an RSA key")]
    NotRsa(String),
    #[error("the private key cannot sign: {0}")]
    BadKey(String),
}

/// The RSA key pair from PKCS#8 or PKCS#1 DER.
fn rsa_key(key: &PrivateKey) -> Result<RsaKeyPair, SignError> {
    use crate::cert::KeyFormat as F;
    let r = match key.format() {
        F::Pkcs8 => RsaKeyPair::from_pkcs8(key.der()),
        F::Pkcs1 => RsaKeyPair::from_der(key.der()),
        F::Sec1 => return Err(SignError::NotRsa("EC".into())),
    };
    r.map_err(|e| SignError::BadKey(e.to_string()))
}

/// Signs a JWS with the certificate's key; the header carries the thumbprint `alg` calls for.
pub fn sign_jwt<T: Serialize>(
    cert: &Certificate,
    key: &PrivateKey,
    alg: AssertionAlg,
    claims: &T,
) -> Result<String, SignError> {
    if cert.key_type != KeyType::Rsa {
        return Err(SignError::NotRsa(cert.key_type.name().to_string()));
    }
    let kp = rsa_key(key)?;
    let (x5t, x5t_s256) = (cert.x5t(), cert.x5t_s256());
    let header = match alg {
        AssertionAlg::Rs256 => Header {
            alg: "RS256",
            typ: "JWT",
            x5t: Some(&x5t),
            x5t_s256: None,
        },
        AssertionAlg::Ps256 => Header {
            alg: "PS256",
            typ: "JWT",
            x5t: None,
            x5t_s256: Some(&x5t_s256),
        },
    };
    let enc: &'static dyn signature::RsaEncoding = match alg {
        AssertionAlg::Rs256 => &signature::RSA_PKCS1_SHA256,
        AssertionAlg::Ps256 => &signature::RSA_PSS_SHA256,
    };
    let h = serde_json::to_vec(&header).map_err(|e| SignError::BadKey(e.to_string()))?;
    let c = serde_json::to_vec(claims).map_err(|e| SignError::BadKey(e.to_string()))?;
    let mut input = URL_SAFE_NO_PAD.encode(h);
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(c));
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        enc,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|e| SignError::BadKey(e.to_string()))?;
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(input)
}

/// A signed client assertion.
pub fn sign_assertion(
    cert: &Certificate,
    key: &PrivateKey,
    alg: AssertionAlg,
    claims: &Assertion,
) -> Result<String, SignError> {
    sign_jwt(cert, key, alg, claims)
}
