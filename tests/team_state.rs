//! Team state in PostgreSQL (issue 26), against a real server (tests/support/pg.rs): two
//! processes with different state dirs on one URL, renewing and reminding at the same moment;
//! `kill -9` while a tenant lock is held; a lock lost with its connection; the bad days (wrong
//! password, no server, a password in the URL, a newer schema); `state migrate` both ways with
//! 10,000 tenants.

#[path = "support/pg.rs"]
mod pg;
mod support;

use chrono::{TimeDelta, Utc};
use hybrid_trust::ledger::LedgerStore;
use serde_json::Value;
use std::time::Duration;
use support::*;

/// A host: its own state dir, the team's URL, its own name.
fn host(tool: &Tool, url: &str, name: &str, args: &[&str]) -> std::process::Command {
    host_on(&pg::server().password, tool, url, name, args)
}

/// [`host`] on a server with the password `pw`.
fn host_on(pw: &str, tool: &Tool, url: &str, name: &str, args: &[&str]) -> std::process::Command {
    let mut c = tool.command();
    c.env("HYBRID_TRUST_STATE_URL", url)
        .env("PGPASSWORD", pw)
        .env("HYBRID_TRUST_HOST_NAME", name)
        .env_remove("PGPASSFILE")
        .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
        .args(args);
    c
}

fn run(c: std::process::Command) -> std::process::Output {
    let mut c = c;
    c.output().unwrap()
}

fn both(
    a: std::process::Command,
    b: std::process::Command,
) -> (std::process::Output, std::process::Output) {
    let (mut a, mut b) = (a, b);
    let ha = a
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hb = b
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (
        ha.wait_with_output().unwrap(),
        hb.wait_with_output().unwrap(),
    )
}

fn outcome(o: &std::process::Output) -> String {
    json_out(o)["results"][0]["outcome"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// Host A uploads a key that ends in 15 days (a reminder and a renewal are due).
fn upload_due_key(emu: &Emu, a: &Tool, url: &str) {
    upload_due_key_on(&pg::server().password, emu, a, url)
}

/// [`upload_due_key`] on a server with the password `pw`.
fn upload_due_key_on(pw: &str, emu: &Emu, a: &Tool, url: &str) {
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = a.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(15)).format("%Y-%m-%d").to_string();
    let o = run(host_on(
        pw,
        a,
        url,
        "host-a",
        &[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--end",
            &end,
        ],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Two hosts (their own state dirs, one URL): a key uploaded by one is known to the other (not
/// foreign); `renew` on both at once renews the tenant once.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_on_one_url_renew_once() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let b = Tool::for_emulator(&emu);
    let url = pg::url("two_hosts");
    let t = emu.tenant.domain.clone();
    upload_due_key(&emu, &a, &url);
    let store = LedgerStore::in_db(pg::open(&url));
    // Host B knows the key host A uploaded.
    let o = run(host(
        &b,
        &url,
        "host-b",
        &["credential", "list", "--tenant", &t],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let creds = json_out(&o)["credentials"].as_array().unwrap().clone();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0]["foreign"], Value::Bool(false), "{creds:?}");
    // Renewals, both hosts at once: one renews, the other finds nothing to do.
    let (oa, ob) = both(
        host(&a, &url, "host-a", &["renew", "--tenant", &t, "--yes"]),
        host(&b, &url, "host-b", &["renew", "--tenant", &t, "--yes"]),
    );
    assert_eq!(oa.status.code(), Some(0), "{}", stderr(&oa));
    assert_eq!(ob.status.code(), Some(0), "{}", stderr(&ob));
    let mut outcomes = vec![outcome(&oa), outcome(&ob)];
    outcomes.sort();
    assert_eq!(outcomes, vec!["applied", "nothing"]);
    let ks = emu.sp(SFB).await["keyCredentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ks.len(), 1, "{ks:?}");
    let l = store.load().unwrap();
    assert_eq!(l.tenants[0].credentials.len(), 1);
    // Nothing in either state dir: the team's state is in the database.
    for tool in [&a, &b] {
        assert!(!tool.state_dir.join("ledger").join("tenants").exists());
        assert!(!tool.state_dir.join("audit.log").exists());
    }
    let audit = pg::open(&url).audit_lines().unwrap();
    assert!(audit.len() >= 2, "{audit:?}");
}

/// Whether two hosts are at the team's reminders lock together: one holding it (its connection's
/// last statement took it) and the other asking for it (its connection polls the same call).
fn both_hosts_at_the_lock() -> bool {
    pg::sql(
        "SELECT count(DISTINCT application_name) FROM pg_stat_activity \
         WHERE application_name IN ('hybrid-trust host-a', 'hybrid-trust host-b') \
         AND query LIKE '%pg_try_advisory_lock%'",
    ) == "2"
}

/// A webhook receiver that holds each post until a second post has arrived (two hosts both
/// sending) or both hosts are at the team's reminders lock (the sender holds it and the other
/// waits for it): either way the two runs overlap for certain, with no timed wait.
async fn held_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let posts = Arc::new(AtomicUsize::new(0));
    let p = posts.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: String| {
            let p = p.clone();
            async move {
                p.fetch_add(1, Ordering::SeqCst);
                loop {
                    if p.load(Ordering::SeqCst) >= 2 {
                        break;
                    }
                    let overlap = tokio::task::spawn_blocking(both_hosts_at_the_lock)
                        .await
                        .unwrap();
                    if overlap {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, posts)
}

/// Two hosts (their own state dirs, one URL) run `remind --all` at the same moment: the
/// reminder is delivered once for the team, and the record says which host sent it. The
/// webhook holds the first delivery until the other host is waiting at the team's lock (or has
/// sent too), so the runs overlap for certain: a lock of each host's own lets both send.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_remind_once_for_the_team() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let b = Tool::for_emulator(&emu);
    let url = pg::url("remind_once");
    upload_due_key(&emu, &a, &url);
    let (addr, posts) = held_receiver().await;
    for tool in [&a, &b] {
        std::fs::write(
            tool.dir.path().join("config.toml"),
            format!("[reminders]\n[[reminders.webhook]]\nurl = \"http://{addr}/hook\"\n"),
        )
        .unwrap();
    }
    let cfg = |tool: &Tool| tool.dir.path().join("config.toml").display().to_string();
    let (ca, cb) = (
        host(
            &a,
            &url,
            "host-a",
            &["--config", &cfg(&a), "remind", "--all"],
        ),
        host(
            &b,
            &url,
            "host-b",
            &["--config", &cfg(&b), "remind", "--all"],
        ),
    );
    let (ra, rb) = tokio::task::spawn_blocking(move || both(ca, cb))
        .await
        .unwrap();
    assert_eq!(ra.status.code(), Some(0), "{}", stderr(&ra));
    assert_eq!(rb.status.code(), Some(0), "{}", stderr(&rb));
    assert_eq!(
        posts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "delivered once for the team"
    );
    let sent = |o: &std::process::Output| json_out(o)["sent"].as_array().map_or(0, Vec::len);
    assert_eq!(
        sent(&ra) + sent(&rb),
        1,
        "once for the team: {} / {}",
        String::from_utf8_lossy(&ra.stdout),
        String::from_utf8_lossy(&rb.stdout)
    );
    let sender = if sent(&ra) == 1 { "host-a" } else { "host-b" };
    let l = LedgerStore::in_db(pg::open(&url)).load().unwrap();
    let r = &l.tenants[0].reminders_sent;
    assert!(!r.is_empty());
    assert!(
        r.iter().all(|x| x.sent_by.as_deref() == Some(sender)),
        "{r:?}"
    );
}

/// A roll made on host A and confirmed on host B (which never saw the roll itself) counts as
/// confirmed for the team: host A's next `renew --all` retires the old key, and both hosts'
/// `status --check` say OK.
#[tokio::test(flavor = "multi_thread")]
async fn a_roll_confirmed_on_one_host_is_confirmed_for_the_other() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let b = Tool::for_emulator(&emu);
    let url = pg::url("confirm");
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(10),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(700),
    );
    let (op, np) = (a.write_cert("old.pem", &old), a.write_cert("new.pem", &new));
    let a_run = |args: &[&str]| run(host(&a, &url, "host-a", args));
    let b_run = |args: &[&str]| run(host(&b, &url, "host-b", args));
    let o = a_run(&[
        "credential",
        "upload",
        "--tenant",
        &t,
        "--cert",
        &op,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = a_run(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // B sees the pending roll A made.
    let v = json_out(&b_run(&["status", "--tenant", &t]));
    assert_eq!(v["tenants"][0]["state"], "roll-pending", "{v}");
    // The EffectiveDate passes (moved in the team's record as time would move it), and B
    // confirms from the server's own output.
    let at = now - TimeDelta::minutes(5);
    LedgerStore::in_db(pg::open(&url))
        .update(&t, None, Duration::from_secs(5), |l| {
            for r in &mut l.tenants {
                if r.next_cert.is_some() {
                    r.roll_effective = Some(at);
                }
            }
        })
        .unwrap();
    let saved = b.dir.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    std::fs::write(
        saved.join("Get-CsCertificate.txt"),
        format!(
            "Thumbprint    : {}\r\nEffectiveDate : {}\r\nUse           : OAuthTokenIssuer\r\n",
            new.sha1_hex(),
            at.format("%Y-%m-%dT%H:%M:%S%.6f0Z")
        ),
    )
    .unwrap();
    let o = b_run(&[
        "renew",
        "--tenant",
        &t,
        "--confirm-roll",
        "--current",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A renews: the roll is confirmed for it too, so the old key goes.
    let o = a_run(&["renew", "--all", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_out(&o)["results"][0]["decision"]["action"],
        "retire",
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let ks = emu.sp(SFB).await["keyCredentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ks.len(), 1, "only the new key is left: {ks:?}");
    for tool in [&a, &b] {
        let mut c = tool.command();
        c.env("HYBRID_TRUST_STATE_URL", &url)
            .env("PGPASSWORD", &pg::server().password)
            .env_remove("PGPASSFILE")
            .args(["status", "--all", "--check"]);
        let o = c.output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// The real server stopped and started in the middle of a renewal: the key is in Graph, and the
/// run is about to record it (the test holds the team's whole-ledger lock, so the record waits
/// for it) when the server goes down. One `error:` line naming the database, exit 1, the
/// team's record as it was (nothing half-written); once the server is back, the next run
/// reconciles: the ledger knows the key Graph holds, and no second key is added.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_stopped_and_started_mid_run() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let own = pg::Server::own();
    let url = own.url("restart");
    let t = emu.tenant.domain.clone();
    upload_due_key_on(&own.password, &emu, &a, &url);
    let before = LedgerStore::in_db(own.open(&url)).load().unwrap().tenants;
    let guard = LedgerStore::in_db(own.open(&url))
        .lock(Duration::from_secs(5))
        .unwrap();
    let mut c = host_on(
        &own.password,
        &a,
        &url,
        "host-a",
        &["renew", "--tenant", &t, "--yes"],
    );
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run waits for a lock in the database: the record, after Graph's change.
    let waiting = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s USING (pid) \
                   WHERE NOT l.granted AND l.locktype = 'advisory' \
                   AND s.application_name = 'hybrid-trust host-a'";
    while own.sql(waiting) == "0" {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(20));
    }
    let key_ids = |sp: Value| -> std::collections::BTreeSet<String> {
        sp["keyCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["keyId"].as_str().unwrap().to_string())
            .collect()
    };
    let recorded =
        |tenants: &[hybrid_trust::ledger::TenantRecord]| -> std::collections::BTreeSet<String> {
            tenants[0]
                .credentials
                .iter()
                .filter_map(|c| c.key_id.clone())
                .collect()
        };
    let in_graph = key_ids(emu.sp(SFB).await);
    assert_ne!(in_graph, recorded(&before), "Graph's change is made");
    own.stop();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = one_error_line(&o);
    // The record fails on the lost connection (the server is unreachable) or, when the run
    // sees first that its tenant lock went with the server, on that: either names the database
    // and says the next run reconciles.
    let db = format!("state database postgres://ht@127.0.0.1:{}/", own.port);
    assert!(
        e.contains(&format!("cannot reach the {db}"))
            || (e.contains(&format!("the {db}")) && e.contains("was lost with its connection")),
        "{e}"
    );
    assert!(
        e.contains("the next run reads Graph and reconciles")
            || e.contains("reconciled by the next run"),
        "{e}"
    );
    drop(guard);
    own.start();
    // Nothing half-written: the team's record is as it was before the run.
    let store = LedgerStore::in_db(own.open(&url));
    assert_eq!(store.load().unwrap().tenants, before);
    // The next run reconciles: the ledger learns the key Graph holds; no key is added.
    let o = run(host_on(
        &own.password,
        &a,
        &url,
        "host-a",
        &["renew", "--tenant", &t, "--yes"],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        key_ids(emu.sp(SFB).await),
        in_graph,
        "no key added or removed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        recorded(&store.load().unwrap().tenants),
        in_graph,
        "the ledger knows the key Graph holds"
    );
}

/// The child of [`a_host_killed_while_holding_a_tenant_lock_frees_it`]: takes the lock named in
/// its environment and waits to be killed. Run alone (without that environment) it does nothing.
#[test]
fn lock_holder_child() {
    let (Ok(url), Ok(pw)) = (
        std::env::var("HT_TEST_LOCK_URL"),
        std::env::var("HT_TEST_LOCK_PW"),
    ) else {
        return;
    };
    let u = hybrid_trust::state::StateUrl::parse(&url).unwrap();
    let pg = hybrid_trust::state::pg::PgState::open_with(
        &u,
        Some(hybrid_trust::secret::SecretString::new(pw)),
    )
    .unwrap();
    let _held =
        hybrid_trust::lock::TenantLock::acquire_db(&pg, "contoso.com", Duration::ZERO).unwrap();
    println!("HELD");
    loop {
        std::thread::park();
    }
}

/// `kill -9` of a host holding a tenant's lock: the server ends its session and the lock with it.
#[test]
fn a_host_killed_while_holding_a_tenant_lock_frees_it() {
    use std::io::BufRead as _;
    let url = pg::url("kill9");
    let state = pg::open(&url);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HT_TEST_LOCK_URL", &url)
        .env("HT_TEST_LOCK_PW", &pg::server().password)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("HELD")),
        "the child took the lock"
    );
    let busy = hybrid_trust::lock::TenantLock::acquire_db(&state, "contoso.com", Duration::ZERO);
    assert!(busy.is_err(), "held by the child");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The server notices the closed connection; the lock is free once it has.
    let got =
        hybrid_trust::lock::TenantLock::acquire_db(&state, "contoso.com", Duration::from_secs(60));
    assert!(got.is_ok(), "{got:?}");
}

/// A server restart ends the connection holding a tenant's lock: the session refuses to record
/// as if it still held it (the next run reconciles), and the store goes on on a new connection.
#[test]
fn a_lock_lost_with_its_connection_is_noticed() {
    let url = pg::url("lost");
    let state = pg::open(&url);
    let store = LedgerStore::in_db(state.clone());
    let lock =
        hybrid_trust::lock::TenantLock::acquire_db(&state, "contoso.com", Duration::ZERO).unwrap();
    assert!(lock.check().is_ok());
    store.load().unwrap();
    pg::sql(&format!(
        "SELECT pg_terminate_backend({})",
        lock.backend_pid().unwrap()
    ));
    // The server ends it asynchronously; the client sees the close on its next poll.
    let mut lost = false;
    for _ in 0..200 {
        if lock.check().is_err() {
            lost = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(lost, "the lost lock is noticed");
    let e = lock.check().unwrap_err();
    assert!(e.to_string().contains("postgres://ht@127.0.0.1"), "{e}");
    // The store itself carries on.
    store
        .update("contoso.com", None, Duration::from_secs(5), |l| {
            l.tenant_entry_for("contoso.com", None, "global", &[], Utc::now());
        })
        .unwrap();
    assert_eq!(store.load().unwrap().tenants.len(), 1);
}

fn plain(url: &str, password: Option<&str>, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
    c.env("HYBRID_TRUST_STATE_DIR", dir.path().join("state"))
        .env("HYBRID_TRUST_STATE_URL", url)
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env("HOME", dir.path())
        .env_remove("PGPASSFILE")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .stdin(std::process::Stdio::null())
        .args(args);
    match password {
        Some(p) => c.env("PGPASSWORD", p),
        None => c.env_remove("PGPASSWORD"),
    };
    c.output().unwrap()
}

fn one_error_line(o: &std::process::Output) -> String {
    let e = stderr(o);
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{e}"
    );
    e
}

/// Bad days: a wrong password, no server, a password in the URL, a schema from a newer build:
/// one `error:` line naming the database (never the password) and the fix; exit 1 (2 for the
/// URL), `status --check` UNKNOWN; nothing written.
#[test]
fn bad_days_give_one_error_line_naming_the_database_and_the_fix() {
    let url = pg::url("bad_days");
    let pw = pg::server().password.clone();
    // A good run first (makes the schema).
    let o = plain(&url, Some(&pw), &["status", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = plain(&url, Some("wrong-Pa55word"), &["-vv", "status", "--all"]);
    assert_eq!(o.status.code(), Some(1));
    let e = one_error_line(&o);
    assert!(e.contains("refused the password for user ht"), "{e}");
    assert!(
        e.contains(&format!("127.0.0.1:{}/postgres", pg::server().port)),
        "{e}"
    );
    assert!(e.contains("PGPASSWORD") && e.contains(".pgpass"), "{e}");
    assert!(
        !e.contains("wrong-Pa55word")
            && !String::from_utf8_lossy(&o.stdout).contains("wrong-Pa55word")
    );
    let o = plain(
        &url,
        Some("wrong-Pa55word"),
        &["status", "--all", "--check"],
    );
    assert_eq!(o.status.code(), Some(3), "UNKNOWN: {}", stderr(&o));
    // No password at all.
    let o = plain(&url, None, &["status", "--all"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        one_error_line(&o).contains("needs a password"),
        "{}",
        stderr(&o)
    );
    // A passfile is a source (0600), the keyring is not reached for it.
    // No server on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = plain(
        &format!("postgres://ht@127.0.0.1:{port}/team"),
        Some(&pw),
        &["status", "--all"],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = one_error_line(&o);
    assert!(
        e.contains(&format!(
            "cannot reach the state database postgres://ht@127.0.0.1:{port}/team"
        )),
        "{e}"
    );
    assert!(e.contains("check that the server is running"), "{e}");
    // A password in the URL is refused and not shown.
    let o = plain(
        &format!(
            "postgres://ht:Sup3rSecret@127.0.0.1:{}/postgres",
            pg::server().port
        ),
        None,
        &["status", "--all"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = one_error_line(&o);
    assert!(!e.contains("Sup3rSecret"), "{e}");
    assert!(e.contains("PGPASSWORD"), "{e}");
    // A newer schema is refused by this (older) build, nothing changed.
    let schema = url.split("schema=").nth(1).unwrap().to_string();
    pg::sql(&format!(
        "INSERT INTO {schema}.schema_version (version, applied_by) VALUES (99, 'a newer build')"
    ));
    let o = plain(&url, Some(&pw), &["tenant", "add", "contoso.com"]);
    assert_eq!(o.status.code(), Some(1));
    let e = one_error_line(&o);
    assert!(
        e.contains("schema version 99, newer than this hybrid-trust understands (1)"),
        "{e}"
    );
    assert!(e.contains("upgrade hybrid-trust"), "{e}");
    assert_eq!(
        pg::sql(&format!("SELECT count(*) FROM {schema}.tenants")),
        "0"
    );
}

/// A passfile (mode 0600) gives the password; one others can read is ignored, as libpq does.
#[test]
fn the_password_comes_from_a_passfile() {
    let url = pg::url("passfile");
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pgpass");
    std::fs::write(
        &pass,
        format!(
            "# team\n127.0.0.1:{}:postgres:ht:{}\n",
            pg::server().port,
            pg::server().password.replace(':', "\\:")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
        c.env("HYBRID_TRUST_STATE_DIR", dir.path().join("state"))
            .env("HYBRID_TRUST_STATE_URL", &url)
            .env("HYBRID_TRUST_KEYRING", "none-in-tests")
            .env("PGPASSFILE", &pass)
            .env_remove("PGPASSWORD")
            .args(["status", "--all"]);
        c.output().unwrap()
    };
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// `state migrate` both ways with 10,000 tenants, the audit log and reminder records; a target
/// that holds tenants is refused (exit 2) and left as it was.
#[test]
fn state_migrate_both_ways_with_ten_thousand_tenants() {
    use hybrid_trust::ledger::ReminderSent;
    let url = pg::url("migrate");
    let pw = pg::server().password.clone();
    // 20,000 record files written with an fsync each: on tmpfs where there is one.
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let src = dir.path().join("src");
    let now = Utc::now();
    let store = LedgerStore::in_dir(&src);
    std::fs::create_dir_all(&src).unwrap();
    let mut g = store.lock(Duration::from_secs(5)).unwrap();
    for i in 0..10_000 {
        let mut t = hybrid_trust::ledger::TenantRecord::new(
            &format!("tenant-{i:05}.onmicrosoft.com"),
            "global",
            vec![],
            now,
        );
        t.seq = i;
        if i % 10 == 0 {
            t.reminders_sent.push(ReminderSent {
                credential: format!("c{i}"),
                threshold_days: 30,
                channel: "stdout".into(),
                sent_at: now,
                sent_by: None,
            });
        }
        g.ledger.tenants.push(t);
    }
    g.commit().unwrap();
    let audit: String = (0..250)
        .map(|i| format!("{{\"ts\":\"2026-01-01T00:00:00Z\",\"n\":{i}}}\n"))
        .collect();
    std::fs::write(src.join("audit.log"), &audit).unwrap();
    let migrate = |state_dir: &std::path::Path, state_url: Option<&str>, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
        c.env("HYBRID_TRUST_STATE_DIR", state_dir)
            .env("HYBRID_TRUST_KEYRING", "none-in-tests")
            .env("PGPASSWORD", &pw)
            .env_remove("HYBRID_TRUST_STATE_URL")
            .args(["--output", "json"]);
        if let Some(u) = state_url {
            c.args(["--state-url", u]);
        }
        c.args(["state", "migrate"]).args(args);
        c.output().unwrap()
    };
    // A dry run counts and writes nothing.
    let o = migrate(&src, None, &["--to", &url, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["tenants"], 10_000);
    let o = migrate(&src, None, &["--to", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = json_out(&o);
    assert_eq!(
        (
            c["tenants"].as_u64(),
            c["audit_entries"].as_u64(),
            c["reminders"].as_u64()
        ),
        (Some(10_000), Some(250), Some(1_000))
    );
    let db = LedgerStore::in_db(pg::open(&url));
    let want = store.load().unwrap();
    assert_eq!(db.load().unwrap().tenants, want.tenants);
    // Again: refused, exit 2, nothing added.
    let o = migrate(&src, None, &["--to", &url]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_error_line(&o).contains("already holds 10000 tenant(s)"));
    assert_eq!(pg::open(&url).audit_lines().unwrap().len(), 250);
    // Back to a new state dir.
    let back = dir.path().join("back");
    let o = migrate(
        &dir.path().join("unused"),
        Some(&url),
        &["--to", back.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["tenants"], 10_000);
    assert_eq!(
        LedgerStore::in_dir(&back).load().unwrap().tenants,
        want.tenants
    );
    assert_eq!(
        std::fs::read_to_string(back.join("audit.log")).unwrap(),
        audit
    );
    // And into that non-empty dir: refused.
    let o = migrate(
        &dir.path().join("unused"),
        Some(&url),
        &["--to", back.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A `renew --all` at `--concurrency 1000` records hundreds of tenants at once: they queue on a
/// few pooled connections (at most 8) instead of opening one each (a server allows 100 by
/// default; more are refused with "too many clients"). The server's sessions are counted while
/// the records run, on a server of this test's own.
#[test]
fn a_thousand_records_at_once_share_a_few_connections() {
    let srv = pg::Server::own();
    let url = srv.url("pool");
    let store = LedgerStore::in_db(srv.open(&url));
    let now = Utc::now();
    let names: Vec<String> = (0..1000).map(|i| format!("t{i:04}.example.com")).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (most, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut most, mut samples) = (0i64, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let n: i64 = srv
                    .sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'hybrid-trust %'")
                    .parse()
                    .unwrap();
                most = most.max(n);
                samples += 1;
            }
            (most, samples)
        });
        let all = rt.block_on(futures_util::future::join_all(names.iter().map(|n| {
            store.update_async(n, None, Duration::from_secs(60), move |l| {
                l.tenant_entry_for(n, None, "global", &[], now);
            })
        })));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in all {
            r.unwrap();
        }
        sampler.join().unwrap()
    });
    assert_eq!(store.load().unwrap().tenants.len(), 1000);
    assert!(samples >= 2, "the sessions were counted during the records");
    assert!(most <= 9, "{most} sessions at once");
}

/// Two hosts' worth of locks: the second waits for two hundred tenants the first holds, all of
/// them on its one lock connection, and gets each once it is free; a wait that ends first takes
/// nothing (the lock stays free for anyone).
#[tokio::test(flavor = "multi_thread")]
async fn many_waiters_get_their_locks_and_a_wait_that_ends_takes_none() {
    let url = pg::url("waiters");
    let (a, b, c) = (pg::open(&url), pg::open(&url), pg::open(&url));
    let names: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let mut held = Vec::new();
    for n in names.iter().chain(["x".to_string()].iter()) {
        held.push(a.lock("tenant", n, Duration::ZERO).unwrap());
    }
    // A try on a held lock fails at once.
    let busy = b
        .lock_async("tenant", "t0", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(busy.to_string().contains("tenant t0"), "{busy}");
    let short = b.lock_async("tenant", "x", Duration::from_millis(200));
    let waits = futures_util::future::join_all(
        names
            .iter()
            .map(|n| b.lock_async("tenant", n, Duration::from_secs(60))),
    );
    let release = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(held);
    };
    let (short, got, ()) = tokio::join!(short, waits, release);
    assert!(short.is_err(), "x was held for the whole wait");
    let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(got.len(), 200);
    // One lock connection holds them all.
    let pids: std::collections::HashSet<i32> = got.iter().map(|l| l.backend_pid).collect();
    assert_eq!(pids.len(), 1);
    // Held by b: a third session cannot take them.
    assert!(c.lock("tenant", "t7", Duration::ZERO).is_err());
    // A wait that ends as its lock comes free: it either has the lock, or the lock is free for
    // anyone; never neither (taken for a waiter that left, and kept). Released around the wait's
    // end, 80 to 120 ms, against the poller's 50 ms ticks.
    held_x(&a, &b, &c).await;
}

/// The races of [`many_waiters_get_their_locks_and_a_wait_that_ends_takes_none`] at a wait's
/// end: a hundred waits of 100 ms whose locks come free at 95 ms, so the poller's tick near
/// 100 ms takes them while the waits end; some are handed over in time, some are taken for a
/// waiter that has just left (and must be given back). Afterwards every lock is free or held by
/// a waiter that got it.
async fn held_x(
    a: &hybrid_trust::state::pg::PgState,
    b: &hybrid_trust::state::pg::PgState,
    c: &hybrid_trust::state::pg::PgState,
) {
    for round in 0..5 {
        let names: Vec<String> = (0..100).map(|j| format!("race{round}-{j}")).collect();
        let held: Vec<_> = names
            .iter()
            .map(|n| a.lock("tenant", n, Duration::ZERO).unwrap())
            .collect();
        let waits = futures_util::future::join_all(
            names
                .iter()
                .map(|n| b.lock_async("tenant", n, Duration::from_millis(100))),
        );
        let release = async {
            tokio::time::sleep(Duration::from_millis(95)).await;
            drop(held);
        };
        let (got, ()) = tokio::join!(waits, release);
        drop(got);
        for n in &names {
            let again = c.lock_async("tenant", n, Duration::from_secs(5)).await;
            assert!(again.is_ok(), "{n}: the lock was kept by nobody: {again:?}");
        }
    }
}

/// `renew --all` with the team's database does the tenants it can first: one another host holds
/// is done after the others (here, once the holder lets go), not in their way. `--concurrency 1`,
/// the held tenant first in the fleet's order.
#[tokio::test(flavor = "multi_thread")]
async fn renew_all_renews_the_free_tenants_while_another_host_holds_one() {
    let mut cfg = quiet_tls();
    cfg.tenants = vec![
        "a.onmicrosoft.com".into(),
        "b.onmicrosoft.com".into(),
        "c.onmicrosoft.com".into(),
    ];
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let url = pg::url("held_one");
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    for t in [
        "a.onmicrosoft.com",
        "b.onmicrosoft.com",
        "c.onmicrosoft.com",
    ] {
        let c = host(
            &tool,
            &url,
            "host-a",
            &[
                "credential",
                "upload",
                "--tenant",
                t,
                "--cert",
                &p,
                "--yes",
                "--end",
                &end,
            ],
        );
        let o = tokio::task::spawn_blocking(move || run(c)).await.unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let store = LedgerStore::in_db(pg::open(&url));
    let ends = |t: &str| -> Vec<String> {
        store
            .tenant(t, None)
            .unwrap()
            .unwrap()
            .credentials
            .iter()
            .map(|c| c.end.to_rfc3339())
            .collect()
    };
    let before: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| ends(&format!("{t}.onmicrosoft.com")))
        .collect();
    // Another host holds tenant a (its lock is keyed by the tenant id).
    let id_a = emu.running.ready.tenants[0].tenant_id.clone();
    let other = pg::open(&url);
    let held = hybrid_trust::lock::TenantLock::acquire_db(&other, &id_a, Duration::ZERO).unwrap();
    let c = host(
        &tool,
        &url,
        "host-b",
        &["renew", "--all", "--yes", "--concurrency", "1"],
    );
    let mut c = c;
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // b and c are renewed while a is still held.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (b, c) = (ends("b.onmicrosoft.com"), ends("c.onmicrosoft.com"));
        if b != before[1] && c != before[2] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b and c were not renewed while a was held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the run waits for a");
    assert_eq!(
        ends("a.onmicrosoft.com"),
        before[0],
        "a is not touched while held"
    );
    drop(held);
    // It ends soon after a is free (not after the five minutes a lock wait may take).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("renew --all did not end once a was free");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    let outcomes: Vec<(&str, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tenant"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a.onmicrosoft.com", "applied"),
            ("b.onmicrosoft.com", "applied"),
            ("c.onmicrosoft.com", "applied")
        ],
        "in the fleet's order"
    );
    assert_ne!(ends("a.onmicrosoft.com"), before[0]);
}

/// A CA and a server certificate it signs for `names` (host names or IP addresses), as PEM:
/// (CA certificate, server certificate, server key).
fn tls_files(names: &[&str]) -> (String, String, String) {
    let ca_key = pooled_key();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "hybrid-trust test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = pooled_key();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let cert = p.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// TLS to a real server (issue 26): `verify-full` with the team's CA connects (and the server
/// sees an encrypted session), `require` connects without checking, and a CA that did not sign
/// the server's certificate, or a certificate for another host, is one `error:` line naming the
/// database and the fix, exit 1, nothing written.
#[test]
fn tls_verify_full_require_and_the_wrong_ca_or_host() {
    let srv = pg::Server::own();
    let data = srv.data.clone().unwrap();
    let (ca, cert, key) = tls_files(&["127.0.0.1", "localhost"]);
    std::fs::write(data.join("server.crt"), cert).unwrap();
    std::fs::write(data.join("server.key"), key).unwrap();
    for f in ["server.crt", "server.key"] {
        let _ = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.join(f))
            .status();
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    srv.sql("ALTER SYSTEM SET ssl = on");
    srv.sql("SELECT pg_reload_conf()");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("team-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (other_ca, _, _) = tls_files(&["127.0.0.1"]);
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, &other_ca).unwrap();
    let url = |q: &str| format!("{}?schema=tls&{q}", srv.base);
    // verify-full with the team's CA (the reload takes a moment).
    let good = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ));
    let mut opened = None;
    for _ in 0..100 {
        match hybrid_trust::state::pg::PgState::open_with(
            &hybrid_trust::state::StateUrl::parse(&good).unwrap(),
            Some(hybrid_trust::secret::SecretString::new(
                srv.password.clone(),
            )),
        ) {
            Ok(s) => {
                opened = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let state = opened.expect("verify-full with the team's CA connects");
    assert_eq!(state.tenant_count().unwrap(), 0);
    let encrypted = srv.sql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.application_name LIKE 'hybrid-trust %'",
    );
    assert_ne!(encrypted, "0", "the server sees TLS sessions");
    let plain_sessions = srv.sql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE NOT s.ssl AND a.application_name LIKE 'hybrid-trust %'",
    );
    assert_eq!(plain_sessions, "0");
    // The command line, the same way.
    let o = plain(&good, Some(&srv.password), &["status", "--all"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // require: encrypted, the certificate not checked.
    let o = plain(
        &url("sslmode=require"),
        Some(&srv.password),
        &["status", "--all"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A CA that did not sign the server's certificate.
    let wrong_ca = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other_ca_file.display()
    ));
    let o = plain(&wrong_ca, Some(&srv.password), &["status", "--all"]);
    assert_eq!(o.status.code(), Some(1));
    let line = one_error_line(&o);
    assert!(line.contains("postgres://ht@127.0.0.1"), "{line}");
    assert!(line.contains("sslrootcert"), "the fix is named: {line}");
    assert!(!line.contains(&srv.password));
    // A certificate for another host name: verify-full checks the name too.
    let (ca2, cert2, key2) = tls_files(&["db.example.net"]);
    std::fs::write(data.join("server.crt"), cert2).unwrap();
    std::fs::write(data.join("server.key"), key2).unwrap();
    std::fs::write(&ca_file, ca2).unwrap();
    srv.sql("SELECT pg_reload_conf()");
    let mut refused = false;
    for _ in 0..100 {
        let o = plain(&good, Some(&srv.password), &["status", "--all"]);
        if o.status.code() == Some(1) {
            let line = one_error_line(&o);
            assert!(line.contains("sslrootcert"), "{line}");
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused, "a certificate for another host is refused");
}

/// The password from the keyring (the kernel keyring, under `keyctl session`): without a
/// password the database refuses; after `state remember-password` the same commands work with
/// no `PGPASSWORD` and no passfile; the password is never printed.
#[test]
fn the_password_comes_from_the_keyring() {
    if std::process::Command::new("keyctl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("keyctl is missing: run scripts/test.sh (it installs keyutils)");
    }
    let srv = pg::server();
    let url = pg::url("keyring");
    let dir = tempfile::tempdir().unwrap();
    let u = url::Url::parse(&url).unwrap();
    let entry = format!(
        "keyring:state-password:ht@127.0.0.1:{}/postgres@hybrid-trust",
        u.port().unwrap()
    );
    let script = dir.path().join("s.sh");
    std::fs::write(
        &script,
        format!(
            "set -u\n\
             export HYBRID_TRUST_KEYRING=keyutils HYBRID_TRUST_STATE_URL='{url}' \
             HYBRID_TRUST_STATE_DIR='{d}/state' HOME='{d}'\n\
             unset PGPASSWORD PGPASSFILE HYBRID_TRUST_OUTPUT\n\
             H='{h}'\n\
             $H status --all; echo \"rc=$?\"\n\
             PGPASSWORD='{pw}' $H state remember-password; echo \"rc=$?\"\n\
             $H tenant add contoso.com; echo \"rc=$?\"\n\
             $H --output json status --all; echo \"rc=$?\"\n\
             P=$(keyctl get_persistent @s); K=$(keyctl search $P user \"{entry}\") \
             && keyctl unlink $K $P >/dev/null && echo removed\n",
            d = dir.path().display(),
            h = env!("CARGO_BIN_EXE_hybrid-trust"),
            pw = srv.password,
        ),
    )
    .unwrap();
    let out = std::process::Command::new("timeout")
        .args(["60", "keyctl", "session", "-", "bash"])
        .arg(&script)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let rcs: Vec<&str> = text.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(rcs, vec!["rc=1", "rc=0", "rc=0", "rc=0"], "{text}");
    assert!(
        text.contains("password"),
        "the refusal names the password: {text}"
    );
    assert!(text.contains("stored the password for"), "{text}");
    assert!(text.contains("\"contoso.com\""), "{text}");
    assert!(
        text.contains("removed"),
        "the test's entry is removed: {text}"
    );
    assert!(!text.contains(&srv.password), "never printed");
}

/// A wait that ends while the server is down says so ("cannot reach"), not "busy"; once the
/// server is back, a wait on a lock another session holds is "busy" again (the outage is not
/// reported after it ended).
#[tokio::test(flavor = "multi_thread")]
async fn a_wait_during_an_outage_names_it_and_the_next_one_is_busy() {
    let srv = pg::Server::own();
    let url = srv.url("outage");
    let (a, b) = (srv.open(&url), srv.open(&url));
    let held = a.lock("tenant", "k1", Duration::ZERO).unwrap();
    let wait = {
        let b = b.clone();
        tokio::spawn(async move {
            b.lock_async("tenant", "k1", Duration::from_millis(600))
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::task::block_in_place(|| srv.stop());
    let e = wait.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("cannot reach"), "{e}");
    drop(held);
    tokio::task::block_in_place(|| srv.start());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = srv.open(&url);
    let _k2 = c.lock("tenant", "k2", Duration::ZERO).unwrap();
    for ms in [60, 150] {
        let e = b
            .lock_async("tenant", "k2", Duration::from_millis(ms))
            .await
            .unwrap_err();
        assert!(
            matches!(e, hybrid_trust::state::StateError::Busy { .. }),
            "a {ms} ms wait: {e}"
        );
    }
}
