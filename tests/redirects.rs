//! Issue 14, defect 3: no request follows a redirect. A hostile "cloud" on loopback answers
//! `307 Location: http://127.0.0.1:<other port>/…`; a second listener on that port counts every
//! connection. The client secret (token endpoint), the bearer token (Graph) and discovery must
//! never reach it, and the tool must stop with one `error:` line that names the redirect.

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "client-secret-that-must-not-travel";
const TENANT: &str = "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f";

#[derive(Clone)]
struct Hostile {
    /// Where the redirect points.
    sink_port: u16,
    /// Whether the token endpoint answers with a token (so that Graph is reached) or redirects.
    issue_tokens: bool,
    /// Requests the hostile server itself saw (proves the tool got as far as asking).
    hits: Arc<AtomicUsize>,
}

async fn hostile(State(h): State<Hostile>, uri: Uri) -> Response {
    h.hits.fetch_add(1, Ordering::SeqCst);
    if h.issue_tokens && uri.path().ends_with("/oauth2/v2.0/token") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2ln"}"#,
        )
            .into_response();
    }
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(
            header::LOCATION,
            format!(
                "http://127.0.0.1:{}/steal?sig=location-query-secret",
                h.sink_port
            ),
        )],
    )
        .into_response()
}

struct World {
    _dir: tempfile::TempDir,
    cloud_file: std::path::PathBuf,
    state_dir: std::path::PathBuf,
    sink_port: u16,
    sink_hits: Arc<AtomicUsize>,
    hostile_hits: Arc<AtomicUsize>,
}

/// Starts the counting sink and the hostile cloud; writes a cloud file for it (plain http on
/// loopback, which the cloud file allows).
async fn world(issue_tokens: bool) -> World {
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let sink_hits = Arc::new(AtomicUsize::new(0));
    let counter = sink_hits.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = sink.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let hostile_hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(hostile).with_state(Hostile {
        sink_port,
        issue_tokens,
        hits: hostile_hits.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let cloud_file = dir.path().join("cloud.json");
    std::fs::write(
        &cloud_file,
        serde_json::json!({
            "name": "hostile",
            "login_url": format!("{base}/login"),
            "graph_url": format!("{base}/graph"),
            "acs_url": format!("{base}/acs"),
            "exchange_url": format!("{base}/exo"),
        })
        .to_string(),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    World {
        _dir: dir,
        cloud_file,
        state_dir,
        sink_port,
        sink_hits,
        hostile_hits,
    }
}

impl World {
    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
        c.arg("--cloud-file")
            .arg(&self.cloud_file)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .env("HOSTILE_SECRET", SECRET)
            .env("HYBRID_TRUST_KEYRING", "none-in-tests")
            .env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "5")
            .env_remove("HYBRID_TRUST_OUTPUT")
            .env_remove("HYBRID_TRUST_CLIENT_SECRET")
            .env_remove("HYBRID_TRUST_CLIENT_ID")
            .env_remove("HYBRID_TRUST_CLOUD_FILE")
            .stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// Exit 1, one `error:` line, the redirect named (status and target, query redacted),
    /// nothing at the sink, no secret anywhere.
    fn assert_refused(&self, what: &str, o: &std::process::Output) {
        let err = String::from_utf8_lossy(&o.stderr);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            self.hostile_hits.load(Ordering::SeqCst) > 0,
            "{what}: the hostile server was never asked: {err}"
        );
        assert_eq!(
            self.sink_hits.load(Ordering::SeqCst),
            0,
            "{what}: a request followed the redirect to the other port: {err}"
        );
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{what}: {err}"
        );
        assert!(err.contains("redirect"), "{what}: {err}");
        assert!(
            err.contains(&format!("http://127.0.0.1:{}/steal", self.sink_port)),
            "{what}: the target is not named: {err}"
        );
        assert!(err.contains("hint:"), "{what}: {err}");
        for s in [SECRET, "location-query-secret"] {
            assert!(!err.contains(s) && !out.contains(s), "{what}: {s} leaked");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_redirect_is_refused_and_the_secret_stays_home() {
    let w = world(false).await;
    let o = w
        .run(&[
            "credential",
            "list",
            "--tenant",
            TENANT,
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
            "--client-secret-env",
            "HOSTILE_SECRET",
        ])
        .await;
    w.assert_refused("credential list (token)", &o);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_redirect_is_refused_and_the_token_stays_home() {
    let w = world(true).await;
    let o = w
        .run(&[
            "credential",
            "list",
            "--tenant",
            TENANT,
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
            "--client-secret-env",
            "HOSTILE_SECRET",
        ])
        .await;
    w.assert_refused("credential list (graph)", &o);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovery_redirect_is_refused() {
    let w = world(false).await;
    let o = w.run(&["tenant", "discover", "contoso.com"]).await;
    w.assert_refused("tenant discover", &o);
}

/// A webhook receiver that redirects is refused too (decision: a reminder is POSTed only where
/// the settings file says, never re-sent elsewhere, and never downgraded to another origin).
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_redirect_is_refused_and_the_reminder_is_not_marked_sent() {
    let w = world(false).await;
    let base =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&w.cloud_file).unwrap())
            .unwrap()["login_url"]
            .as_str()
            .unwrap()
            .trim_end_matches("/login")
            .to_string();
    let config = w.cloud_file.with_file_name("config.toml");
    std::fs::write(
        &config,
        format!(
            "[reminders]\n[[reminders.webhook]]\nurl = \"{base}/hook?sig=webhook-sig-secret\"\n"
        ),
    )
    .unwrap();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let end = (chrono::Utc::now() + chrono::TimeDelta::days(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let cfg = config.to_str().unwrap();
    let o = w
        .run(&[
            "--config",
            cfg,
            "tenant",
            "add",
            "contoso.com",
            "--cert",
            cert,
            "--credential-end",
            &end,
        ])
        .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = w.run(&["--config", cfg, "remind", "--all"]).await;
    w.assert_refused("remind (webhook)", &o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("webhook-sig-secret"));
    // Not recorded as sent: the next run tries again (and is refused again).
    let o = w.run(&["--config", cfg, "remind", "--all"]).await;
    w.assert_refused("remind (webhook), again", &o);
}
