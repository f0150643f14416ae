//! The repository's documentation stands on its own (issue 18): a clone has nothing outside it.
//!
//! - Every relative link and image in README.md, ARCHITECTURE.md, CHANGELOG.md and docs/**/*.md
//!   (`[x](path)`, `![x](path)`, `[x](path#anchor)`, `[x](#anchor)`, reference definitions
//!   `[x]: path`) resolves to a file or folder inside the repository: no `..` out of it, no
//!   absolute path, no other scheme than http(s) and mailto (those are not fetched: no network).
//! - Every `#anchor` names a heading of its Markdown target, by GitHub's slug rules (lowercase;
//!   spaces become `-`; punctuation other than `-` and `_` dropped; repeats get `-1`, `-2`, …).
//! - Fenced code blocks and inline code are not Markdown links and are skipped.
//! - Every `.md` file the code cites (a word ending in `.md` in src/, tests/, crates/, scripts/,
//!   fuzz/) is in the repository, from its root or under docs/ (`docs/protocol.md §1.4`). A file
//!   of Microsoft's documentation is named in a sentence with its source's abbreviation from
//!   docs/protocol.md (`ODP Set-CsCertificate.md`); upper-case names and paths into the
//!   repository's folders are always checked.
//! - The command reference (docs/commands.md) has a section for every command and subcommand
//!   `hybrid-trust --help` lists, naming each of its flags; the global flags are in its "Global
//!   options" section.
//!
//! The Markdown scanner is written here by hand (no new crate); its own tests at the end show it
//! finds what it must.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The files whose links are checked, relative to the repository root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| root.join(p).is_file())
        .collect();
    let mut stack = vec![PathBuf::from("docs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                stack.push(rel);
            } else if rel.extension().is_some_and(|x| x == "md") {
                out.push(rel);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Markdown scanning
// ---------------------------------------------------------------------------------------------

/// An open fence: its character and length (CommonMark: ``` or ~~~, three or more).
fn fence_of(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = rest.chars().take_while(|x| *x == c).count();
    // A backtick fence's info string may not contain a backtick.
    (n >= 3 && !(c == '`' && rest[n..].contains('`'))).then_some((c, n))
}

/// The document with every fenced code block's lines blanked (line breaks kept, so positions
/// keep their line numbers), and which lines were inside a fence.
fn without_fences(text: &str) -> (String, Vec<bool>) {
    let mut out = String::with_capacity(text.len());
    let mut fenced = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for line in text.split('\n') {
        let inside = match open {
            Some((c, n)) => {
                let t = line.trim_start_matches(' ');
                let closes = line.len() - t.len() <= 3
                    && t.chars().take_while(|x| *x == c).count() >= n
                    && t.trim_start_matches(c).trim().is_empty();
                if closes {
                    open = None;
                }
                true
            }
            None => match fence_of(line) {
                Some(f) => {
                    open = Some(f);
                    true
                }
                None => false,
            },
        };
        fenced.push(inside);
        if inside {
            out.extend(std::iter::repeat_n(' ', line.chars().count()));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.pop();
    (out, fenced)
}

/// Whether `chars[i..]` starts a blank line (a paragraph break: code spans and link texts do
/// not cross it).
fn blank_line_at(chars: &[char], i: usize) -> bool {
    chars[i] == '\n'
        && chars[i + 1..]
            .iter()
            .take_while(|c| **c != '\n')
            .all(|c| c.is_whitespace())
        && chars[i + 1..].contains(&'\n')
}

/// Blanks inline code spans (backticks included) and backslash-escaped punctuation, keeping
/// line breaks: what is left is the prose a link can be in.
fn without_code_spans(text: &str) -> Vec<char> {
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1).is_some_and(|c| c.is_ascii_punctuation()) => {
                chars[i] = ' ';
                chars[i + 1] = ' ';
                i += 2;
            }
            '`' => {
                let n = chars[i..].iter().take_while(|c| **c == '`').count();
                // The closing run: exactly n backticks, before the paragraph ends.
                let mut j = i + n;
                let mut close = None;
                while j < chars.len() {
                    if blank_line_at(&chars, j) {
                        break;
                    }
                    if chars[j] == '`' {
                        let m = chars[j..].iter().take_while(|c| **c == '`').count();
                        if m == n {
                            close = Some(j + m);
                            break;
                        }
                        j += m;
                    } else {
                        j += 1;
                    }
                }
                match close {
                    Some(end) => {
                        for c in &mut chars[i..end] {
                            if *c != '\n' {
                                *c = ' ';
                            }
                        }
                        i = end;
                    }
                    // No closing run: the backticks are literal.
                    None => i += n,
                }
            }
            _ => i += 1,
        }
    }
    chars
}

/// A link destination found in a document, with its line (1-based).
#[derive(Debug, Clone, PartialEq)]
struct Found {
    line: usize,
    dest: String,
}

/// Reads an inline link's destination from `chars[i..]` (just after the `(`): `<dest>` or a
/// run without spaces and with balanced parentheses, then an optional title, then `)`.
fn destination(chars: &[char], mut i: usize) -> Option<String> {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    let mut dest = String::new();
    if chars.get(i) == Some(&'<') {
        i += 1;
        while i < chars.len() && chars[i] != '>' {
            if chars[i] == '\n' {
                return None;
            }
            dest.push(chars[i]);
            i += 1;
        }
        i += 1;
    } else {
        let mut depth = 0usize;
        while i < chars.len() && !chars[i].is_whitespace() {
            match chars[i] {
                '(' => depth += 1,
                ')' if depth == 0 => break,
                ')' => depth -= 1,
                _ => {}
            }
            dest.push(chars[i]);
            i += 1;
        }
    }
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    // An optional title: "…", '…' or (…).
    if let Some(&q) = chars.get(i).filter(|c| matches!(c, '"' | '\'' | '(')) {
        let close = if q == '(' { ')' } else { q };
        i += 1;
        while i < chars.len() && chars[i] != close {
            i += 1;
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
    }
    (chars.get(i) == Some(&')')).then_some(dest)
}

/// The position of the `[` that opens the link text ending at `chars[close]` (a `]`), if any,
/// within the same paragraph.
fn opening_bracket(chars: &[char], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = close;
    while i > 0 {
        i -= 1;
        match chars[i] {
            ']' => depth += 1,
            '[' if depth == 0 => return Some(i),
            '[' => depth -= 1,
            '\n' => {
                // The line before this break: blank means a new paragraph began after it.
                let start = chars[..i]
                    .iter()
                    .rposition(|c| *c == '\n')
                    .map_or(0, |p| p + 1);
                if chars[start..i].iter().all(|c| c.is_whitespace()) {
                    return None;
                }
            }
            _ => {}
        }
    }
    None
}

/// Every link and image destination of a Markdown document, and every reference label used in
/// a full reference link `[text][label]` (checked against the definitions).
fn links(text: &str) -> (Vec<Found>, Vec<(usize, String)>) {
    let (prose, _) = without_fences(text);
    let chars = without_code_spans(&prose);
    let line_at = |pos: usize| chars[..pos].iter().filter(|c| **c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut references = Vec::new();
    // Reference definitions: `[label]: dest` at the start of a line (up to 3 spaces).
    for (n, line) in chars.split(|c| *c == '\n').enumerate() {
        let s: String = line.iter().collect();
        let t = s.trim_start_matches(' ');
        if s.len() - t.len() <= 3
            && t.starts_with('[')
            && !t.starts_with("[^")
            && let Some(end) = t.find("]:")
        {
            let label = &t[1..end];
            let rest = t[end + 2..].trim();
            if !label.is_empty() && !label.contains('[') && !rest.is_empty() {
                let dest = rest.split_whitespace().next().unwrap_or("");
                let dest = dest.trim_start_matches('<').trim_end_matches('>');
                found.push(Found {
                    line: n + 1,
                    dest: dest.to_string(),
                });
            }
        }
    }
    // Inline links and images: `](` after a link text.
    for i in 0..chars.len().saturating_sub(1) {
        if chars[i] != ']' || opening_bracket(&chars, i).is_none() {
            continue;
        }
        match chars[i + 1] {
            '(' => {
                if let Some(dest) = destination(&chars, i + 2) {
                    found.push(Found {
                        line: line_at(i),
                        dest,
                    });
                }
            }
            '[' => {
                let label: String = chars[i + 2..]
                    .iter()
                    .take_while(|c| **c != ']' && **c != '\n')
                    .collect();
                if !label.is_empty() && chars.get(i + 2 + label.chars().count()) == Some(&']') {
                    references.push((line_at(i), label));
                }
            }
            _ => {}
        }
    }
    found.sort_by_key(|f| f.line);
    (found, references)
}

/// The labels a document defines (`[label]: …`), normalised as CommonMark matches them.
fn definitions(text: &str) -> BTreeSet<String> {
    let (prose, _) = without_fences(text);
    prose
        .lines()
        .filter_map(|l| {
            let t = l.trim_start_matches(' ');
            (l.len() - t.len() <= 3 && t.starts_with('['))
                .then(|| t.find("]:").map(|e| normalise_label(&t[1..e])))
                .flatten()
        })
        .collect()
}

fn normalise_label(l: &str) -> String {
    l.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Headings and GitHub's anchors
// ---------------------------------------------------------------------------------------------

/// A heading: its level and its text as GitHub renders it (code spans without backticks, links
/// as their text, emphasis markers gone).
#[derive(Debug, Clone, PartialEq)]
struct Heading {
    level: usize,
    text: String,
    /// The line as written (for the command reference: its code spans).
    raw: String,
    line: usize,
}

fn headings(text: &str) -> Vec<Heading> {
    let (_, fenced) = without_fences(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if fenced[n] {
            continue;
        }
        let t = line.trim_start_matches(' ');
        if line.len() - t.len() <= 3 && t.starts_with('#') {
            let level = t.chars().take_while(|c| *c == '#').count();
            let rest = &t[level..];
            if level <= 6 && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
                // A closing sequence of #s (after a space) is not part of the text.
                let mut body = rest.trim();
                let stripped = body.trim_end_matches('#');
                if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
                    body = stripped.trim_end();
                }
                out.push(Heading {
                    level,
                    text: render_inline(body),
                    raw: line.to_string(),
                    line: n + 1,
                });
            }
            continue;
        }
        // Setext: a line of = or - under a paragraph line.
        if n > 0 && !fenced[n - 1] && line.len() - t.len() <= 3 {
            let under = t.trim_end();
            let prev = lines[n - 1].trim();
            let setext = !under.is_empty()
                && (under.chars().all(|c| c == '=') || under.chars().all(|c| c == '-'))
                && !prev.is_empty()
                && !prev.starts_with(['#', '-', '*', '+', '>', '|'])
                && !prev.chars().next().is_some_and(|c| c.is_ascii_digit());
            if setext {
                out.push(Heading {
                    level: if under.starts_with('=') { 1 } else { 2 },
                    text: render_inline(prev),
                    raw: prev.to_string(),
                    line: n,
                });
            }
        }
    }
    out
}

/// Inline Markdown to the text GitHub shows: code spans' content kept verbatim, links and
/// images as their text, emphasis markers and HTML tags dropped.
fn render_inline(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1).is_some_and(|x| x.is_ascii_punctuation()) {
            out.push(chars[i + 1]);
            i += 2;
        } else if c == '`' {
            let n = chars[i..].iter().take_while(|x| **x == '`').count();
            let rest = &chars[i + n..];
            let close = (0..rest.len()).find(|&j| {
                rest[j..].iter().take_while(|x| **x == '`').count() == n
                    && (j == 0 || rest[j - 1] != '`')
            });
            match close {
                Some(j) => {
                    out.extend(&rest[..j]);
                    i += n + j + n;
                }
                None => {
                    out.extend(&chars[i..i + n]);
                    i += n;
                }
            }
        } else if c == '!' && chars.get(i + 1) == Some(&'[') {
            i += 1;
        } else if c == '[' || c == ']' {
            // Link text stays; a destination right after `]` goes.
            if c == ']' && chars.get(i + 1) == Some(&'(') {
                let mut depth = 0;
                let mut j = i + 1;
                while j < chars.len() {
                    match chars[j] {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                i = j + 1;
            } else {
                i += 1;
            }
        } else if c == '<'
            && chars[i..].contains(&'>')
            && chars
                .get(i + 1)
                .is_some_and(|x| x.is_ascii_alphabetic() || *x == '/')
        {
            i += chars[i..].iter().position(|x| *x == '>').unwrap_or(0) + 1;
        } else if c == '*' {
            i += 1;
        } else if c == '_' {
            // Emphasis, not a snake_case word: an underscore at a word's edge.
            let before = i.checked_sub(1).map(|k| chars[k]);
            let after = chars.get(i + 1).copied();
            let inner = before.is_some_and(char::is_alphanumeric)
                && after.is_some_and(char::is_alphanumeric);
            if inner {
                out.push('_');
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// GitHub's anchor for a heading's text (github-slugger): lowercase, each space a `-`, every
/// character that is not a letter, digit, `-` or `_` dropped.
fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a document: each heading's slug, repeats numbered `-1`, `-2`, … as GitHub
/// numbers them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for h in headings(text) {
        let base = slug(&h.text);
        let n = seen.entry(base.clone()).or_insert(0);
        let anchor = if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        *n += 1;
        out.insert(anchor);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Resolving links
// ---------------------------------------------------------------------------------------------

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a destination has a URI scheme (`https:`, `mailto:`, `file:`, …).
fn scheme(dest: &str) -> Option<&str> {
    let (s, _) = dest.split_once(':')?;
    let mut cs = s.chars();
    (cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
    .then_some(s)
}

/// Checks one destination found in `doc` (relative to `root`): `Ok` when it resolves, or when
/// it is an http(s) or mailto link (not fetched), else what is wrong.
fn check(root: &Path, doc: &Path, dest: &str) -> Result<(), String> {
    let dest = dest.trim();
    if dest.is_empty() {
        return Err("empty link".into());
    }
    if let Some(s) = scheme(dest) {
        return match s.to_ascii_lowercase().as_str() {
            "http" | "https" | "mailto" => Ok(()),
            other => Err(format!("{dest}: a {other}: link does not work in a clone")),
        };
    }
    if dest.starts_with("//") {
        return Err(format!("{dest}: a protocol-relative URL"));
    }
    let (path, fragment) = match dest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (dest, None),
    };
    let path = percent_decode(path.split('?').next().unwrap_or(""));
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(format!(
            "{dest}: an absolute path; write it relative to {}",
            doc.display()
        ));
    }
    // Lexically, from the document's folder: a `..` may not leave the repository.
    let mut parts: Vec<String> = doc
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let target_rel = if path.is_empty() {
        doc.to_path_buf()
    } else {
        for c in Path::new(&path).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(format!("{dest}: leaves the repository"));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("{dest}: an absolute path"));
                }
            }
        }
        parts.iter().collect()
    };
    let target = root.join(&target_rel);
    if !target.exists() {
        return Err(format!("{dest}: {} does not exist", target_rel.display()));
    }
    // Through symbolic links too, the target must be inside the repository.
    let (real_root, real_target) = (
        root.canonicalize().map_err(|e| e.to_string())?,
        target.canonicalize().map_err(|e| e.to_string())?,
    );
    if !real_target.starts_with(&real_root) {
        return Err(format!("{dest}: resolves outside the repository"));
    }
    if let Some(f) = fragment.filter(|f| !f.is_empty()) {
        if target.extension().is_none_or(|x| x != "md") || !target.is_file() {
            return Err(format!(
                "{dest}: an anchor into {}, which is not a Markdown file",
                target_rel.display()
            ));
        }
        let text = std::fs::read_to_string(&target).map_err(|e| e.to_string())?;
        let want = percent_decode(f);
        if !anchors(&text).contains(&want) {
            return Err(format!(
                "{dest}: {} has no heading with the anchor #{want}",
                target_rel.display()
            ));
        }
    }
    Ok(())
}

/// Every broken link of the documents under `root`, as `file:line: what`.
fn broken_links(root: &Path, docs: &[PathBuf]) -> Vec<String> {
    let mut errors = Vec::new();
    for doc in docs {
        let text = match std::fs::read_to_string(root.join(doc)) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", doc.display()));
                continue;
            }
        };
        let (found, references) = links(&text);
        for f in found {
            if let Err(e) = check(root, doc, &f.dest) {
                errors.push(format!("{}:{}: {e}", doc.display(), f.line));
            }
        }
        let defined = definitions(&text);
        for (line, label) in references {
            if !defined.contains(&normalise_label(&label)) {
                errors.push(format!(
                    "{}:{line}: [{label}] is used as a reference link but never defined",
                    doc.display()
                ));
            }
        }
    }
    errors
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_local_link_and_anchor_in_the_docs_resolves() {
    let root = repo_root();
    let docs = documents(&root);
    assert!(
        docs.iter().any(|d| d.starts_with("docs")),
        "no docs/*.md found under {}",
        root.display()
    );
    let errors = broken_links(&root, &docs);
    assert!(
        errors.is_empty(),
        "broken links in the documentation:\n  {}",
        errors.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The command reference against `hybrid-trust --help`
// ---------------------------------------------------------------------------------------------

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .expect("run hybrid-trust --help");
    assert!(out.status.success(), "hybrid-trust {args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags a help text lists (`--name`), from the start of each option line.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| l.split_whitespace().take(2))
        .filter_map(|t| {
            let name: String = t
                .strip_prefix("--")?
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The text of the section a heading opens: up to the next heading of its level or above.
fn section<'a>(text: &'a str, hs: &[Heading], at: usize) -> &'a str {
    let lines: Vec<&str> = text.split('\n').collect();
    let h = &hs[at];
    let end = hs[at + 1..]
        .iter()
        .find(|n| n.level <= h.level)
        .map_or(lines.len(), |n| n.line - 1);
    let start: usize = lines[..h.line - 1].iter().map(|l| l.len() + 1).sum();
    let stop: usize = lines[..end].iter().map(|l| l.len() + 1).sum();
    &text[start..stop.min(text.len())]
}

/// The heading (index) whose code span names `command` (`` `credential upload` `` or
/// `` `credential upload --tenant …` ``).
fn command_heading(hs: &[Heading], command: &str) -> Option<usize> {
    hs.iter().position(|h| {
        h.raw.contains(&format!("`{command}`")) || h.raw.contains(&format!("`{command} "))
    })
}

#[test]
fn the_command_reference_names_every_command_and_flag() {
    let root = repo_root();
    let path = root.join("docs/commands.md");
    let text = std::fs::read_to_string(&path).expect("docs/commands.md");
    let hs = headings(&text);
    let top = help(&[]);
    let mut problems = Vec::new();

    let global = long_flags(&top);
    match hs.iter().position(|h| h.text == "Global options") {
        Some(i) => {
            let s = section(&text, &hs, i);
            for f in &global {
                if !s.contains(&format!("`{f}")) {
                    problems.push(format!(
                        "the global option {f} is not in \"Global options\""
                    ));
                }
            }
        }
        None => problems.push("no \"Global options\" section".to_string()),
    }

    let commands = subcommands(&top);
    assert!(
        commands.len() >= 10,
        "hybrid-trust --help lists too few commands: {commands:?}"
    );
    for c in &commands {
        let h = help(&[c.as_str()]);
        let subs = subcommands(&h);
        let leaves: Vec<(String, String)> = if subs.is_empty() {
            vec![(c.clone(), h)]
        } else {
            subs.iter()
                .map(|s| (format!("{c} {s}"), help(&[c.as_str(), s.as_str()])))
                .collect()
        };
        for (name, h) in leaves {
            let Some(i) = command_heading(&hs, &name) else {
                problems.push(format!("no section for `{name}`"));
                continue;
            };
            let s = section(&text, &hs, i);
            for f in long_flags(&h).difference(&global) {
                if !s.contains(f.as_str()) {
                    problems.push(format!("`{name}`: its flag {f} is not in its section"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/commands.md has drifted from `hybrid-trust --help`:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The documents the code cites
// ---------------------------------------------------------------------------------------------

/// The folders whose code is searched for cited documents, and the file left out: this one,
/// whose scanner tests name files that must not exist.
const CODE_DIRS: [&str; 5] = ["src", "tests", "crates", "scripts", "fuzz"];
const CODE_EXTENSIONS: [&str; 3] = ["rs", "py", "sh"];
const NOT_SCANNED: &str = "tests/docs_links.rs";

/// The abbreviations docs/protocol.md gives Microsoft's documentation repositories (GDC, ENTRA,
/// SFBDOCS, ODP, CSS): a `.md` name in a sentence that names one of them is a file of that
/// repository (`ODP Set-CsCertificate.md`), not of this one.
const OUTSIDE_SOURCES: [&str; 5] = ["GDC", "ENTRA", "SFBDOCS", "ODP", "CSS"];

/// A `.md` name found in code: its line (1-based), its byte offset, and the name as written.
#[derive(Debug, Clone, PartialEq)]
struct Cited {
    line: usize,
    at: usize,
    name: String,
}

/// Every word ending in `.md` (optionally with a path: letters, digits, `_ . / -`), not part
/// of a longer word (`.mdx`) and not inside a URL (`https://…/x.md`).
fn md_names(text: &str) -> Vec<Cited> {
    let bytes = text.as_bytes();
    let in_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-');
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = text[from..].find(".md").map(|p| p + from) {
        from = p + 3;
        let end = p + 3;
        if bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            continue;
        }
        let mut start = p;
        while start > 0 && in_name(bytes[start - 1]) {
            start -= 1;
        }
        let name = &text[start..end];
        if !name[..name.len() - 3]
            .bytes()
            .any(|b| b.is_ascii_alphanumeric())
            || name.starts_with("//")
            || (start > 0 && bytes[start - 1] == b':')
        {
            continue;
        }
        out.push(Cited {
            line: text[..start].matches('\n').count() + 1,
            at: start,
            name: name.to_string(),
        });
    }
    out
}

/// Whether a name can only mean a file of this repository: a path into one of its folders (or
/// out of it), or an upper-case name such as `README.md` or `DESIGN.md`.
fn names_a_repository_file(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or("");
    let stem = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .trim_end_matches(".md");
    (name.contains('/')
        && [
            ".", "..", "docs", "src", "tests", "fixtures", "scripts", "crates", "fuzz", "shared",
        ]
        .contains(&first))
        || (stem.bytes().any(|b| b.is_ascii_uppercase())
            && !stem.bytes().any(|b| b.is_ascii_lowercase()))
}

/// The prose of a line: without its indentation and its comment marker (`//!`, `///`, `//`,
/// `#`, `*`).
fn prose_of(line: &str) -> (&str, bool) {
    let t = line.trim_start();
    for marker in ["//!", "///", "//", "#", "*"] {
        if let Some(rest) = t.strip_prefix(marker) {
            return (rest.trim(), true);
        }
    }
    (t.trim(), false)
}

/// Whether the sentence that holds the name at byte `at` names an outside source. The sentence
/// runs back through the comment lines of its paragraph to the last `. ` (or a blank comment
/// line, or the first line that is not a comment).
fn cited_from_outside(text: &str, at: usize) -> bool {
    let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let mut before = vec![text[line_start..at].trim_start().to_string()];
    let (_, is_comment) = prose_of(&text[line_start..at]);
    if is_comment {
        for line in text[..line_start].lines().rev() {
            let (p, comment) = prose_of(line);
            if !comment || p.is_empty() {
                break;
            }
            before.push(p.to_string());
        }
    }
    before.reverse();
    let joined = before.join(" ");
    let sentence = joined
        .rfind(". ")
        .map_or(joined.as_str(), |p| &joined[p + 2..]);
    sentence
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| OUTSIDE_SOURCES.contains(&w))
}

/// Whether a cited name resolves inside the repository: from its root, or (a bare name) under
/// `docs/`; never through `..`.
fn resolves(root: &Path, name: &str) -> bool {
    let name = name.trim_start_matches("./");
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return false;
    }
    root.join(name).is_file() || (!name.contains('/') && root.join("docs").join(name).is_file())
}

/// Every `.md` name the code under `root` cites that is not in the repository, as
/// `file:line: name`.
fn missing_citations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = CODE_DIRS.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                if e.file_name() != "target" {
                    stack.push(rel);
                }
            } else if rel
                .extension()
                .is_some_and(|x| CODE_EXTENSIONS.iter().any(|c| x == *c))
                && rel != Path::new(NOT_SCANNED)
            {
                files.push(rel);
            }
        }
    }
    files.sort();
    let mut errors = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(root.join(&f)) else {
            continue;
        };
        for c in md_names(&text) {
            let outside = !names_a_repository_file(&c.name) && cited_from_outside(&text, c.at);
            if !outside && !resolves(root, &c.name) {
                errors.push(format!("{}:{}: {}", f.display(), c.line, c.name));
            }
        }
    }
    errors
}

#[test]
fn every_document_the_code_cites_is_in_the_repository() {
    let root = repo_root();
    let errors = missing_citations(&root);
    assert!(
        errors.is_empty(),
        "the code cites {} Markdown file(s) a clone does not have (cite docs/design.md, \
         docs/contract.md, docs/protocol.md or another file of the repository; a file of \
         Microsoft's docs goes after its source's abbreviation, as in \
         `ODP Set-CsCertificate.md`):\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The scanner's own tests: it must find what is wrong
// ---------------------------------------------------------------------------------------------

#[test]
fn slugs_follow_github() {
    let text = "# Reminders and monitoring\n## Microsoft's dated changes\n### `status --check`\n\
                ## A_b: c/d (e)\n## Same\n## Same\n## Same\n## Closing ##\n\
                ## [Linked](x.md) *emph* and snake_case\nSetext title\n---\n";
    let a = anchors(text);
    for want in [
        "reminders-and-monitoring",
        "microsofts-dated-changes",
        "status---check",
        "a_b-cd-e",
        "same",
        "same-1",
        "same-2",
        "closing",
        "linked-emph-and-snake_case",
        "setext-title",
    ] {
        assert!(a.contains(want), "{want} not in {a:?}");
    }
}

#[test]
fn code_is_not_scanned_and_every_link_form_is() {
    let text = "A [link](a.md) and ![img](i.png \"title\").\n\
                `[not](code.md)` and ``[not `either`](x.md)``.\n\
                ```sh\n[not](fenced.md)\n```\n\
                ~~~~\n```\n[not](tilde.md)\n~~~~\n\
                [wrapped\ntext](w.md#anchor) [x][ref] [y](<sp ace.md>)\n\
                [ref]: r.md\n\
                [![badge](b.png)](target.md)\n";
    let (found, refs) = links(text);
    let dests: Vec<&str> = found.iter().map(|f| f.dest.as_str()).collect();
    assert_eq!(
        dests,
        [
            "a.md",
            "i.png",
            "w.md#anchor",
            "sp ace.md",
            "r.md",
            "b.png",
            "target.md"
        ],
        "{found:?}"
    );
    assert_eq!(refs, [(11, "ref".to_string())]);
    assert_eq!(found[2].line, 11);
}

#[test]
fn broken_links_escapes_and_anchors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(dir.path().join("outside.md"), "# Out\n").unwrap();
    std::fs::write(
        root.join("docs/guide.md"),
        "# Guide\n## Exit codes\n## Exit codes\n",
    )
    .unwrap();
    std::fs::write(root.join("tool.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        root.join("README.md"),
        "# Readme\n\
         [ok](docs/guide.md) [ok](docs/guide.md#exit-codes-1) [ok](#readme) [ok](tool.rs)\n\
         [ok](https://example.com/x) [ok](mailto:a@b.c) [ok](./docs/../docs/guide.md)\n\
         [missing](docs/nope.md)\n\
         [escape](../outside.md)\n\
         [deep escape](docs/../../outside.md)\n\
         [bad anchor](docs/guide.md#exit-codes-2)\n\
         [absolute](/docs/guide.md)\n\
         [scheme](file:///etc/passwd)\n\
         [anchor in code](tool.rs#L1)\n\
         [undefined][nowhere]\n\
         ![image](docs/missing.png)\n\
         [defined]: docs/gone.md\n\
         `[skipped](docs/nope.md)`\n",
    )
    .unwrap();
    let errors = broken_links(&root, &documents(&root));
    let lines: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "README.md:4",
            "README.md:5",
            "README.md:6",
            "README.md:7",
            "README.md:8",
            "README.md:9",
            "README.md:10",
            "README.md:12",
            "README.md:13",
            "README.md:11",
        ],
        "{errors:#?}"
    );
    assert!(errors[1].contains("leaves the repository"), "{errors:#?}");
    assert!(
        errors[3].contains("no heading with the anchor"),
        "{errors:#?}"
    );
}

#[test]
fn cited_documents_are_found_and_outside_sources_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("src/emulator")).unwrap();
    std::fs::write(dir.path().join("outside.md"), "# Out\n").unwrap();
    std::fs::write(root.join("README.md"), "# Readme\n").unwrap();
    std::fs::write(root.join("docs/protocol.md"), "# Protocol\n").unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "//! See README.md, docs/protocol.md §1.4 and protocol.md (all here).\n\
         //! Missing: DESIGN.md and shared/PROTOCOL.md §5.7, (../shared/CONTRACT.md).\n\
         //! Cmdlets: ODP New-CsOAuthServer.md,\n\
         //! Set-CsCertificate.md; SFBDOCS `stage-av-and-oauth-certificates.md`.\n\
         //! SFBDOCS ends its sentence here. Then keycredential.md is missing.\n\
         //!\n\
         //! Not outside for sharing a sentence with one: (GDC `x.md`; PROTOCOL.md).\n\
         /// (docs/../../outside.md) <https://example.com/page.md> notes.mdx\n\
         const S: &str = \"see docs/nope.md\";\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/emulator/mail.rs"),
        "//! Graph's own page (GDC\n//! user-sendmail.md)\n//!\n//! user-sendmail.md\n",
    )
    .unwrap();
    assert_eq!(
        missing_citations(&root),
        [
            "src/emulator/mail.rs:4: user-sendmail.md",
            "src/lib.rs:2: DESIGN.md",
            "src/lib.rs:2: shared/PROTOCOL.md",
            "src/lib.rs:2: ../shared/CONTRACT.md",
            "src/lib.rs:5: keycredential.md",
            "src/lib.rs:7: PROTOCOL.md",
            "src/lib.rs:8: docs/../../outside.md",
            "src/lib.rs:9: docs/nope.md",
        ]
    );
}
