//! The one HTTPS client: rustls with the platform's roots plus a cloud's extra CA, proxy from the
//! environment (`HTTPS_PROXY`, `NO_PROXY`), timeouts, a user agent, retries with backoff that
//! honour `Retry-After` (Graph throttling guidance: learn.microsoft.com/graph/throttling), and
//! logging that never shows bodies or query strings. Knows no Graph or STS paths.
//!
//! Retries wait on the client's [`Clock`] (the system time unless [`HttpClient::with_clock`]
//! says otherwise) and measure their budget on it, so a test on simulated time rides out
//! `Retry-After` and backoff without waiting for them in real time.
//!
//! Redirects are never followed (issue 14, defect 3). reqwest's default policy follows up to 10
//! redirects and, for 307/308, sends the body again to the new location
//! (docs.rs/reqwest/0.13/reqwest/redirect/struct.Policy.html): a token endpoint answering
//! `307 Location: http://elsewhere/` would receive `client_secret=…` in cleartext at another
//! origin, past the cloud file's "http only on loopback" rule. Entra ID, the ACS metadata
//! endpoint and Microsoft Graph answer these calls directly, and a webhook receiver (Teams
//! Workflows, Slack) takes its POST where it is sent, so every client built here has
//! `Policy::none()` and a 3xx answer is [`HttpError::Redirect`].

use crate::clock::{Clock, SimTime};
use crate::cloud::Cloud;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::PathBuf;
use std::time::Duration;

/// Bodies above this are refused (metadata and Graph answers are a few KiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// When to try a request again (issue 19: a fault met once, or a few in a row under
/// throttling, is ridden out). Up to `attempts` tries, but never past `budget` of retrying in
/// total: a server that keeps timing out costs at most about `budget` plus one timeout, not ten
/// timeouts. Waits grow exponentially from `base_delay` up to `max_backoff`, or follow
/// `Retry-After` (Graph's throttling guidance) when it is at most `max_wait`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    /// A `Retry-After` above this is not waited for; the error is returned instead.
    pub max_wait: Duration,
    /// The longest wait between two tries without `Retry-After`.
    pub max_backoff: Duration,
    /// The most time spent retrying one request, waits and failed tries together.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(400),
            max_wait: Duration::from_secs(120),
            max_backoff: Duration::from_secs(8),
            budget: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many attempts it took.
    pub attempts: u32,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot resolve the host of {url}")]
    Dns { url: String, detail: String },
    #[error("TLS handshake with {url} failed")]
    Tls { url: String, detail: String },
    #[error("the proxy refused or failed the connection to {url}")]
    Proxy { url: String, detail: String },
    #[error("cannot connect to {url}")]
    Connect { url: String, detail: String },
    #[error("{url} did not answer in time")]
    Timeout { url: String },
    #[error("the connection to {url} closed before the answer was complete")]
    Reset { url: String, detail: String },
    #[error("the answer from {url} is larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error(
        "{url} answered HTTP {status} redirecting to {location}: redirects are refused, they could carry the request and its credentials elsewhere"
    )]
    Redirect {
        url: String,
        status: u16,
        /// The `Location`, redacted.
        location: String,
    },
    #[error("cannot read CA file {path}: {detail}")]
    Ca { path: PathBuf, detail: String },
    #[error(
        "{var} is {value:?}: it must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"
    )]
    Setting { var: &'static str, value: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl HttpError {
    pub fn detail(&self) -> Option<&str> {
        match self {
            HttpError::Dns { detail, .. }
            | HttpError::Tls { detail, .. }
            | HttpError::Proxy { detail, .. }
            | HttpError::Connect { detail, .. }
            | HttpError::Reset { detail, .. }
            | HttpError::Ca { detail, .. } => Some(detail),
            _ => None,
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            HttpError::Dns { .. } => {
                "check DNS on this machine and the cloud (--cloud / --cloud-file)"
            }
            HttpError::Tls { .. } => {
                "the server's certificate is not trusted: check a TLS-inspecting proxy, or give its CA in the cloud file's ca_file"
            }
            HttpError::Proxy { .. } => {
                "check HTTPS_PROXY / NO_PROXY and that the proxy allows this host"
            }
            HttpError::Connect { .. } => {
                "check the network path and firewall to this host (outbound 443)"
            }
            HttpError::Timeout { .. } | HttpError::Reset { .. } => {
                "the service or network is flaky: try again; if it persists, check proxies and firewalls"
            }
            HttpError::TooLarge { .. } => {
                "the URL does not serve what it should; check the cloud URLs"
            }
            HttpError::Redirect { .. } => {
                "the cloud's URLs (--cloud / --cloud-file) or the webhook URL must name the service itself; if a proxy rewrites answers, fix the proxy"
            }
            HttpError::Ca { .. } => {
                "fix ca_file in the cloud file (a PEM file with one or more certificates)"
            }
            HttpError::Setting { .. } => {
                "set HYBRID_TRUST_HTTP_TIMEOUT_SECS to a number of seconds such as 60, or unset it (default 60)"
            }
            HttpError::Client(_) => "report this as a bug",
        }
    }

    /// Worth retrying for an idempotent request.
    fn transient(&self) -> bool {
        matches!(
            self,
            HttpError::Timeout { .. } | HttpError::Reset { .. } | HttpError::Connect { .. }
        )
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

fn has_source<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if s.is::<T>() {
            return true;
        }
        cur = s.source();
    }
    false
}

fn classify(e: reqwest::Error, url: &str) -> HttpError {
    let url = redact(url);
    // reqwest's message names the whole URL ("error sending request for url (…)"); ours is
    // already in the error, redacted.
    let e = e.without_url();
    let text = chain_text(&e);
    let lower = text.to_ascii_lowercase();
    if e.is_timeout() {
        return HttpError::Timeout { url };
    }
    if !e.is_connect() {
        // The request went out and the answer did not come back whole.
        return HttpError::Reset { url, detail: text };
    }
    if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        return HttpError::Dns { url, detail: text };
    }
    if has_source::<rustls::Error>(&e)
        || lower.contains("certificate")
        || lower.contains("handshake")
        || lower.contains("tls")
    {
        return HttpError::Tls { url, detail: text };
    }
    if lower.contains("proxy") {
        return HttpError::Proxy { url, detail: text };
    }
    HttpError::Connect { url, detail: text }
}

// A URL for logs and errors: the one redaction helper.
use crate::secret::redact_url as redact;

const TIMEOUT_VAR: &str = "HYBRID_TRUST_HTTP_TIMEOUT_SECS";
const DEFAULT_TIMEOUT_SECS: u64 = 60;
const MAX_TIMEOUT_SECS: u64 = 3600;

/// The request timeout: `HYBRID_TRUST_HTTP_TIMEOUT_SECS` (whole seconds, 1 to 3600), 60 when
/// unset or empty. Anything else is an error naming the variable (issue 14, defect 10: `abc`,
/// `-1` and `0` used to become 60 silently).
fn timeout_secs(value: Option<std::ffi::OsString>) -> Result<u64, HttpError> {
    let Some(raw) = value.filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_TIMEOUT_SECS);
    };
    let text = raw.to_string_lossy();
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_TIMEOUT_SECS).contains(s))
        .ok_or_else(|| HttpError::Setting {
            var: TIMEOUT_VAR,
            value: text.into_owned(),
        })
}

#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    timeout: Duration,
    /// Shared by the clients made with [`HttpClient::with_own_pool`].
    tls: rustls::ClientConfig,
    pub retry: RetryPolicy,
    /// The servers' clock, from the `Date` of the latest response (shared by every pool).
    server_clock: std::sync::Arc<std::sync::Mutex<Option<ServerDate>>>,
    /// What retries wait on and measure their budget with, and what "time since a `Date`
    /// arrived" is measured on: the system time, or a test's simulated time.
    clock: Clock,
}

/// A server's `Date` and the moment it arrived.
type ServerDate = (DateTime<Utc>, Mark);

/// A moment on the client's clock, to measure the time since: the monotonic clock for a clock
/// that follows the system time, the simulated instant on simulated time.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Real(std::time::Instant),
    Simulated(&'static SimTime, DateTime<Utc>),
}

impl Mark {
    fn on(clock: Clock) -> Mark {
        match clock {
            Clock::Simulated(s) => Mark::Simulated(s, s.now()),
            _ => Mark::Real(std::time::Instant::now()),
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Mark::Real(at) => at.elapsed(),
            Mark::Simulated(s, at) => (s.now() - *at).to_std().unwrap_or_default(),
        }
    }
}

/// The instant of an HTTP `Date` header (RFC 9110 §5.6.7: IMF-fixdate, whole seconds).
pub fn http_date(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let v = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The certificates of a PEM file of extra trusted roots (a cloud's or the emulator's CA).
fn read_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let ca_error = |detail: String| HttpError::Ca {
        path: path.to_path_buf(),
        detail,
    };
    let pem = crate::paths::read_limited(path, crate::paths::MAX_SETTINGS_FILE, "a CA file")
        .map_err(|e| ca_error(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The platform's verifier trusting `extra` roots too, made once per process for each set of
/// extra roots: making one reads the platform's root certificates (about 150, and with
/// `SSL_CERT_DIR` a file each), which was most of the time a client took to start where a
/// process makes many (the in-process tests). A process reads the platform's roots when it
/// first needs them, as before; it keeps a few sets.
fn verifier(
    extra: Vec<CertificateDer<'static>>,
    provider: &std::sync::Arc<rustls::crypto::CryptoProvider>,
) -> Result<std::sync::Arc<rustls_platform_verifier::Verifier>, HttpError> {
    type Made = Vec<(
        Vec<CertificateDer<'static>>,
        std::sync::Arc<rustls_platform_verifier::Verifier>,
    )>;
    static MADE: std::sync::Mutex<Made> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = made.iter().find(|(roots, _)| *roots == extra) {
        return Ok(v.clone());
    }
    let v = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
    }
    .map_err(|e| HttpError::Client(format!("TLS roots: {e}")))?;
    let v = std::sync::Arc::new(v);
    if made.len() >= 8 {
        made.remove(0);
    }
    made.push((extra, v.clone()));
    Ok(v)
}

/// TLS as reqwest builds it by default (the platform's roots through rustls-platform-verifier,
/// plus `extra` roots; TLS 1.2 and 1.3; ALPN h2 then http/1.1; AWS-LC), built once so that the
/// fleet's connection pools share it. Verification cannot be turned off.
fn tls_config(extra: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, HttpError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = verifier(extra, &provider)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| HttpError::Client(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl HttpClient {
    /// A client for `cloud`, trusting its extra CA if it names one.
    pub fn for_cloud(cloud: &Cloud) -> Result<HttpClient, HttpError> {
        HttpClient::new(cloud.ca_file.as_deref())
    }

    /// A client trusting the platform roots and `extra_ca` (PEM, one or more certificates). The
    /// request timeout is 60 s, or `HYBRID_TRUST_HTTP_TIMEOUT_SECS`.
    pub fn new(extra_ca: Option<&std::path::Path>) -> Result<HttpClient, HttpError> {
        let extra = match extra_ca {
            Some(path) => read_ca(path)?,
            None => Vec::new(),
        };
        let timeout = Duration::from_secs(timeout_secs(std::env::var_os(TIMEOUT_VAR))?);
        // Retrying one request lasts at most three timeouts' worth (90 s by default).
        let retry = RetryPolicy {
            budget: timeout * 3,
            ..RetryPolicy::default()
        };
        HttpClient::with_tls(tls_config(extra)?, retry, timeout)
    }

    /// The same client (trust, timeouts, retry policy) with a connection pool of its own: the
    /// fleet reader spreads its requests over several, so that no single HTTP/2 connection
    /// carries more streams than servers commonly allow. The TLS configuration (and the
    /// platform roots it loaded, ~3 ms) is shared.
    pub fn with_own_pool(&self) -> Result<HttpClient, HttpError> {
        let mut c = HttpClient::with_tls(self.tls.clone(), self.retry.clone(), self.timeout)?;
        c.server_clock = self.server_clock.clone();
        c.clock = self.clock;
        Ok(c)
    }

    /// The same client with retries waiting on `clock` (its running form: a fixed `--as-of`
    /// clock never moves, so its waits are real ones). The system time by default; on a
    /// [`Clock::Simulated`] time a `Retry-After` or a backoff moves simulated time on at once
    /// and the retry budget counts simulated time.
    pub fn with_clock(mut self, clock: Clock) -> HttpClient {
        self.clock = clock.running();
        self
    }

    /// A client with this one's trust, retry policy and clock, and another request timeout,
    /// which may be under a second (a test's timeouts, which the clock cannot simulate: they
    /// are real time); its connection pool and what it learns of the servers' clock are its
    /// own, as a new process's are. Users set the timeout with `HYBRID_TRUST_HTTP_TIMEOUT_SECS`,
    /// whole seconds from 1. The retry budget is left as it is.
    pub fn with_request_timeout(&self, timeout: Duration) -> Result<HttpClient, HttpError> {
        if timeout.is_zero() {
            return Err(HttpError::Client(
                "a request timeout must be longer than zero".into(),
            ));
        }
        let mut c = HttpClient::with_tls(self.tls.clone(), self.retry.clone(), timeout)?;
        c.clock = self.clock;
        Ok(c)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    fn with_tls(
        tls: rustls::ClientConfig,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<HttpClient, HttpError> {
        let inner = reqwest::Client::builder()
            .user_agent(concat!("hybrid-trust/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tls_backend_preconfigured(tls.clone())
            // Never follow a redirect: see the module docs.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpError::Client(e.to_string()))?;
        Ok(HttpClient {
            inner,
            timeout,
            tls,
            retry,
            server_clock: Default::default(),
            clock: Clock::System,
        })
    }

    /// The servers' time now, as the `Date` of the latest response said it plus the time since
    /// it arrived (issue 24: a Microsoft clock behind this machine's makes a key that starts at
    /// this machine's "now" start in Entra's future). `Date` has whole seconds and is truncated,
    /// so this is at most a second behind the server's clock: the safe side for a start.
    /// `None` before any response with a `Date`.
    pub fn server_now(&self) -> Option<DateTime<Utc>> {
        let (date, at) = (*self.server_clock.lock().unwrap_or_else(|e| e.into_inner()))?;
        date.checked_add_signed(chrono::TimeDelta::from_std(at.elapsed()).ok()?)
    }

    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends the request built by `build` (called again for each attempt). For an idempotent
    /// request, retries on 429/502/503/504 (waiting `Retry-After` when given) and on timeouts,
    /// resets and connection failures; a non-idempotent request is retried only on 429/503
    /// with `Retry-After`, which say the request was not processed.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        idempotent: bool,
    ) -> Result<Response, HttpError> {
        self.send_reading(build, idempotent, true).await
    }

    /// [`HttpClient::send`] for a caller that needs only the status line (a webhook): the
    /// answer's body is dropped unread (the [`Response`] has an empty one), so a body that is
    /// slow or larger than the bound cannot turn an answered request into a failure.
    pub async fn send_for_status(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        idempotent: bool,
    ) -> Result<Response, HttpError> {
        self.send_reading(build, idempotent, false).await
    }

    async fn send_reading(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        idempotent: bool,
        read_body: bool,
    ) -> Result<Response, HttpError> {
        let mut attempt = 0;
        let started = Mark::on(self.clock);
        // Whether a wait of `w` and another try still fit in the budget.
        let fits = |w: Duration| started.elapsed() + w <= self.retry.budget;
        loop {
            attempt += 1;
            let req = build(&self.inner)
                .build()
                .map_err(|e| HttpError::Client(e.to_string()))?;
            let method = req.method().clone();
            let url = req.url().to_string();
            tracing::debug!("{method} {} (attempt {attempt})", redact(&url));
            let last = attempt >= self.retry.attempts;
            let resp = match self.inner.execute(req).await {
                Ok(r) => r,
                Err(e) => {
                    let err = classify(e, &url);
                    let wait = self.backoff(attempt);
                    if idempotent && err.transient() && !last && fits(wait) {
                        tracing::info!("{method} {}: {err}; retrying", redact(&url));
                        self.clock.sleep(wait).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            if let Some(d) = http_date(&headers) {
                *self.server_clock.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((d, Mark::on(self.clock)));
            }
            if (300..400).contains(&status) {
                let location = headers
                    .get(reqwest::header::LOCATION)
                    .map(|v| redact(&String::from_utf8_lossy(v.as_bytes())))
                    .unwrap_or_else(|| "(no Location header)".to_string());
                tracing::debug!("{method} {} -> {status}, refused", redact(&url));
                return Err(HttpError::Redirect {
                    url: redact(&url),
                    status,
                    location,
                });
            }
            let retry_after = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let retryable = match status {
                429 | 503 => idempotent || retry_after.is_some(),
                502 | 504 => idempotent,
                _ => false,
            };
            if retryable && !last {
                let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                if wait <= self.retry.max_wait && fits(wait) {
                    tracing::info!(
                        "{method} {}: HTTP {status}; retrying in {} ms",
                        redact(&url),
                        wait.as_millis()
                    );
                    self.clock.sleep(wait).await;
                    continue;
                }
            }
            if !read_body {
                tracing::debug!("{method} {} -> {status} (body not read)", redact(&url));
                return Ok(Response {
                    status,
                    headers,
                    body: Bytes::new(),
                    attempts: attempt,
                });
            }
            let body = match read_limited(resp).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => return Err(HttpError::TooLarge { url: redact(&url) }),
                Err(BodyError::Transport(e)) => {
                    let err = classify(e, &url);
                    let wait = self.backoff(attempt);
                    if idempotent && err.transient() && !last && fits(wait) {
                        self.clock.sleep(wait).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            tracing::debug!(
                "{method} {} -> {status} ({} bytes)",
                redact(&url),
                body.len()
            );
            return Ok(Response {
                status,
                headers,
                body,
                attempts: attempt,
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        // Exponential with a little random jitter (a v4 UUID's random bits: no RNG dependency).
        let base = (self.retry.base_delay * 2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.retry.max_backoff);
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 100));
        base + jitter
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|l| l as usize > MAX_BODY) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A loopback server answering each request with the next of `script` (`None`: the
    /// connection is closed without an answer), one request per connection. Its URL.
    async fn scripted(script: Vec<Option<String>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for answer in script {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if let Some(a) = answer {
                    let _ = conn.write_all(a.as_bytes()).await;
                }
                let _ = conn.shutdown().await;
            }
        });
        url
    }

    fn answer(status: &str, extra: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok"
        ))
    }

    fn simulated() -> (&'static SimTime, DateTime<Utc>, HttpClient) {
        let t0 = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        let sim = SimTime::leak(t0);
        let http = HttpClient::new(None)
            .unwrap()
            .with_clock(Clock::Simulated(sim));
        (sim, t0, http)
    }

    #[tokio::test]
    async fn retry_after_and_the_budget_go_by_a_simulated_clock() {
        let (sim, t0, mut http) = simulated();
        http.retry.budget = Duration::from_secs(1000);
        let busy = || answer("503 Service Unavailable", "retry-after: 100\r\n");
        let url = scripted(vec![busy(), busy(), answer("200 OK", "")]).await;
        let r = http.send(|c| c.get(&url), false).await.unwrap();
        assert_eq!((r.status, r.attempts), (200, 3));
        // Both waits were taken on simulated time (in real time they are 200 s).
        assert_eq!(sim.now(), t0 + chrono::TimeDelta::seconds(200));

        // The budget counts simulated time: a second wait of 100 s does not fit in 150.
        let (sim, t0, mut http) = simulated();
        http.retry.budget = Duration::from_secs(150);
        let url = scripted(vec![busy(), busy(), busy()]).await;
        let r = http.send(|c| c.get(&url), true).await.unwrap();
        assert_eq!((r.status, r.attempts), (503, 2));
        assert_eq!(sim.now(), t0 + chrono::TimeDelta::seconds(100));
    }

    #[tokio::test]
    async fn a_backoff_and_the_servers_clock_go_by_a_simulated_clock() {
        let (sim, t0, http) = simulated();
        // A dropped connection, then an answer dated an hour before the simulated now.
        let url = scripted(vec![
            None,
            answer("200 OK", "date: Sun, 28 Feb 2027 23:00:00 GMT\r\n"),
        ])
        .await;
        let r = http.send(|c| c.get(&url), true).await.unwrap();
        assert_eq!((r.status, r.attempts), (200, 2));
        // One backoff: the base delay plus under 100 ms of jitter.
        let waited = sim.now() - t0;
        assert!(
            waited >= chrono::TimeDelta::milliseconds(400)
                && waited < chrono::TimeDelta::milliseconds(500),
            "{waited}"
        );
        let date = Utc.with_ymd_and_hms(2027, 2, 28, 23, 0, 0).unwrap();
        assert_eq!(http.server_now(), Some(date));
        sim.advance(Duration::from_secs(60));
        assert_eq!(
            http.server_now(),
            Some(date + chrono::TimeDelta::seconds(60))
        );
        // A client made from it with another timeout has learnt nothing yet.
        let other = http.with_request_timeout(Duration::from_secs(1)).unwrap();
        assert_eq!(other.server_now(), None);
    }

    #[tokio::test]
    async fn a_request_timeout_under_a_second_can_be_set_through_the_library() {
        let http = HttpClient::new(None).unwrap();
        assert!(http.with_request_timeout(Duration::ZERO).is_err());
        let mut short = http
            .with_request_timeout(Duration::from_millis(200))
            .unwrap();
        assert_eq!(short.request_timeout(), Duration::from_millis(200));
        short.retry.attempts = 1;
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (c, _) = listener.accept().await.unwrap();
                held.push(c);
            }
        });
        let e = short.send(|c| c.get(&url), true).await.unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    }

    #[test]
    fn the_timeout_variable_is_checked_not_replaced() {
        assert_eq!(timeout_secs(None).unwrap(), 60);
        assert_eq!(timeout_secs(Some("".into())).unwrap(), 60);
        assert_eq!(timeout_secs(Some("5".into())).unwrap(), 5);
        assert_eq!(timeout_secs(Some(" 3600 ".into())).unwrap(), 3600);
        for bad in ["abc", "-1", "0", "1.5", "3601", "99999999999999999999"] {
            let e = timeout_secs(Some(bad.into())).unwrap_err();
            assert!(
                e.to_string().contains("HYBRID_TRUST_HTTP_TIMEOUT_SECS"),
                "{e}"
            );
        }
    }
}
