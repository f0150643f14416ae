//! How a failed command ends: an exit code (CONTRACT.md: 1 run-time problem, 2 bad usage or
//! input), the error with its causes, and a hint that says what to do. Rendered on stderr as
//! `error:` / `caused by:` / `hint:` lines.

use crate::cert::CertError;

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

    /// The lines written to stderr.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.error);
        let mut seen = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            let c = cause.to_string();
            if !seen.contains(&c) {
                out.push_str(&format!("caused by: {c}\n"));
                seen.push_str(&c);
            }
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {h}\n"));
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
}
