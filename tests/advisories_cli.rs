//! Microsoft's dated changes in `status` (JSON `advisories`, the lines under the table,
//! `--as-of` planning, `[advisories] acknowledged`) and `status --format html --out FILE`.
//! No network: tenants are added with `tenant add`.

use std::path::Path;
use std::process::{Command, Stdio};

fn ht(state: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(["--config", config.to_str().unwrap()])
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_AS_OF")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["advisories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_lists_the_advisories_and_plans_against_them() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), dir.path().join("config.toml"));
    std::fs::write(&config, "").unwrap();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    let o = ht(
        &state,
        &config,
        &["tenant", "add", "contoso.com", "--cert", cert],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let at = |when: &str| {
        let o = ht(
            &state,
            &config,
            &["--as-of", when, "--output", "json", "status", "--all"],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let before = at("2026-09-01T00:00:00Z");
    let a = &before["advisories"][0];
    for k in ["id", "date", "title", "action", "source", "confirmed"] {
        assert!(a.get(k).is_some(), "{k}: {a}");
    }
    let b = ids(&before);
    assert!(
        b.contains(&"ews-blocked-by-default".to_string()) && b.contains(&"ews-retired".to_string())
    );
    // After the shutdown the "blocked unless allowed" step no longer matters.
    let after = ids(&at("2027-04-02T00:00:00Z"));
    assert!(
        !after.contains(&"ews-blocked-by-default".to_string())
            && after.contains(&"ews-retired".to_string())
    );
    // Soonest first.
    let dates: Vec<String> = before["advisories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["date"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted);

    // The table ends with them, the unconfirmed marked.
    let o = ht(
        &state,
        &config,
        &["--as-of", "2026-09-01T00:00:00Z", "status", "--all"],
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("Microsoft's dated changes"), "{table}");
    assert!(
        table.contains("2027-04-01 (in 212 day(s)) (unconfirmed)"),
        "{table}"
    );

    // Acknowledged ones are not shown; an unknown id is refused (exit 2, one line, a hint),
    // except by --check, which never fails on the settings file.
    std::fs::write(&config, "[advisories]\nacknowledged = [\"ews-retired\"]\n").unwrap();
    assert!(!ids(&at("2026-09-01T00:00:00Z")).contains(&"ews-retired".to_string()));
    std::fs::write(&config, "[advisories]\nacknowledged = [\"ews-gone\"]\n").unwrap();
    let o = ht(&state, &config, &["status", "--all"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("unknown advisory \"ews-gone\"") && e.contains("hint:"),
        "{e}"
    );
    assert_eq!(e.lines().filter(|l| l.starts_with("error:")).count(), 1);
    let o = ht(&state, &config, &["status", "--all", "--check"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("HYBRID-TRUST"),
        "{o:?}"
    );
}

#[test]
fn status_writes_the_html_report_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), dir.path().join("config.toml"));
    std::fs::write(&config, "").unwrap();
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
    for d in ["contoso.com", "fabrikam.com"] {
        let o = ht(&state, &config, &["tenant", "add", d, "--cert", cert]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = dir.path().join("fleet.html");
    std::fs::write(&out, "old").unwrap();
    let o = ht(
        &state,
        &config,
        &[
            "status",
            "--all",
            "--format",
            "html",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "the page went to the file, not stdout");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<tr data-state=").count(), 2);
    assert!(html.contains("fabrikam.com") && html.contains("Format-List Ews*"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    // A directory as --out: exit 2, nothing written.
    let o = ht(
        &state,
        &config,
        &[
            "status",
            "--all",
            "--format",
            "html",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    // To stdout without --out.
    let o = ht(&state, &config, &["status", "--all", "--format", "html"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("<table id=\"fleet\">"));
}
