//! Proving the trust end to end: a client-credentials token request as
//! `00000004-0000-0ff1-ce00-000000000000`, authenticated with an assertion signed by the on-prem
//! OAuthTokenIssuer key, for the cloud's Exchange Online resource (docs/protocol.md §2.5: "token
//! issued" vs AADSTS700027/700016 is the signal). The issued token's signature is checked against
//! the tenant's JWKS. Offline checks first: the private key matches the certificate, the local
//! clock agrees with the server's `Date`. What `verify` reports is [`report`]'s.

pub mod report;

use crate::cert::Loaded;
use crate::cloud::Cloud;
use crate::http::{HttpClient, HttpError};
use crate::sts::{self, Assertion, AssertionAlg, EntraErrorResponse, JWT_BEARER};
use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// The client the Front Ends (and `verify`) ask for tokens as.
pub const SFB_CLIENT_ID: &str = crate::microsoft::SFB_APP_ID;

/// The claims of the issued token worth showing (in alphabetical order, as `verify` has always
/// written them).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenFacts {
    pub appid: Option<String>,
    pub appidacr: Option<String>,
    pub aud: Option<String>,
    pub exp: Option<String>,
    pub iss: Option<String>,
    pub roles: Vec<String>,
    pub tid: Option<String>,
}

#[derive(Debug)]
pub struct Verified {
    pub token: TokenFacts,
    pub signature_verified: bool,
    pub clock_skew_secs: Option<i64>,
    pub server_time: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the certificate file has no private key")]
    NoPrivateKey,
    #[error("the private key in the file does not belong to the certificate")]
    KeyMismatch,
    #[error("cannot sign the assertion: {0}")]
    Sign(String),
    #[error("the token request failed")]
    Http(#[source] HttpError),
    #[error("Entra ID refused the token: {}", .response.summary())]
    Refused {
        response: Box<EntraErrorResponse>,
        server_time: Option<DateTime<Utc>>,
    },
    #[error("the token endpoint's answer could not be read: {0}")]
    Malformed(String),
    #[error("the issued token does not verify against the tenant's signing keys: {0}")]
    BadToken(String),
}

impl VerifyError {
    pub fn cause_and_fix(&self) -> (String, String) {
        match self {
            VerifyError::NoPrivateKey => (
                "verify signs as the on-prem server, which needs the private key".into(),
                "give the PFX exported with its private key".into(),
            ),
            VerifyError::KeyMismatch => (
                "the private key belongs to another certificate".into(),
                "export the OAuthTokenIssuer certificate together with its own key".into(),
            ),
            VerifyError::Sign(_) => (
                "the key cannot sign RS256/PS256".into(),
                "use an RSA OAuthTokenIssuer certificate (2048 bits or more)".into(),
            ),
            VerifyError::Http(e) => (e.to_string(), e.hint().into()),
            VerifyError::Refused { response, .. } => {
                let (c, f) = sts::explain(response);
                (c.into(), f.into())
            }
            VerifyError::Malformed(_) => (
                "something other than Entra ID answered".into(),
                "check proxies (HTTPS_PROXY) and the cloud".into(),
            ),
            VerifyError::BadToken(_) => (
                "the token is not signed by the tenant's keys".into(),
                "something between you and Entra ID is answering; check the cloud and proxies"
                    .into(),
            ),
        }
    }
}

/// The signed assertion `verify` sends (also what `--print-assertion` shows).
pub fn assertion(
    loaded: &Loaded,
    token_url: &str,
    alg: AssertionAlg,
    now: DateTime<Utc>,
) -> Result<String, VerifyError> {
    let key = loaded.key.as_ref().ok_or(VerifyError::NoPrivateKey)?;
    if loaded.key_matches() == Some(false) {
        return Err(VerifyError::KeyMismatch);
    }
    let claims = Assertion::new(SFB_CLIENT_ID, token_url, now, 600);
    sts::sign_assertion(&loaded.leaf, key, alg, &claims)
        .map_err(|e| VerifyError::Sign(e.to_string()))
}

fn claim(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn decode_part(p: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?).ok()
}

/// Checks an RS256 access token's signature against a JWKS.
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a JWT".into());
    };
    let header = decode_part(h).ok_or("bad header")?;
    let claims = decode_part(c).ok_or("bad claims")?;
    if header["alg"] != "RS256" {
        return Err(format!("unexpected alg {}", header["alg"]));
    }
    let kid = header["kid"]
        .as_str()
        .or(header["x5t"].as_str())
        .ok_or("no kid")?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| format!("kid {kid} is not in the tenant's JWKS"))?;
    let n = URL_SAFE_NO_PAD
        .decode(key["n"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let e = URL_SAFE_NO_PAD
        .decode(key["e"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{h}.{c}").as_bytes(),
            &sig,
        )
        .map_err(|_| "the signature does not verify".to_string())?;
    Ok(claims)
}

/// Requests a token as 00000004 with `assertion` and verifies what comes back.
pub async fn verify(
    http: &HttpClient,
    cloud: &Cloud,
    tenant: &str,
    assertion: &str,
    now: DateTime<Utc>,
) -> Result<Verified, VerifyError> {
    let token_url = cloud.token_url(tenant);
    let scope = cloud.exchange_scope();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SFB_CLIENT_ID),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", scope.as_str()),
    ];
    // The tenant's signing keys are fetched while the token is asked for (they do not depend on
    // it; Entra serves them by tenant id or domain).
    let jwks_url = format!("{}/{tenant}/discovery/v2.0/keys", cloud.login_url);
    let (resp, jwks_resp) = tokio::join!(
        http.send(|c| c.post(&token_url).form(&form), true),
        http.send(|c| c.get(&jwks_url), true)
    );
    let resp = resp.map_err(VerifyError::Http)?;
    let server_time = crate::http::http_date(&resp.headers);
    let body: Value =
        serde_json::from_slice(&resp.body).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if !resp.is_success() {
        let response: EntraErrorResponse =
            serde_json::from_value(body).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        return Err(VerifyError::Refused {
            response: Box::new(response),
            server_time,
        });
    }
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| VerifyError::Malformed("no access_token".into()))?;
    let unverified = token
        .split('.')
        .nth(1)
        .and_then(decode_part)
        .ok_or_else(|| VerifyError::BadToken("not a JWT".into()))?;
    claim(&unverified, "tid").ok_or_else(|| VerifyError::BadToken("no tid claim".into()))?;
    let jwks_resp = jwks_resp.map_err(VerifyError::Http)?;
    if !jwks_resp.is_success() {
        return Err(VerifyError::Malformed(format!(
            "the signing keys ({}) answered HTTP {}",
            crate::secret::redact_url(&jwks_url),
            jwks_resp.status
        )));
    }
    let jwks: Value = serde_json::from_slice(&jwks_resp.body)
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let claims = verify_with_jwks(token, &jwks).map_err(VerifyError::BadToken)?;
    let exp = claims["exp"]
        .as_i64()
        .and_then(|e| DateTime::<Utc>::from_timestamp(e, 0))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(Verified {
        token: TokenFacts {
            appid: claim(&claims, "appid"),
            tid: claim(&claims, "tid"),
            iss: claim(&claims, "iss"),
            aud: claim(&claims, "aud"),
            exp,
            appidacr: claim(&claims, "appidacr"),
            roles: claims["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        },
        signature_verified: true,
        clock_skew_secs: server_time.map(|s| (now - s).num_seconds()),
        server_time,
    })
}

/// Whether Entra's refusal says it does not see the key (yet): AADSTS700027 "The key was not
/// found." or "The key used is expired." (docs/protocol.md §2.3), not a failed signature.
pub fn not_seen_yet(r: &EntraErrorResponse) -> bool {
    let d = r
        .error_description
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    r.error_codes.contains(&700027)
        && (d.contains("key was not found") || d.contains("key used is expired"))
}

/// The waits before each new attempt when Entra ID refuses a just-uploaded key (AADSTS700027).
pub const NEW_KEY_RETRY_SECS: [u64; 3] = [2, 4, 8];

/// Proves a key that was just uploaded (it started at `key_start`): waits for its start when it
/// is at most two minutes ahead, then asks for a token as 00000004. Entra may not see a new key at
/// once (its clock may lag ours, and directory changes take a moment to reach the token
/// service), so AADSTS700027 for a key under two minutes old is retried after
/// [`NEW_KEY_RETRY_SECS`]; `on_retry` hears of each wait. A refusal of any other kind, or of an
/// older key, is final at once.
pub async fn verify_new_key(
    http: &HttpClient,
    cloud: &Cloud,
    tenant: &str,
    loaded: &Loaded,
    key_start: Option<DateTime<Utc>>,
    clock: crate::clock::Clock,
    on_retry: &mut dyn FnMut(u64),
) -> Result<Verified, VerifyError> {
    let clock = clock.running();
    if let Some(s) = key_start
        && let Ok(wait) = (s - clock.now()).to_std()
        && wait < std::time::Duration::from_secs(120)
    {
        clock
            .sleep(wait + std::time::Duration::from_millis(20))
            .await;
    }
    let token_url = cloud.token_url(tenant);
    let mut retries = NEW_KEY_RETRY_SECS.iter();
    loop {
        let a = assertion(loaded, &token_url, AssertionAlg::Rs256, clock.now())?;
        let result = verify(http, cloud, tenant, &a, clock.now()).await;
        let fresh_key = key_start.is_some_and(|s| clock.now() - s < chrono::TimeDelta::minutes(2));
        match (&result, retries.next()) {
            (Err(VerifyError::Refused { response, .. }), Some(secs))
                if fresh_key && not_seen_yet(response) =>
            {
                on_retry(*secs);
                clock.sleep(std::time::Duration::from_secs(*secs)).await;
            }
            _ => return result,
        }
    }
}

/// After a token was issued with `thumb`: what to tell the admin when it is a pending roll's new
/// certificate. A token from a PFX on the admin's machine proves that Entra accepts the new key,
/// not that the Front Ends sign with it (issue 24: taking it as proof let the next `renew` retire
/// the key the Front Ends still used), so `verify` never confirms a roll: it says how to.
/// Read-only: the ledger is not changed.
pub fn roll_note(
    store: &crate::ledger::LedgerStore,
    tenant: &str,
    thumb: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let rec = store.tenant(tenant, None).ok().flatten()?;
    let next = rec.next_cert.as_ref()?;
    if !next.thumbprint_sha1.eq_ignore_ascii_case(thumb) {
        return None;
    }
    let domain = &rec.domain;
    let when = match rec.roll_effective {
        Some(e) if e > now => format!(
            "its EffectiveDate is {}; after it, ",
            e.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => String::new(),
    };
    Some(format!(
        "Entra accepts the pending roll's certificate {thumb}; this does not show that the Front Ends sign with it: {when}once the roll script has run, confirm with hybrid-trust renew --tenant {domain} --confirm-roll --current DIR (saved Get-CsCertificate output)"
    ))
}
