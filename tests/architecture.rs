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

/// The import graph of one crate's `src/`, a node per file: `a -> b` when `a` names an item of
/// `b` through `crate::`, `super::`, `self::` or one of its own child modules (test modules
/// left out). A module's face (`mod.rs`, `lib.rs`, `x.rs` beside `x/`) and the files below it
/// are one room: arrows between them are not counted (the face re-exports its rooms, the rooms
/// use the face's types).
struct ImportGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ImportGraph {
    fn of(src: &Path) -> ImportGraph {
        let mut files = BTreeMap::new();
        collect_rs(src, src, &mut files);
        let mut edges = BTreeMap::new();
        for (file, text) in &files {
            let me = module_path(file);
            let code = code_of(text);
            let children: BTreeSet<String> = code
                .lines()
                .filter_map(|l| {
                    let l = l.trim_start();
                    let l = l.strip_prefix("pub ").unwrap_or(l);
                    let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
                    l.strip_prefix("mod ")
                        .and_then(|r| r.strip_suffix(';'))
                        .map(str::to_string)
                })
                .collect();
            let mut out = BTreeSet::new();
            for path in paths_in(&code) {
                let (first, rest) = (path[0].as_str(), &path[1..]);
                let mut segs: Vec<String> = match first {
                    "crate" => Vec::new(),
                    "super" => me[..me.len().saturating_sub(1)].to_vec(),
                    "self" => me.clone(),
                    c if children.contains(c) && !rest.is_empty() => {
                        let mut v = me.clone();
                        v.push(c.to_string());
                        v
                    }
                    _ => continue,
                };
                segs.extend(rest.iter().cloned());
                if let Some(target) = resolve(&files, &segs)
                    && target != *file
                    && !same_room(file, &target)
                {
                    out.insert(target);
                }
            }
            edges.insert(file.clone(), out);
        }
        ImportGraph { edges }
    }

    /// The circles: strongly connected sets of more than one file (Tarjan).
    fn circles(&self) -> Vec<BTreeSet<String>> {
        struct T<'a> {
            g: &'a BTreeMap<String, BTreeSet<String>>,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on: BTreeSet<&'a str>,
            next: usize,
            out: Vec<BTreeSet<String>>,
        }
        fn visit<'a>(t: &mut T<'a>, v: &'a str) {
            t.index.insert(v, t.next);
            t.low.insert(v, t.next);
            t.next += 1;
            t.stack.push(v);
            t.on.insert(v);
            let g = t.g;
            for w in g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(lw));
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(iw));
                }
            }
            if t.low[v] == t.index[v] {
                let mut comp = BTreeSet::new();
                while let Some(w) = t.stack.pop() {
                    t.on.remove(w);
                    comp.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    t.out.push(comp);
                }
            }
        }
        let mut t = T {
            g: &self.edges,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on: BTreeSet::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !t.index.contains_key(v.as_str()) {
                visit(&mut t, v);
            }
        }
        t.out
    }

    /// The same graph between top-level modules (`session/keys.rs` is in `session`): a circle
    /// here is two layers that use each other through files that do not (issue 25:
    /// `ledger::store` → `session` → `ledger`).
    fn rooms(&self) -> ImportGraph {
        let room = |f: &str| {
            f.split('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".rs")
                .to_string()
        };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, bs) in &self.edges {
            let ra = room(a);
            let out = edges.entry(ra.clone()).or_default();
            for b in bs {
                let rb = room(b);
                if rb != ra
                    && !["lib", "main"].contains(&rb.as_str())
                    && !["lib", "main"].contains(&ra.as_str())
                {
                    out.insert(rb);
                }
            }
        }
        ImportGraph { edges }
    }

    fn arrows_within(&self, circle: &BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        for a in circle {
            for b in &self.edges[a] {
                if circle.contains(b) {
                    out.push(format!("{a} -> {b}"));
                }
            }
        }
        out
    }
}

fn collect_rs(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect_rs(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// `session/keys.rs` → `["session", "keys"]`; `session/mod.rs`, `lib.rs`, `main.rs` → the folder.
fn module_path(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of `segs` that is a module.
fn resolve(files: &BTreeMap<String, String>, segs: &[String]) -> Option<String> {
    for n in (1..=segs.len()).rev() {
        let stem = segs[..n].join("/");
        for f in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if files.contains_key(&f) {
                return Some(f);
            }
        }
    }
    None
}

/// Whether one file is the face of a module the other belongs to (a module path is a prefix of
/// the other's: only a face, `mod.rs`, `lib.rs` or `x.rs` beside `x/`, has files below it).
fn same_room(a: &str, b: &str) -> bool {
    let (ma, mb) = (module_path(a), module_path(b));
    ma != mb && (mb.starts_with(&ma) || ma.starts_with(&mb))
}

/// The code without comments and without the unit-test module at the end.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts at `crate`, `super`, `self` or a plain name, as segments; a `use`
/// group (`a::{b, c::d}`) gives one path per member.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (bytes[i].is_ascii_alphabetic() || bytes[i] == '_')
            && (i == 0
                || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':'));
        if !starts {
            i += 1;
            continue;
        }
        let (paths, end) = parse_path(&bytes, i);
        out.extend(paths.into_iter().filter(|p| p.len() > 1));
        i = end.max(i + 1);
    }
    out
}

/// Reads `a::b::{c, d::e}` from `at`: the paths and where it ends.
fn parse_path(s: &[char], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut segs = Vec::new();
    loop {
        let start = at;
        while at < s.len() && (s[at].is_alphanumeric() || s[at] == '_') {
            at += 1;
        }
        if at == start {
            break;
        }
        segs.push(s[start..at].iter().collect::<String>());
        if at + 1 < s.len() && s[at] == ':' && s[at + 1] == ':' {
            at += 2;
            if at < s.len() && s[at] == '{' {
                at += 1;
                let mut out = Vec::new();
                loop {
                    while at < s.len() && (s[at].is_whitespace() || s[at] == ',') {
                        at += 1;
                    }
                    if at >= s.len() || s[at] == '}' {
                        return (out, at + 1);
                    }
                    let (inner, end) = parse_path(s, at);
                    for p in inner {
                        let mut full = segs.clone();
                        full.extend(p.into_iter().filter(|x| x != "self"));
                        out.push(full);
                    }
                    // A member that is no path (`*`) is stepped over.
                    at = end.max(at + 1);
                    while at < s.len() && s[at] != ',' && s[at] != '}' {
                        at += 1;
                    }
                }
            }
            continue;
        }
        break;
    }
    (vec![segs], at)
}

/// No circles in the tool's library or its command line; in the emulator only the router and
/// its handlers call each other (server.rs routes to them, they use its shared state), which is
/// the one circle the design allows (issue 25).
#[test]
fn the_import_graph_has_no_circle_but_the_emulators_router() {
    for (src, allowed) in [
        ("crates/hybrid-trust-lib/src", None),
        ("src", None),
        ("crates/m365-emulator/src", Some("server.rs")),
    ] {
        let g = ImportGraph::of(&root().join(src));
        assert!(
            g.edges.values().map(BTreeSet::len).sum::<usize>() > 20,
            "{src}: the scan found almost no arrows"
        );
        let bad: Vec<_> = g
            .circles()
            .into_iter()
            .filter(|c| allowed.is_none_or(|a| !c.contains(a)))
            .map(|c| g.arrows_within(&c))
            .collect();
        assert!(
            bad.is_empty(),
            "{src}: circles in the import graph: {bad:#?}"
        );
        if allowed.is_none() {
            let rooms = g.rooms();
            let bad: Vec<_> = rooms
                .circles()
                .iter()
                .map(|c| rooms.arrows_within(c))
                .collect();
            assert!(bad.is_empty(), "{src}: circles between modules: {bad:#?}");
        }
    }
}

#[test]
fn the_import_graph_sees_a_circle_and_not_a_face() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("ledger")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod ledger;\npub mod remind;\n").unwrap();
    std::fs::write(
        src.join("ledger/mod.rs"),
        "mod store;\npub use store::Damaged;\nfn f() { crate::remind::reason_key(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("ledger/store.rs"), "use super::TenantRecord;\n").unwrap();
    std::fs::write(
        src.join("remind.rs"),
        "use crate::{ledger::{self, TenantRecord}};\n#[cfg(test)]\nmod tests { use crate::x::Y; }\n",
    )
    .unwrap();
    let g = ImportGraph::of(src);
    let circles = g.circles();
    assert_eq!(circles.len(), 1, "{:?}", g.edges);
    assert_eq!(
        circles[0],
        BTreeSet::from(["ledger/mod.rs".to_string(), "remind.rs".to_string()])
    );
    // The face and its room: no arrow between ledger/mod.rs and ledger/store.rs.
    assert!(g.edges["ledger/store.rs"].is_empty(), "{:?}", g.edges);
    assert!(!g.edges["ledger/mod.rs"].contains("ledger/store.rs"));

    // A circle through a room's face: store.rs -> remind, remind -> ledger's face.
    std::fs::write(
        src.join("ledger/mod.rs"),
        "mod store;\npub use store::Damaged;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("ledger/store.rs"),
        "fn f() { crate::remind::due(); }\n",
    )
    .unwrap();
    let g = ImportGraph::of(src);
    assert!(g.circles().is_empty(), "{:?}", g.edges);
    let rooms = g.rooms().circles();
    assert_eq!(
        rooms,
        vec![BTreeSet::from(["ledger".to_string(), "remind".to_string()])]
    );
}
