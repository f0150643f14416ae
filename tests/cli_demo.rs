//! `demo` runs offline, without prompts, and onboards; help and error texts are snapshot-tested.

use std::process::{Command, Stdio};

fn ht(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
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
