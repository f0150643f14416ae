//! Test support: an in-process emulator over TLS, a client that trusts its CA, test certificates
//! with chosen validity, and client assertions signed here with aws-lc-rs directly (independent
//! of both the emulator's and the tool's JWT code).
#![allow(dead_code)]

use aws_lc_rs::signature::{self, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use m365_emulator::{Config, ReadyCloud, ReadyTenant, RunningEmulator};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use sha1::Digest as _;

pub const SFB: &str = "00000004-0000-0ff1-ce00-000000000000";

pub struct Emu {
    pub running: RunningEmulator,
    pub client: reqwest::Client,
    pub tenant: ReadyTenant,
    pub cloud: ReadyCloud,
}

pub fn quiet_tls() -> Config {
    Config {
        tls: true,
        log_requests: false,
        keys: Some(emulator_keys()),
        ..Config::default()
    }
}

/// The emulators of a test binary share one set of keys: a CA and server key made once, and a
/// token-signing key from the pool ([`pooled_key`]), instead of an RSA-2048 key per start.
pub fn emulator_keys() -> m365_emulator::Keys {
    static KEYS: std::sync::OnceLock<m365_emulator::Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        m365_emulator::Keys::with_signing_key(&pooled_key().serialize_pem())
            .expect("the emulator takes a pooled RSA key")
    })
    .clone()
}

impl Emu {
    pub async fn start() -> Emu {
        Self::start_with(quiet_tls()).await
    }

    pub async fn start_with(cfg: Config) -> Emu {
        let running = m365_emulator::start(cfg).await.expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(running.ca_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_merge([ca])
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        let tenant = running.ready.tenants[0].clone();
        let cloud = running.ready.cloud.clone();
        Emu {
            running,
            client,
            tenant,
            cloud,
        }
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.cloud.login_url)
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self.client.post(url).form(form).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_token_for(&self, tenant: &ReadyTenant) -> String {
        let scope = format!("{}/.default", self.cloud.graph_url);
        let (status, body) = self
            .post_form(
                &self.token_url(&tenant.tenant_id),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &tenant.admin.client_id),
                    ("client_secret", &tenant.admin.client_secret),
                    ("scope", &scope),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.admin_token_for(&self.tenant.clone()).await
    }

    pub async fn graph_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/v1.0/{path}", self.cloud.graph_url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    pub async fn graph(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let t = self.admin_token().await;
        self.graph_as(&t, method, path, body).await
    }

    /// The service principal with `key` (single-object GET selecting keyCredentials).
    pub async fn sp(&self, app_id: &str) -> Value {
        let (s, _, v) = self
            .graph(Method::GET, &format!("servicePrincipals(appId='{app_id}')?$select=id,appId,keyCredentials,servicePrincipalNames"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn patch_keys(&self, app_id: &str, keys: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .graph(
                Method::PATCH,
                &format!("servicePrincipals(appId='{app_id}')"),
                Some(json!({"keyCredentials": keys})),
            )
            .await;
        (s, v)
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> StatusCode {
        self.client
            .request(method, format!("{}/{path}", self.running.ready.control_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn control_get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}/{path}", self.running.ready.control_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub struct TestCert {
    pub der: Vec<u8>,
    pub pkcs8: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl TestCert {
    pub fn b64(&self) -> String {
        STANDARD.encode(&self.der)
    }
    pub fn sha1_hex(&self) -> String {
        sha1::Sha1::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&self.der))
    }
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&self.der))
    }
}

fn to_time(d: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(d.timestamp()).unwrap()
}

/// An RSA-2048 certificate valid from `not_before` to `not_after` (whole seconds).
pub fn make_cert(cn: &str, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> TestCert {
    make_cert_with_key(cn, not_before, not_after, pooled_key())
}

/// A distinct RSA-2048 key for each call in a test binary: the next of the pre-made keys in
/// `fixtures/keys/rsa-2048-pool.pem` (made with OpenSSL for tests only, see fixtures/README.md),
/// then fresh ones once the pool is used up. Generating a key was a tenth of the simulations'
/// time; no two certificates of one binary share a key, so a signature by the wrong key still
/// fails as it should.
pub fn pooled_key() -> rcgen::KeyPair {
    static POOL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pool = POOL.get_or_init(|| {
        let pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/keys/rsa-2048-pool.pem"),
        )
        .unwrap_or_default();
        pem.split_inclusive("-----END PRIVATE KEY-----\n")
            .filter(|k| k.contains("BEGIN PRIVATE KEY"))
            .map(str::to_string)
            .collect()
    });
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match pool.get(i) {
        Some(pem) => rcgen::KeyPair::from_pem(pem).unwrap(),
        None => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
    }
}

pub fn make_cert_with_key(
    cn: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    kp: rcgen::KeyPair,
) -> TestCert {
    make_cert_signed_by(cn, not_before, not_after, &kp)
}

/// As [`make_cert_with_key`], with a key the caller keeps (parsing an RSA key checks it, which
/// costs more than the certificate).
pub fn make_cert_signed_by(
    cn: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    kp: &rcgen::KeyPair,
) -> TestCert {
    let mut p = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.not_before = to_time(not_before);
    p.not_after = to_time(not_after);
    let cert = p.self_signed(kp).unwrap();
    TestCert {
        der: cert.der().to_vec(),
        pkcs8: kp.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: kp.serialize_pem(),
        not_before: DateTime::from_timestamp(not_before.timestamp(), 0).unwrap(),
        not_after: DateTime::from_timestamp(not_after.timestamp(), 0).unwrap(),
    }
}

/// A certificate valid from a day ago for two years.
pub fn fresh_cert(cn: &str) -> TestCert {
    let now = Utc::now();
    make_cert(cn, now - TimeDelta::days(1), now + TimeDelta::days(730))
}

pub enum Thumb {
    X5t,
    X5tS256,
    None,
}

/// The key pair of `pkcs8`, parsed once per test binary: parsing checks the key and each new key
/// object computes its blinding anew, which was most of the simulations' time (each signs tens of
/// thousands of assertions with a handful of keys).
fn key_pair(pkcs8: &[u8]) -> std::sync::Arc<RsaKeyPair> {
    type Cache = std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::sync::Arc<RsaKeyPair>>>;
    static KEYS: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    keys.entry(pkcs8.to_vec())
        .or_insert_with(|| std::sync::Arc::new(RsaKeyPair::from_pkcs8(pkcs8).unwrap()))
        .clone()
}

/// Signs a JWT here with aws-lc-rs (RS256 or PS256).
pub fn sign_jwt(pkcs8: &[u8], alg: &str, header_extra: Value, claims: &Value) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let (Value::Object(h), Value::Object(extra)) = (&mut header, header_extra) {
        h.extend(extra);
    }
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{c}");
    let key = key_pair(pkcs8);
    let enc: &'static dyn signature::RsaEncoding = match alg {
        "PS256" => &signature::RSA_PSS_SHA256,
        _ => &signature::RSA_PKCS1_SHA256,
    };
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        enc,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub fn assertion_claims(client_id: &str, aud: &str, now: DateTime<Utc>) -> Value {
    let t = now.timestamp();
    json!({"aud": aud, "iss": client_id, "sub": client_id, "jti": uuid::Uuid::new_v4().to_string(), "nbf": t, "iat": t, "exp": t + 600})
}

pub fn assertion(
    cert: &TestCert,
    signing_pkcs8: &[u8],
    alg: &str,
    thumb: Thumb,
    claims: &Value,
) -> String {
    let header = match thumb {
        Thumb::X5t => json!({"x5t": cert.x5t()}),
        Thumb::X5tS256 => json!({"x5t#S256": cert.x5t_s256()}),
        Thumb::None => json!({}),
    };
    sign_jwt(signing_pkcs8, alg, header, claims)
}

/// A keyCredential body for PATCH.
pub fn key_body(cert: &TestCert) -> Value {
    json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": cert.b64(), "displayName": "test"})
}

pub fn decode_claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The `hybrid-trust` binary pointed at an emulator: a cloud file, a state dir, and the admin
/// app's identity in the environment (the secret in a variable named by --client-secret-env).
pub struct Tool {
    pub dir: tempfile::TempDir,
    pub cloud_file: std::path::PathBuf,
    pub state_dir: std::path::PathBuf,
    pub client_id: String,
    pub secret: String,
}

impl Tool {
    pub fn for_emulator(emu: &Emu) -> Tool {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.running.ca_pem()).unwrap();
        let cloud = json!({"name": "emulator", "login_url": emu.cloud.login_url, "graph_url": emu.cloud.graph_url, "acs_url": emu.cloud.acs_url, "exchange_url": emu.cloud.exchange_url, "ca_file": ca});
        let cloud_file = dir.path().join("cloud.json");
        std::fs::write(&cloud_file, cloud.to_string()).unwrap();
        let state_dir = dir.path().join("state");
        Tool {
            cloud_file,
            state_dir,
            client_id: emu.tenant.admin.client_id.clone(),
            secret: emu.tenant.admin.client_secret.clone(),
            dir,
        }
    }

    pub fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
        c.env("HYBRID_TRUST_CLOUD_FILE", &self.cloud_file)
            .env("HYBRID_TRUST_STATE_DIR", &self.state_dir)
            .env("HYBRID_TRUST_CLIENT_ID", &self.client_id)
            .env("HT_TEST_SECRET", &self.secret)
            .env("HYBRID_TRUST_KEYRING", "none-in-tests")
            .env_remove("HYBRID_TRUST_OUTPUT")
            .env_remove("HYBRID_TRUST_CLIENT_SECRET")
            .env_remove("HYBRID_TRUST_AS_OF")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs with the admin secret (`--client-secret-env HT_TEST_SECRET`) and JSON output.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.command();
        c.args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
            .args(args);
        c.output().unwrap()
    }

    pub async fn run_async(&self, args: &[&str]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let cmd = self.command();
        tokio::task::spawn_blocking(move || {
            let mut c = cmd;
            c.args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
                .args(&args);
            c.output().unwrap()
        })
        .await
        .unwrap()
    }

    pub fn write_cert(&self, name: &str, cert: &TestCert) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, &cert.cert_pem).unwrap();
        p.display().to_string()
    }
}

/// The whole ledger of a state dir as JSON (`{"format", "tenants": [...]}`), read through the
/// library (the records are one file per tenant).
pub fn read_ledger(state: &std::path::Path) -> Value {
    serde_json::to_value(
        hybrid_trust::ledger::LedgerStore::in_dir(state)
            .load()
            .unwrap(),
    )
    .unwrap()
}

/// Replaces the ledger of a state dir by `v` (as [`read_ledger`] gives it), through the library.
pub fn write_ledger(state: &std::path::Path, v: &Value) {
    let store = hybrid_trust::ledger::LedgerStore::in_dir(state);
    let mut g = store.lock(std::time::Duration::from_secs(60)).unwrap();
    g.ledger = serde_json::from_value(v.clone()).unwrap();
    g.commit().unwrap();
}

/// Moves a pending roll's EffectiveDate in the ledger of `state` to `at` (as time passing would:
/// the binary runs on the system clock), and writes the saved `Get-CsCertificate.txt` a Front
/// End prints after the roll script ran (the new certificate current, the date in UTC with its
/// offset, as the roll script prints it) into `dir`.
pub fn roll_took_effect(
    state: &std::path::Path,
    dir: &std::path::Path,
    thumbprint: &str,
    at: DateTime<Utc>,
) {
    let mut l = read_ledger(state);
    for t in l["tenants"].as_array_mut().unwrap() {
        if !t["next_cert"].is_null() {
            t["roll_effective"] = json!(at.to_rfc3339());
        }
    }
    write_ledger(state, &l);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("Get-CsCertificate.txt"),
        format!(
            "Thumbprint    : {thumbprint}\r\nEffectiveDate : {}\r\nUse           : OAuthTokenIssuer\r\n",
            at.format("%Y-%m-%dT%H:%M:%S%.6f0Z")
        ),
    )
    .unwrap();
}

/// The file holding one tenant's record (`{"format": 2, "tenant": {...}}`).
pub fn tenant_file(state: &std::path::Path, domain: &str) -> std::path::PathBuf {
    state
        .join("ledger")
        .join("tenants")
        .join(format!("{domain}.json"))
}

/// stdout as JSON, with stderr in the panic message when it is not.
pub fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tool's view of a running emulator's cloud (its ready file's `cloud`), trusting the CA in
/// `ca_file`. The conversion lives with the tests and the demo: the library knows nothing of the
/// emulator.
pub fn emulated_cloud(r: &ReadyCloud, ca_file: std::path::PathBuf) -> hybrid_trust::cloud::Cloud {
    hybrid_trust::cloud::Cloud {
        name: r.name.clone(),
        login_url: r.login_url.clone(),
        graph_url: r.graph_url.clone(),
        acs_url: r.acs_url.clone(),
        exchange_url: r.exchange_url.clone(),
        ca_file: Some(ca_file),
        acs_confirmed: true,
    }
}
