//! Every Management Shell script hybrid-trust writes, parsed with the tree-sitter-powershell
//! grammar: the onboarding script (library, `onprem script`, what `onboard` writes), the drift-only
//! script (`onprem script --current DIR`) and the roll step `roll-<tenant>-<thumbprint>.ps1`.
//!
//! Each must parse without an ERROR or MISSING node, and every value that comes from outside
//! (tenant, metadata and autodiscover URLs, pool FQDNs, thumbprints, saved `Get-Cs*` output) may
//! only appear inside a string literal or a line comment it cannot leave. The grammar knows only
//! the ASCII quotes, while PowerShell also ends a string at ‘ ’ ‚ ‛ (single) and “ ” „ (double)
//! (about_Quoting_Rules), so each literal is also read with PowerShell's own rules. Hostile values
//! are either refused by the library's validation (asserted) or must stay inside their literal,
//! and must not change the script's code: its tokens outside literals and comments are compared
//! with the script made from a harmless value.

use chrono::TimeZone as _;
use hybrid_trust::onprem::roll::{RollInput, render_roll};
use hybrid_trust::onprem::{self, Current, Fqdn, Guid, HttpsUrl, ScriptInput, ps_quote};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tree_sitter::{Node, Parser, Tree};

const TID: &str = "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f";
const TP: &str = "C018A043066A6F5CEC76253A1D3CAE84C0E2F730";
const AUTODISCOVER: &str = "https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc";
/// Markers around a hostile fragment: after a break-out, `AFTER` would be code.
const BEFORE: &str = "xqBEFOREqx";
const AFTER: &str = "xqAFTERqx";

/// The fragments a hostile value is made of: PowerShell's quotes (ASCII and the Unicode ones it
/// treats alike), expansion, escapes, statement and pipeline separators, line ends, comments.
const HOSTILE: &[&str] = &[
    "'",
    "''",
    "\"",
    "$(whoami)",
    "$env:USERNAME",
    "`",
    ";",
    "|",
    "&",
    "\n",
    "\r",
    "\r\n",
    "#",
    "<#",
    "#>",
    "@'",
    "\u{2018}",
    "\u{2019}",
    "\u{201a}",
    "\u{201b}",
    "\u{201c}",
    "\u{201d}",
    "\u{201e}",
    "';Remove-CsOAuthServer -Identity microsoft.sts;'",
    "\u{2019};Remove-CsOAuthServer -Identity microsoft.sts;\u{2018}",
    "\"; Remove-CsOAuthServer -Identity microsoft.sts; \"",
    "\rRemove-CsOAuthServer -Identity microsoft.sts #",
];

// ---------------------------------------------------------------------------------------------
// PowerShell's view of a script, through the grammar

fn ps_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}')
}

fn ps_double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201c}' | '\u{201d}' | '\u{201e}')
}

/// The value of a single-quoted literal by PowerShell's rules: any of the single-quote family
/// opens and closes it, and two of them in a row stand for one. `Err` where PowerShell would end
/// the string somewhere other than at the token's end (the grammar knows only `'`).
fn ps_verbatim_value(token: &str) -> Result<String, String> {
    let mut chars = token.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if ps_single_quote(c) => {}
        _ => return Err(format!("{token:?} does not open with a single quote")),
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if ps_single_quote(c) {
            if let Some(&(_, d)) = chars.peek()
                && ps_single_quote(d)
            {
                chars.next();
                out.push(d);
                continue;
            }
            if i + c.len_utf8() != token.len() {
                return Err(format!(
                    "PowerShell ends {token:?} at the {c:?} at byte {i}, the grammar reads on"
                ));
            }
            return Ok(out);
        }
        out.push(c);
    }
    Err(format!("{token:?} is not closed"))
}

struct Script {
    name: String,
    text: String,
    tree: Tree,
}

fn parser() -> Parser {
    let mut p = Parser::new();
    p.set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("the PowerShell grammar loads");
    p
}

/// Every node, in document order.
fn all_nodes(root: Node<'_>) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    let mut c = root.walk();
    loop {
        out.push(c.node());
        if c.goto_first_child() {
            continue;
        }
        loop {
            if c.goto_next_sibling() {
                break;
            }
            if !c.goto_parent() {
                return out;
            }
        }
    }
}

impl Script {
    /// Parses `text` and asserts the grammar accepts all of it.
    fn parse(name: impl Into<String>, text: impl Into<String>) -> Script {
        let text = text.into();
        let tree = parser()
            .parse(&text, None)
            .expect("the parser returns a tree");
        let s = Script {
            name: name.into(),
            text,
            tree,
        };
        s.assert_well_formed();
        s
    }

    fn root(&self) -> Node<'_> {
        self.tree.root_node()
    }

    fn src(&self, n: Node<'_>) -> &str {
        &self.text[n.byte_range()]
    }

    /// `line L, column C: <that line>` for a byte offset.
    fn at(&self, byte: usize) -> String {
        let before = &self.text[..byte];
        let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let line_end = self.text[byte..]
            .find(['\n', '\r'])
            .map_or(self.text.len(), |i| byte + i);
        format!(
            "line {}, column {}: {:?}",
            before.matches('\n').count() + 1,
            byte - line_start + 1,
            &self.text[line_start..line_end]
        )
    }

    fn assert_well_formed(&self) {
        let bad: Vec<String> = all_nodes(self.root())
            .into_iter()
            .filter(|n| n.is_error() || n.is_missing())
            .map(|n| {
                format!(
                    "  {} {:?} {:?} at {}",
                    if n.is_missing() { "MISSING" } else { "ERROR" },
                    n.kind(),
                    self.src(n),
                    self.at(n.start_byte())
                )
            })
            .collect();
        assert!(
            bad.is_empty() && !self.root().has_error(),
            "{}: the PowerShell grammar does not accept the script:\n{}\n--- script ---\n{}",
            self.name,
            bad.join("\n"),
            self.text
        );
        // No literal is ever run as code.
        for n in all_nodes(self.root()) {
            let dynamic = match n.kind() {
                "command_invokation_operator" => true,
                "command_name" => matches!(
                    self.src(n).to_ascii_lowercase().as_str(),
                    "invoke-expression"
                        | "iex"
                        | "invoke-command"
                        | "icm"
                        | "powershell"
                        | "pwsh"
                        | "cmd"
                        | "start-process"
                ),
                _ => false,
            };
            assert!(
                !dynamic,
                "{}: runs code from a value: {:?} at {}",
                self.name,
                self.src(n),
                self.at(n.start_byte())
            );
        }
    }

    /// Why the occurrence of `value` at `start` is not safely inside a literal, if it is not.
    fn occurrence_problem(&self, value: &str, start: usize, bare_ok: bool) -> Option<String> {
        let end = start + value.len();
        let smallest = self
            .root()
            .descendant_for_byte_range(start, end)
            .expect("the range is inside the script");
        if bare_ok && smallest.kind() == "generic_token" && smallest.byte_range() == (start..end) {
            // A bare command argument that is exactly the value (a thumbprint: hex digits only).
            return None;
        }
        let mut n = smallest;
        let container = loop {
            match n.kind() {
                "verbatim_string_characters"
                | "verbatim_here_string_characters"
                | "expandable_string_literal"
                | "expandable_here_string_literal"
                | "comment" => break n,
                _ => match n.parent() {
                    Some(p) => n = p,
                    None => {
                        return Some(format!(
                            "not inside a string literal or comment: the smallest node around it is {} {:?}",
                            smallest.kind(),
                            self.src(smallest)
                        ));
                    }
                },
            }
        };
        let r = container.byte_range();
        let token = self.src(container);
        let kind = container.kind();
        let strictly_inside = start > r.start && end < r.end;
        match kind {
            "verbatim_string_characters" => {
                if !strictly_inside {
                    return Some(format!("it reaches the quotes of {token:?}"));
                }
                if let Err(e) = ps_verbatim_value(token) {
                    return Some(e);
                }
            }
            "verbatim_here_string_characters" => {
                if !strictly_inside || value.contains(['\r', '\n']) {
                    return Some(format!("it can end the here-string {token:?}"));
                }
            }
            "expandable_string_literal" | "expandable_here_string_literal" => {
                if !strictly_inside {
                    return Some(format!("it reaches the quotes of {token:?}"));
                }
                if let Some(c) = value
                    .chars()
                    .find(|&c| c == '$' || c == '`' || ps_double_quote(c))
                {
                    return Some(format!(
                        "it has {c:?}, which PowerShell interprets inside the double-quoted {token:?}"
                    ));
                }
                if let Some(x) = all_nodes(container)
                    .into_iter()
                    .skip(1)
                    .find(|x| x.is_named() && x.start_byte() < end && start < x.end_byte())
                {
                    return Some(format!(
                        "it overlaps the {} {:?} that PowerShell expands in {token:?}",
                        x.kind(),
                        self.src(x)
                    ));
                }
            }
            _ => {
                // A comment.
                if token.starts_with("<#") {
                    if !strictly_inside || value.contains("#>") {
                        return Some(format!("it can end the block comment {token:?}"));
                    }
                } else if start == r.start
                    || value.contains(['\r', '\n'])
                    || token.to_ascii_lowercase().starts_with("#requires")
                {
                    return Some(format!("it is not inert in the comment {token:?}"));
                }
            }
        }
        None
    }

    fn check(&self, what: &str, value: &str, bare_ok: bool) -> usize {
        assert!(!value.is_empty(), "{what}: an empty value proves nothing");
        let mut problems = Vec::new();
        let mut count = 0;
        for (start, _) in self.text.match_indices(value) {
            count += 1;
            if let Some(p) = self.occurrence_problem(value, start, bare_ok) {
                problems.push(format!("  at {}: {p}", self.at(start)));
            }
        }
        assert!(
            problems.is_empty(),
            "{}: {what} {value:?} is not safely inside a literal:\n{}\n--- script ---\n{}",
            self.name,
            problems.join("\n"),
            self.text
        );
        count
    }

    /// Every occurrence of `value` lies inside a string literal or comment it cannot leave.
    fn assert_in_literals(&self, what: &str, value: &str) -> usize {
        self.check(what, value, false)
    }

    /// Likewise, and it occurs at least once.
    fn assert_present_in_literals(&self, what: &str, value: &str) {
        let n = self.assert_in_literals(what, value);
        assert!(
            n > 0,
            "{}: {what} {value:?} is not in the script:\n{}",
            self.name,
            self.text
        );
    }

    /// The script's code: its tokens outside literals and comments (and what double-quoted
    /// strings expand), each literal or comment standing as its kind.
    fn skeleton(&self) -> Vec<String> {
        fn walk(s: &Script, n: Node<'_>, out: &mut Vec<String>) {
            match n.kind() {
                "comment" | "verbatim_string_characters" | "verbatim_here_string_characters" => {
                    out.push(n.kind().to_string());
                    return;
                }
                "expandable_string_literal" | "expandable_here_string_literal" => {
                    out.push(n.kind().to_string());
                }
                _ if n.child_count() == 0 => {
                    out.push(format!("{} {:?}", n.kind(), s.src(n)));
                }
                _ => {}
            }
            let mut c = n.walk();
            for ch in n.children(&mut c) {
                walk(s, ch, out);
            }
        }
        let mut out = Vec::new();
        walk(self, self.root(), &mut out);
        out
    }

    fn assert_same_code_as(&self, baseline: &Script) {
        let (a, b) = (self.skeleton(), baseline.skeleton());
        if a != b {
            let i = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            panic!(
                "{}: a value changed the script's code (first difference at token {i}: {:?} instead of {:?})\n--- script ---\n{}",
                self.name,
                a.get(i),
                b.get(i),
                self.text
            );
        }
    }
}

/// Parses `$v = <quoted>` and returns the literal's value by PowerShell's rules, asserting the
/// quoted text is exactly one single-quoted string literal.
fn one_literal(quoted: &str) -> String {
    let s = Script::parse(format!("$v = {quoted}"), format!("$v = {quoted}\r\n"));
    let literals: Vec<Node<'_>> = all_nodes(s.root())
        .into_iter()
        .filter(|n| n.kind() == "string_literal")
        .collect();
    assert_eq!(literals.len(), 1, "{quoted:?}: {}", s.root().to_sexp());
    let lit = literals[0];
    assert_eq!(s.src(lit), quoted, "{quoted:?} is not one literal");
    assert_eq!(lit.named_child_count(), 1);
    let inner = lit.named_child(0).unwrap();
    assert_eq!(inner.kind(), "verbatim_string_characters", "{quoted:?}");
    ps_verbatim_value(s.src(inner)).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// The scripts

fn getcs(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/getcs")).join(name)
}

fn metadata_url(tid: &str) -> String {
    format!("https://accounts.accesscontrol.windows.net/{tid}/metadata/json/1")
}

fn input(pools: &[&str], autodiscover: Option<&str>, client_auth: bool) -> ScriptInput {
    ScriptInput {
        tenant_id: Guid::parse("tenant", TID).unwrap(),
        metadata_url: HttpsUrl::parse("metadata URL", &metadata_url(TID)).unwrap(),
        pool_fqdns: pools
            .iter()
            .map(|p| Fqdn::parse("pool", p).unwrap())
            .collect(),
        autodiscover_url: autodiscover.map(|u| HttpsUrl::parse("autodiscover", u).unwrap()),
        client_auth_sts: client_auth,
        generated_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
            .unwrap(),
    }
}

fn decisions(dir: &Path, i: &ScriptInput) -> onprem::Decisions {
    let c = Current::load_dir(dir).unwrap();
    onprem::compare(
        &c,
        i.metadata_url.as_str(),
        i.autodiscover_url.as_ref().map(HttpsUrl::as_str),
        i.client_auth_sts,
    )
}

fn roll_input<'a>(tenant: &'a str, thumbprint: &'a str) -> RollInput<'a> {
    RollInput {
        tenant,
        thumbprint,
        effective: chrono::Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap(),
        old_not_after: Some(chrono::Utc.with_ymd_and_hms(2027, 3, 10, 0, 0, 0).unwrap()),
        uploaded: chrono::Utc.with_ymd_and_hms(2027, 2, 28, 12, 0, 0).unwrap(),
    }
}

/// The values of an onboarding script, checked; those the script must contain, asserted there.
fn check_onboarding(s: &Script, i: &ScriptInput, drift: &[onprem::Drift]) {
    s.assert_present_in_literals("tenant id", &i.tenant_id.to_string());
    s.assert_present_in_literals("metadata URL", i.metadata_url.as_str());
    for p in &i.pool_fqdns {
        s.assert_present_in_literals("pool FQDN", p.as_str());
    }
    if let Some(u) = &i.autodiscover_url {
        s.assert_in_literals("autodiscover URL", u.as_str());
    }
    for d in drift {
        // A saved value can be a common word ("Application"), and so can a wanted one ("Full"):
        // each is checked where it stands, in its drift line.
        let line = format!(
            "{} {}: {} -> {} ({})",
            d.object,
            d.property,
            d.current_display(),
            d.wanted,
            d.action
        );
        s.assert_present_in_literals("drift line", &line);
    }
}

#[test]
fn the_onboarding_script_in_every_variant_parses_and_keeps_its_values_in_literals() {
    let full = input(
        &["webext.contoso.com", "WebExt2.Contoso.COM."],
        Some(AUTODISCOVER),
        true,
    );
    let minimal = input(&[], None, false);
    for (name, i) in [("full", &full), ("minimal", &minimal)] {
        let s = Script::parse(name, onprem::render(i, None));
        check_onboarding(&s, i, &[]);
    }
    let s = Script::parse("full", onprem::render(&full, None));
    s.assert_present_in_literals("autodiscover URL", AUTODISCOVER);
    s.assert_present_in_literals("pool FQDN, normalised", "webext2.contoso.com");

    // The drift-only script (`onprem script --current DIR`): none, some, all steps.
    for (dir, i) in [
        ("ok", input(&[], Some(AUTODISCOVER), false)),
        ("stale-utf16", input(&[], None, true)),
        ("stale-utf16", input(&["webext.contoso.com"], None, false)),
    ] {
        let d = decisions(&getcs(dir), &i);
        let s = Script::parse(format!("drift {dir}"), onprem::render(&i, Some(&d)));
        check_onboarding(&s, &i, &d.drift);
    }
    // The stale fixture's old values are in the drift comments.
    let i = input(&[], None, true);
    let d = decisions(&getcs("stale-utf16"), &i);
    assert!(d.drift.iter().any(|x| x.current.is_some()), "{:?}", d.drift);
}

#[test]
fn the_roll_script_parses_and_keeps_its_values_in_literals() {
    // A GUID in another form than the 36 characters Entra prints (braces are a script block to
    // PowerShell) is refused before any script is written: one rule for GUIDs (ids.rs).
    for other_form in [
        "{0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f}",
        "urn:uuid:0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f",
    ] {
        let e = render_roll(&roll_input(other_form, TP)).unwrap_err();
        assert_eq!(e.what, "tenant", "{e:?}");
    }
    for tenant in ["contoso.onmicrosoft.com", TID, &TID.to_ascii_uppercase()] {
        for tp in [
            TP,
            "979e6890ba6fc8b199d6e66fbb519d5ebce63590",
            "1234567890123456789012345678901234567890",
        ] {
            let text = render_roll(&roll_input(tenant, tp)).unwrap();
            let s = Script::parse(format!("roll {tenant} {tp}"), text);
            s.assert_present_in_literals("tenant", tenant);
            // The thumbprint (40 hex digits, checked by render_roll) is quoted as well: one of
            // decimal digits only would be a number to PowerShell as a bare word.
            s.assert_present_in_literals("thumbprint", tp);
            s.assert_present_in_literals("effective date", "2027-03-01T12:00:00+00:00");
            s.assert_present_in_literals("old certificate's end", "2027-03-10 00:00 UTC");
            s.assert_present_in_literals("upload time", "2027-02-28 12:00 UTC");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The binary: `demo` (onboard and renew write their scripts) and `onprem script`

fn cli(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env_remove("HYBRID_TRUST_CONFIG")
        .env("HYBRID_TRUST_STATE_DIR", cwd.join("state"))
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env("NO_COLOR", "1")
        .output()
        .expect("runs")
}

fn stdout_script(name: &str, o: &std::process::Output) -> Script {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Script::parse(name, String::from_utf8(o.stdout.clone()).unwrap())
}

/// `demo` onboards an emulated tenant and rolls its certificate: the scripts that `onboard`
/// (onprem-<tenant id>.ps1) and `renew` (roll-<tenant>-<thumbprint>.ps1) write to the state folder.
#[test]
fn the_scripts_onboard_and_renew_write_parse_and_keep_their_values_in_literals() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
    let o = cmd
        .current_dir(cwd.path())
        .arg("demo")
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_STATE_DIR")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let folder = cwd.path().join("hybrid-trust-demo");
    let state = folder.join("state");
    let ledger = serde_json::to_value(
        hybrid_trust::ledger::LedgerStore::in_dir(&state)
            .load()
            .unwrap(),
    )
    .unwrap();
    let t = &ledger["tenants"][0];
    let str_of = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let domain = str_of(&t["domain"]);
    let tid = str_of(&t["tenant_id"]);
    let new_tp = str_of(&t["cert"]["thumbprint_sha1"]);
    let old_tp = str_of(&t["roll_confirmed"]["previous_thumbprint_sha1"]);
    let subject = str_of(&t["cert"]["subject"]);
    let pools: Vec<String> = t["pool_fqdns"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    let cloud: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("cloud.json")).unwrap()).unwrap();
    let metadata = format!("{}/{tid}/metadata/json/1", str_of(&cloud["acs_url"]));

    let mut names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ps1"))
        .collect();
    names.sort();
    let roll_name = hybrid_trust::lifecycle::roll_script_name(&domain, &new_tp);
    assert_eq!(names, vec![format!("onprem-{tid}.ps1"), roll_name.clone()]);

    let onboarding = Script::parse(
        names[0].clone(),
        std::fs::read_to_string(state.join(&names[0])).unwrap(),
    );
    onboarding.assert_present_in_literals("tenant id", &tid);
    onboarding.assert_present_in_literals("metadata URL", &metadata);
    assert!(!pools.is_empty());
    for p in &pools {
        onboarding.assert_present_in_literals("pool FQDN", p);
    }
    onboarding.assert_in_literals("certificate subject", &subject);
    onboarding.assert_in_literals("thumbprint", &old_tp);

    let roll = Script::parse(
        roll_name.clone(),
        std::fs::read_to_string(state.join(&roll_name)).unwrap(),
    );
    roll.assert_present_in_literals("tenant", &domain);
    assert!(roll.check("new thumbprint", &new_tp, true) >= 2);
    roll.assert_in_literals("old thumbprint", &old_tp);
    roll.assert_in_literals("certificate subject", &subject);
}

#[test]
fn onprem_script_output_parses_and_keeps_its_values_in_literals() {
    let cwd = tempfile::tempdir().unwrap();
    let o = cli(
        &[
            "onprem",
            "script",
            "--tenant",
            TID,
            "--pool-fqdn",
            "WebExt.Contoso.COM.",
            "--pool-fqdn",
            "webext2.contoso.com",
            "--autodiscover-url",
            AUTODISCOVER,
            "--client-auth-oauth-server",
        ],
        cwd.path(),
    );
    let s = stdout_script("onprem script", &o);
    s.assert_present_in_literals("tenant id", TID);
    s.assert_present_in_literals("metadata URL", &metadata_url(TID));
    s.assert_present_in_literals("pool FQDN, normalised", "webext.contoso.com");
    s.assert_present_in_literals("pool FQDN", "webext2.contoso.com");
    s.assert_present_in_literals("autodiscover URL", AUTODISCOVER);

    for dir in ["ok", "stale-utf16"] {
        let o = cli(
            &[
                "--output",
                "json",
                "onprem",
                "script",
                "--tenant",
                TID,
                "--autodiscover-url",
                AUTODISCOVER,
                "--current",
                getcs(dir).to_str().unwrap(),
            ],
            cwd.path(),
        );
        assert_eq!(o.status.code(), Some(0));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = Script::parse(
            format!("onprem script --current {dir}"),
            v["script"].as_str().unwrap(),
        );
        s.assert_present_in_literals("tenant id", TID);
        for d in v["drift"].as_array().unwrap() {
            let current = match d["current"].as_str() {
                None => "(missing)",
                Some("") => "(empty)",
                Some(c) => c,
            };
            let (object, property) = (
                d["object"].as_str().unwrap(),
                d["property"].as_str().unwrap(),
            );
            s.assert_present_in_literals(
                "saved Get-Cs* value",
                &format!("{object} {property}: {current} -> "),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile values

/// A value of a hostile fragment between markers.
fn carried(h: &str) -> String {
    format!("{BEFORE}{h}{AFTER}")
}

/// The markers and the whole value stay inside literals, and the code is the baseline's.
fn assert_contained(s: &Script, baseline: &Script, value: &str) {
    s.assert_present_in_literals("hostile value", value);
    s.assert_present_in_literals("text before the hostile fragment", BEFORE);
    s.assert_present_in_literals("text after the hostile fragment", AFTER);
    s.assert_same_code_as(baseline);
}

#[test]
fn hostile_values_are_refused_or_stay_inside_their_literal() {
    let baseline_input = input(&["webext.contoso.com"], Some(AUTODISCOVER), true);
    let baseline = Script::parse("baseline", onprem::render(&baseline_input, None));
    let roll_baseline = Script::parse(
        "roll baseline",
        render_roll(&roll_input("contoso.com", TP)).unwrap(),
    );
    let mut refused = Vec::new();
    for h in HOSTILE {
        // The pool FQDN.
        let v = format!("web{h}ext.contoso.com");
        match Fqdn::parse("pool", &v) {
            Err(_) => refused.push(("pool FQDN", *h)),
            Ok(f) => {
                let mut i = baseline_input.clone();
                i.pool_fqdns = vec![f.clone()];
                let s = Script::parse(format!("pool {v:?}"), onprem::render(&i, None));
                s.assert_present_in_literals("pool FQDN", f.as_str());
                s.assert_same_code_as(&baseline);
            }
        }
        // The metadata URL (from the cloud's acs_url) and the autodiscover URL.
        let v = format!("https://acs.example/{TID}/{}", carried(h));
        match HttpsUrl::parse("metadata URL", &v) {
            Err(_) => refused.push(("metadata URL", *h)),
            Ok(u) => {
                let mut i = baseline_input.clone();
                i.metadata_url = u.clone();
                let s = Script::parse(format!("metadata URL {v:?}"), onprem::render(&i, None));
                assert_contained(&s, &baseline, u.as_str());
            }
        }
        let v = format!("https://autodiscover.example/{}", carried(h));
        match HttpsUrl::parse("autodiscover URL", &v) {
            Err(_) => refused.push(("autodiscover URL", *h)),
            Ok(u) => {
                let mut i = baseline_input.clone();
                i.autodiscover_url = Some(u.clone());
                let s = Script::parse(format!("autodiscover URL {v:?}"), onprem::render(&i, None));
                assert_contained(&s, &baseline, u.as_str());
            }
        }
        // The tenant id.
        let v = format!("{TID}{h}");
        match Guid::parse("tenant", &v) {
            Err(_) => refused.push(("tenant id", *h)),
            Ok(g) => {
                let mut i = baseline_input.clone();
                i.tenant_id = g.clone();
                let s = Script::parse(format!("tenant {v:?}"), onprem::render(&i, None));
                s.assert_present_in_literals("tenant id", &g.to_string());
                s.assert_same_code_as(&baseline);
            }
        }
        // The roll step's tenant and thumbprint.
        let tenant = format!("contoso{h}.com");
        match render_roll(&roll_input(&tenant, TP)) {
            Err(_) => refused.push(("roll tenant", *h)),
            Ok(text) => {
                let s = Script::parse(format!("roll tenant {tenant:?}"), text);
                s.assert_in_literals("tenant", &tenant);
                s.assert_same_code_as(&roll_baseline);
            }
        }
        let tp = format!("{}{h}", &TP[..39]);
        match render_roll(&roll_input("contoso.com", &tp)) {
            Err(_) => refused.push(("roll thumbprint", *h)),
            Ok(text) => {
                let s = Script::parse(format!("roll thumbprint {tp:?}"), text);
                s.check("thumbprint", &tp, true);
            }
        }
        // What ps_quote (every other value's way in) makes of it.
        match ps_quote("value", &carried(h)) {
            Err(_) => refused.push(("ps_quote", *h)),
            Ok(q) => assert_eq!(one_literal(&q), carried(h)),
        }
    }
    // The library's validation refuses every hostile fragment in every slot outright.
    let slots = [
        "pool FQDN",
        "metadata URL",
        "autodiscover URL",
        "tenant id",
        "roll tenant",
        "roll thumbprint",
        "ps_quote",
    ];
    // `&` is the one fragment a URL may carry (inert inside single quotes, checked above); a
    // tenant id with white space around it is trimmed.
    for h in HOSTILE {
        for slot in slots {
            let url = matches!(slot, "metadata URL" | "autodiscover URL" | "ps_quote");
            let trimmed = slot == "tenant id" && h.trim().is_empty();
            assert_eq!(
                refused.contains(&(slot, *h)),
                !(url && *h == "&" || trimmed),
                "{slot} {h:?}: refused or not"
            );
        }
    }

    // Surrounding white space is trimmed, not refused: the value in the script is the trimmed one.
    let f = Fqdn::parse("pool", " WebExt.Contoso.com.\r\n").unwrap();
    assert_eq!(f.as_str(), "webext.contoso.com");
    let u = HttpsUrl::parse("autodiscover", &format!("\t{AUTODISCOVER}\r\n")).unwrap();
    assert_eq!(u.as_str(), AUTODISCOVER);
    let g = Guid::parse("tenant", &format!("\n{TID}\r")).unwrap();
    let mut i = baseline_input.clone();
    (i.pool_fqdns, i.autodiscover_url, i.tenant_id) = (vec![f], Some(u), g);
    let s = Script::parse("trimmed values", onprem::render(&i, None));
    s.assert_same_code_as(&baseline);
    check_onboarding(&s, &i, &[]);
}

/// Writes saved `Get-Cs*` output whose values carry `h`, as an admin (or whoever set those
/// values on the server) could hand it over.
fn hostile_saved_output(dir: &Path, h: &str) {
    let v = carried(h);
    std::fs::write(
        dir.join("Get-CsOAuthServer.txt"),
        format!("\r\nIdentity    : microsoft.sts\r\nMetadataUrl : https://old.example/{v}\r\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Get-CsPartnerApplication.txt"),
        format!(
            "\r\nIdentity              : microsoft.exchange\r\nApplicationIdentifier : 00000002-0000-0ff1-ce00-000000000000\r\nApplicationTrustLevel : {v}\r\nUseOAuthServer        : True\r\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("Get-CsOAuthConfiguration.txt"),
        format!(
            "\r\nIdentity                                : Global\r\nServiceName                             : {v}\r\nClientAuthorizationOAuthServerIdentity : exch{v}\r\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("Get-CsCertificate.txt"),
        format!(
            "\r\nUse        : OAuthTokenIssuer\r\nThumbprint : {TP}\r\nSubject    : CN={v}\r\n"
        ),
    )
    .unwrap();
}

/// Saved `Get-Cs*` output is free text: its values reach the script only in the drift comments,
/// and no value may end such a comment (PowerShell ends a line comment at CR or LF).
#[test]
fn hostile_saved_output_stays_inside_the_drift_comments() {
    let i = input(&[], None, false);
    let base_dir = tempfile::tempdir().unwrap();
    hostile_saved_output(base_dir.path(), "-");
    let base_d = decisions(base_dir.path(), &i);
    assert_eq!(base_d.drift.len(), 4, "{:?}", base_d.drift);
    let baseline = Script::parse("drift baseline", onprem::render(&i, Some(&base_d)));
    for h in HOSTILE {
        let dir = tempfile::tempdir().unwrap();
        hostile_saved_output(dir.path(), h);
        let d = decisions(dir.path(), &i);
        let s = Script::parse(format!("drift {h:?}"), onprem::render(&i, Some(&d)));
        s.assert_present_in_literals("text before the hostile fragment", BEFORE);
        s.assert_present_in_literals("text after the hostile fragment", AFTER);
        for x in &d.drift {
            if let Some(c) = &x.current {
                s.assert_in_literals("saved Get-Cs* value", c);
            }
        }
        s.assert_same_code_as(&baseline);
    }
    // The same through the binary.
    let cwd = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    hostile_saved_output(
        dir.path(),
        "\rRemove-CsOAuthServer -Identity microsoft.sts #",
    );
    let o = cli(
        &[
            "onprem",
            "script",
            "--tenant",
            TID,
            "--current",
            dir.path().to_str().unwrap(),
        ],
        cwd.path(),
    );
    let s = stdout_script("onprem script --current (hostile)", &o);
    s.assert_present_in_literals("text after the hostile fragment", AFTER);
    s.assert_same_code_as(&Script::parse(
        "drift baseline",
        onprem::render(&i, Some(&base_d)),
    ));
}

/// The command line: each hostile value is refused (exit 2, nothing on stdout) or the script
/// printed keeps it inside its literal and has the code of the script made from a harmless value.
#[test]
fn onprem_script_refuses_hostile_arguments_or_keeps_them_in_literals() {
    let cwd = tempfile::tempdir().unwrap();
    // A cloud on a closed loopback port: nothing here may reach a network.
    let cloud = |name: &str, acs: &str| {
        let p = cwd.path().join(name);
        let json = serde_json::json!({
            "name": "closed",
            "login_url": "https://127.0.0.1:9/login",
            "graph_url": "https://127.0.0.1:9/graph",
            "acs_url": acs,
            "exchange_url": "https://127.0.0.1:9/exo",
        });
        std::fs::write(&p, json.to_string()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cf = cloud("cloud.json", "https://127.0.0.1:9/acs");
    let script = |args: &[&str]| {
        let mut all = vec!["--cloud-file", &cf, "onprem", "script"];
        all.extend_from_slice(args);
        cli(&all, cwd.path())
    };
    let with = |flag: &str, v: &str| {
        vec!["--tenant", TID, flag, v]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut refused = Vec::new();
    for h in HOSTILE {
        let hostile_cloud = cloud(
            "hostile.json",
            &format!("https://127.0.0.1:9/{}", carried(h)),
        );
        let cases: [(&str, Vec<String>, Vec<String>); 4] = [
            (
                "--pool-fqdn",
                with("--pool-fqdn", &format!("web{h}ext.contoso.com")),
                with("--pool-fqdn", "webext.contoso.com"),
            ),
            (
                "--autodiscover-url",
                with(
                    "--autodiscover-url",
                    &format!("https://autodiscover.example/{}", carried(h)),
                ),
                with("--autodiscover-url", "https://autodiscover.example/x"),
            ),
            (
                "--tenant",
                vec!["--tenant".into(), format!("{TID}{h}")],
                vec!["--tenant".into(), TID.into()],
            ),
            (
                "the cloud file's acs_url",
                vec!["--tenant".into(), TID.into()],
                vec!["--tenant".into(), TID.into()],
            ),
        ];
        for (what, args, harmless) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = if what.starts_with("the cloud") {
                let mut all = vec!["--cloud-file", hostile_cloud.as_str(), "onprem", "script"];
                all.extend_from_slice(&args);
                cli(&all, cwd.path())
            } else {
                script(&args)
            };
            if o.status.code() == Some(2) {
                assert!(o.stdout.is_empty(), "{what} {h:?}");
                refused.push((what, *h));
                continue;
            }
            let s = stdout_script(&format!("{what} {h:?}"), &o);
            s.assert_in_literals("text before the hostile fragment", BEFORE);
            s.assert_in_literals("text after the hostile fragment", AFTER);
            for a in args.iter().filter(|a| a.contains(h)) {
                s.assert_in_literals(what, a);
            }
            let harmless: Vec<&str> = harmless.iter().map(String::as_str).collect();
            s.assert_same_code_as(&stdout_script("harmless", &script(&harmless)));
        }
    }
    // What the command line lets through: `&` in URLs (inert in single quotes), and a tenant id
    // with line ends around it (trimmed).
    for h in HOSTILE {
        for what in [
            "--pool-fqdn",
            "--autodiscover-url",
            "--tenant",
            "the cloud file's acs_url",
        ] {
            let let_through = (*h == "&" && what != "--pool-fqdn" && what != "--tenant")
                || (what == "--tenant" && h.trim().is_empty());
            assert_eq!(!refused.contains(&(what, *h)), let_through, "{what} {h:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The quoting function itself

/// Characters ps_quote lets through.
const PLAIN: &str = "abcXYZ019-._:/?=&%~+@,";
/// Characters PowerShell could interpret, or that look like it.
const SPECIAL: &str = "'\"`$(){}[];|&#<>@ \t\r\n\u{0}\u{85}\u{a0}\u{2028}\u{2018}\u{2019}\u{201a}\u{201b}\u{201c}\u{201d}\u{201e}\u{ff07}";

fn plain_char() -> impl Strategy<Value = char> {
    prop::sample::select(PLAIN.chars().collect::<Vec<_>>())
}

fn special_char() -> impl Strategy<Value = char> {
    prop::sample::select(SPECIAL.chars().collect::<Vec<_>>())
}

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop_oneof![plain_char(), special_char(), any::<char>()],
            0..24
        )
        .prop_map(|v| v.into_iter().collect()),
        // A plain value with one special character in it: what a quoting function that lets one
        // character too many through would pass.
        (
            prop::collection::vec(plain_char(), 0..16),
            prop_oneof![3 => special_char(), 1 => any::<char>()],
            any::<prop::sample::Index>()
        )
            .prop_map(|(mut v, c, at)| {
                v.insert(at.index(v.len() + 1), c);
                v.into_iter().collect()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// `ps_quote(s)` is one single-quoted literal whose value, by PowerShell's rules, is `s`.
    #[test]
    fn ps_quote_is_one_literal_holding_the_value(s in interesting_string()) {
        if let Ok(q) = ps_quote("value", &s) {
            prop_assert_eq!(one_literal(&q), s);
        }
    }

    /// Values made only of URL and DNS characters are quoted, not refused.
    #[test]
    fn plain_values_are_quoted(s in prop::collection::vec(plain_char(), 1..40)
        .prop_map(|v| v.into_iter().collect::<String>())) {
        let q = ps_quote("value", &s).unwrap();
        prop_assert_eq!(one_literal(&q), s);
    }

    /// The typed values' own quoting (Fqdn, HttpsUrl, Guid) holds too.
    #[test]
    fn typed_values_quote_to_one_literal(s in interesting_string()) {
        if let Ok(f) = Fqdn::parse("pool", &s) {
            prop_assert_eq!(one_literal(&f.quoted()), f.as_str());
        }
        let url = format!("https://a.example/{s}");
        if let Ok(u) = HttpsUrl::parse("url", &url) {
            prop_assert_eq!(one_literal(&u.quoted()), u.as_str());
        }
        if let Ok(g) = Guid::parse("tenant", &s) {
            prop_assert_eq!(one_literal(&g.quoted()), g.to_string());
        }
    }
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // A value outside any literal, one that PowerShell ends early, one PowerShell expands.
    let s = Script::parse("probe", "$a = 'x' + $b\r\nWrite-Host \"y $z\"\r\n");
    assert!(
        s.occurrence_problem("$b", s.text.find("$b").unwrap(), false)
            .is_some()
    );
    assert!(
        s.occurrence_problem("$z", s.text.find("$z").unwrap(), false)
            .is_some()
    );
    assert!(
        s.occurrence_problem("x", s.text.find('x').unwrap(), false)
            .is_none()
    );
    assert!(ps_verbatim_value("'a\u{2019}b'").is_err());
    assert_eq!(
        ps_verbatim_value("'a\u{2019}\u{2019}b'").unwrap(),
        "a\u{2019}b"
    );
    assert_eq!(ps_verbatim_value("'a''b'").unwrap(), "a'b");
    // A comment ends at CR as well as LF.
    let s = Script::parse("comment", "# a\rWrite-Host b\r\n");
    assert!(s.occurrence_problem("a\rWrite", 2, false).is_some());
    assert!(s.skeleton().iter().any(|t| t.contains("Write-Host")));
    // A digits-only thumbprint would be a number to PowerShell, not a bare word.
    let s = Script::parse("number", "Set-X -Thumbprint 1234567890\r\n");
    assert!(s.occurrence_problem("1234567890", 18, true).is_some());
}

// ---------------------------------------------------------------------------------------------
// The Exchange export script (`onprem script --trust exchange`)

fn exchange_export(tenant: Option<&str>) -> Result<String, onprem::UnsafeValue> {
    use hybrid_trust::onprem::exchange::{ExportScriptInput, render_export};
    render_export(&ExportScriptInput {
        tenant: tenant.map(str::to_string),
        generated_at: chrono::Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap(),
    })
}

#[test]
fn the_exchange_export_script_parses_and_keeps_its_tenant_in_a_literal() {
    let baseline = Script::parse(
        "exchange export (contoso.com)",
        exchange_export(Some("contoso.com")).unwrap(),
    );
    baseline.assert_present_in_literals("tenant", "contoso.com");
    let by_id = Script::parse(
        "exchange export (tenant id)",
        exchange_export(Some(TID)).unwrap(),
    );
    by_id.assert_present_in_literals("tenant", TID);
    by_id.assert_same_code_as(&baseline);
    Script::parse(
        "exchange export (no tenant)",
        exchange_export(None).unwrap(),
    );
    // What it exports: the four AuthConfig properties, the organization GUID, the certificates.
    for needed in [
        "Get-AuthConfig",
        "CurrentCertificateThumbprint, PreviousCertificateThumbprint, NextCertificateThumbprint, NextCertificateEffectiveDate",
        "'authconfig.json'",
        "(Get-OrganizationConfig).Guid",
        "'organization.json'",
        "X509ContentType]::Cert",
        "'.cer'",
    ] {
        assert!(
            baseline.text.contains(needed),
            "{needed}: {}",
            baseline.text
        );
    }
    // A hostile tenant is refused, or stays inside its literal without changing the code.
    let mut refused = 0;
    for h in HOSTILE {
        let v = format!("contoso{h}.com");
        match exchange_export(Some(&v)) {
            Err(_) => refused += 1,
            Ok(text) => {
                let s = Script::parse(format!("exchange export {v:?}"), text);
                s.assert_present_in_literals("tenant", &v);
                s.assert_same_code_as(&baseline);
            }
        }
    }
    assert_eq!(refused, HOSTILE.len(), "every hostile tenant is refused");
    // Through the binary: no network, no state.
    let cwd = tempfile::tempdir().unwrap();
    let o = cli(
        &["onprem", "script", "--trust", "exchange", "--tenant", TID],
        cwd.path(),
    );
    let s = stdout_script("onprem script --trust exchange", &o);
    s.assert_present_in_literals("tenant", TID);
    s.assert_same_code_as(&baseline);
    // Skype for Business flags are refused with the fix.
    let o = cli(
        &[
            "onprem",
            "script",
            "--trust",
            "exchange",
            "--pool-fqdn",
            "webext.contoso.com",
        ],
        cwd.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--pool-fqdn") && err.contains("hint:"),
        "{err}"
    );
}
