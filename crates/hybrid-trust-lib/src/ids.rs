//! The identifiers Microsoft's services and Windows use, each parsed and printed in one place
//! (issue 25: GUIDs were parsed in a dozen places by different rules, a thumbprint lived as three
//! strings): [`TenantId`] and [`AppId`] (GUIDs, printed lowercase with hyphens, as Entra prints
//! them) and [`Thumbprint`] (a certificate's SHA-1, 40 uppercase hex digits, as Windows shows it).
//!
//! The rules, chosen once: a GUID is accepted only in its 36-character hyphenated form, in either
//! case (`{…}`, URN and bare-hex forms, which `uuid` also parses, are refused: no Microsoft
//! service prints them, and a value that merely parses as a GUID in some form is more likely a
//! typo than an id). A thumbprint is 40 hex digits in either case; what a person types may carry
//! the colons and spaces Windows' certificate dialog shows ([`Thumbprint::parse_typed`]).
//!
//! Each type reads and writes as its plain string (JSON, the ledger), and dereferences to `str`,
//! so it goes wherever text does; a value read from a file is checked like one from a flag.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// `s` as a GUID in its 36-character hyphenated form, lowercase: the one rule for every GUID.
pub fn canonical_guid(s: &str) -> Option<String> {
    if s.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// The first GUID in `text` (words split at anything but hex digits and hyphens), as Graph's
/// and Entra's messages embed them ("…KeyId 'c0ffee…' is not allowed").
pub fn first_guid_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find_map(canonical_guid)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{:?} is not {}",
                        s,
                        $name::WHAT
                    ))
                })
            }
        }
    };
}

string_id!(
    /// A Microsoft Entra tenant's id (a GUID).
    TenantId
);

string_id!(
    /// An application's id (`appId`, the client id; a GUID): a first-party app such as
    /// `00000004-0000-0ff1-ce00-000000000000`, or an admin's own app registration.
    AppId
);

string_id!(
    /// A certificate's SHA-1 thumbprint: 40 uppercase hex digits, as Windows and Graph's
    /// `customKeyIdentifier` show it.
    Thumbprint
);

impl TenantId {
    const WHAT: &'static str = "a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47)";
    /// A tenant id in its 36-character form, either case.
    pub fn parse(s: &str) -> Option<TenantId> {
        canonical_guid(s).map(TenantId)
    }
}

impl AppId {
    const WHAT: &'static str =
        "an application id (a GUID such as 00000004-0000-0ff1-ce00-000000000000)";
    /// An application id in its 36-character form, either case.
    pub fn parse(s: &str) -> Option<AppId> {
        canonical_guid(s).map(AppId)
    }
}

impl Thumbprint {
    const WHAT: &'static str = "a SHA-1 thumbprint (40 hex digits)";

    /// Exactly 40 hex digits, either case.
    pub fn parse(s: &str) -> Option<Thumbprint> {
        (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Thumbprint(s.to_ascii_uppercase()))
    }

    /// What a person types or pastes: surrounding blanks, and the colons and spaces between
    /// bytes that Windows' certificate dialog shows, are dropped first.
    pub fn parse_typed(s: &str) -> Option<Thumbprint> {
        Thumbprint::parse(&s.trim().replace([':', ' '], ""))
    }

    /// The thumbprint of these SHA-1 bytes.
    pub fn of_sha1(digest: &[u8; 20]) -> Thumbprint {
        Thumbprint(upper_hex(digest))
    }
}

/// Bytes as uppercase hex (this module is a leaf: it borrows no helper from `cert`).
fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Unit tests name certificates by short hex labels (`"A"`, `"CD"`): each stands for the
/// thumbprint that repeats it to 40 digits. Only in this crate's unit tests.
#[cfg(test)]
impl From<&str> for Thumbprint {
    fn from(label: &str) -> Thumbprint {
        // A label that is not hex ("OLD") stands for the hex of its letters, repeated.
        let hex = if label.bytes().all(|b| b.is_ascii_hexdigit()) {
            label.to_string()
        } else {
            upper_hex(label.as_bytes())
        };
        let full: String = hex
            .chars()
            .cycle()
            .take(if hex.is_empty() { 0 } else { 40 })
            .collect();
        Thumbprint::parse(&full)
            .unwrap_or_else(|| panic!("test label {label:?} does not make a thumbprint"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_read_in_one_form_and_printed_lowercase() {
        let upper = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
        assert_eq!(
            TenantId::parse(upper).unwrap(),
            "72f988bf-86f1-41af-91ab-2d7cd011db47"
        );
        for other_form in [
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "72f988bf86f141af91ab2d7cd011db47",
            "urn:uuid:72f988bf-86f1-41af-91ab-2d7cd011db47",
            " 72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "",
        ] {
            assert!(TenantId::parse(other_form).is_none(), "{other_form}");
            assert!(AppId::parse(other_form).is_none(), "{other_form}");
        }
    }

    #[test]
    fn thumbprints_are_40_hex_digits_printed_uppercase() {
        let t = Thumbprint::parse("ab".repeat(20).as_str()).unwrap();
        assert_eq!(t, "AB".repeat(20));
        assert!(Thumbprint::parse(&"ab".repeat(19)).is_none());
        assert!(Thumbprint::parse(&format!("{}zz", "ab".repeat(19))).is_none());
        assert!(Thumbprint::parse(&format!(" {}", "ab".repeat(20))).is_none());
        let typed = Thumbprint::parse_typed(
            " ab:cd ef 01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01 ",
        )
        .unwrap();
        assert_eq!(typed, "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
        assert_eq!(Thumbprint::of_sha1(&[0xab; 20]), "AB".repeat(20));
    }

    #[test]
    fn each_reads_and_writes_as_its_string_and_a_bad_one_is_refused_on_read() {
        let t: Thumbprint = serde_json::from_str(&format!("\"{}\"", "ab".repeat(20))).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!("\"{}\"", "AB".repeat(20))
        );
        let e = serde_json::from_str::<Thumbprint>("\"not-a-thumbprint\"").unwrap_err();
        assert!(e.to_string().contains("is not a SHA-1 thumbprint"), "{e}");
        let e = serde_json::from_str::<TenantId>("\"contoso\"").unwrap_err();
        assert!(e.to_string().contains("is not a tenant id"), "{e}");
    }

    #[test]
    fn the_first_guid_in_a_message() {
        assert_eq!(
            first_guid_in("Update to existing credential with KeyId 'C0FFEE00-0000-4000-8000-000000000001' is not allowed.")
                .as_deref(),
            Some("c0ffee00-0000-4000-8000-000000000001")
        );
        assert_eq!(first_guid_in("no id here, just 2026-12-06"), None);
    }
}
