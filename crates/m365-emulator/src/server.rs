//! The listener: plain HTTP or TLS (rustls) on loopback, HTTP/1.1 and HTTP/2, every request
//! passing through one middleware that counts it, logs it to stderr, applies `--latency-ms` and
//! injects faults. A `reset` fault drops the connection before any response is written.

use super::clock::Clock;
use super::entra::DeviceCode;
use super::faults::{FaultKind, FaultScript, FaultSpec};
use super::pki::Pki;
use super::state::Directory;
use super::{
    Config, ReadyAdmin, ReadyCloud, ReadyInfo, ReadyTenant, StartError, acs, control, entra, graph,
};
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha1::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;
use uuid::Uuid;

/// The base URLs of the emulated cloud.
#[derive(Debug, Clone)]
pub struct Urls {
    pub login: String,
    pub graph: String,
    pub acs: String,
    pub exchange: String,
    pub control: String,
}

pub struct SigningKey {
    pub key: RsaKeyPair,
    pub x5t: String,
    pub cert_der: Vec<u8>,
    pub public_pkcs1: Vec<u8>,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

/// State shared by every handler.
pub struct Shared {
    dir: Mutex<Directory>,
    pub clock: Clock,
    pub urls: Urls,
    pub signing: SigningKey,
    state_file: Option<PathBuf>,
    faults: FaultSpec,
    seed: u64,
    counter: AtomicU64,
    pub script: Mutex<FaultScript>,
    latency: Duration,
    timeout_fault: Duration,
    pub throttle: Mutex<HashMap<Uuid, (i64, u32)>>,
    pub device_codes: Mutex<HashMap<String, DeviceCode>>,
    pub refresh_tokens: Mutex<HashMap<String, super::entra::RefreshSession>>,
    pub request_counts: Mutex<BTreeMap<String, u64>>,
    log_requests: bool,
    /// With `--reuse-tokens`: signed app-only tokens by what they grant, with their expiry.
    pub minted: Option<Mutex<HashMap<String, (String, i64)>>>,
    /// Messages `sendMail` accepted, oldest first (`GET /_emulator/mail`).
    pub mail: Mutex<Vec<super::mail::Delivered>>,
    /// A test's `kill -9` of the client ([`super::crash`]).
    pub crash: super::crash::CrashPoint,
}

impl Shared {
    /// The directory, locked. Handlers hold it only for synchronous work, never across `.await`.
    pub fn dir(&self) -> MutexGuard<'_, Directory> {
        self.dir.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds Exchange Server hybrid's dedicated application to a tenant (see
    /// [`RunningEmulator::seed_exchange_app`]).
    pub fn seed_exchange_app(
        &self,
        tenant: &str,
        organization_guid: Uuid,
        grant_role: bool,
    ) -> Result<serde_json::Value, String> {
        let now = self.clock.now();
        let mut dir = self.dir();
        let i = dir
            .tenant_index(tenant)
            .ok_or_else(|| format!("no tenant {tenant}"))?;
        let name = format!("ExchangeServerApp-{organization_guid}");
        let t = &mut dir.tenants[i];
        let (id, app_id) = super::apps::seed_exchange_app(t, &name, grant_role, now)?;
        let sp_id = t
            .sp_by_app_id(&app_id)
            .map(|sp| sp.id.to_string())
            .unwrap_or_default();
        self.persist(&dir);
        Ok(serde_json::json!({
            "id": id.to_string(),
            "app_id": app_id,
            "display_name": name,
            "service_principal_id": sp_id,
        }))
    }

    /// Saves the directory to `--state` after a change (errors are logged, not fatal).
    pub fn persist(&self, dir: &Directory) {
        if let Some(Err(e)) = self.state_file.as_ref().map(|path| dir.save(path)) {
            tracing::error!("cannot save emulator state: {e}");
        }
    }
}

/// The client's `client-request-id`, echoed as Entra does, or a fresh correlation id.
pub fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4)
}

/// Parses an `application/x-www-form-urlencoded` body (the last value of a repeated name wins).
pub fn form_params(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A running emulator. Dropping it stops the listener.
pub struct RunningEmulator {
    pub ready: ReadyInfo,
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    _tempdir: Option<tempfile::TempDir>,
}

impl RunningEmulator {
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }
    /// The crash point of in-process `kill -9` tests ([`super::crash`]).
    pub fn crash_point(&self) -> &super::crash::CrashPoint {
        &self.shared.crash
    }
    /// The CA certificate (PEM) clients must trust when TLS is on.
    pub fn ca_pem(&self) -> String {
        self.shared.dir().pki.ca_cert_pem.clone()
    }
    /// The messages `sendMail` accepted, oldest first (what `GET /_emulator/mail` lists).
    pub fn mail(&self) -> Vec<super::Delivered> {
        self.shared
            .mail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Creates Exchange Server hybrid's dedicated application `ExchangeServerApp-<org guid>` in
    /// `tenant` (domain or id) as Microsoft's ConfigureExchangeHybridApplication.ps1 does: the
    /// application (no keys yet), its service principal, and `full_access_as_app` on Exchange
    /// Online unless `grant_role` is false. Returns `{"id","app_id","display_name",
    /// "service_principal_id"}` (what `POST /_emulator/tenants/{tenant}/exchangeApp` answers).
    pub fn seed_exchange_app(
        &self,
        tenant: &str,
        organization_guid: Uuid,
        grant_role: bool,
    ) -> Result<serde_json::Value, String> {
        self.shared
            .seed_exchange_app(tenant, organization_guid, grant_role)
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Starts the emulator and returns once it accepts connections (the ready file is written).
pub async fn start(config: Config) -> Result<RunningEmulator, StartError> {
    if !config.allow_non_loopback && !is_loopback(&config.listen) {
        return Err(StartError::NotLoopback(config.listen));
    }
    let mut domains: Vec<String> = config
        .tenants
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    for d in &domains {
        if !valid_domain(d) {
            return Err(StartError::BadDomain(d.clone()));
        }
    }
    domains
        .extend((1..=config.generated_tenants).map(|i| format!("tenant-{i:04}.onmicrosoft.com")));
    let loaded = match &config.state_file {
        Some(p) => Directory::load(p)?,
        None => None,
    };
    let mut dir = match loaded {
        Some(mut dir) => {
            dir.behaviour = config.behaviour.clone();
            for d in &domains {
                if dir.tenant_index(d).is_none() {
                    dir.add_tenant_seeded(d, &config.seed_tenants);
                }
            }
            dir
        }
        None => {
            if domains.is_empty() {
                domains.push("contoso.onmicrosoft.com".to_string());
            }
            let pki = match &config.keys {
                Some(keys) => keys.0.clone(),
                None => tokio::task::spawn_blocking(Pki::generate)
                    .await
                    .map_err(|e| StartError::Pki(e.to_string()))??,
            };
            Directory::new(
                &domains,
                config.behaviour.clone(),
                pki,
                &config.seed_tenants,
            )
        }
    };
    if dir.tenants.is_empty() {
        dir.add_tenant_seeded("contoso.onmicrosoft.com", &config.seed_tenants);
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let scheme = if config.tls { "https" } else { "http" };
    let host = match addr {
        std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let base = format!("{scheme}://{host}");
    let urls = Urls {
        login: format!("{base}/login"),
        graph: format!("{base}/graph"),
        acs: format!("{base}/acs"),
        exchange: format!("{base}/exo"),
        control: format!("{base}/_emulator"),
    };

    let signing = signing_key(&dir.pki)?;
    let tls = if config.tls {
        Some(Arc::new(dir.pki.rustls_config()?))
    } else {
        None
    };

    // Where the CA goes with --tls.
    let mut tempdir = None;
    let ca_file = if config.tls {
        let path = match (&config.ca_file, &config.ready_file) {
            (Some(p), _) => p.clone(),
            (None, Some(r)) => r.with_extension("ca.pem"),
            (None, None) => {
                let td = tempfile::tempdir().map_err(|source| StartError::Write {
                    path: PathBuf::from("(temp dir)"),
                    source,
                })?;
                let p = td.path().join("m365-emulator-ca.pem");
                tempdir = Some(td);
                p
            }
        };
        super::state::write_atomic(&path, dir.pki.ca_cert_pem.as_bytes())?;
        Some(path)
    } else {
        None
    };

    if let Some(p) = &config.state_file {
        dir.save(p)?;
    }

    let ready = ReadyInfo {
        cloud: ReadyCloud {
            name: "m365-emulator".to_string(),
            login_url: urls.login.clone(),
            graph_url: urls.graph.clone(),
            acs_url: urls.acs.clone(),
            exchange_url: urls.exchange.clone(),
            ca_file: ca_file.map(|p| p.display().to_string()),
        },
        tenants: dir
            .tenants
            .iter()
            .map(|t| ReadyTenant {
                domain: t.domains[0].clone(),
                tenant_id: t.id.to_string(),
                admin: ReadyAdmin {
                    client_id: dir.admin_app.client_id.clone(),
                    client_secret: dir.admin_app.client_secret.clone(),
                },
            })
            .collect(),
        control_url: urls.control.clone(),
        pid: std::process::id(),
    };

    let shared = Arc::new(Shared {
        dir: Mutex::new(dir),
        clock: Clock::default(),
        urls,
        signing,
        state_file: config.state_file.clone(),
        faults: config.faults.clone(),
        seed: config.seed,
        counter: AtomicU64::new(0),
        script: Mutex::new(FaultScript::default()),
        latency: Duration::from_millis(config.latency_ms),
        timeout_fault: Duration::from_secs(config.timeout_fault_secs),
        throttle: Mutex::new(HashMap::new()),
        device_codes: Mutex::new(HashMap::new()),
        refresh_tokens: Mutex::new(HashMap::new()),
        request_counts: Mutex::new(BTreeMap::new()),
        log_requests: config.log_requests,
        minted: config.reuse_tokens.then(|| Mutex::new(HashMap::new())),
        mail: Mutex::new(Vec::new()),
        crash: Default::default(),
    });

    let router = router(shared.clone());
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown_rx.changed() => break,
            };
            let Ok((stream, _peer)) = accepted else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let tls = tls.clone();
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                let kill = Arc::new(Notify::new());
                match tls {
                    Some(cfg) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                        let Ok(Ok(tls_stream)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                                .await
                        else {
                            return;
                        };
                        serve(TokioIo::new(tls_stream), router, kill, &mut stop).await;
                    }
                    None => serve(TokioIo::new(stream), router, kill, &mut stop).await,
                }
            });
        }
    });

    if let Some(path) = &config.ready_file {
        let bytes =
            serde_json::to_vec_pretty(&ready).map_err(|e| StartError::Pki(e.to_string()))?;
        super::state::write_atomic(path, &bytes)?;
    }

    Ok(RunningEmulator {
        ready,
        addr,
        shared,
        shutdown,
        _tempdir: tempdir,
    })
}

/// Marks a connection to be dropped (the `reset` fault).
#[derive(Clone)]
struct ConnKill(Arc<Notify>);

async fn serve<I>(io: I, router: Router, kill: Arc<Notify>, stop: &mut watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let k = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnKill(k.clone()));
        let fut = router.clone().oneshot(req.map(Body::new));
        // A bug in a handler answers 500 instead of tearing down the connection.
        async move {
            use futures_util::FutureExt as _;
            match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(_) => Ok((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "m365-emulator: internal error\n",
                )
                    .into_response()),
            }
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = stop.changed() => {}
    }
}

fn signing_key(pki: &Pki) -> Result<SigningKey, StartError> {
    let pkcs8 = STANDARD
        .decode(&pki.signing_key_pkcs8)
        .map_err(|e| StartError::Pki(e.to_string()))?;
    let key = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| StartError::Pki(e.to_string()))?;
    let cert_der = pki.signing_cert_der();
    let x5t = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der));
    let public_pkcs1 = key.public_key().as_ref().to_vec();
    let (n, e) = rsa_components(&public_pkcs1)
        .ok_or_else(|| StartError::Pki("signing key is not RSA".into()))?;
    Ok(SigningKey {
        key,
        x5t,
        cert_der,
        public_pkcs1,
        n,
        e,
    })
}

/// Splits a PKCS#1 `RSAPublicKey` DER into modulus and exponent (leading zero bytes stripped, as
/// a JWK `n` must not carry them).
fn rsa_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&len0, mut rest) = rest.split_first()?;
        let len = if len0 < 0x80 {
            usize::from(len0)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut l = 0usize;
            for &b in &rest[..n] {
                l = (l << 8) | usize::from(b);
            }
            rest = &rest[n..];
            l
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (tag, seq, _) = read_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, n, rest) = read_tlv(seq)?;
    let (t2, e, _) = read_tlv(rest)?;
    if t1 != 2 || t2 != 2 {
        return None;
    }
    let strip = |v: &[u8]| {
        let i = v
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(v.len().saturating_sub(1));
        v[i..].to_vec()
    };
    Some((strip(n), strip(e)))
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/login/{tenant}/v2.0/.well-known/openid-configuration",
            get(entra::openid_configuration),
        )
        .route("/login/{tenant}/discovery/v2.0/keys", get(entra::jwks))
        .route("/login/{tenant}/discovery/keys", get(entra::jwks))
        .route("/login/{tenant}/oauth2/v2.0/token", post(entra::token_v2))
        .route("/login/{tenant}/oauth2/token", post(entra::token_v1))
        .route(
            "/login/{tenant}/oauth2/v2.0/devicecode",
            post(entra::devicecode),
        )
        .route("/login/{tenant}/oauth2/devicecode", post(entra::devicecode))
        .route("/login/devicelogin", get(entra::devicelogin))
        .route("/acs/{tenant}/metadata/json/1", get(acs::metadata))
        .route("/graph/{version}/{*rest}", any(graph::dispatch))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), front))
        .with_state(shared)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "m365-emulator: no such endpoint\n").into_response()
}

/// Classifies a path for the request counters ("GET graph servicePrincipals").
fn route_class(method: &str, path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    let service = parts.next().unwrap_or("");
    let what = match service {
        "login" => {
            if path.ends_with("/token") {
                "token"
            } else if path.ends_with("/keys") {
                "jwks"
            } else if path.contains("openid-configuration") {
                "discovery"
            } else if path.contains("devicecode") {
                "devicecode"
            } else {
                "other"
            }
        }
        "graph" => {
            if path.ends_with("/addKey") {
                "addKey"
            } else if path.ends_with("/removeKey") {
                "removeKey"
            } else {
                "servicePrincipals"
            }
        }
        "acs" => "metadata",
        _ => "other",
    };
    format!("{method} {service} {what}")
}

async fn front(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let control = path.starts_with("/_emulator");
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    if !control {
        *s.request_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route_class(&method, &path))
            .or_default() += 1;
    }
    let fault = if control {
        None
    } else {
        let scripted = s
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(&method, &path);
        scripted.or_else(|| s.faults.pick(s.seed, n, method.as_str()))
    };
    if !s.latency.is_zero() && !control {
        tokio::time::sleep(s.latency).await;
    }
    if let Some(apply) = (!control).then(|| s.crash.hit()).flatten() {
        match s.crash.crash(apply.then(|| next.run(req))).await {}
    }
    let mut resp = match fault {
        None => next.run(req).await,
        Some(kind) => {
            let kill = req.extensions().get::<ConnKill>().cloned();
            inject(&s, kind, kill).await
        }
    };
    // The `Date` of the emulated cloud's own clock (RFC 9110 §6.6.1, IMF-fixdate), as the real
    // services send theirs: a test that sets the emulator's clock behind sees it, as a client
    // facing a Microsoft clock that lags its own does (hyper's own `Date` is the system time).
    if let Ok(v) = axum::http::HeaderValue::from_str(
        &s.clock
            .now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    ) {
        resp.headers_mut().insert(axum::http::header::DATE, v);
    }
    if s.log_requests {
        tracing::info!(
            target: "m365_emulator",
            "{method} {path} -> {}{} ({} ms)",
            resp.status().as_u16(),
            fault.map(|f| format!(" [fault {f}]")).unwrap_or_default(),
            started.elapsed().as_millis()
        );
    }
    resp
}

async fn inject(s: &Shared, kind: FaultKind, kill: Option<ConnKill>) -> Response {
    let graph_error = |status: StatusCode, code: &str, msg: &str| {
        let body = serde_json::json!({"error": {"code": code, "message": msg}});
        let mut r = (status, axum::Json(body)).into_response();
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(1u64));
        r
    };
    match kind {
        FaultKind::TooManyRequests => graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests (injected).",
        ),
        FaultKind::Unavailable => graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service unavailable (injected).",
        ),
        FaultKind::LostWrite => StatusCode::NO_CONTENT.into_response(),
        FaultKind::Malformed => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"value\":[{\"id\":\"",
        )
            .into_response(),
        FaultKind::Reset => {
            if let Some(k) = kill {
                k.0.notify_one();
            }
            // The connection task drops the connection; this future is dropped with it.
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::BAD_GATEWAY.into_response()
        }
        FaultKind::Timeout => {
            tokio::time::sleep(s.timeout_fault).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_components_strip_leading_zero() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap();
        let (n, e) = rsa_components(key.public_key().as_ref()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
        assert_eq!(e, vec![1, 0, 1]);
    }

    #[test]
    fn domain_validation() {
        assert!(valid_domain("contoso.onmicrosoft.com"));
        for bad in ["", "contoso", "-a.com", "a..com", "a b.com", "a/b.com"] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn route_classes() {
        assert_eq!(
            route_class("POST", "/login/x/oauth2/v2.0/token"),
            "POST login token"
        );
        assert_eq!(
            route_class("PATCH", "/graph/v1.0/servicePrincipals/1"),
            "PATCH graph servicePrincipals"
        );
    }
}
