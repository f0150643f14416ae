//! Getting access tokens for the admin identity: client credentials with a secret or a
//! certificate assertion, the device code flow for a delegated admin, or a refresh token saved by
//! `login`. Requests go through the `oauth2` crate with a small adapter over our [`HttpClient`]
//! (reqwest 0.13; oauth2 5 is built on 0.12), using the v2 endpoint (v1 returns `expires_in` as a
//! string, which oauth2 rejects). Tokens are cached in memory only, per scope, until five minutes
//! before they expire. A lifetime whose end is past the year 9999 (`expires_in`
//! 9223372036854775807 did that, and panicked: issue 14, defect 4) is refused as
//! [`StsError::Lifetime`]: no token endpoint that behaves like Entra ID sends one.

use super::assertion::{Assertion, AssertionAlg, JWT_BEARER, sign_assertion};
use super::error::{EntraErrorResponse, StsError};
use crate::cert::{Certificate, PrivateKey};
use crate::cloud::Cloud;
use crate::http::{HttpClient, HttpError};
use crate::secret::SecretString;
use chrono::{DateTime, TimeDelta, Utc};
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenResponse,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet,
    RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenResponse as _, TokenUrl,
};
use std::collections::HashMap;
use std::sync::Arc;

type EntraClient<HasDeviceAuthUrl = EndpointNotSet> = oauth2::Client<
    EntraErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    HasDeviceAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Called with (verification URI, user code) when the device code flow needs the admin.
pub type DeviceCodePrompt = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Who signs in to Microsoft Graph.
#[derive(Clone)]
pub enum AdminCredential {
    Secret {
        client_id: String,
        secret: SecretString,
    },
    Certificate {
        client_id: String,
        cert: Box<Certificate>,
        key: PrivateKey,
        alg: AssertionAlg,
    },
    DeviceCode {
        client_id: String,
        prompt: DeviceCodePrompt,
    },
    RefreshToken {
        client_id: String,
        refresh_token: SecretString,
    },
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCredential::Secret { client_id, .. } => write!(f, "Secret({client_id})"),
            AdminCredential::Certificate {
                client_id, cert, ..
            } => write!(f, "Certificate({client_id}, {})", cert.thumbprint_sha1()),
            AdminCredential::DeviceCode { client_id, .. } => write!(f, "DeviceCode({client_id})"),
            AdminCredential::RefreshToken { client_id, .. } => {
                write!(f, "RefreshToken({client_id})")
            }
        }
    }
}

impl AdminCredential {
    pub fn client_id(&self) -> &str {
        match self {
            AdminCredential::Secret { client_id, .. }
            | AdminCredential::Certificate { client_id, .. }
            | AdminCredential::DeviceCode { client_id, .. }
            | AdminCredential::RefreshToken { client_id, .. } => client_id,
        }
    }
}

/// An access token and, from the device code flow, the refresh token that came with it.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: SecretString,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: Option<SecretString>,
}

pub struct TokenProvider {
    http: HttpClient,
    cloud: Cloud,
    tenant: String,
    credential: AdminCredential,
    cache: tokio::sync::Mutex<HashMap<String, Token>>,
    /// Protocol time: assertion `iat`/`exp` and token freshness (a running clock).
    clock: crate::clock::Clock,
}

/// The oauth2 → reqwest 0.13 adapter: sends through [`HttpClient`] (TLS roots, CA, proxy,
/// retries on 429/503) and hands back an `http::Response`.
async fn send_oauth(
    http: HttpClient,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let resp = http
        .send(
            |c| {
                let mut b = c.request(parts.method.clone(), &url).body(body.clone());
                for (k, v) in &parts.headers {
                    b = b.header(k, v);
                }
                b
            },
            true,
        )
        .await?;
    let mut builder = http::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k, v);
    }
    builder
        .body(resp.body.to_vec())
        .map_err(|e| HttpError::Client(e.to_string()))
}

fn map_err<E: oauth2::ErrorResponse + 'static>(
    e: RequestTokenError<HttpError, E>,
    to_entra: impl Fn(E) -> EntraErrorResponse,
) -> StsError {
    match e {
        RequestTokenError::ServerResponse(r) => StsError::Entra {
            response: to_entra(r),
        },
        RequestTokenError::Request(h) => StsError::Http(h),
        RequestTokenError::Parse(err, body) => {
            match serde_json::from_slice::<EntraErrorResponse>(&body) {
                Ok(r) if !r.error.is_empty() => StsError::Entra { response: r },
                _ => StsError::Parse(err.to_string()),
            }
        }
        RequestTokenError::Other(s) => StsError::Other(s),
    }
}

/// The token, expiring `expires_in` seconds (3599 when absent) after `now`; checked arithmetic,
/// and an expiry outside the years 1..=9999 ([`crate::dates`]) is [`StsError::Lifetime`].
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
fn into_token(r: &BasicTokenResponse, now: DateTime<Utc>) -> Result<Token, StsError> {
    let secs = r.expires_in().map_or(3599, |d| d.as_secs());
    let expires_at = i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|d| now.checked_add_signed(d))
        .filter(|t| crate::dates::in_range(*t))
        .ok_or(StsError::Lifetime { expires_in: secs })?;
    Ok(Token {
        access_token: SecretString::new(r.access_token().secret().clone()),
        expires_at,
        refresh_token: r
            .refresh_token()
            .map(|t| SecretString::new(t.secret().clone())),
    })
}

impl Token {
    /// Whether the cache may still hand it out at `now`: more than five minutes left.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        crate::dates::sub(self.expires_at, TimeDelta::minutes(5)) > now
    }
}

/// The token in a token endpoint's 200 body, as [`TokenProvider::request`] makes it (the oauth2
/// crate reads the same `BasicTokenResponse` with serde_json): public for the `token_response`
/// fuzz target, which must reach the expiry arithmetic with any body and any `now`.
#[doc(hidden)]
#[allow(
    clippy::result_large_err,
    reason = "the error types of the async calls these serve; a failed parse is the cold path"
)]
pub fn parse_token_response(body: &[u8], now: DateTime<Utc>) -> Result<Token, StsError> {
    let r: BasicTokenResponse =
        serde_json::from_slice(body).map_err(|e| StsError::Parse(e.to_string()))?;
    into_token(&r, now)
}

impl TokenProvider {
    /// `tenant` is the tenant id or a verified domain.
    pub fn new(
        http: HttpClient,
        cloud: Cloud,
        tenant: &str,
        credential: AdminCredential,
    ) -> TokenProvider {
        TokenProvider {
            http,
            cloud,
            tenant: tenant.to_string(),
            credential,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            clock: crate::clock::Clock::System,
        }
    }

    pub fn credential(&self) -> &AdminCredential {
        &self.credential
    }

    /// Who acts, for the audit log: the admin app's client id and how it signed in.
    pub fn actor(&self) -> String {
        match &self.credential {
            AdminCredential::Secret { client_id, .. } => format!("app {client_id} (client secret)"),
            AdminCredential::Certificate {
                client_id, cert, ..
            } => format!("app {client_id} (certificate {})", cert.thumbprint_sha1()),
            AdminCredential::DeviceCode { client_id, .. }
            | AdminCredential::RefreshToken { client_id, .. } => {
                format!("delegated admin via {client_id}")
            }
        }
    }

    /// The same provider on another clock (its running time: a fixed `--as-of` clock still signs
    /// and checks tokens at the system time).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> TokenProvider {
        self.clock = clock.running();
        self
    }

    /// An access token for `scope` (`<resource>/.default`), from the cache when it has a
    /// fresh one.
    pub async fn token(&self, scope: &str) -> Result<SecretString, StsError> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(t) = cache.get(scope).filter(|t| t.is_fresh(now)) {
            return Ok(t.access_token.clone());
        }
        let t = self.request(scope, now).await?;
        let access = t.access_token.clone();
        cache.insert(scope.to_string(), t);
        Ok(access)
    }

    /// A fresh token (no cache), with its refresh token: what `login` stores.
    pub async fn request(&self, scope: &str, now: DateTime<Utc>) -> Result<Token, StsError> {
        let token_url = self.cloud.token_url(&self.tenant);
        let http = self.http.clone();
        let adapter = move |req: oauth2::HttpRequest| send_oauth(http.clone(), req);
        let token_uri = TokenUrl::new(token_url.clone())
            .map_err(|e| StsError::Other(format!("token URL {token_url}: {e}")))?;
        let client_id = ClientId::new(self.credential.client_id().to_string());
        let base: EntraClient = oauth2::Client::new(client_id)
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_uri);
        let scope = Scope::new(scope.to_string());
        let resp = match &self.credential {
            AdminCredential::Secret { secret, .. } => base
                .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                .exchange_client_credentials()
                .add_scope(scope)
                .request_async(&adapter)
                .await
                .map_err(|e| map_err(e, |r| r))?,
            AdminCredential::Certificate {
                client_id,
                cert,
                key,
                alg,
            } => {
                let claims = Assertion::new(client_id, &token_url, now, 600);
                let jwt = sign_assertion(cert, key, *alg, &claims)
                    .map_err(|e| StsError::Assertion(e.to_string()))?;
                base.exchange_client_credentials()
                    .add_scope(scope)
                    .add_extra_param("client_assertion_type", JWT_BEARER)
                    .add_extra_param("client_assertion", jwt)
                    .request_async(&adapter)
                    .await
                    .map_err(|e| map_err(e, |r| r))?
            }
            AdminCredential::RefreshToken { refresh_token, .. } => base
                .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_string()))
                .add_scope(scope)
                .request_async(&adapter)
                .await
                .map_err(|e| map_err(e, |r| r))?,
            AdminCredential::DeviceCode { prompt, .. } => {
                let url = format!(
                    "{}/{}/oauth2/v2.0/devicecode",
                    self.cloud.login_url, self.tenant
                );
                let dev_url = DeviceAuthorizationUrl::new(url.clone())
                    .map_err(|e| StsError::Other(format!("device code URL {url}: {e}")))?;
                let client: EntraClient<EndpointSet> = base.set_device_authorization_url(dev_url);
                let details: oauth2::StandardDeviceAuthorizationResponse = client
                    .exchange_device_code()
                    .add_scope(scope)
                    .add_scope(Scope::new("offline_access".to_string()))
                    .request_async(&adapter)
                    .await
                    .map_err(|e| map_err(e, |r| r))?;
                prompt(
                    details.verification_uri().as_str(),
                    details.user_code().secret(),
                );
                client
                    .exchange_device_access_token(&details)
                    .request_async(&adapter, tokio::time::sleep, None)
                    .await
                    .map_err(|e| {
                        map_err(e, |r| EntraErrorResponse {
                            error: r.error().as_ref().to_string(),
                            error_description: r.error_description().cloned(),
                            ..Default::default()
                        })
                    })?
            }
        };
        into_token(&resp, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn body(expires_in: &str) -> Vec<u8> {
        format!(r#"{{"access_token":"x","token_type":"Bearer","expires_in":{expires_in}}}"#)
            .into_bytes()
    }

    /// Issue 14, defect 4: `expires_in` past the calendar panicked (`now + TimeDelta::seconds`).
    #[test]
    fn a_lifetime_past_the_year_9999_is_refused_not_a_panic() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        for e in [
            "9223372036854775807",
            "18446744073709551615",
            "100000000000000",
        ] {
            let r = parse_token_response(&body(e), now);
            assert!(
                matches!(r, Err(StsError::Lifetime { expires_in }) if expires_in.to_string() == e),
                "{e}: {r:?}"
            );
        }
        assert!(matches!(
            parse_token_response(&body("1e14"), now),
            Err(StsError::Parse(_))
        ));
        let t = parse_token_response(&body("3599"), now).unwrap();
        assert_eq!(t.expires_at, now + TimeDelta::seconds(3599));
        assert!(t.is_fresh(now) && !t.is_fresh(now + TimeDelta::minutes(55)));
        // No expires_in: an hour, as before.
        let t = parse_token_response(br#"{"access_token":"x","token_type":"Bearer"}"#, now);
        assert_eq!(t.unwrap().expires_at, now + TimeDelta::seconds(3599));
        // A now at the end of the calendar: refused, and freshness never panics.
        let max = DateTime::<Utc>::MAX_UTC;
        assert!(parse_token_response(&body("3599"), max).is_err());
        let t = Token {
            access_token: SecretString::new("x".into()),
            expires_at: DateTime::<Utc>::MIN_UTC,
            refresh_token: None,
        };
        assert!(!t.is_fresh(max) && !t.is_fresh(DateTime::<Utc>::MIN_UTC));
    }
}
