//! The one place that writes results to stdout: text for people, or exactly one JSON document
//! (`--output json`) with nothing else on stdout.

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
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            s.push('\n');
            s
        } else {
            text()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Writes text to stdout as it is (a closed pipe is not an error).
    pub fn raw(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// A warning or status note for people: always on stderr, so JSON on stdout stays clean.
    pub fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// Findings for people: a `Findings:` row (labels padded to `width`), one line each.
pub fn push_findings(s: &mut String, findings: &[crate::cert::Finding], width: usize) {
    if findings.is_empty() {
        s.push_str(&format!("{:<width$}none\n", "Findings:"));
        return;
    }
    s.push_str("Findings:\n");
    for f in findings {
        let sev = if f.severity == crate::cert::Severity::Error {
            "error"
        } else {
            "warning"
        };
        s.push_str(&format!("  {sev:<8}{:<24}{}\n", f.code, f.message));
    }
}
