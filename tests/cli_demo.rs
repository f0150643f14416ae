//! `demo` runs offline, without prompts, and onboards; help and error texts are snapshot-tested.

use std::process::{Command, Stdio};

fn ht(args: &[&str]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    ht_in(cwd.path(), args)
}

/// Runs in `cwd` (the demo leaves its folder there).
fn ht_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_STATE_DIR")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env("NO_COLOR", "1")
        .output()
        .expect("runs")
}

#[test]
fn demo_onboards_offline_and_exits_zero() {
    let out = ht(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("[8/8]") && stderr.contains("verified"),
        "{stderr}"
    );
    assert!(
        stdout.contains("onboarded contoso.onmicrosoft.com"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("contoso.onmicrosoft.com") && l.contains(" ok ")),
        "the status table: {stdout}"
    );
}

/// Issue 16: the demo shows the yearly job (reminder, re-window, roll, confirmation, retirement)
/// and leaves what it made in ./hybrid-trust-demo/; a rerun replaces it; a folder it did not
/// make is refused.
#[test]
fn demo_shows_the_yearly_job_and_leaves_its_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let out = ht_in(cwd.path(), &["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for step in [
        "11 months later",
        "the Skype for Business hybrid trust ends in 28 day(s)",
        "new key window",
        "roll-pending",
        "--confirm-roll",
        "retire the old key",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    let folder = cwd.path().join("hybrid-trust-demo");
    let state = folder.join("state");
    let ledger = serde_json::to_value(
        hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ledger["tenants"][0]["roll_confirmed"]["by"], "admin");
    // Issue 27: the Exchange trust too. The current Auth Certificate's key uploaded by the
    // binary from the export folder, MEAC's staged certificate uploaded ahead of its
    // EffectiveDate, the switch, the previous key retired; the ledger ends with the new
    // certificate current and only its key on the dedicated application.
    for step in [
        "renew --trust exchange",
        "applied: upload the current Auth Certificate",
        "MEAC (MonitorExchangeAuthCertificate.ps1) renews the Exchange Auth Certificate",
        "applied: upload the next Auth Certificate",
        "staged on-prem, not yet on the application",
        "Exchange switched to the new Auth Certificate at its EffectiveDate",
        "applied: retire the previous Auth Certificate",
        "exchange-export/",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    let staged_at = stdout
        .find("applied: upload the next Auth Certificate")
        .unwrap();
    let switched_at = stdout
        .find("Exchange switched to the new Auth Certificate")
        .unwrap();
    assert!(staged_at < switched_at, "{stdout}");
    let x = &ledger["tenants"][0]["exchange"];
    assert!(
        x["display_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("ExchangeServerApp-")),
        "{x}"
    );
    let current = x["cert"]["thumbprint_sha1"].as_str().unwrap();
    let held: Vec<&str> = x["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["thumbprint_sha1"].as_str().unwrap())
        .collect();
    assert_eq!(held, vec![current], "{x}");
    assert_ne!(x["previous_thumbprint"].as_str(), Some(current), "{x}");
    let export = folder.join("exchange-export");
    assert!(export.join("authconfig.json").is_file());
    assert!(export.join(format!("{current}.cer")).is_file());
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("onprem-") && n.ends_with(".ps1")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("roll-") && n.ends_with(".ps1")),
        "{names:?}"
    );
    assert!(names.contains(&"audit.log".to_string()), "{names:?}");
    // The fleet report and the reminder the emulated Exchange Online accepted through sendMail
    // (one: the key reached its 30-day threshold once in the year) are in the folder too.
    let report = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(report.starts_with("<!DOCTYPE html>"), "{report:.200}");
    assert!(report.contains("contoso.onmicrosoft.com"));
    let mail: Vec<String> = std::fs::read_dir(folder.join("mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(mail.len(), 2, "{mail:?}");
    let text = std::fs::read_to_string(folder.join("mail/01.txt")).unwrap();
    assert!(
        text.starts_with("From: noreply@contoso.onmicrosoft.com\nTo: uc-admins@contoso.com\n"),
        "{text}"
    );
    assert!(
        text.contains("the Skype for Business hybrid trust ends in 28 day(s)"),
        "{text}"
    );
    let html = std::fs::read_to_string(folder.join("mail/01.html")).unwrap();
    assert!(
        html.contains("hybrid-trust renew --tenant contoso.onmicrosoft.com"),
        "{html}"
    );
    assert!(
        stdout.contains("report.html") && stdout.contains("mail/"),
        "{stdout}"
    );
    // A rerun replaces the folder cleanly: one tenant, one onboarding.
    std::fs::write(folder.join("leftover"), "x").unwrap();
    assert!(ht_in(cwd.path(), &["demo"]).status.success());
    assert!(!folder.join("leftover").exists());
    // A folder of that name that the demo did not make is refused, untouched.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join("hybrid-trust-demo")).unwrap();
    std::fs::write(other.path().join("hybrid-trust-demo/mine"), "x").unwrap();
    let o = ht_in(other.path(), &["demo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("was not made by the demo"));
    assert!(other.path().join("hybrid-trust-demo/mine").exists());
}

#[test]
fn help_texts() {
    for args in [
        vec!["--help"],
        vec!["credential", "upload", "--help"],
        vec!["status", "--help"],
        vec!["onboard", "--help"],
    ] {
        let out = ht(&args);
        assert!(out.status.success());
        let name = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect::<Vec<_>>()
            .join("_");
        insta::assert_snapshot!(
            format!(
                "help_{}",
                if name.is_empty() {
                    "main".to_string()
                } else {
                    name
                }
            ),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Every command has an example.
    for cmd in [
        vec!["cert", "inspect"],
        vec!["cert", "export"],
        vec!["tenant", "discover"],
        vec!["tenant", "metadata"],
        vec!["tenant", "add"],
        vec!["onprem", "script"],
        vec!["credential", "list"],
        vec!["credential", "upload"],
        vec!["credential", "remove"],
        vec!["spn", "add"],
        vec!["verify"],
        vec!["onboard"],
        vec!["status"],
        vec!["renew"],
        vec!["remind"],
        vec!["login"],
        vec!["logout"],
        vec!["demo"],
        vec!["completions"],
        vec!["man"],
    ] {
        let mut a = cmd.clone();
        a.push("--help");
        let out = ht(&a);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{cmd:?} has no example"
        );
    }
}

#[test]
fn error_texts() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "missing_file",
            vec!["cert", "inspect", "/nonexistent/oauth.pfx"],
        ),
        ("bad_tenant", vec!["tenant", "discover", "not a tenant"]),
        (
            "exchange_refused",
            vec![
                "credential",
                "upload",
                "--tenant",
                "contoso.com",
                "--cert",
                concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem"),
                "--app-id",
                "00000002-0000-0ff1-ce00-000000000000",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = ht(&args);
        assert_eq!(out.status.code(), Some(2));
        insta::assert_snapshot!(
            format!("error_{name}"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_and_man_page() {
    let out = ht(&["completions", "bash"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hybrid-trust"));
    let out = ht(&["man"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(".TH hybrid-trust 1")
    );
}

#[test]
fn demo_with_json_output_prints_exactly_one_json_document() {
    let out = ht(&["--output", "json", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(v["ok"], true);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[8/8]"),
        "the story goes to stderr"
    );
}
