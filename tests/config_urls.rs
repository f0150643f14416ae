//! Issue 14, defects 5 and 6: the URLs of the settings file and the cloud file. A webhook must be
//! https (plain http only on loopback), and no error ever prints a URL's password or query
//! values (a Teams workflow URL carries its signature in `sig=`).

use std::path::Path;
use std::process::{Command, Stdio};

fn ht(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", dir.join("state"))
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env_remove("HYBRID_TRUST_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn remind_with(dir: &Path, settings: &str) -> std::process::Output {
    let p = dir.join("config.toml");
    std::fs::write(&p, settings).unwrap();
    ht(
        dir,
        &[
            "--config",
            p.to_str().unwrap(),
            "remind",
            "--all",
            "--dry-run",
        ],
    )
}

/// Exit 2, one `error:` line with a hint, nothing on stdout, and `secret` nowhere.
fn refused(what: &str, o: &std::process::Output, secret: &str, names: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{what}: {err}"
    );
    assert!(err.contains("hint:"), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}");
    assert!(
        !err.contains(secret),
        "{what}: the secret is printed: {err}"
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(secret),
        "{what}"
    );
    // Still useful: the error says which URL it means.
    assert!(err.contains(names), "{what}: {names} is not named: {err}");
}

#[test]
fn plain_http_webhooks_are_refused_except_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "http://hooks.example.com/hook",
        "http://10.0.0.5/hook",
        "http://localhost.example.com/hook",
    ] {
        let o = remind_with(
            dir.path(),
            &format!("[[reminders.webhook]]\nurl = \"{url}\"\n"),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("must be https"), "{url}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{url}: {err}"
        );
        assert!(err.contains("hint:"), "{url}: {err}");
    }
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.1.2.3:9/hook",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
        "https://hooks.example.com/hook",
    ] {
        let o = remind_with(
            dir.path(),
            &format!("[[reminders.webhook]]\nurl = \"{url}\"\n"),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn settings_errors_never_print_url_secrets() {
    let dir = tempfile::tempdir().unwrap();
    // A webhook URL with a bad port, and one with an ftp scheme: the signature must not show.
    let o = remind_with(
        dir.path(),
        "[[reminders.webhook]]\nurl = \"https://prod.example.com:99999/workflows/x?api-version=1&sig=SigSecretBadPort\"\n",
    );
    refused("bad port", &o, "SigSecretBadPort", "prod.example.com");
    let o = remind_with(
        dir.path(),
        "[[reminders.webhook]]\nurl = \"ftp://prod.example.com/hook?sig=SigSecretFtp\"\n",
    );
    refused("ftp", &o, "SigSecretFtp", "prod.example.com");
    let o = remind_with(
        dir.path(),
        "[[reminders.webhook]]\nurl = \"http://bob:HookPassw0rd@hooks.example.com/x\"\n",
    );
    refused(
        "http webhook with userinfo",
        &o,
        "HookPassw0rd",
        "hooks.example.com",
    );
    // An smtp_url with the wrong scheme and a password in it.
    let o = remind_with(
        dir.path(),
        "[[reminders.email]]\nsmtp_url = \"http://mailer:SmtpPassw0rd@mail.example.com:25\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\n",
    );
    refused("smtp http", &o, "SmtpPassw0rd", "mail.example.com");
    // An smtp_url that does not parse, with a password in it.
    let o = remind_with(
        dir.path(),
        "[[reminders.email]]\nsmtp_url = \"smtp://mailer:SmtpPassw0rd2@mail.example.com:70000\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\n",
    );
    refused("smtp bad port", &o, "SmtpPassw0rd2", "mail.example.com");
}

#[test]
fn cloud_file_errors_never_print_url_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let base = |login: &str| {
        serde_json::json!({
            "name": "custom",
            "login_url": login,
            "graph_url": "https://127.0.0.1:1/graph",
            "acs_url": "https://127.0.0.1:1/acs",
            "exchange_url": "https://127.0.0.1:1/exo",
        })
        .to_string()
    };
    for (what, login, secret) in [
        (
            "query",
            "https://login.example.com/x?code=CloudQuerySecret",
            "CloudQuerySecret",
        ),
        (
            "userinfo",
            "https://admin:CloudPassw0rd@login.example.com",
            "CloudPassw0rd",
        ),
        (
            "bad port",
            "https://admin:CloudPassw0rd2@login.example.com:99999",
            "CloudPassw0rd2",
        ),
        (
            "ftp",
            "ftp://login.example.com/x?token=CloudFtpSecret",
            "CloudFtpSecret",
        ),
    ] {
        let p = dir.path().join("cloud.json");
        std::fs::write(&p, base(login)).unwrap();
        let o = ht(
            dir.path(),
            &[
                "--cloud-file",
                p.to_str().unwrap(),
                "tenant",
                "discover",
                "contoso.com",
            ],
        );
        refused(what, &o, secret, "login.example.com");
    }
}
