//! A throwaway PostgreSQL for the team-state tests (issue 26): `HYBRID_TRUST_TEST_PG_URL` (a
//! base URL such as postgres://ht@127.0.0.1:5432/postgres, the password in
//! `HYBRID_TRUST_TEST_PG_PASSWORD`), else one cluster per test binary: initdb in a temporary
//! folder (as the `postgres` user when run as root), SCRAM passwords, a free loopback port; it
//! stops when the test binary exits (its shell waits on a pipe the binary holds). Each test gets
//! a schema of its own. [`Server::own`] gives a test a cluster of its own to stop and start.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The shell's stdin (orders) and stdout (answers).
type Orders = std::sync::Mutex<(
    std::process::ChildStdin,
    std::io::BufReader<std::process::ChildStdout>,
)>;

pub struct Server {
    /// postgres://USER@127.0.0.1:PORT/postgres
    pub base: String,
    pub password: String,
    pub port: u16,
    pub bin: std::path::PathBuf,
    pub data: Option<std::path::PathBuf>,
    /// The cluster's folder, the shell's stdin and stdout (its orders), the shell.
    _keep: Option<(tempfile::TempDir, Orders, std::process::Child)>,
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
        Server::cluster()
    })
}

impl Server {
    /// A cluster of the caller's own (one it may stop and start), stopped when dropped.
    pub fn own() -> Server {
        Server::cluster()
    }

    fn cluster() -> Server {
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
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = free_port();
        let postgres = bin.join("postgres");
        // The shell runs the server and obeys `stop` / `start` lines on its stdin (answering
        // `stopped` / `started`); it stops the server when the test binary's end of the pipe
        // closes.
        let script = format!(
            "run() {{ {} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >>{}/log 2>&1 & pid=$!; }}; run; \
             while read cmd; do case \"$cmd\" in stop) kill -INT $pid; wait $pid; echo stopped;; start) run; echo started;; esac; done; \
             kill -INT $pid; wait $pid",
            postgres.display(),
            data.display(),
            dir.path().display(),
            dir.path().display()
        );
        let mut child = as_postgres("sh", &["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Not the test's stderr: the shell outlives a test by the server's shutdown.
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let base = format!("postgres://ht@127.0.0.1:{port}/postgres");
        let s = Server {
            base,
            password,
            port,
            bin,
            data: Some(data),
            _keep: Some((dir, std::sync::Mutex::new((stdin, stdout)), child)),
        };
        s.wait_ready();
        s
    }

    /// Waits until the server accepts connections (pg_isready polls; no fixed sleep).
    fn wait_ready(&self) {
        let isready = self.bin.join("pg_isready");
        for _ in 0..600 {
            let ok = Command::new(&isready)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("PostgreSQL on port {} did not start", self.port);
    }

    fn order(&self, cmd: &str, answer: &str) {
        use std::io::{BufRead as _, Write as _};
        let keep = self._keep.as_ref().expect("a cluster of the test's own");
        let mut io = keep.1.lock().unwrap();
        writeln!(io.0, "{cmd}").unwrap();
        io.0.flush().unwrap();
        let mut line = String::new();
        io.1.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), answer);
    }

    /// Stops the server (a fast shutdown: every session ends) and returns once it is down.
    pub fn stop(&self) {
        self.order("stop", "stopped");
    }

    /// Starts it again on the same port and data, and returns once it accepts connections.
    pub fn start(&self) {
        self.order("start", "started");
        self.wait_ready();
    }

    /// A state URL on this server, on a schema of its own for `test`.
    pub fn url(&self, test: &str) -> String {
        format!("{}?schema={}", self.base, schema_name(test))
    }

    /// The library's handle on `url` of this server.
    pub fn open(&self, url: &str) -> std::sync::Arc<hybrid_trust::state::pg::PgState> {
        let u = hybrid_trust::state::StateUrl::parse(url).unwrap();
        hybrid_trust::state::pg::PgState::open_with(
            &u,
            Some(hybrid_trust::secret::SecretString::new(
                self.password.clone(),
            )),
        )
        .unwrap()
    }

    /// Runs SQL as the test role on this server.
    pub fn sql(&self, query: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ht",
                "-d",
                "postgres",
                "-At",
                "-c",
                query,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Server {
    /// A cluster of a test's own: its shell stops the server when its stdin closes; the folder
    /// goes once the server is down.
    fn drop(&mut self) {
        if let Some((dir, io, mut child)) = self._keep.take() {
            drop(io);
            let _ = child.wait();
            drop(dir);
        }
    }
}

fn schema_name(test: &str) -> String {
    format!(
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
    .collect()
}

/// A state URL on a schema of its own for `test`.
pub fn url(test: &str) -> String {
    server().url(test)
}

/// The library's handle on `url`.
pub fn open(url: &str) -> std::sync::Arc<hybrid_trust::state::pg::PgState> {
    server().open(url)
}

/// Runs SQL as the test role (for what a test does to the server: end a connection).
pub fn sql(query: &str) -> String {
    server().sql(query)
}
