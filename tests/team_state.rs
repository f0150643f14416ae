//! Team state in PostgreSQL (issue 26), against a real server (tests/support/pg.rs): two
//! processes with different state dirs on one URL, renewing and reminding at the same moment;
//! `kill -9` while a tenant lock is held; a lock lost with its connection; the bad days (wrong
//! password, no server, a password in the URL, a newer schema); `state migrate` both ways with
//! 10,000 tenants.

#[path = "support/pg.rs"]
mod pg;
#[allow(dead_code, unused_imports)]
mod support;

use chrono::{TimeDelta, Utc};
use hybrid_trust::ledger::LedgerStore;
use serde_json::Value;
use std::time::Duration;
use support::*;

/// A host: its own state dir, the team's URL, its own name.
fn host(tool: &Tool, url: &str, name: &str, args: &[&str]) -> std::process::Command {
    let mut c = tool.command();
    c.env("HYBRID_TRUST_STATE_URL", url)
        .env("PGPASSWORD", &pg::server().password)
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

/// Two hosts (their own state dirs, one URL): a key uploaded by one is known to the other (not
/// foreign); `remind --all` on both at once delivers once and the record says which host sent
/// it; `renew` on both at once renews the tenant once.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_on_one_url_remind_once_and_renew_once() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let b = Tool::for_emulator(&emu);
    let url = pg::url("two_hosts");
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(700),
    );
    let p = a.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(15)).format("%Y-%m-%d").to_string();
    let o = run(host(
        &a,
        &url,
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
    // Reminders, both hosts at once.
    for tool in [&a, &b] {
        std::fs::write(
            tool.dir.path().join("config.toml"),
            "[reminders]\nstdout = true\n",
        )
        .unwrap();
    }
    let cfg = |tool: &Tool| tool.dir.path().join("config.toml").display().to_string();
    let (ra, rb) = both(
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
    assert_eq!(ra.status.code(), Some(0), "{}", stderr(&ra));
    assert_eq!(rb.status.code(), Some(0), "{}", stderr(&rb));
    let sent = |o: &std::process::Output| json_out(o)["sent"].as_array().map_or(0, Vec::len);
    assert_eq!(
        sent(&ra) + sent(&rb),
        1,
        "once for the team: {} / {}",
        String::from_utf8_lossy(&ra.stdout),
        String::from_utf8_lossy(&rb.stdout)
    );
    let sender = if sent(&ra) == 1 { "host-a" } else { "host-b" };
    let store = LedgerStore::in_db(pg::open(&url));
    let l = store.load().unwrap();
    let r = &l.tenants[0].reminders_sent;
    assert!(!r.is_empty());
    assert!(
        r.iter().all(|x| x.sent_by.as_deref() == Some(sender)),
        "{r:?}"
    );
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
