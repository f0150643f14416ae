//! Text from outside (Graph display names, certificate subjects, servers' error messages, files)
//! made safe to show: on one line of a terminal ([`display_safe`]), as a whole text output
//! ([`terminal_safe`]), or as JSON ([`json_safe`]). Such text may hold terminal control
//! sequences: `ESC[2J` clears the screen, `ESC]0;…BEL` retitles the window, a newline forges a
//! line, a bidi override reorders what is read (issue 14, defect 9). The library's renderings
//! pass outside values through [`display_safe`]; the command line's printer passes every output
//! through [`terminal_safe`] or [`json_safe`].

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL, C1 controls (U+0080–U+009F,
/// which some terminals obey even UTF-8 encoded: U+009B is CSI) and the bidi embeddings,
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069, "Trojan Source", CVE-2021-42574).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_into(out: &mut String, c: char) {
    use std::fmt::Write as _;
    if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

/// A value that came from outside (Graph, Entra, a server's error message, a file) made safe to
/// show on one line of a terminal: every control character, newline and tab included, and every
/// bidi control is shown escaped (`\x1b`, `\n`, `\u{9b}`, `\u{202e}`) instead of acting on the
/// terminal. Other text, backslashes included, is left as it is. The printer calls this for
/// outside values; [`terminal_safe`] is the backstop for whole outputs.
pub fn display_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => escape_into(&mut out, c),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A whole text output made safe for a terminal: like [`display_safe`] but line breaks (`\n`,
/// and `\r\n` as iCalendar needs) and tabs stay. Every text the printer writes goes through it,
/// so a value that escaped [`display_safe`] still cannot drive the terminal.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |(i, c): (usize, char)| {
        is_unsafe(c) && c != '\n' && c != '\t' && !(c == '\r' && s[i + 1..].starts_with('\n'))
    };
    if !s.char_indices().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.char_indices() {
        if bad((i, c)) {
            match c {
                '\r' => out.push_str("\\r"),
                c => escape_into(&mut out, c),
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// JSON for the wire: serde_json escapes C0 controls in strings but writes DEL, C1 controls and
/// bidi controls raw; they are escaped here as `\uXXXX` (RFC 8259 §7), which decodes to the same
/// string. They can only occur inside strings, so the document stays valid.
pub fn json_safe(s: String) -> String {
    use std::fmt::Write as _;
    if !s.chars().any(is_unsafe) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        // C0 inside strings is already escaped by serde_json; what is left is the document's
        // own whitespace (newlines of pretty printing), which stays.
        if is_unsafe(c) && (c as u32) >= 0x7f {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_safe_escapes_every_control_and_bidi_character() {
        assert_eq!(
            display_safe("plain name, ünïcode, C:\\path"),
            "plain name, ünïcode, C:\\path"
        );
        assert!(matches!(
            display_safe("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            display_safe(
                "a\u{1b}[2Jb\u{1b}]0;t\u{7}c\nd\te\rf\u{7f}g\u{9b}h\u{85}i\u{202e}j\u{2066}k\u{0}"
            ),
            "a\\x1b[2Jb\\x1b]0;t\\x07c\\nd\\te\\rf\\x7fg\\u{9b}h\\u{85}i\\u{202e}j\\u{2066}k\\x00"
        );
        for c in (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain(0x202a..0x202f)
            .chain(0x2066..0x206a)
        {
            let c = char::from_u32(c).unwrap();
            let shown = display_safe(&c.to_string()).into_owned();
            assert!(!shown.contains(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn terminal_safe_keeps_line_breaks_and_tabs_only() {
        assert_eq!(terminal_safe("a\nb\tc\r\nd"), "a\nb\tc\r\nd");
        assert_eq!(
            terminal_safe("a\rb\u{1b}[31m\u{9b}"),
            "a\\rb\\x1b[31m\\u{9b}"
        );
        assert_eq!(terminal_safe("x\r"), "x\\r");
    }

    #[test]
    fn json_safe_escapes_del_c1_and_bidi_and_decodes_to_the_same() {
        let v = serde_json::json!({"n": "a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\nf"});
        let s = json_safe(serde_json::to_string_pretty(&v).unwrap());
        for c in ['\u{1b}', '\u{7f}', '\u{9b}', '\u{202e}'] {
            assert!(!s.contains(c), "{s:?}");
        }
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }
}
