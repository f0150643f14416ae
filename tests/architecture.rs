//! Boundaries that keep the code easy to change (issue 15): the emulator shares no code with the
//! client it tests, beyond the one atomic-write helper, so that a serialisation or protocol bug
//! cannot hide on both sides at once (docs/design.md, "emulator ... must not import the client's
//! request/response types").

use std::path::Path;

/// Every `crate::…` path used under `dir`, with the file and line it is on.
fn crate_paths(dir: &Path, out: &mut Vec<(String, usize, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            crate_paths(&p, out);
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let tail = &rest[at + "crate::".len()..];
                let path: String = tail
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                    .collect();
                out.push((p.display().to_string(), i + 1, path));
                rest = tail;
            }
            assert!(
                !code.contains("super::super::"),
                "{}:{}: reaches out of the emulator with super::super::",
                p.display(),
                i + 1
            );
        }
    }
}

#[test]
fn the_emulator_uses_nothing_of_the_client_but_the_atomic_write_and_the_clock() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/emulator");
    let mut found = Vec::new();
    crate_paths(&dir, &mut found);
    assert!(!found.is_empty(), "the scan found no crate:: path at all");
    let foreign: Vec<_> = found
        .iter()
        .filter(|(_, _, path)| {
            !path.starts_with("emulator")
                && path.as_str() != "paths::write_atomic"
                && !path.starts_with("clock::Clock")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "the emulator uses the client's code: {foreign:#?}"
    );
}

#[test]
fn the_guard_sees_a_foreign_path() {
    // The scan itself, on a made-up file: it must report a client module.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.rs"),
        "use crate::graph::KeyCredential;\nfn f() { crate::paths::write_atomic(); }\n",
    )
    .unwrap();
    let mut found = Vec::new();
    crate_paths(dir.path(), &mut found);
    let paths: Vec<&str> = found.iter().map(|(_, _, p)| p.as_str()).collect();
    assert_eq!(paths, vec!["graph::KeyCredential", "paths::write_atomic"]);
}

/// One clock (issue 15): `Utc::now()` is read in `src/clock.rs` only; everything else takes "now"
/// from a `Clock`.
#[test]
fn the_system_time_is_read_in_one_place() {
    fn scan(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                scan(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if code.contains("Utc::now()") {
                        out.push(format!("{}:{}", p.display(), i + 1));
                    }
                }
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    scan(&src, &mut found);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("src/clock.rs"), "{found:#?}");
}
