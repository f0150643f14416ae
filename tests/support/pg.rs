//! A throwaway PostgreSQL for the team-state tests (issue 26): `HYBRID_TRUST_TEST_PG_URL` (a
//! base URL such as postgres://ht@127.0.0.1:5432/postgres, the password in
//! `HYBRID_TRUST_TEST_PG_PASSWORD`), else one cluster per test binary: initdb in a temporary
//! folder (as the `postgres` user when run as root), SCRAM passwords, a free loopback port; it
//! stops when the test binary exits (its shell waits on a pipe the binary holds). Each test gets
//! a schema of its own.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct Server {
    /// postgres://USER@127.0.0.1:PORT/postgres
    pub base: String,
    pub password: String,
    pub port: u16,
    pub bin: std::path::PathBuf,
    pub data: Option<std::path::PathBuf>,
    _keep: Option<(
        tempfile::TempDir,
        std::process::ChildStdin,
        std::process::Child,
    )>,
}

fn bin_dir() -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server is not installed (scripts/test.sh installs postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn as_postgres(cmd: &str, args: &[&str]) -> Command {
    let root = std::env::var("USER").as_deref() == Ok("root")
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", cmd]).args(args);
        c
    } else {
        let mut c = Command::new(cmd);
        c.args(args);
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        if let Ok(base) = std::env::var("HYBRID_TRUST_TEST_PG_URL") {
            let port = url::Url::parse(&base).unwrap().port().unwrap_or(5432);
            return Server {
                base,
                password: std::env::var("HYBRID_TRUST_TEST_PG_PASSWORD").unwrap_or_default(),
                port,
                bin: bin_dir(),
                data: None,
                _keep: None,
            };
        }
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(&pwfile, &password).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let initdb = bin.join("initdb");
        let o = as_postgres(
            initdb.to_str().unwrap(),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "ht",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "initdb: {}", String::from_utf8_lossy(&o.stderr));
        let port = free_port();
        let postgres = bin.join("postgres");
        // The shell stops the server when the test binary's end of the pipe closes.
        let script = format!(
            "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >{}/log 2>&1 & pid=$!; cat >/dev/null; kill -INT $pid; wait $pid",
            postgres.display(),
            data.display(),
            dir.path().display(),
            dir.path().display()
        );
        let mut child = as_postgres("sh", &["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let base = format!("postgres://ht@127.0.0.1:{port}/postgres");
        // Ready when it accepts a connection (pg_isready polls; no fixed sleep).
        let isready = bin.join("pg_isready");
        for _ in 0..600 {
            let ok = Command::new(&isready)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Server {
            base,
            password,
            port,
            bin,
            data: Some(data),
            _keep: Some((dir, stdin, child)),
        }
    })
}

/// A state URL on a schema of its own for `test`.
pub fn url(test: &str) -> String {
    let s = server();
    let schema: String = format!(
        "t_{test}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    })
    .take(60)
    .collect();
    format!("{}?schema={schema}", s.base)
}

/// The library's handle on `url`.
pub fn open(url: &str) -> std::sync::Arc<hybrid_trust::state::pg::PgState> {
    let u = hybrid_trust::state::StateUrl::parse(url).unwrap();
    hybrid_trust::state::pg::PgState::open_with(
        &u,
        Some(hybrid_trust::secret::SecretString::new(
            server().password.clone(),
        )),
    )
    .unwrap()
}

/// Runs SQL as the test role (for what a test does to the server: end a connection).
pub fn sql(query: &str) -> String {
    let s = server();
    let o = Command::new(s.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-U",
            "ht",
            "-d",
            "postgres",
            "-At",
            "-c",
            query,
        ])
        .env("PGPASSWORD", &s.password)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
