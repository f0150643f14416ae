//! The OAuthTokenIssuer rules, as findings with a severity, a stable code and a message that
//! says what to do. Pure: `now` and the options come in as arguments.

use super::certificate::KeyType;
use super::load::Loaded;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub now: DateTime<Utc>,
    /// The SIP domain the subject CN or a SAN must cover (`--sip-domain`).
    pub sip_domain: Option<String>,
    /// Warn when the certificate expires within this many days.
    pub horizon_days: i64,
    /// Whether a private key is required (verify, onboard, `--require-private-key`).
    pub require_private_key: bool,
}

fn f(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
}

/// Whether a certificate name covers `domain` as Windows (SChannel) matches it: equal ignoring
/// case, or a `*.` wildcard in the leftmost label covering exactly one label.
pub fn name_covers(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    if name.eq_ignore_ascii_case(domain) {
        return true;
    }
    match (name.strip_prefix("*."), domain.split_once('.')) {
        (Some(rest), Some((label, parent))) => {
            !label.is_empty() && !rest.contains('*') && rest.eq_ignore_ascii_case(parent)
        }
        _ => false,
    }
}

pub fn check(loaded: &Loaded, opts: &CheckOptions) -> Vec<Finding> {
    use Severity::{Error, Warning};
    let c = &loaded.leaf;
    let mut out = Vec::new();
    let date = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    match &c.key_type {
        KeyType::Rsa if c.key_bits < 2048 => out.push(f(
            Error,
            "key-too-small",
            format!("the RSA key is {} bits; OAuthTokenIssuer needs at least 2048: issue a new certificate with a 2048-bit or larger key", c.key_bits),
        )),
        KeyType::Rsa => {}
        other => out.push(f(
            Error,
            "key-not-rsa",
            format!("the key is {}; Skype for Business signs OAuth tokens with RSA: issue an RSA certificate (2048 bits or more)", other.name()),
        )),
    }
    if opts.now > c.not_after {
        out.push(f(Error, "expired", format!("the certificate expired on {}: issue a new one and roll it with Set-CsCertificate -Roll", date(c.not_after))));
    } else if opts.now < c.not_before {
        out.push(f(Error, "not-yet-valid", format!("the certificate is not valid before {}: wait, or check the clock of the machine that issued it", date(c.not_before))));
    } else if c.not_after - opts.now <= crate::dates::days(opts.horizon_days) {
        let days = (c.not_after - opts.now).num_days();
        out.push(f(
            Warning,
            "expires-soon",
            format!(
                "the certificate expires in {days} day(s), on {}: plan its replacement now",
                date(c.not_after)
            ),
        ));
    }
    if let Some(domain) = &opts.sip_domain {
        let covered = c
            .subject_cn
            .iter()
            .chain(c.sans.iter())
            .any(|n| name_covers(n, domain));
        if !covered {
            out.push(f(
                Error,
                "sip-domain-missing",
                format!("neither the subject CN nor a DNS name in the certificate covers the SIP domain {domain}: issue a certificate with {domain} in the subject or SANs"),
            ));
        }
    }
    if c.signature_is_sha1 {
        out.push(f(
            Warning,
            "sha1-signature",
            format!(
                "the certificate is signed with {}, which is deprecated: reissue it with SHA-256",
                c.signature_algorithm
            ),
        ));
    }
    if c.key_usage_digital_signature == Some(false) {
        out.push(f(
            Error,
            "key-usage-no-signature",
            "the key usage extension does not allow digital signatures, which token signing needs: issue a certificate with Digital Signature key usage".to_string(),
        ));
    }
    match (&loaded.key, loaded.key_matches()) {
        (None, _) if opts.require_private_key => out.push(f(
            Error,
            "no-private-key",
            "the file has no private key: export the certificate as PFX with its private key (Export-PfxCertificate)".to_string(),
        )),
        (Some(_), Some(false)) => out.push(f(
            Error,
            "private-key-mismatch",
            "the private key in the file does not belong to this certificate: export the certificate together with its own key".to_string(),
        )),
        (Some(_), None) => out.push(f(Warning, "private-key-unreadable", "the private key's algorithm is not supported, so it cannot be checked: export an RSA key (PKCS#8 or PFX)".to_string())),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label_like_windows() {
        assert!(name_covers("contoso.com", "CONTOSO.com"));
        assert!(name_covers("*.contoso.com", "sip.contoso.com"));
        assert!(!name_covers("*.contoso.com", "contoso.com"));
        assert!(!name_covers("*.contoso.com", "a.b.contoso.com"));
        assert!(!name_covers("*", "contoso.com"));
        assert!(!name_covers("s*.contoso.com", "sip.contoso.com"));
        assert!(!name_covers("*.*.com", "a.b.com"));
        assert!(name_covers("contoso.com.", "contoso.com"));
    }
}
