//! The one place that writes results to stdout: text for people, or exactly one JSON document
//! (`--output json`) with nothing else on stdout.
//!
//! Text that came from outside (Graph display names, certificate subjects, servers' error
//! messages, files) may hold terminal control sequences: `ESC[2J` clears the screen, `ESC]0;…BEL`
//! retitles the window, a newline forges a line, a bidi override reorders what is read (issue
//! 14, defect 9). Commands pass outside values through [`display_safe`] where they put them on
//! a line, and everything this printer writes in text (stdout, notes, failures) goes through
//! [`terminal_safe`], so no control character reaches the terminal raw. JSON output escapes
//! them as `\uXXXX`. The escaping itself is the library's ([`hybrid_trust::terminal`]).

use hybrid_trust::terminal::json_safe;
pub use hybrid_trust::terminal::{display_safe, terminal_safe};
use serde::Serialize;
use std::io::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: OutputFormat,
}

impl Printer {
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints `value` as JSON in JSON mode, or `text()` otherwise.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        let out = if self.json() {
            let mut s = serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
            s.push('\n');
            json_safe(s)
        } else {
            terminal_safe(&text()).into_owned()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Writes text to stdout as it is (a closed pipe is not an error).
    pub fn raw(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(terminal_safe(text).as_bytes());
        let _ = stdout.flush();
    }

    /// A warning or status note for people: always on stderr, so JSON on stdout stays clean.
    pub fn note(&self, line: &str) {
        let line = terminal_safe(line);
        super::progress::suspend(|| eprintln!("{line}"));
    }
}
