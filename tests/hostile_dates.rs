//! Issue 14, defect 4: dates and lifetimes no real service or file holds (a token `expires_in` of
//! 2^63-1 seconds, a key `endDateTime` in the year 262142, a ledger date at either end of
//! chrono's calendar) end in one `error:` line with a hint and exit 1 (server data) or 2 (the
//! user's own files), never in a panic (exit 101).
//!
//! The server side is a tiny hostile cloud on loopback (plain HTTP, which custom clouds allow on
//! loopback) playing Entra's token endpoint and Graph's servicePrincipals: the emulator refuses
//! such dates itself, and what real Graph does with them is unknown.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use support::*;

const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
const DOMAIN: &str = "contoso.onmicrosoft.com";
const TENANT_ID: &str = "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f";
const BEYOND: &str = "+262142-12-31T23:59:59Z";
const BEFORE: &str = "-262143-01-01T00:00:00Z";

/// What the hostile cloud answers.
#[derive(Clone)]
struct Script {
    /// The token endpoint's body (200).
    token: String,
    /// The keyCredentials of every service principal.
    keys: Value,
}

struct Hostile {
    _rt: tokio::runtime::Runtime,
    cloud_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn fake_jwt() -> String {
    use base64::Engine as _;
    let e = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        e(json!({"alg": "none"})),
        e(json!({"tid": TENANT_ID}))
    )
}

fn token_body(expires_in: &str) -> String {
    format!(
        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":{expires_in}}}"#,
        fake_jwt()
    )
}

impl Hostile {
    fn start(script: Script) -> Hostile {
        use axum::routing::{get, post};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let script = Arc::new(Mutex::new(script));
        let sp = |s: &Script, id: &str| {
            json!({"id": id, "appId": SFB, "displayName": "Skype for Business Online",
                   "keyCredentials": s.keys, "servicePrincipalNames": [SFB]})
        };
        let (s1, s2, s3) = (script.clone(), script.clone(), script.clone());
        let app = axum::Router::new()
            .route(
                "/login/{tenant}/oauth2/v2.0/token",
                post(move || {
                    let body = s1.lock().unwrap().token.clone();
                    async move { ([("content-type", "application/json")], body) }
                }),
            )
            .route(
                "/graph/v1.0/servicePrincipals",
                get(move || {
                    let v = json!({"value": [sp(&s2.lock().unwrap(), "sp-1")]});
                    async move { axum::Json(v) }
                }),
            )
            .route(
                "/graph/v1.0/servicePrincipals/{id}",
                get(
                    move |axum::extract::Path(id): axum::extract::Path<String>| {
                        let v = sp(&s3.lock().unwrap(), &id);
                        async move { axum::Json(v) }
                    },
                ),
            );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let cloud = json!({"name": "hostile", "login_url": format!("{base}/login"),
            "graph_url": format!("{base}/graph"), "acs_url": format!("{base}/acs"),
            "exchange_url": format!("{base}/exo")});
        let cloud_file = dir.path().join("cloud.json");
        std::fs::write(&cloud_file, cloud.to_string()).unwrap();
        Hostile {
            _rt: rt,
            cloud_file,
            _dir: dir,
        }
    }
}

/// The tool against `cloud` (or no cloud file), state in `state`, admin secret in the env.
fn ht(cloud: Option<&Path>, state: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
    c.env("HYBRID_TRUST_STATE_DIR", state)
        .env(
            "HYBRID_TRUST_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        )
        .env("HT_TEST_SECRET", "s3cret")
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env("XDG_CONFIG_HOME", state.join("config"))
        .env_remove("HYBRID_TRUST_CONFIG")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_CLIENT_SECRET")
        .env_remove("HYBRID_TRUST_AS_OF")
        .stdin(Stdio::null())
        .args(["--client-secret-env", "HT_TEST_SECRET"]);
    if let Some(cf) = cloud {
        c.arg("--cloud-file").arg(cf);
    }
    c.args(args).output().unwrap()
}

/// Exit `code`, no panic, exactly one `error:` line and a hint; returns stderr.
fn fails_cleanly(o: &Output, code: i32, what: &str) -> String {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "{what}: panicked: {e}");
    assert_eq!(o.status.code(), Some(code), "{what}: {e}");
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{what}: one error line: {e}"
    );
    assert!(e.contains("\nhint: "), "{what}: a hint: {e}");
    e
}

fn add_tenant(state: &Path) {
    let o = ht(
        None,
        state,
        &[
            "tenant",
            "add",
            DOMAIN,
            "--cert",
            CERT,
            "--credential-end",
            "2027-06-01",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn ledger_thumbprint(state: &Path) -> String {
    let l = read_ledger(state);
    l["tenants"][0]["cert"]["thumbprint_sha1"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Rewrites the tenant's record file with `edit`, given as `{"tenants": [record]}`: by hand, so
/// impossible dates get in.
fn edit_ledger(state: &Path, edit: impl FnOnce(&mut Value)) {
    let p = tenant_file(state, DOMAIN);
    let mut f: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let mut l = json!({"tenants": [f["tenant"].take()]});
    edit(&mut l);
    f["tenant"] = l["tenants"][0].take();
    std::fs::write(&p, serde_json::to_vec_pretty(&f).unwrap()).unwrap();
}

#[test]
fn a_token_lifetime_beyond_the_calendar_is_one_error_exit_1() {
    for expires_in in [
        "9223372036854775807",
        "18446744073709551615",
        "100000000000000",
        "1e14",
    ] {
        let h = Hostile::start(Script {
            token: token_body(expires_in),
            keys: json!([]),
        });
        let state = tempfile::tempdir().unwrap();
        let o = ht(
            Some(&h.cloud_file),
            state.path(),
            &["credential", "list", "--tenant", DOMAIN],
        );
        let e = fails_cleanly(&o, 1, expires_in);
        assert!(
            e.contains("expires_in"),
            "{expires_in}: names the field: {e}"
        );
    }
    // A sane lifetime works against the same hostile cloud (the test's own control).
    let h = Hostile::start(Script {
        token: token_body("3599"),
        keys: json!([]),
    });
    let state = tempfile::tempdir().unwrap();
    let o = ht(
        Some(&h.cloud_file),
        state.path(),
        &["--output", "json", "credential", "list", "--tenant", DOMAIN],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_graph_key_ending_beyond_the_calendar_is_one_error_exit_1() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    add_tenant(s);
    let tp = ledger_thumbprint(s);
    for (start, end) in [
        ("2026-01-01T00:00:00Z", BEYOND),
        (BEFORE, "2027-01-01T00:00:00Z"),
    ] {
        let h = Hostile::start(Script {
            token: token_body("3599"),
            keys: json!([{"customKeyIdentifier": tp, "keyId": "6c7f1f5e-8b8e-4a52-9a39-4c4d3a8e0f11",
                "type": "AsymmetricX509Cert", "usage": "Verify", "displayName": "absurd",
                "startDateTime": start, "endDateTime": end}]),
        });
        let cf = Some(h.cloud_file.as_path());
        for args in [
            vec!["status", "--all", "--live"],
            vec!["--output", "json", "status", "--all", "--live"],
            vec!["status", "--all", "--live", "--format", "ics"],
            vec!["status", "--all", "--live", "--format", "prometheus"],
            vec!["credential", "list", "--tenant", DOMAIN],
        ] {
            let o = ht(cf, s, &args);
            let e = stderr(&o);
            assert!(!e.contains("panicked"), "{args:?}: {e}");
            assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
            assert!(
                e.contains("outside the dates hybrid-trust handles"),
                "{args:?}: says why: {e}"
            );
            assert!(e.contains("\nhint: "), "{args:?}: {e}");
            assert!(
                e.contains("no real key has such a date"),
                "{args:?}: says what to do: {e}"
            );
        }
        // Monitoring: the tenant could not be read, which is UNKNOWN.
        let o = ht(cf, s, &["status", "--all", "--live", "--check"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert_eq!(o.status.code(), Some(3), "{out}");
        assert!(out.starts_with("HYBRID-TRUST UNKNOWN"), "{out}");
    }
}

#[test]
fn a_ledger_date_beyond_the_calendar_is_one_error_exit_2() {
    for (field, value) in [
        ("end", BEYOND),
        ("end", BEFORE),
        ("start", BEFORE),
        ("not_after", BEYOND),
        ("not_after", BEFORE),
        ("added_at", BEYOND),
    ] {
        let state = tempfile::tempdir().unwrap();
        let s = state.path();
        add_tenant(s);
        edit_ledger(s, |l| {
            let t = &mut l["tenants"][0];
            match field {
                "not_after" => t["cert"]["not_after"] = json!(value),
                "added_at" => t["added_at"] = json!(value),
                f => t["credentials"][0][f] = json!(value),
            }
        });
        let file = tenant_file(s, DOMAIN);
        let before = std::fs::read(&file).unwrap();
        for args in [
            vec!["status"],
            vec!["status", "--all", "--format", "ics"],
            vec!["--output", "json", "status", "--all"],
            vec!["remind", "--all", "--dry-run"],
            vec!["--dry-run", "renew", "--tenant", DOMAIN],
            vec!["tenant", "add", DOMAIN, "--notify", "x@example.com"],
        ] {
            let what = format!("{field}={value} {args:?}");
            let e = fails_cleanly(&ht(None, s, &args), 2, &what);
            assert!(
                e.contains(&format!("{DOMAIN}.json")),
                "{what}: names the file: {e}"
            );
            assert!(e.contains(value), "{what}: names the date: {e}");
        }
        let o = ht(None, s, &["status", "--all", "--check"]);
        assert_eq!(o.status.code(), Some(3), "{field}: UNKNOWN");
        assert_eq!(std::fs::read(&file).unwrap(), before, "left untouched");
    }
}

#[test]
fn renew_with_a_new_cert_after_a_recorded_certificate_at_the_start_of_the_calendar_exits_2() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    add_tenant(s);
    edit_ledger(s, |l| l["tenants"][0]["cert"]["not_after"] = json!(BEFORE));
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let new = make_cert(
        "sfb.contoso.com",
        now - chrono::TimeDelta::days(1),
        now + chrono::TimeDelta::days(700),
    );
    let p = dir.path().join("new.pem");
    std::fs::write(&p, &new.cert_pem).unwrap();
    let o = ht(
        None,
        s,
        &[
            "--dry-run",
            "renew",
            "--tenant",
            DOMAIN,
            "--new-cert",
            p.to_str().unwrap(),
        ],
    );
    let e = fails_cleanly(&o, 2, "renew --dry-run --new-cert");
    assert!(e.contains(BEFORE), "{e}");
}

#[test]
fn dates_past_the_calendar_given_on_the_command_line_are_refused_with_exit_2() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    for args in [
        vec![
            "tenant",
            "add",
            DOMAIN,
            "--cert",
            CERT,
            "--credential-end",
            "+262142-12-31",
        ],
        vec![
            "tenant",
            "add",
            DOMAIN,
            "--cert",
            CERT,
            "--credential-end",
            "-262143-01-01",
        ],
        vec!["--as-of", BEYOND, "status"],
    ] {
        let o = ht(None, s, &args);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    }
    // Absurd thresholds are numbers, not dates: they give a status, not a panic.
    add_tenant(s);
    for args in [
        vec!["status", "--warn-days", "9223372036854775807"],
        vec![
            "status",
            "--all",
            "--check",
            "--warn-days",
            "9223372036854775807",
            "--crit-days",
            "9223372036854775807",
        ],
        vec![
            "--dry-run",
            "renew",
            "--tenant",
            DOMAIN,
            "--horizon-days",
            "9223372036854775807",
        ],
    ] {
        let o = ht(None, s, &args);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {e}");
    }
}
