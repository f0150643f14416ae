//! keyCredentials on the wire (GDC `resources/keycredential.md`): the type Graph reads and
//! writes, how a key is identified by its certificate across the forms Graph and other tools give
//! (docs/protocol.md §1.3–1.4), and Graph's date format. The rules around keys live beside it:
//! the upload window in [`super::window`], the plans (merge, retire, the last valid key) in
//! [`super::plan`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// A DateTimeOffset as Graph takes it: UTC, `Z`, and the fraction of a second when there is one,
/// in at most 7 digits (OData's DateTimeOffset precision, 100 ns ticks), so that a key read with
/// a fractional time is re-sent exactly as it was.
fn graph_date<S: serde::Serializer>(d: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&graph_time(*d)),
        None => s.serialize_none(),
    }
}

pub fn graph_time(d: DateTime<Utc>) -> String {
    let base = d.format("%Y-%m-%dT%H:%M:%S");
    match d.timestamp_subsec_nanos() / 100 {
        0 => format!("{base}Z"),
        ticks => format!("{base}.{}Z", format!("{ticks:07}").trim_end_matches('0')),
    }
}

/// One keyCredential as Graph sends and takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "graph_date"
    )]
    pub end_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "graph_date"
    )]
    pub start_date_time: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
}

use crate::ids::Thumbprint;

impl KeyCredential {
    /// The SHA-1 thumbprint (40 uppercase hex) of the certificate: from the decoded `key` when
    /// Graph returned it; otherwise from `customKeyIdentifier` in any of its forms seen in the
    /// wild: the hex string itself, Base64 of the 20 bytes, or Base64 of either of those.
    pub fn thumbprint(&self) -> Option<Thumbprint> {
        if let Some(der) = self
            .key
            .as_deref()
            .and_then(|k| STANDARD.decode(k.trim()).ok())
        {
            return Some(Thumbprint::of_sha1(&sha1::Sha1::digest(&der).into()));
        }
        let cki = self.custom_key_identifier.as_deref()?.trim();
        thumbprint_from_identifier(cki, 2)
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.end_date_time.is_some_and(|e| e < now)
    }

    /// The certificate of the key, when Graph returned `key` and it parses.
    pub fn certificate(&self) -> Option<crate::cert::Certificate> {
        let der = STANDARD.decode(self.key.as_deref()?.trim()).ok()?;
        crate::cert::Certificate::from_der(&der).ok()
    }

    pub fn is_verify_cert(&self) -> bool {
        self.kind.as_deref() == Some("AsymmetricX509Cert")
            && self.usage.as_deref() == Some("Verify")
    }

    /// The key as it is re-sent to keep it: every property as Graph returned it.
    pub fn retained(&self) -> KeyCredential {
        self.clone()
    }
}

fn thumbprint_from_identifier(s: &str, depth: u8) -> Option<Thumbprint> {
    if let Some(t) = Thumbprint::parse(s) {
        return Some(t);
    }
    if depth == 0 {
        return None;
    }
    let bytes = STANDARD.decode(s).ok()?;
    if let Ok(digest) = <[u8; 20]>::try_from(bytes.as_slice()) {
        return Some(Thumbprint::of_sha1(&digest));
    }
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|inner| thumbprint_from_identifier(inner.trim(), depth - 1))
}

/// What identifies one key across reads: its keyId, its certificate and its window, to the second
/// (whether Graph keeps a fraction of a second is unconfirmed). A removal names the keys it
/// removes by all four, so a key another host added meanwhile, even one of the same certificate,
/// is never taken for one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: Option<String>,
    pub thumbprint: Option<crate::ids::Thumbprint>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl KeyIdentity {
    pub fn of(k: &KeyCredential) -> KeyIdentity {
        KeyIdentity {
            key_id: k.key_id.clone(),
            thumbprint: k.thumbprint(),
            start: k.start_date_time.map(|t| t.timestamp()),
            end: k.end_date_time.map(|t| t.timestamp()),
        }
    }
    /// The same certificate and window, whatever keyId Graph gave it.
    pub fn same_window(&self, other: &KeyIdentity) -> bool {
        self.thumbprint == other.thumbprint && self.start == other.start && self.end == other.end
    }
}
