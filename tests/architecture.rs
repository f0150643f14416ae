//! Boundaries that keep the code easy to change (issues 15 and 25). The workspace makes the big
//! ones the compiler's business: the emulator (crates/m365-emulator) shares no code with the
//! client it tests, so a serialisation or protocol bug cannot hide on both sides at once
//! (docs/design.md, "emulator ... must not import the client's request/response types"), and the
//! tool's library (crates/hybrid-trust-lib) carries no server stack. These tests hold the
//! manifests to that, as Cargo resolves them, and keep the one clock on each side.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo metadata` of the workspace, as Cargo resolves it (offline: the lock file has it all).
fn metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every package `name` needs to build (its normal dependencies, transitively: not dev or build
/// dependencies), by package name.
fn normal_closure(meta: &Value, name: &str) -> BTreeSet<String> {
    let packages: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let start = packages
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("no package {name} in the workspace"));
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(nodes.get(id).into_iter().flatten().copied());
        }
    }
    seen.iter().map(|id| packages[id].to_string()).collect()
}

#[test]
fn the_library_carries_no_server_stack_and_not_the_emulator() {
    let meta = metadata();
    let lib = normal_closure(&meta, "hybrid-trust-lib");
    assert!(
        lib.contains("reqwest"),
        "the scan found the library's client"
    );
    for server in ["m365-emulator", "axum", "rcgen"] {
        assert!(
            !lib.contains(server),
            "hybrid-trust-lib depends on {server}: {lib:?}"
        );
    }
}

#[test]
fn the_emulator_shares_no_code_with_the_tool() {
    let meta = metadata();
    let emu = normal_closure(&meta, "m365-emulator");
    assert!(emu.contains("axum"), "the scan found the emulator's server");
    for tool in ["hybrid-trust-lib", "hybrid-trust", "reqwest"] {
        assert!(
            !emu.contains(tool),
            "m365-emulator depends on {tool}: {emu:?}"
        );
    }
}

/// Lines under `dir` (Rust files, comments left out) that read the system time.
fn system_time_reads(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            system_time_reads(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if ["Utc::now", "now_utc()", "SystemTime::now()", "Local::now()"]
                    .iter()
                    .any(|n| code.contains(n))
                {
                    out.push(format!("{}:{}", p.display(), i + 1));
                }
            }
        }
    }
}

/// One clock on each side (issue 15): the library reads the system time in its `clock.rs` only,
/// and so does the emulator; the command line never does.
#[test]
fn the_system_time_is_read_in_one_place_on_each_side() {
    for (dir, clock) in [
        (
            "crates/hybrid-trust-lib/src",
            Some("crates/hybrid-trust-lib/src/clock.rs"),
        ),
        (
            "crates/m365-emulator/src",
            Some("crates/m365-emulator/src/clock.rs"),
        ),
        ("src", None),
    ] {
        let mut found = Vec::new();
        system_time_reads(&root().join(dir), &mut found);
        match clock {
            Some(clock) => {
                assert_eq!(found.len(), 1, "{dir}: {found:#?}");
                assert!(found[0].contains(clock), "{dir}: {found:#?}");
            }
            None => assert!(found.is_empty(), "{dir}: {found:#?}"),
        }
    }
}

#[test]
fn the_time_guard_sees_every_way_to_read_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.rs"),
        "let a = Utc::now();\nlet b = time::OffsetDateTime::now_utc();\n// Utc::now() in a comment\nlet c = std::time::SystemTime::now();\n",
    )
    .unwrap();
    let mut found = Vec::new();
    system_time_reads(dir.path(), &mut found);
    assert_eq!(found.len(), 3, "{found:#?}");
}
