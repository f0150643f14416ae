//! Issue 18: progress bars on the long runs (`status --live`, `renew --all`, `remind --all`),
//! drawn on a pseudo-terminal as an admin at a shell sees them, and never drawn when the output is
//! a pipe or a file, is JSON, or `NO_COLOR` / `TERM=dumb` is set. The terminal is driven by
//! `tests/interop/tty_run.py` (Python's `pty`, as the password prompt's test does).

mod support;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use std::process::{Command, Stdio};
use support::{Emu, Tool, make_cert, quiet_tls, stderr};

const TENANTS: usize = 12;

/// What the terminal showed and the exit code, for `args` run under `tty_run.py` with the
/// tool's environment (plus `extra`).
fn on_tty(tool: &Tool, args: &[&str], extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tty_run.py");
    let mut c = Command::new("python3");
    c.arg(driver)
        .arg(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--client-secret-env", "HT_TEST_SECRET"])
        .args(args)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("TTY_STDOUT_FILE")
        .env_remove("TTY_STDERR_FILE")
        .stdin(Stdio::null());
    for (k, v) in tool.command().get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    for (k, v) in extra {
        c.env(k, v);
    }
    let o = c.output().expect("python3 runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

/// A bar drawn in place: its text and a carriage return with no line feed after it.
fn drew_bar(screen: &str, what: &str) -> bool {
    screen.contains(&format!("{what} [")) && screen.contains(&format!("/{TENANTS}"))
}

/// The erase-line sequence a bar is cleared (and each frame redrawn) with.
const ERASE: &str = "\u{1b}[2K";

/// The bar `what` was cleared before `next` appeared: after its last frame and before `next`
/// comes an erase, not a line feed that would leave the frame standing.
fn cleared_before(screen: &str, what: &str, next: &str) -> bool {
    let at = screen
        .find(next)
        .unwrap_or_else(|| panic!("{next:?} not shown: {screen:?}"));
    let Some(last) = screen[..at].rfind(&format!("{what} [")) else {
        return false;
    };
    screen[last..at].contains(ERASE)
}

/// Every line that contains `needle` starts on a fresh line: no bar frame before it on the same
/// line (a frame is ended by a line feed or erased; a log line written through it is torn).
fn on_lines_of_their_own(screen: &str, needle: &str) -> usize {
    let mut n = 0;
    for (at, _) in screen.match_indices(needle) {
        n += 1;
        let before = &screen[..at];
        let start = before
            .rfind('\n')
            .map(|i| i + 1)
            .max(before.rfind(ERASE).map(|i| i + ERASE.len()))
            .unwrap_or(0);
        assert!(
            !before[start..].contains(" ["),
            "{needle:?} shares a line with a bar: {:?}",
            &screen[start..(at + needle.len()).min(screen.len())]
        );
    }
    n
}

/// Nothing but the text: no bar, no lone carriage return (the terminal turns each `\n` into
/// `\r\n`, so a `\r` not followed by `\n` is a redraw), no escape sequence.
fn plain(screen: &str) -> bool {
    let lone_cr = screen
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'\r' && w[1] != b'\n');
    !lone_cr && !screen.contains('\u{1b}')
}

#[tokio::test(flavor = "multi_thread")]
async fn long_runs_draw_a_bar_on_a_terminal_and_nothing_anywhere_else() {
    let mut cfg = quiet_tls();
    cfg.generated_tenants = TENANTS;
    cfg.behaviour.select_key_limit_per_minute = 1_000_000;
    let emu = Emu::start_with(cfg).await;
    let tool = Tool::for_emulator(&emu);
    let tenants = emu.running.ready.tenants.clone();
    let now = Utc::now();
    let cert = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    let p = tool.write_cert("c.pem", &cert);
    let end = (now + TimeDelta::days(10)).format("%Y-%m-%d").to_string();
    for t in &tenants {
        let mut c = tool.command();
        c.env("HYBRID_TRUST_CLIENT_ID", &t.admin.client_id)
            .env("HT_TEST_SECRET", &t.admin.client_secret)
            .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
            .args(["credential", "upload", "--tenant", &t.domain, "--cert", &p])
            .args(["--end", &end, "--yes"]);
        let o = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", t.domain, stderr(&o));
    }

    // status --live: a bar while the tenants are read, cleared before the table.
    let (code, screen) = on_tty(&tool, &["status", "--all", "--live"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(drew_bar(&screen, "reading tenants"), "{screen:?}");
    assert!(screen.contains(&tenants[5].domain), "the table: {screen}");
    let table_at = screen.find(&tenants[0].domain).unwrap();
    assert!(
        !screen[table_at..].contains("reading tenants"),
        "the bar is gone before the table: {screen:?}"
    );
    assert!(
        cleared_before(&screen, "reading tenants", "TENANT"),
        "the bar is erased, not left standing above the table: {screen:?}"
    );

    // Not drawn with NO_COLOR, with TERM=dumb, with JSON, or with the output in a file.
    for (args, extra) in [
        (&["status", "--all", "--live"][..], &[("NO_COLOR", "1")][..]),
        (&["status", "--all", "--live"][..], &[("TERM", "dumb")][..]),
        (
            &["--output", "json", "status", "--all", "--live"][..],
            &[][..],
        ),
    ] {
        let (code, screen) = on_tty(&tool, args, extra);
        assert_eq!(code, Some(0), "{args:?} {extra:?}: {screen}");
        assert!(!screen.contains("reading tenants"), "{args:?} {extra:?}");
        if !extra.iter().any(|(k, _)| *k == "TERM") {
            assert!(plain(&screen), "{args:?} {extra:?}: {screen:?}");
        }
        assert!(screen.contains(&tenants[5].domain), "{args:?}: {screen}");
    }
    let (code, screen) = on_tty(
        &tool,
        &["--output", "json", "status", "--all", "--live"],
        &[],
    );
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&screen.replace("\r\n", "\n"))
        .unwrap_or_else(|e| panic!("only JSON on the terminal ({e}): {screen:?}"));
    assert_eq!(v["tenants"].as_array().map(Vec::len), Some(TENANTS));
    let file = tool.dir.path().join("status.txt");
    let file_s = file.display().to_string();
    let (code, screen) = on_tty(
        &tool,
        &["status", "--all", "--live"],
        &[("TTY_STDOUT_FILE", &file_s)],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(plain(&screen) && screen.is_empty(), "{screen:?}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains(&tenants[5].domain), "{written}");
    assert!(plain(&written), "{written:?}");
    // Standard error in a file, standard output on the terminal: no bar in either.
    let err_file = tool.dir.path().join("status.err");
    let err_s = err_file.display().to_string();
    let (code, screen) = on_tty(
        &tool,
        &["status", "--all", "--live"],
        &[("TTY_STDERR_FILE", &err_s)],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        plain(&screen) && screen.contains(&tenants[5].domain),
        "{screen:?}"
    );
    let err = std::fs::read_to_string(&err_file).unwrap();
    assert!(!err.contains("reading tenants") && plain(&err), "{err:?}");

    // remind --all: one message per channel. With the stdout channel the reminders are the
    // run's output and no bar is drawn among them; without it, a bar over the three messages.
    let config = tool.dir.path().join("config.toml");
    let channels = |sender: &str, stdout: bool| {
        let mut c = String::new();
        if stdout {
            c.push_str("[reminders]\nstdout = true\n");
        }
        for i in 1..=3 {
            c.push_str(&format!(
                "[[reminders.graph_mail]]\nfrom = \"noreply@{sender}\"\nto = [\"team{i}@contoso.com\"]\ntenant = \"{sender}\"\nclient_id = \"{}\"\nclient_secret_env = \"HT_TEST_SECRET\"\n",
                emu.tenant.admin.client_id
            ));
        }
        std::fs::write(&config, c).unwrap();
    };
    let cfg = config.display().to_string();
    channels(&tenants[0].domain, true);
    let (code, screen) = on_tty(&tool, &["--config", &cfg, "remind", "--all"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("[hybrid-trust] "), "printed: {screen}");
    assert!(!screen.contains("sending reminders"), "{screen:?}");
    let mail = emu.control_get("mail").await;
    assert_eq!(mail["messages"].as_array().map(Vec::len), Some(3), "{mail}");
    // Another sender (channels are recorded by sender), without stdout: the bar.
    channels(&tenants[1].domain, false);
    let (code, screen) = on_tty(&tool, &["--config", &cfg, "remind", "--all"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("sending reminders [") && screen.contains("/3"),
        "{screen:?}"
    );
    let mail = emu.control_get("mail").await;
    assert_eq!(mail["messages"].as_array().map(Vec::len), Some(6), "{mail}");

    // renew --all: a bar over the twelve renewals; every tenant renewed. One write is lost on
    // the way (answered 204, not applied, as when another host's write lands on it): the
    // warning the read-back causes prints above the bar, on a line of its own, and the run
    // rides it out.
    let lost = json!({"rules": [{"kind": "lost-write", "method": "PATCH", "times": 1}]});
    assert_eq!(emu.control(Method::POST, "faults", lost).await, 204);
    let (code, screen) = on_tty(&tool, &["renew", "--all", "--yes"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(drew_bar(&screen, "renewing tenants"), "{screen:?}");
    assert!(
        on_lines_of_their_own(&screen, "WARN") > 0,
        "a warning: {screen:?}"
    );
    assert!(
        cleared_before(&screen, "renewing tenants", "[applied]"),
        "{screen:?}"
    );
    let (code, screen) = on_tty(
        &tool,
        &["--output", "json", "status", "--all"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(plain(&screen), "{screen:?}");
    let v: serde_json::Value = serde_json::from_str(&screen.replace("\r\n", "\n")).unwrap();
    let ok = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "ok")
        .count();
    assert_eq!(ok, TENANTS, "{v:#}");

    // A run that fails (a tenant that cannot be read): the bar is erased before the error.
    let (code, screen) = on_tty(&tool, &["tenant", "add", "nowhere.example.com"], &[]);
    assert_eq!(code, Some(0), "{screen}");
    let (code, screen) = on_tty(&tool, &["status", "--all", "--live"], &[]);
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        cleared_before(&screen, "reading tenants", "error:"),
        "{screen:?}"
    );
}
