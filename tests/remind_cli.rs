//! `remind` with real channels: an SMTP server (aiosmtpd on loopback: plain, STARTTLS and
//! implicit TLS (smtps://) with a test CA and AUTH) and a webhook receiver; an outage then
//! recovery; no duplicates across runs; per-tenant recipients; renewal failures reported at once.

mod support;

use axum::routing::post;
use chrono::{TimeDelta, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn python() -> String {
    let p = std::env::var("HYBRID_TRUST_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python").to_string()
    });
    assert!(
        Path::new(&p).exists(),
        "the Python test venv is missing: run scripts/test.sh (it installs aiosmtpd)"
    );
    p
}

struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(dir: &Path, extra: &[&str]) -> Smtp {
    let maildir = dir.join(format!("mail-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&maildir).unwrap();
    let port_file = dir.join(format!("port-{}", uuid::Uuid::new_v4().simple()));
    let child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/smtp_server.py"
        ))
        .arg(&port_file)
        .arg(&maildir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned at once, so a failed start below still kills and waits for it.
    let mut server = Smtp {
        child,
        port: 0,
        maildir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            server.port = p.trim().parse().unwrap();
            return server;
        }
        assert!(Instant::now() < deadline, "the SMTP server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The messages received, headers unfolded.
fn mails(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .replace("\r\n ", " ")
                .replace("\n ", " ")
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .collect();
    v.sort();
    v
}

fn ht(state: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
    c.args(["--config", config.to_str().unwrap()])
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn add_tenant(state: &Path, config: &Path, domain: &str, days: i64, notify: Option<&str>) {
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let end = (Utc::now() + TimeDelta::days(days) + TimeDelta::hours(12))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut args = vec![
        "tenant",
        "add",
        domain,
        "--cert",
        cert,
        "--credential-end",
        &end,
    ];
    if let Some(n) = notify {
        args.extend(["--notify", n]);
    }
    let o = ht(state, config, &args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn email_outage_then_recovery_without_duplicates_and_per_tenant_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    // A port nothing listens on, for the outage.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let write_config = |port: u16| {
        std::fs::write(&config, format!("[reminders]\nthresholds_days = [60, 30, 14, 7, 3, 1]\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\n")).unwrap();
    };
    write_config(dead);
    add_tenant(&state, &config, "contoso.com", 10, None);
    add_tenant(&state, &config, "fabrikam.com", 200, None);
    add_tenant(&state, &config, "adatum.com", 2, Some("ops@adatum.com"));

    let o = ht(&state, &config, &["remind", "--all"], &[]);
    assert_eq!(o.status.code(), Some(1), "a failed delivery fails the run");
    assert!(String::from_utf8_lossy(&o.stderr).contains("retried on the next run"));
    let ledger: Value = serde_json::to_value(
        hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap(),
    )
    .unwrap();
    assert!(
        ledger["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["reminders_sent"].as_array().unwrap().is_empty()),
        "nothing marked sent"
    );

    let server = smtp(dir.path(), &[]);
    write_config(server.port);
    let o = ht(
        &state,
        &config,
        &["--output", "json", "remind", "--all"],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = mails(&server.maildir);
    assert_eq!(
        m.len(),
        2,
        "one per due tenant, the most urgent threshold only"
    );
    let contoso = m
        .iter()
        .find(|x| x.contains("contoso.com: the Skype for Business hybrid trust ends in 10 day(s)"))
        .expect("contoso mail");
    assert!(contoso.contains("X-Rcpt: uc-admins@contoso.com"));
    assert!(
        contoso.contains("hybrid-trust renew --tenant contoso.com"),
        "the exact command"
    );
    // Plain text first, then the HTML digest with its timeline (as the Graph channel sends).
    let (plain, html) = (
        contoso
            .find("Content-Type: text/plain")
            .expect("a text part"),
        contoso
            .find("Content-Type: text/html")
            .expect("an HTML part"),
    );
    assert!(
        contoso.contains("multipart/alternative") && plain < html,
        "{contoso}"
    );
    assert!(contoso.contains("data-timeline"), "{contoso}");
    let adatum = m.iter().find(|x| x.contains("adatum.com")).unwrap();
    assert!(
        adatum.contains("X-Rcpt: ops@adatum.com"),
        "per-tenant recipients override: {adatum}"
    );
    // Again: nothing new.
    let o = ht(&state, &config, &["remind", "--all"], &[]);
    assert!(o.status.success());
    assert_eq!(mails(&server.maildir).len(), 2, "no duplicates");
    // Planning: in 5 days contoso crosses 7 (dry run sends nothing).
    let as_of = (Utc::now() + TimeDelta::days(5)).to_rfc3339();
    let o = ht(
        &state,
        &config,
        &[
            "--output",
            "json",
            "--as-of",
            &as_of,
            "--dry-run",
            "remind",
            "--all",
        ],
        &[],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let planned = v["planned"].as_array().unwrap();
    assert!(planned.iter().any(|p| p["message"]["tenant"] == "contoso.com" && p["message"]["threshold_days"] == 7), "{v}");
    assert_eq!(mails(&server.maildir).len(), 2);
    assert_eq!(
        ht(
            &state,
            &config,
            &["--as-of", &as_of, "remind", "--all"],
            &[]
        )
        .status
        .code(),
        Some(2),
        "--as-of only with --dry-run"
    );
}

/// An SMTP server with a certificate from a test CA (`ca.pem` in `dir`), TLS as `mode` says
/// (`--tls`: STARTTLS, `--implicit-tls`: smtps), AUTH for bot / s3cret-smtp-pw.
fn tls_smtp_with_auth(dir: &Path, mode: &str) -> Smtp {
    write_test_tls(dir);
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    smtp(
        dir,
        &[
            mode,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "bot",
            "s3cret-smtp-pw",
        ],
    )
}

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 (`server.pem`, `server.key`).
fn write_test_tls(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// Exchange Online with SMTP AUTH Basic authentication off answers `550 5.7.30`: the run fails
/// (exit 1, nothing marked sent) and says to use the Microsoft Graph mail channel.
#[test]
fn an_smtp_5_7_30_refusal_points_to_the_graph_mail_channel() {
    let dir = tempfile::tempdir().unwrap();
    write_test_tls(dir.path());
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let server = smtp(
        dir.path(),
        &[
            "--tls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "bot",
            "pw",
            "--refuse-basic-auth",
        ],
    );
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=starttls\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\nusername = \"bot\"\npassword_env = \"SMTP_PASSWORD\"\nca_file = \"{}\"\n",
            server.port,
            dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    add_tenant(&state, &config, "contoso.com", 20, None);
    let o = ht(
        &state,
        &config,
        &["remind", "--all"],
        &[("SMTP_PASSWORD", "pw")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("5.7.30") && err.contains("[[reminders.graph_mail]]"),
        "{err}"
    );
    assert!(mails(&server.maildir).is_empty());
    let ledger = hybrid_trust::ledger::LedgerStore::in_dir(&state)
        .load()
        .unwrap();
    assert_eq!(ledger.tenants.len(), 1);
    assert!(
        ledger.tenants[0].reminders_sent.is_empty(),
        "nothing marked sent: {:?}",
        ledger.tenants[0].reminders_sent
    );
}

/// smtps:// (TLS from the first byte, as on port 465) with AUTH: the message arrives; without
/// the test CA the server is not trusted and nothing is sent.
#[test]
fn implicit_tls_smtps_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_smtp_with_auth(dir.path(), "--implicit-tls");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    let write_config = |ca: bool| {
        std::fs::write(
            &config,
            format!(
                "[reminders]\n[[reminders.email]]\nsmtp_url = \"smtps://127.0.0.1:{}\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\nusername = \"bot\"\npassword_env = \"SMTP_PASSWORD\"\n{}",
                server.port,
                if ca {
                    format!("ca_file = \"{}\"\n", dir.path().join("ca.pem").display())
                } else {
                    String::new()
                }
            ),
        )
        .unwrap();
    };
    write_config(false);
    add_tenant(&state, &config, "contoso.com", 20, None);
    let env = [("SMTP_PASSWORD", "s3cret-smtp-pw")];
    let o = ht(&state, &config, &["remind", "--all"], &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an untrusted server: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(mails(&server.maildir).is_empty());
    write_config(true);
    let o = ht(&state, &config, &["remind", "--all"], &env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = mails(&server.maildir);
    assert_eq!(m.len(), 1);
    assert!(m[0].contains("X-Auth: True"), "{}", m[0]);
}

#[test]
fn starttls_with_auth_and_a_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_smtp_with_auth(dir.path(), "--tls");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[reminders]\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=starttls\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\nusername = \"bot\"\npassword_env = \"SMTP_PASSWORD\"\nca_file = \"{}\"\n",
            server.port,
            dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    add_tenant(&state, &config, "contoso.com", 20, None);
    let o = ht(
        &state,
        &config,
        &["remind", "--all"],
        &[("SMTP_PASSWORD", "wrong")],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "bad AUTH: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ht(
        &state,
        &config,
        &["remind", "--all"],
        &[("SMTP_PASSWORD", "s3cret-smtp-pw")],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = mails(&server.maildir);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("X-Auth: True") && m[0].contains("X-TLS: True"),
        "{}",
        m[0]
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ) + &serde_json::to_string(
        &hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap(),
    )
    .unwrap();
    assert!(!all.contains("s3cret-smtp-pw"));
    // Without the password variable: a usage error before anything is sent.
    assert_eq!(
        ht(&state, &config, &["remind", "--all"], &[]).status.code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_json_teams_slack_with_a_failure_then_recovery() {
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (r2, f2) = (received.clone(), failing.clone());
    let app = axum::Router::new().route(
        "/{kind}",
        post(
            move |axum::extract::Path(kind): axum::extract::Path<String>,
                  axum::Json(v): axum::Json<Value>| {
                let (r, f) = (r2.clone(), f2.clone());
                async move {
                    if f.load(std::sync::atomic::Ordering::SeqCst) {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    r.lock().unwrap().push((kind, v));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[reminders]\n[[reminders.webhook]]\nurl = \"http://{addr}/json?sig=SECRET-SIG\"\n[[reminders.webhook]]\nurl = \"http://{addr}/teams\"\nformat = \"teams\"\n[[reminders.webhook]]\nurl = \"http://{addr}/slack\"\nformat = \"slack\"\n"),
    )
    .unwrap();
    let (s, c) = (state.clone(), config.clone());
    tokio::task::spawn_blocking(move || add_tenant(&s, &c, "contoso.com", 6, None))
        .await
        .unwrap();
    let run = |state: PathBuf, config: PathBuf| {
        tokio::task::spawn_blocking(move || ht(&state, &config, &["remind", "--all"], &[]))
    };
    let o = run(state.clone(), config.clone()).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("SECRET-SIG"),
        "the webhook's signature is never printed"
    );
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let o = run(state.clone(), config.clone()).await.unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(state.clone(), config.clone()).await.unwrap();
    assert!(o.status.success());
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "one per channel, no duplicates");
    let by = |k: &str| got.iter().find(|(kind, _)| kind == k).unwrap().1.clone();
    let j = by("json");
    assert_eq!(
        (
            j["event"].as_str(),
            j["tenant"].as_str(),
            j["threshold_days"].as_i64()
        ),
        (Some("hybrid-trust.reminder"), Some("contoso.com"), Some(7))
    );
    assert_eq!(j["command"], "hybrid-trust renew --tenant contoso.com");
    let t = by("teams");
    assert_eq!(
        t["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
    let s = by("slack");
    assert!(
        s["text"].as_str().unwrap().contains("contoso.com")
            && s["blocks"].as_array().unwrap().len() >= 2
    );
    let ledger = serde_json::to_string(
        &hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap(),
    )
    .unwrap();
    assert!(
        !ledger.contains("SECRET-SIG"),
        "the channel is recorded without its query"
    );
}

#[test]
fn the_stdout_channel_keeps_json_output_clean() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[reminders]\nstdout = true\n").unwrap();
    add_tenant(&state, &config, "contoso.com", 5, None);
    let o = ht(&state, &config, &["remind", "--all"], &[]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("contoso.com: the Skype for Business hybrid trust ends in"),
        "text mode: on stdout"
    );
    add_tenant(&state, &config, "fabrikam.com", 5, None);
    let o = ht(
        &state,
        &config,
        &["--output", "json", "remind", "--all"],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["sent"].as_array().unwrap().len(), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("fabrikam.com: the Skype for Business hybrid trust ends in"),
        "the reminder went to stderr"
    );
}

/// `password_keyring = true`: `remind --remember-smtp-password` signs in with the password first
/// and stores it only when the server accepts it; `remind` then reads it from the keyring (the
/// kernel keyring, in a `keyctl session` of its own). The password never shows.
#[test]
fn an_smtp_password_from_the_keyring_is_proved_then_stored_then_used() {
    if Command::new("keyctl").arg("--version").output().is_err() {
        panic!("keyctl is missing: scripts/test.sh installs keyutils");
    }
    let dir = tempfile::tempdir().unwrap();
    // The kernel keyring store keeps entries in the user's persistent keyring, shared by every
    // session of this user: a name of this run's own, removed at the end.
    let user = format!("bot-{}", uuid::Uuid::new_v4().simple());
    // A password goes only over TLS (issue 24, item 5): STARTTLS with the test CA.
    write_test_tls(dir.path());
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let server = smtp(
        dir.path(),
        &[
            "--tls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            &user,
            "kr-smtp-pw-9f3",
        ],
    );
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[reminders]\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=starttls\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\nusername = \"{user}\"\npassword_keyring = true\nca_file = \"{}\"\n",
            server.port,
            dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    add_tenant(&state, &config, "contoso.com", 20, None);
    let h = format!(
        "{} --config {}",
        env!("CARGO_BIN_EXE_hybrid-trust"),
        config.display()
    );
    let script = "$H remind --remember-smtp-password --smtp-password-env WRONG; echo \"rc=$?\"\n\
         $H remind --all; echo \"rc=$?\"\n\
         $H remind --remember-smtp-password --smtp-password-env PW; echo \"rc=$?\"\n\
         $H remind --all; echo \"rc=$?\"\n\
         P=$(keyctl get_persistent @s); K=$(keyctl search $P user \"keyring:smtp:$U@hybrid-trust\") \
         && keyctl unlink $K $P >/dev/null && echo removed\n";
    let out = Command::new("timeout")
        .args(["60", "keyctl", "session", "-", "bash", "-c", script])
        .env("H", &h)
        .env("U", &user)
        .env("HYBRID_TRUST_STATE_DIR", &state)
        .env("HYBRID_TRUST_KEYRING", "keyutils")
        .env("PW", "kr-smtp-pw-9f3")
        .env("WRONG", "not-it")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let codes: Vec<&str> = text.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(
        codes,
        vec!["rc=1", "rc=2", "rc=0", "rc=0"],
        "refused and not stored; no password yet; stored; used: {text}"
    );
    assert!(text.contains("nothing was stored"), "{text}");
    assert!(text.contains(&format!("stored smtp:{user}")), "{text}");
    assert!(
        text.contains("removed"),
        "the test's entry is removed: {text}"
    );
    let m = mails(&server.maildir);
    assert_eq!(m.len(), 1, "{text}");
    assert!(
        m[0].contains("X-Auth: True") && m[0].contains("X-TLS: True"),
        "{}",
        m[0]
    );
    assert!(
        !text.contains("kr-smtp-pw-9f3") && !text.contains("not-it"),
        "{text}"
    );
}

/// SMTP AUTH with OAuth (`oauth = {...}` on an email channel): the app gets an Exchange Online
/// token from Entra (the emulator) and signs in with SASL XOAUTH2 to a server that, like
/// Exchange Online with password SMTP AUTH off, refuses a password (5.7.30) and checks the
/// token's signature, audience and `SMTP.SendAsApp` role. A token that is refused, or none at
/// all, fails the run (exit 1) with nothing marked sent; a channel with both a password and
/// OAuth, or OAuth over plain SMTP, is refused (exit 2). Neither the secret nor the token shows.
#[tokio::test(flavor = "multi_thread")]
async fn smtp_with_oauth_signs_in_with_xoauth2_and_its_failures_mark_nothing() {
    let emu = support::Emu::start().await;
    let tool = support::Tool::for_emulator(&emu);
    // Its own folder: the tool's folder already has the emulator's ca.pem.
    let dir = tool.dir.path().join("smtp");
    std::fs::create_dir(&dir).unwrap();
    write_test_tls(&dir);
    let jwks = emu
        .client
        .get(format!(
            "{}/{}/discovery/v2.0/keys",
            emu.cloud.login_url, emu.tenant.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.join("jwks.json"), jwks).unwrap();
    let start = |audience: &str| {
        smtp(
            &dir,
            &[
                "--tls",
                dir.join("server.pem").to_str().unwrap(),
                dir.join("server.key").to_str().unwrap(),
                "--auth",
                "bot",
                "pw",
                "--refuse-basic-auth",
                "--xoauth2",
                dir.join("jwks.json").to_str().unwrap(),
                audience,
            ],
        )
    };
    let good = start(&emu.cloud.exchange_url);
    let state = dir.join("state");
    let config = dir.join("config.toml");
    let write = |port: u16, tls: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{port}{tls}\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\nca_file = \"{}\"\n{extra}oauth = {{ tenant = \"{}\", client_id = \"{}\", client_secret_env = \"HT_TEST_SECRET\" }}\n",
                dir.join("ca.pem").display(),
                emu.tenant.domain,
                emu.tenant.admin.client_id
            ),
        )
        .unwrap();
    };
    let run = |secret: &str| {
        let o = ht(
            &state,
            &config,
            &["remind", "--all"],
            &[
                ("HYBRID_TRUST_CLOUD_FILE", tool.cloud_file.to_str().unwrap()),
                ("HT_TEST_SECRET", secret),
            ],
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!all.contains(secret), "the secret shows: {all}");
        assert!(!all.contains("eyJ"), "a token shows: {all}");
        (o.status.code(), all)
    };
    let marked = || {
        hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap()
            .tenants[0]
            .reminders_sent
            .len()
    };
    write(good.port, "?tls=starttls", "");
    add_tenant(&state, &config, "contoso.com", 20, None);
    let secret = emu.tenant.admin.client_secret.clone();

    // No token (a wrong secret): the cause, exit 1, nothing sent or marked.
    let (code, all) = tokio::task::block_in_place(|| run("not-the-secret"));
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("no Exchange Online token for SMTP"), "{all}");
    assert!(mails(&good.maildir).is_empty() && marked() == 0, "{all}");

    // A server that expects another audience refuses the token as Exchange Online does.
    let other = start("https://outlook.office365.us");
    write(other.port, "?tls=starttls", "");
    let (code, all) = tokio::task::block_in_place(|| run(&secret));
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("5.7.3"), "{all}");
    assert!(mails(&other.maildir).is_empty() && marked() == 0, "{all}");

    // The right token: delivered over STARTTLS, signed in as the from mailbox, marked once.
    write(good.port, "?tls=starttls", "");
    let (code, all) = tokio::task::block_in_place(|| run(&secret));
    assert_eq!(code, Some(0), "{all}");
    let got = mails(&good.maildir);
    assert_eq!(got.len(), 1, "{all}");
    assert!(
        got[0].contains("X-Auth-User: hybrid-trust@contoso.com") && got[0].contains("X-TLS: True"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("contoso.com"), "{}", got[0]);
    assert!(marked() > 0);
    let (code, _) = tokio::task::block_in_place(|| run(&secret));
    assert_eq!(code, Some(0));
    assert_eq!(mails(&good.maildir).len(), 1, "sent once");

    // Refused before anything is sent: a password as well, or the token over plain SMTP.
    for (tls, extra, says) in [
        (
            "?tls=starttls",
            "password_env = \"SMTP_PASSWORD\"\n",
            "also has a password",
        ),
        ("", "", "would send its token in clear"),
    ] {
        write(good.port, tls, extra);
        let (code, all) = tokio::task::block_in_place(|| run(&secret));
        assert_eq!(code, Some(2), "{all}");
        assert!(all.contains(says), "{all}");
        assert_eq!(
            all.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{all}"
        );
    }
    assert_eq!(mails(&good.maildir).len(), 1);
}

/// A webhook receiver on loopback that records which tenants each post carried; each post is
/// answered once a second one has arrived or `hold` has passed (so two runs that both send are
/// both in flight together), with `answer` (status, body).
struct Receiver {
    addr: std::net::SocketAddr,
    posts: Posts,
}

/// The path and the tenants of each post received.
type Posts = Arc<Mutex<Vec<(String, Vec<String>)>>>;

async fn receiver(hold: Duration, answer: fn(&str) -> axum::response::Response) -> Receiver {
    let posts: Posts = Arc::default();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let (p2, a2) = (posts.clone(), arrived.clone());
    let app = axum::Router::new().route(
        "/{kind}",
        post(
            move |axum::extract::Path(kind): axum::extract::Path<String>,
                  axum::Json(v): axum::Json<Value>| {
                let (p, a) = (p2.clone(), a2.clone());
                async move {
                    let tenants = v["entries"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .map(|x| x["tenant"].as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    // Registered before the post is counted, so a second post's wake-up is
                    // never missed.
                    let second = a.notified();
                    tokio::pin!(second);
                    second.as_mut().enable();
                    let n = {
                        let mut p = p.lock().unwrap();
                        p.push((kind.clone(), tenants));
                        p.len()
                    };
                    if n == 1 {
                        let _ = tokio::time::timeout(hold, second).await;
                    } else {
                        a.notify_waiters();
                    }
                    answer(&kind)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, posts }
}

fn ok(_: &str) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::http::StatusCode::OK)
}

/// Issue 28, item 1: the timer and an admin start `remind --all` together on one state dir with
/// 40 due tenants: each tenant is posted once (before, both runs planned from the same ledger
/// and each sent everything: 80). The second run waits for the first's reminders lock, then
/// finds everything recorded; both exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn two_overlapping_remind_runs_post_each_tenant_once() {
    // The first post is held until a second arrives (at most 3 s): two runs that both send are
    // certainly in flight together.
    let rx = receiver(Duration::from_secs(3), ok).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[reminders]\n[[reminders.webhook]]\nurl = \"http://{}/json\"\n",
            rx.addr
        ),
    )
    .unwrap();
    let tenants: Vec<String> = (1..=40)
        .map(|i| format!("tenant-{i:04}.example.com"))
        .collect();
    let (s, c, t) = (state.clone(), config.clone(), tenants.clone());
    tokio::task::spawn_blocking(move || {
        for name in &t {
            add_tenant(&s, &c, name, 5, None);
        }
    })
    .await
    .unwrap();
    let start = |state: &Path, config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args(["--config", config.to_str().unwrap(), "remind", "--all"])
            .env("HYBRID_TRUST_STATE_DIR", state)
            .env_remove("HYBRID_TRUST_OUTPUT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(&state, &config), start(&state, &config));
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    for o in [&a, &b] {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let posts = rx.posts.lock().unwrap().clone();
    for t in &tenants {
        let n = posts
            .iter()
            .flat_map(|(_, ts)| ts)
            .filter(|x| *x == t)
            .count();
        assert_eq!(n, 1, "{t} was posted {n} times in {} post(s)", posts.len());
    }
    // And a third run, later: nothing new.
    let o = tokio::task::spawn_blocking(move || ht(&state, &config, &["remind", "--all"], &[]))
        .await
        .unwrap();
    assert!(o.status.success());
    assert_eq!(rx.posts.lock().unwrap().len(), posts.len());
}

/// An SMTP server on loopback that greets, then answers EHLO with one `250-` line every
/// `every`, never the last line: each line resets a per-read timeout.
async fn trickling_smtp(every: Duration) -> u16 {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = tokio::io::BufReader::new(r);
                if w.write_all(b"220 slow.example.com ESMTP\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    tokio::time::sleep(every).await;
                    if w.write_all(b"250-slow.example.com\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Issue 28, item 2: an SMTP server that trickles its EHLO answer (a `250-` line every 200 ms,
/// forever) held `remind` for ever. Now the message has an overall deadline (`timeout_secs`,
/// 1 s here): the run ends with exit 1, says so, marks nothing, and the next run (to a server
/// that answers) delivers it.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_smtp_server_fails_the_message_at_its_deadline_and_the_next_run_retries() {
    let slow = trickling_smtp(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    let write = |port: u16| {
        std::fs::write(
            &config,
            format!("[reminders]\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\ntimeout_secs = 1\n"),
        )
        .unwrap();
    };
    write(slow);
    let (s, c) = (state.clone(), config.clone());
    tokio::task::spawn_blocking(move || add_tenant(&s, &c, "contoso.com", 10, None))
        .await
        .unwrap();
    // A watchdog, not a timing assertion: without a deadline the run never ends, and the test
    // must fail rather than hang with it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--config", config.to_str().unwrap(), "remind", "--all"])
        .env("HYBRID_TRUST_STATE_DIR", &state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("remind still runs after 60 s against a trickling SMTP server");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not finish the message within 1 s")
            && err.contains("retried on the next run"),
        "{err}"
    );
    let marked = || {
        hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap()
            .tenants[0]
            .reminders_sent
            .len()
    };
    assert_eq!(marked(), 0, "nothing marked sent");
    let server = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || smtp(&d, &[])
    })
    .await
    .unwrap();
    write(server.port);
    let (s, c) = (state.clone(), config.clone());
    let o = tokio::task::spawn_blocking(move || ht(&s, &c, &["remind", "--all"], &[]))
        .await
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(mails(&server.maildir).len(), 1, "the retry delivered it");
    assert!(marked() > 0);
}

/// A 200 whose body never ends: one byte a second (`/drip`), or 64 KiB chunks without end
/// (`/huge`, past the client's 8 MiB bound).
fn endless_ok(kind: &str) -> axum::response::Response {
    use axum::body::Body;
    let stream: futures_util::stream::BoxStream<'static, Result<Vec<u8>, std::io::Error>> =
        if kind == "drip" {
            Box::pin(futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((Ok(b".".to_vec()), ()))
            }))
        } else {
            Box::pin(futures_util::stream::repeat_with(|| Ok(vec![b'x'; 65536])))
        };
    axum::response::Response::builder()
        .status(200)
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Issue 28, item 3: a webhook that answered 200 but whose body drips or never ends was recorded
/// as failed ("did not answer in time" / "larger than 8388608 bytes"), so it was posted again
/// every run. The status line decides: delivered once, exit 0, not posted again.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_answered_200_is_delivered_once_whatever_its_body() {
    let rx = receiver(Duration::ZERO, endless_ok).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[reminders]\n[[reminders.webhook]]\nurl = \"http://{0}/drip\"\n[[reminders.webhook]]\nurl = \"http://{0}/huge\"\n",
            rx.addr
        ),
    )
    .unwrap();
    let (s, c) = (state.clone(), config.clone());
    tokio::task::spawn_blocking(move || add_tenant(&s, &c, "contoso.com", 10, None))
        .await
        .unwrap();
    for _ in 0..2 {
        let (s, c) = (state.clone(), config.clone());
        // The request timeout at 3 s: what a dripping body would run into.
        let o = tokio::task::spawn_blocking(move || {
            ht(
                &s,
                &c,
                &["remind", "--all"],
                &[("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "3")],
            )
        })
        .await
        .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut kinds: Vec<String> = rx
        .posts
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["drip", "huge"], "each posted once");
}

/// Issue 24, item 5: a password over SMTP without TLS, even to a server on loopback that would
/// take AUTH PLAIN in clear, is refused before anything is sent: exit 2, one error line with the
/// fix (smtps:// or ?tls=starttls), nothing sent or marked; the password never shows.
#[test]
fn an_smtp_password_without_tls_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp(dir.path(), &["--auth", "bot", "clear-pw-4d1"]);
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[reminders]\n").unwrap();
    add_tenant(&state, &config, "contoso.com", 10, None);
    for auth in [
        "username = \"bot\"\npassword_env = \"SMTP_PASSWORD\"\n",
        "username = \"bot\"\npassword_keyring = true\n",
    ] {
        std::fs::write(
            &config,
            format!(
                "[reminders]\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"hybrid-trust@contoso.com\"\nto = [\"uc-admins@contoso.com\"]\n{auth}",
                server.port
            ),
        )
        .unwrap();
        let o = ht(
            &state,
            &config,
            &["remind", "--all"],
            &[("SMTP_PASSWORD", "clear-pw-4d1")],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{auth}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{err}"
        );
        assert!(
            err.contains("would send its password in clear")
                && err.contains("smtps://")
                && err.contains("?tls=starttls"),
            "{err}"
        );
        assert!(
            !err.contains("clear-pw-4d1")
                && !String::from_utf8_lossy(&o.stdout).contains("clear-pw-4d1")
        );
    }
    assert!(mails(&server.maildir).is_empty());
    let ledger = hybrid_trust::ledger::LedgerStore::in_dir(&state)
        .load()
        .unwrap();
    assert!(ledger.tenants[0].reminders_sent.is_empty());
}
