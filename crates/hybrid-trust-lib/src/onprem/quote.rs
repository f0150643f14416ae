//! The one audited way a value enters generated PowerShell.
//!
//! Values are first validated into a type (GUID, FQDN, https URL) and then single-quoted. Inside
//! single quotes PowerShell expands nothing, and the only special characters are the single-quote
//! family `'` U+2018 U+2019 U+201A U+201B (about_Quoting_Rules); the allowlist below excludes all
//! of them, every other quote, `$`, backtick, whitespace and control characters, so the quoted
//! value is inert. Anything outside the allowlist is refused, never escaped.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{what} {value:?} cannot be put safely into a PowerShell script: {why}")]
pub struct UnsafeValue {
    pub what: &'static str,
    pub value: String,
    pub why: String,
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '_' | ':' | '/' | '?' | '=' | '&' | '%' | '~' | '+' | '@' | ','
        )
}

/// Single-quotes a value for PowerShell after checking every character against the allowlist.
pub fn ps_quote(what: &'static str, value: &str) -> Result<String, UnsafeValue> {
    if value.is_empty() {
        return Err(UnsafeValue {
            what,
            value: value.into(),
            why: "it is empty".into(),
        });
    }
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return Err(UnsafeValue {
            what,
            value: value.into(),
            why: format!("character {c:?} is not allowed"),
        });
    }
    Ok(format!("'{value}'"))
}

/// A validated GUID, rendered lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guid(uuid::Uuid);

impl Guid {
    pub fn parse(what: &'static str, s: &str) -> Result<Guid, UnsafeValue> {
        match uuid::Uuid::parse_str(s.trim()) {
            Ok(u) if s.trim().len() == 36 => Ok(Guid(u)),
            _ => Err(UnsafeValue {
                what,
                value: s.into(),
                why: "it is not a GUID".into(),
            }),
        }
    }
    pub fn quoted(&self) -> String {
        format!("'{}'", self.0)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A validated DNS name (a pool's external web services FQDN, a SIP domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fqdn(String);

impl Fqdn {
    pub fn parse(what: &'static str, s: &str) -> Result<Fqdn, UnsafeValue> {
        let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if crate::tenant::is_dns_name(&t) {
            Ok(Fqdn(t))
        } else {
            Err(UnsafeValue {
                what,
                value: s.into(),
                why: "it is not a DNS name such as webext.contoso.com".into(),
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn quoted(&self) -> String {
        format!("'{}'", self.0)
    }
}

/// A validated https URL with a DNS host (or loopback for the emulator), no user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl(String);

impl HttpsUrl {
    pub fn parse(what: &'static str, s: &str) -> Result<HttpsUrl, UnsafeValue> {
        let bad = |why: &str| UnsafeValue {
            what,
            value: s.into(),
            why: why.into(),
        };
        let u = url::Url::parse(s.trim()).map_err(|_| bad("it is not a URL"))?;
        if u.scheme() != "https" {
            return Err(bad("it must be https"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad("it must not carry a user name or password"));
        }
        if u.host_str().is_none() {
            return Err(bad("it has no host"));
        }
        let text = s.trim().to_string();
        ps_quote(what, &text)?;
        Ok(HttpsUrl(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn quoted(&self) -> String {
        format!("'{}'", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_refuses_everything_powershell_could_interpret() {
        assert_eq!(
            ps_quote("x", "https://a.b/c?d=e").unwrap(),
            "'https://a.b/c?d=e'"
        );
        for bad in [
            "a'b",
            "a\u{2018}b",
            "a\u{2019}b",
            "a\u{201a}b",
            "a\u{201b}b",
            "$(calc)",
            "a`b",
            "a b",
            "a\"b",
            "a;b",
            "a\nb",
            "",
            "a|b",
            "a{b}",
            "a\u{0}b",
            "ü",
        ] {
            assert!(ps_quote("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            Guid::parse("g", "72F988BF-86F1-41AF-91AB-2D7CD011DB47")
                .unwrap()
                .quoted(),
            "'72f988bf-86f1-41af-91ab-2d7cd011db47'"
        );
        assert!(Guid::parse("g", "72f988bf86f141af91ab2d7cd011db47").is_err());
        assert_eq!(
            Fqdn::parse("f", "WebExt.Contoso.com.").unwrap().as_str(),
            "webext.contoso.com"
        );
        assert!(Fqdn::parse("f", "web ext.contoso.com").is_err());
        assert!(Fqdn::parse("f", "contoso").is_err());
        assert!(HttpsUrl::parse("u", "http://a.b/x").is_err());
        assert!(HttpsUrl::parse("u", "https://u:p@a.b/x").is_err());
        assert!(HttpsUrl::parse("u", "https://a.b/x'+$(calc)").is_err());
        assert!(
            HttpsUrl::parse(
                "u",
                "https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc"
            )
            .is_ok()
        );
    }
}
