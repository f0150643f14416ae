//! Issue 24, items 6, 7 and 11: the format-1 → 2 migration is finished from whatever point a
//! kill -9 stopped it; one damaged tenant record stops only its own tenant (`renew --all`,
//! `renew --tenant <another>`, `remind --all`, `status`); two format-1 entries for one tenant
//! are refused before anything changes. Offline: the binary against a state dir.

mod support;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{json_out, stderr, tenant_file};

const V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ledger/v1.json");
const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb.pem");
const AS_OF: &str = "2027-01-15T00:00:00Z";

/// The binary on state dir `state`, with an empty settings file (nothing from the machine).
fn ht(state: &Path, args: &[&str]) -> Output {
    let config = state.with_extension("config.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_AS_OF")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `status --all` as JSON at a fixed date: the tenants.
fn status(state: &Path) -> (Option<i32>, Value, String) {
    let o = ht(
        state,
        &["--as-of", AS_OF, "--output", "json", "status", "--all"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code(), v["tenants"].clone(), stderr(&o))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Item 6: the on-disk state each crash point of the migration leaves (this build's order:
/// records, rename, FORMAT; and the earlier builds', which wrote FORMAT before the rename) is finished by the
/// next command, whatever it is: every tenant is there, FORMAT is written, the format-1 file is
/// kept as ledger.json.v1, and the ledger takes changes.
#[test]
fn an_interrupted_migration_is_finished_from_every_crash_point() {
    let v1 = std::fs::read(V1).unwrap();
    // The reference: a migration that ran to its end.
    let reference = tempfile::tempdir().unwrap();
    let r = reference.path();
    std::fs::write(r.join("ledger.json"), &v1).unwrap();
    let (code, want, e) = status(r);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(want.as_array().map(Vec::len), Some(2), "{want}");
    let records = r.join("ledger/tenants");
    let ids = r.join("ledger/ids");

    type Setup = Box<dyn Fn(&Path)>;
    let dirs = |s: &Path| {
        for d in ["ledger/tenants", "ledger/ids"] {
            std::fs::create_dir_all(s.join(d)).unwrap();
        }
        std::fs::write(s.join("ledger/lock"), b"").unwrap();
    };
    let legacy = {
        let v1 = v1.clone();
        move |s: &Path| std::fs::write(s.join("ledger.json"), &v1).unwrap()
    };
    let all_records = {
        let (records, ids) = (records.clone(), ids.clone());
        move |s: &Path| {
            copy_dir(&records, &s.join("ledger/tenants"));
            copy_dir(&ids, &s.join("ledger/ids"));
        }
    };
    let points: Vec<(&str, Setup)> = vec![
        ("before anything", Box::new(legacy.clone())),
        (
            "after the folders and the lock",
            Box::new({
                let legacy = legacy.clone();
                move |s| {
                    legacy(s);
                    dirs(s);
                }
            }),
        ),
        (
            "after one record, a temporary file left",
            Box::new({
                let (legacy, records) = (legacy.clone(), records.clone());
                move |s| {
                    legacy(s);
                    dirs(s);
                    let one = "contoso.onmicrosoft.com.json";
                    std::fs::copy(records.join(one), s.join("ledger/tenants").join(one)).unwrap();
                    std::fs::write(
                        s.join("ledger/tenants/.hybrid-trust.a1b2c3"),
                        b"{\"format\": 2, \"ten",
                    )
                    .unwrap();
                }
            }),
        ),
        (
            "after every record, before the rename",
            Box::new({
                let (legacy, all_records) = (legacy.clone(), all_records.clone());
                move |s| {
                    legacy(s);
                    dirs(s);
                    all_records(s);
                }
            }),
        ),
        (
            "the earlier order: after FORMAT, before the rename",
            Box::new({
                let (legacy, all_records) = (legacy.clone(), all_records.clone());
                move |s| {
                    legacy(s);
                    dirs(s);
                    all_records(s);
                    std::fs::write(s.join("ledger/FORMAT"), b"2\n").unwrap();
                }
            }),
        ),
        (
            "after the rename, before FORMAT",
            Box::new({
                let (v1, all_records) = (v1.clone(), all_records.clone());
                move |s| {
                    std::fs::write(s.join("ledger.json.v1"), &v1).unwrap();
                    dirs(s);
                    all_records(s);
                }
            }),
        ),
    ];
    for (point, setup) in points {
        let state = tempfile::tempdir().unwrap();
        let s = state.path();
        setup(s);
        let (code, got, e) = status(s);
        assert_eq!(code, Some(0), "{point}: {e}");
        assert_eq!(got, want, "{point}: every tenant, as migrated in one go");
        assert_eq!(
            std::fs::read(s.join("ledger/FORMAT")).unwrap(),
            b"2\n",
            "{point}"
        );
        assert!(!s.join("ledger.json").exists(), "{point}");
        assert_eq!(
            std::fs::read(s.join("ledger.json.v1")).unwrap(),
            v1,
            "{point}: the format-1 file is kept"
        );
        // And the ledger takes a change.
        let o = ht(
            s,
            &[
                "tenant",
                "add",
                "fabrikam.com",
                "--notify",
                "ops@fabrikam.com",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{point}: {}", stderr(&o));
        let (code, got, e) = status(s);
        assert_eq!(code, Some(0), "{point}: {e}");
        assert_eq!(got.as_array().map(Vec::len), Some(2), "{point}: {got}");
    }
}

/// Item 11: a format-1 ledger with `contoso…` and `Contoso…` (one record file, the domain in
/// lowercase) is refused with both names and the fix, and nothing is changed; the same record
/// twice (the case of the domain aside) loses nothing and is migrated once.
#[test]
fn two_format_1_entries_for_one_tenant_are_refused_and_nothing_changes() {
    let mut v: Value = serde_json::from_slice(&std::fs::read(V1).unwrap()).unwrap();
    let first = v["tenants"][0].clone();
    let mut twin = first.clone();
    twin["domain"] = json!("Contoso.onmicrosoft.com");
    let mut differs = twin.clone();
    differs["notify"] = json!(["ops@contoso.com"]);
    v["tenants"].as_array_mut().unwrap().push(differs);
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let bytes = serde_json::to_vec_pretty(&v).unwrap();
    std::fs::write(s.join("ledger.json"), &bytes).unwrap();
    for args in [
        &["status", "--all"][..],
        &[
            "tenant",
            "add",
            "fabrikam.com",
            "--notify",
            "a@fabrikam.com",
        ][..],
    ] {
        let o = ht(s, args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{e}");
        assert!(
            errors[0].contains("\"contoso.onmicrosoft.com\"")
                && errors[0].contains("\"Contoso.onmicrosoft.com\""),
            "names both: {e}"
        );
        assert!(e.contains("\nhint: edit "), "the fix: {e}");
        let names: Vec<_> = std::fs::read_dir(s)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["ledger.json".to_string()], "nothing made");
        assert_eq!(std::fs::read(s.join("ledger.json")).unwrap(), bytes);
    }
    // The same record twice: one is kept, nothing is lost.
    v["tenants"].as_array_mut().unwrap().pop();
    v["tenants"].as_array_mut().unwrap().push(twin);
    std::fs::write(s.join("ledger.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, got, e) = status(s);
    assert_eq!(code, Some(0), "{e}");
    let domains: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["contoso.onmicrosoft.com", "fabrikam.com"]);
}

/// Item 7: one of 20 records truncated (a bad restore). `renew --all` renews the 19 others and
/// reports the damaged one with its file and fix, exit 1; `renew --tenant <another>` exits 0;
/// `remind --all` reminds the 19 others and reports it as a problem, exit 1; `status` shows it as
/// a problem after the others, exit 1, and `--check` is UNKNOWN. The damaged file is untouched.
#[test]
fn one_damaged_record_of_twenty_stops_only_its_own_tenant() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let end = (Utc::now() + TimeDelta::days(200))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let names: Vec<String> = (0..20).map(|i| format!("t{i:02}.example.com")).collect();
    for n in &names {
        let o = ht(
            s,
            &["tenant", "add", n, "--cert", CERT, "--credential-end", &end],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let bad = tenant_file(s, "t07.example.com");
    let full = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &full[..full.len() / 2]).unwrap();
    let damaged = std::fs::read(&bad).unwrap();
    let file = bad.display().to_string();
    let one_error = |o: &Output, code: i32, what: &str| -> String {
        let e = stderr(o);
        assert_eq!(o.status.code(), Some(code), "{what}: {e}");
        let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{what}: {e}");
        assert!(errors[0].contains(&file), "{what}: names the file: {e}");
        assert!(
            e.contains("hybrid-trust tenant add t07.example.com"),
            "{what}: the fix: {e}"
        );
        e
    };

    // renew --all: the others are decided and carried out; the damaged one is a failure.
    let o = ht(s, &["--output", "json", "renew", "--all", "--yes"]);
    one_error(&o, 1, "renew --all");
    let v = json_out(&o);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 20, "{v}");
    for r in results {
        if r["tenant"] == "t07.example.com" {
            assert_eq!(r["outcome"], "failed", "{r}");
            assert!(r["error"].as_str().unwrap().contains(&file), "{r}");
        } else {
            assert_eq!(r["outcome"], "nothing", "{r}");
        }
    }
    assert_eq!(v["failed"], 1);
    let o = ht(s, &["renew", "--all", "--yes"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("t07.example.com: blocked: its ledger record"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // renew --tenant another: fine; the damaged one by name: its own error.
    let o = ht(s, &["renew", "--tenant", "t03.example.com", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ht(s, &["renew", "--tenant", "t07.example.com", "--yes"]);
    one_error(&o, 1, "renew --tenant t07");

    // remind --all, 190 days on: every other tenant is due and reminded; the damaged one is a
    // problem.
    let later = (Utc::now() + TimeDelta::days(190))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let o = ht(
        s,
        &[
            "--as-of",
            &later,
            "--output",
            "json",
            "--dry-run",
            "remind",
            "--all",
        ],
    );
    one_error(&o, 1, "remind --all");
    let v = json_out(&o);
    let mut reminded: Vec<String> = v["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"]["tenant"].as_str().unwrap().to_string())
        .collect();
    reminded.sort();
    reminded.dedup();
    let others: Vec<String> = names
        .iter()
        .filter(|n| *n != "t07.example.com")
        .cloned()
        .collect();
    let damaged_entry = v["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["message"])
        .find(|m| m["tenant"] == "t07.example.com")
        .expect("the damaged record is reminded as a problem");
    assert_eq!(damaged_entry["kind"], "renewal-failure", "{damaged_entry}");
    assert!(
        damaged_entry["detail"].as_str().unwrap().contains(&file)
            && damaged_entry["action"]
                .as_str()
                .unwrap()
                .contains("tenant add t07.example.com"),
        "{damaged_entry}"
    );
    reminded.retain(|t| t != "t07.example.com");
    assert_eq!(reminded, others, "{v}");
    assert_eq!(v["damaged"][0]["tenant"], "t07.example.com", "{v}");

    // A real run (reminders on stdout): the damaged record is reminded, nothing is written to
    // it, and the run ends on its error.
    let o = ht(s, &["remind", "--all"]);
    one_error(&o, 1, "remind --all, sent");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("t07.example.com") && out.contains(&file),
        "{out}"
    );

    // status: the others, and the damaged one as a problem.
    let o = ht(s, &["--output", "json", "status", "--all"]);
    one_error(&o, 1, "status --all");
    let v = json_out(&o);
    assert_eq!(v["tenants"].as_array().unwrap().len(), 19, "{v}");
    assert_eq!(v["damaged"][0]["file"], json!(file), "{v}");
    assert!(
        v["damaged"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("tenant add t07.example.com"),
        "{v}"
    );
    let o = ht(s, &["status", "--all"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("t03.example.com"), "{table}");
    assert!(table.contains("DAMAGED record t07.example.com"), "{table}");
    let o = ht(s, &["status", "--all", "--check"]);
    assert_eq!(o.status.code(), Some(3), "UNKNOWN");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 tenant(s) could not be read"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = ht(s, &["status", "--tenant", "t03.example.com"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&bad).unwrap(), damaged, "left untouched");
}
