//! No secret in output, logs, files or argv: every command runs with known secrets (the admin
//! app's client secret, a PFX password, an SMTP password), all passed through the environment,
//! with `-vv` diagnostics on; none may appear in stdout, stderr, the ledger, its backup, the
//! audit log or any file the tool writes.

mod support;

use chrono::{TimeDelta, Utc};
use std::path::Path;
use support::*;

const PFX_PASSWORD: &str = "Pfx-P4ssw0rd-do-not-leak";
const SMTP_PASSWORD: &str = "Smtp-P4ssw0rd-do-not-leak";

fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_output_logs_or_files() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let secrets = [
        emu.tenant.admin.client_secret.clone(),
        PFX_PASSWORD.to_string(),
        SMTP_PASSWORD.to_string(),
    ];
    // A PFX of a fresh certificate, protected by the password, made with OpenSSL.
    let now = Utc::now();
    let cert = make_cert(
        "contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    let pem = tool.dir.path().join("c.pem");
    let key = tool.dir.path().join("k.pem");
    std::fs::write(&pem, &cert.cert_pem).unwrap();
    std::fs::write(&key, &cert.key_pem).unwrap();
    let pfx = tool.dir.path().join("oauth.pfx");
    let st = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-in",
            pem.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
            "-out",
            pfx.to_str().unwrap(),
            "-passout",
            "env:PFX_PW",
        ])
        .env("PFX_PW", PFX_PASSWORD)
        .status()
        .unwrap();
    assert!(st.success());
    let config = tool.dir.path().join("config.toml");
    std::fs::write(&config, "[reminders]\nstdout = true\n[[reminders.email]]\nsmtp_url = \"smtp://127.0.0.1:9?tls=starttls\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\nusername = \"bot\"\npassword_env = \"SMTP_PW\"\n").unwrap();
    let p = pfx.to_str().unwrap().to_string();
    let t = emu.tenant.domain.clone();
    let c = config.to_str().unwrap().to_string();
    let runs: Vec<Vec<&str>> = vec![
        vec!["cert", "inspect", &p, "--password-env", "PFX_PW"],
        vec!["cert", "export", &p, "--password-env", "PFX_PW"],
        vec!["cert", "inspect", &p, "--password-env", "WRONG_PW"],
        vec![
            "onboard",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--password-env",
            "PFX_PW",
            "--sip-domain",
            "contoso.com",
            "--pool-fqdn",
            "webext.contoso.com",
            "--yes",
        ],
        vec!["credential", "list", "--tenant", &t],
        vec![
            "verify",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--password-env",
            "PFX_PW",
        ],
        vec![
            "verify",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--password-env",
            "PFX_PW",
            "--print-assertion",
        ],
        vec!["status", "--all", "--live"],
        vec!["status", "--all", "--format", "prometheus"],
        vec!["renew", "--all", "--yes", "--horizon-days", "300"],
        vec!["--config", &c, "remind", "--all"],
        vec!["onprem", "script", "--tenant", &t],
    ];
    let mut seen = String::new();
    for args in &runs {
        let mut cmd = tool.command();
        cmd.env("PFX_PW", PFX_PASSWORD)
            .env("WRONG_PW", "not-it")
            .env("SMTP_PW", SMTP_PASSWORD)
            .arg("-vv")
            .args(["--client-secret-env", "HT_TEST_SECRET"])
            .args(args);
        for s in &secrets {
            assert!(
                !args.iter().any(|a| a.contains(s.as_str())),
                "a secret in argv"
            );
        }
        let o = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        // The runs that use the secrets must really have used them.
        let must_succeed = ["onboard", "export", "list", "--live"]
            .iter()
            .any(|w| args.contains(w))
            || (args[0] == "verify" && !args.contains(&"--print-assertion"));
        if must_succeed {
            assert_eq!(
                o.status.code(),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        seen.push_str(&String::from_utf8_lossy(&o.stdout));
        seen.push_str(&String::from_utf8_lossy(&o.stderr));
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("panicked"),
            "{args:?}"
        );
    }
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "a secret in the output or logs");
    }
    let mut files = Vec::new();
    all_files(&tool.state_dir, &mut files);
    assert!(
        files
            .iter()
            .any(|(n, _)| n.contains("tenants") && n.ends_with(".json"))
            && files.iter().any(|(n, _)| n.ends_with("audit.log"))
    );
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret in {name}");
        }
        assert!(!text.contains("PRIVATE KEY"), "key material in {name}");
    }
}

/// The one place the tool starts processes: `demo` runs itself with the emulated admin's secret.
/// While it runs, every child is looked at through /proc: the secret is in its environment
/// (HT_DEMO_SECRET) and never in its arguments.
#[test]
fn demo_children_get_the_secret_by_environment_never_in_argv() {
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_STATE_DIR")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .spawn()
        .unwrap();
    let parent = demo.id().to_string();
    let mut children_seen = std::collections::BTreeSet::new();
    let status = loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let dir = e.path();
            let Ok(stat) = std::fs::read_to_string(dir.join("status")) else {
                continue;
            };
            let ppid = stat
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .map(str::trim);
            if ppid != Some(parent.as_str()) {
                continue;
            }
            let (Ok(environ), Ok(cmdline)) = (
                std::fs::read(dir.join("environ")),
                std::fs::read(dir.join("cmdline")),
            ) else {
                continue;
            };
            let Some(secret) = environ
                .split(|b| *b == 0)
                .find_map(|v| v.strip_prefix(b"HT_DEMO_SECRET="))
                .filter(|s| s.len() >= 8)
            else {
                continue;
            };
            assert!(
                !cmdline.windows(secret.len()).any(|w| w == secret),
                "the demo's secret is in a child's argv: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            );
            children_seen.insert(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
        if let Some(st) = demo.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success());
    // The check really read the children's arguments (the onboard run among them).
    assert!(
        children_seen.iter().any(|c| c.contains(" onboard ")),
        "no child carrying the secret was seen: the check did not run: {children_seen:?}"
    );
}
