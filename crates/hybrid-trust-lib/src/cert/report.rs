//! What `cert inspect` shows: a certificate's facts and findings as one value, serialized for
//! scripts (the docs/contract.md keys first, then extensions) and rendered for people, with the
//! findings block the tenant metadata report shares. Pure: `now` comes in as an argument.

use super::findings::{Finding, Severity};
use super::load::Loaded;
use crate::terminal::display_safe;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// `cert inspect`: the docs/contract.md keys first, then extensions.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub key_type: String,
    pub key_bits: u32,
    pub thumbprint_sha1: String,
    pub x5t: String,
    pub x5t_s256: String,
    pub has_private_key: bool,
    pub base64: String,
    pub findings: Vec<Finding>,
    // Extensions.
    pub private_key_matches: Option<bool>,
    pub signature_algorithm: String,
    pub serial: String,
    pub format: String,
    pub chain: Vec<String>,
    pub days_left: i64,
}

fn rfc3339(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Inspection {
    pub fn new(l: &Loaded, findings: Vec<Finding>, now: DateTime<Utc>) -> Inspection {
        let c = &l.leaf;
        Inspection {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            sans: c.sans.clone(),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            key_type: c.key_type.name().to_string(),
            key_bits: c.key_bits,
            thumbprint_sha1: c.thumbprint_sha1(),
            x5t: c.x5t(),
            x5t_s256: c.x5t_s256(),
            has_private_key: l.key.is_some(),
            base64: c.base64(),
            findings,
            private_key_matches: l.key_matches(),
            signature_algorithm: c.signature_algorithm.clone(),
            serial: c.serial_hex.clone(),
            format: l.format.name().to_string(),
            chain: l.chain.iter().map(|c| c.subject.clone()).collect(),
            days_left: (c.not_after - now).num_days(),
        }
    }

    /// The exit code: 1 when a finding is an error.
    pub fn exit_code(&self) -> u8 {
        exit_code(&self.findings)
    }

    /// For people: one row per fact (a subject or SAN from the file is shown escaped).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("{k:<14}{}\n", display_safe(&v)));
        row("Subject:", self.subject.clone());
        row("Issuer:", self.issuer.clone());
        row(
            "DNS names:",
            if self.sans.is_empty() {
                "(none)".into()
            } else {
                self.sans.join(", ")
            },
        );
        row(
            "Valid:",
            format!(
                "{} to {} ({} days left)",
                self.not_before, self.not_after, self.days_left
            ),
        );
        row("Key:", format!("{} {} bits", self.key_type, self.key_bits));
        row("Signature:", self.signature_algorithm.clone());
        row("Thumbprint:", format!("{} (SHA-1)", self.thumbprint_sha1));
        row("x5t:", self.x5t.clone());
        row("x5t#S256:", self.x5t_s256.clone());
        row(
            "Private key:",
            match (self.has_private_key, self.private_key_matches) {
                (false, _) => "no".into(),
                (true, Some(true)) => "yes, matches the certificate".into(),
                (true, Some(false)) => "yes, but it does NOT match the certificate".into(),
                (true, None) => "yes (not checked: unsupported algorithm)".into(),
            },
        );
        row(
            "Format:",
            format!(
                "{}{}",
                self.format,
                if self.chain.is_empty() {
                    String::new()
                } else {
                    format!(" (+{} chain certificate(s))", self.chain.len())
                }
            ),
        );
        push_findings(&mut s, &self.findings, 14);
        s
    }
}

/// 1 when one of `findings` is an error, else 0.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.severity == Severity::Error))
}

/// Findings for people: a `Findings:` row (labels padded to `width`), one line each.
pub fn push_findings(s: &mut String, findings: &[Finding], width: usize) {
    if findings.is_empty() {
        s.push_str(&format!("{:<width$}none\n", "Findings:"));
        return;
    }
    s.push_str("Findings:\n");
    for f in findings {
        let sev = if f.severity == Severity::Error {
            "error"
        } else {
            "warning"
        };
        s.push_str(&format!(
            "  {sev:<8}{:<24}{}\n",
            f.code,
            display_safe(&f.message)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{CheckOptions, check, load_bytes};
    use chrono::TimeDelta;

    fn loaded(cn: &str) -> Loaded {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["sfb.contoso.com".into()]).unwrap();
        p.distinguished_name.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::Utf8String(cn.into()),
        );
        let pem = p.self_signed(&kp).unwrap().pem();
        load_bytes(pem.as_bytes(), "t.pem".as_ref(), &mut || Ok(None)).unwrap()
    }

    #[test]
    fn inspection_json_keeps_the_contract_order_and_text_escapes_names() {
        let l = loaded("sfb\u{1b}[2J");
        let now = l.leaf.not_before + TimeDelta::days(1);
        let opts = CheckOptions {
            now,
            sip_domain: Some("contoso.com".into()),
            horizon_days: 30,
            require_private_key: true,
        };
        let i = Inspection::new(&l, check(&l, &opts), now);
        let json = serde_json::to_string(&i).unwrap();
        let keys = [
            "subject",
            "issuer",
            "sans",
            "not_before",
            "not_after",
            "key_type",
            "key_bits",
            "thumbprint_sha1",
            "x5t",
            "x5t_s256",
            "has_private_key",
            "base64",
            "findings",
            "private_key_matches",
            "signature_algorithm",
            "serial",
            "format",
            "chain",
            "days_left",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert_eq!(i.days_left, (l.leaf.not_after - now).num_days());
        // No private key: an error finding, exit 1, and "no" for people.
        assert!(!i.has_private_key);
        assert_eq!(i.exit_code(), 1);
        let text = i.text();
        assert!(text.contains("Private key:  no\n"), "{text}");
        assert!(text.contains("sfb\\x1b[2J"), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("Findings:\n  error   "), "{text}");
    }

    #[test]
    fn no_findings_is_one_row() {
        let mut s = String::new();
        push_findings(&mut s, &[], 16);
        assert_eq!(s, "Findings:       none\n");
        assert_eq!(exit_code(&[]), 0);
    }
}
