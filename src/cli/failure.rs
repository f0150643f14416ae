//! How a failed command ends: an exit code (docs/contract.md: 1 run-time problem, 2 bad usage or
//! input), the error with its causes, and a hint that says what to do. Rendered on stderr as
//! `error:` / `caused by:` / `hint:` lines.

use hybrid_trust::cert::CertError;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
    pub hint: Option<String>,
}

impl Failure {
    /// Bad usage or bad input: exit 2, nothing changed.
    pub fn input(error: impl Into<anyhow::Error>, hint: impl Into<Option<String>>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
            hint: hint.into(),
        }
    }
    /// The command ran and failed: exit 1.
    pub fn runtime(error: impl Into<anyhow::Error>, hint: impl Into<Option<String>>) -> Failure {
        Failure {
            code: 1,
            error: error.into(),
            hint: hint.into(),
        }
    }

    /// The lines written to stderr. Each error, cause and hint is one line: what came from a
    /// server or a file in them (an Entra description, a Graph message, a name) is shown with
    /// its control characters escaped ([`super::printer::display_safe`]).
    pub fn render(&self) -> String {
        use super::printer::display_safe;
        let mut out = format!("error: {}\n", display_safe(&self.error.to_string()));
        let mut seen = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            let c = cause.to_string();
            if !seen.contains(&c) {
                out.push_str(&format!("caused by: {}\n", display_safe(&c)));
                seen.push_str(&c);
            }
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {}\n", display_safe(h)));
        }
        out
    }
}

impl From<CertError> for Failure {
    fn from(e: CertError) -> Failure {
        let hint = e.hint().map(str::to_string);
        Failure::input(e, hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_error_causes_once_and_hint() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(inner).context("cannot read cert.pfx");
        let f = Failure::input(e, Some("check the path".to_string()));
        assert_eq!(
            f.render(),
            "error: cannot read cert.pfx\ncaused by: No such file or directory\nhint: check the path\n"
        );
        assert_eq!(f.code, 2);
    }

    #[test]
    fn a_server_message_cannot_drive_the_terminal_or_forge_lines() {
        let e = anyhow::anyhow!("Graph said: \u{1b}]0;owned\u{7}\nhint: run rm -rf ~\u{9b}2J");
        let out = Failure::runtime(e, Some("read the message".to_string())).render();
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{9b}'));
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.contains("\\x1b]0;owned\\x07\\nhint: run rm -rf ~\\u{9b}2J"),
            "{out}"
        );
    }
}
