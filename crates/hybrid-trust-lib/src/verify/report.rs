//! What `verify` reports: whether the certificate is a key of the Skype for Business service
//! principal ([`Listing`], read when an admin identity is at hand), the token Entra ID issued
//! ([`Proven`]), or why it refused ([`Refusal`]), for scripts and for people.
//!
//! The JSON keys are written in alphabetical order: the order these documents have always had
//! (they were `serde_json::json!` maps, which sort their keys).

use super::{SFB_CLIENT_ID, TokenFacts, Verified, VerifyError};
use crate::graph::{Graph, KeyCredential};
use crate::sts::AssertionAlg;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// Whether the certificate is a key of 00000004 and inside its window.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    /// The keys could not be read.
    Unread { summary: String },
    /// The certificate is not among the keys.
    Absent { summary: String },
    Present {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        in_window: bool,
        summary: String,
    },
}

impl Listing {
    /// Reads the service principal's keys. Never fails: an error is the listing's answer.
    pub async fn read(graph: &Graph<'_>, thumb: &str, now: DateTime<Utc>) -> Listing {
        let read = async {
            let id = graph.find_service_principal(SFB_CLIENT_ID).await?;
            graph.read_service_principal(&id).await
        };
        match read.await {
            Ok(sp) => Listing::of(&sp.key_credentials, thumb, now),
            Err(e) => Listing::Unread {
                summary: format!("could not read the service principal's keys: {e}"),
            },
        }
    }

    /// The listing of `thumb` among `keys`. A key that starts within two minutes (just
    /// uploaded) counts as inside its window.
    pub fn of(keys: &[KeyCredential], thumb: &str, now: DateTime<Utc>) -> Listing {
        let found = keys
            .iter()
            .find(|k| k.is_verify_cert() && k.thumbprint().as_deref() == Some(thumb));
        let Some(k) = found else {
            return Listing::Absent {
                summary: format!(
                    "certificate {thumb} is NOT a key of 00000004-0000-0ff1-ce00-000000000000 ({} other key(s))",
                    keys.len()
                ),
            };
        };
        let starts_soon = k
            .start_date_time
            .is_some_and(|s| s > now && s - now < TimeDelta::minutes(2));
        let in_window = (starts_soon || k.start_date_time.is_none_or(|s| s <= now))
            && k.end_date_time.is_none_or(|e| e >= now);
        Listing::Present {
            start: k.start_date_time,
            end: k.end_date_time,
            in_window,
            summary: format!(
                "certificate {thumb} is a key of 00000004-0000-0ff1-ce00-000000000000{}",
                if in_window {
                    ", inside its window"
                } else {
                    ", but OUTSIDE its window"
                }
            ),
        }
    }

    pub fn summary(&self) -> &str {
        match self {
            Listing::Unread { summary }
            | Listing::Absent { summary }
            | Listing::Present { summary, .. } => summary,
        }
    }

    /// How long until the key starts, when that is in the next two minutes (just uploaded: its
    /// window never starts before now), so `verify` waits rather than report a refusal.
    pub fn starts_in(&self, now: DateTime<Utc>) -> Option<TimeDelta> {
        let Listing::Present {
            start: Some(start), ..
        } = self
        else {
            return None;
        };
        let wait = *start - now;
        (wait > TimeDelta::zero() && wait < TimeDelta::minutes(2)).then_some(wait)
    }
}

impl Serialize for Listing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Listing::Unread { summary } => {
                m.serialize_entry("checked", &false)?;
                m.serialize_entry("summary", summary)?;
            }
            Listing::Absent { summary } => {
                m.serialize_entry("checked", &true)?;
                m.serialize_entry("present", &false)?;
                m.serialize_entry("summary", summary)?;
            }
            Listing::Present {
                start,
                end,
                in_window,
                summary,
            } => {
                m.serialize_entry("checked", &true)?;
                m.serialize_entry("end", end)?;
                m.serialize_entry("in_window", in_window)?;
                m.serialize_entry("present", &true)?;
                m.serialize_entry("start", start)?;
                m.serialize_entry("summary", summary)?;
            }
        }
        m.end()
    }
}

/// The trust is proven: Entra ID issued a token.
#[derive(Debug, Serialize)]
pub struct Proven {
    pub assertion_alg: String,
    pub client_id: &'static str,
    pub clock_skew_secs: Option<i64>,
    pub listing: Option<Listing>,
    pub ok: bool,
    pub signature_verified: bool,
    pub tenant_id: Option<String>,
    pub thumbprint_sha1: String,
    pub token: TokenFacts,
}

impl Proven {
    pub fn new(v: Verified, alg: AssertionAlg, thumb: &str, listing: Option<Listing>) -> Proven {
        Proven {
            assertion_alg: format!("{alg:?}").to_ascii_lowercase(),
            client_id: SFB_CLIENT_ID,
            clock_skew_secs: v.clock_skew_secs,
            listing,
            ok: true,
            signature_verified: v.signature_verified,
            tenant_id: v.token.tid.clone(),
            thumbprint_sha1: thumb.to_string(),
            token: v.token,
        }
    }

    /// A warning when this machine's clock is more than two minutes off Entra ID's.
    pub fn skew_warning(&self) -> Option<String> {
        self.clock_skew_secs.filter(|s| s.abs() > 120).map(|s| format!("warning: this machine's clock is {s} s off Entra ID's; more than 300 s breaks token requests"))
    }

    pub fn text(&self) -> String {
        let t = &self.token;
        format!(
            "trust verified: Entra ID issued a token to 00000004-0000-0ff1-ce00-000000000000 for certificate {}\n  tenant     {}\n  audience   {}\n  issuer     {}\n  expires    {}\n  signature  checked against the tenant's signing keys (JWKS)\n  clock      {}\n",
            self.thumbprint_sha1,
            t.tid.as_deref().unwrap_or("?"),
            t.aud.as_deref().unwrap_or("?"),
            t.iss.as_deref().unwrap_or("?"),
            t.exp.as_deref().unwrap_or("?"),
            self.clock_skew_secs
                .map_or("server time unknown".to_string(), |s| format!(
                    "{s} s from Entra ID's"
                )),
        )
    }
}

/// Entra ID refused (or never answered): the cause, the fix, and the ids Microsoft support asks
/// for.
#[derive(Debug, Serialize)]
pub struct Refusal {
    pub cause: String,
    pub correlation_id: Option<String>,
    pub error_code: Option<String>,
    pub fix: String,
    pub listing: Option<Listing>,
    pub message: String,
    pub ok: bool,
    pub tenant: String,
    pub thumbprint_sha1: String,
    pub trace_id: Option<String>,
}

impl Refusal {
    /// `now`: this machine's time when the assertion was made (shown next to Entra ID's when
    /// the refusal is about the clock, AADSTS700024).
    pub fn new(
        e: &VerifyError,
        tenant: &str,
        thumb: &str,
        now: DateTime<Utc>,
        listing: Option<Listing>,
    ) -> Refusal {
        let (mut cause, fix) = e.cause_and_fix();
        let (code, correlation_id, trace_id, server_time) = match e {
            VerifyError::Refused {
                response,
                server_time,
            } => (
                response.code(),
                response.correlation_id.clone(),
                response.trace_id.clone(),
                *server_time,
            ),
            _ => (None, None, None, None),
        };
        if code == Some(700024) {
            let show = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            cause.push_str(&format!(
                " (this machine: {}; Entra ID: {})",
                show(now),
                server_time.map_or("unknown".to_string(), show)
            ));
        }
        Refusal {
            cause,
            correlation_id,
            error_code: code.map(|c| format!("AADSTS{c}")),
            fix,
            listing,
            message: e.to_string(),
            ok: false,
            tenant: tenant.to_string(),
            thumbprint_sha1: thumb.to_string(),
            trace_id,
        }
    }

    /// The error's first line: the refusal, with its correlation id when there is one.
    pub fn headline(&self) -> String {
        match &self.correlation_id {
            Some(c) => format!("{} (correlation id {c})", self.message),
            None => self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted<T: Serialize>(v: &T) -> bool {
        let direct = serde_json::to_string_pretty(v).unwrap();
        direct == serde_json::to_string_pretty(&serde_json::to_value(v).unwrap()).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn key(start: &str, end: &str) -> KeyCredential {
        serde_json::from_value(serde_json::json!({
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "customKeyIdentifier": "C018A043066A6F5CEC76253A1D3CAE84C0E2F730",
            "startDateTime": start,
            "endDateTime": end,
        }))
        .unwrap()
    }

    const TP: &str = "C018A043066A6F5CEC76253A1D3CAE84C0E2F730";

    #[test]
    fn a_listing_knows_a_key_that_starts_in_a_moment() {
        let now = at("2027-01-01T00:00:00Z");
        let soon = Listing::of(
            &[key("2027-01-01T00:01:00Z", "2028-01-01T00:00:00Z")],
            TP,
            now,
        );
        assert!(matches!(
            soon,
            Listing::Present {
                in_window: true,
                ..
            }
        ));
        assert_eq!(soon.starts_in(now), Some(TimeDelta::minutes(1)));
        assert!(soon.summary().ends_with(", inside its window"));
        let json = serde_json::to_value(&soon).unwrap();
        assert_eq!(json["start"], "2027-01-01T00:01:00Z");
        assert!(sorted(&soon));

        let later = Listing::of(
            &[key("2027-02-01T00:00:00Z", "2028-01-01T00:00:00Z")],
            TP,
            now,
        );
        assert!(later.summary().ends_with("but OUTSIDE its window"));
        assert_eq!(later.starts_in(now), None);

        let absent = Listing::of(&[], TP, now);
        assert!(absent.summary().contains("is NOT a key") && sorted(&absent));
        assert_eq!(
            serde_json::to_string(&absent).unwrap(),
            format!(
                "{{\"checked\":true,\"present\":false,\"summary\":\"{}\"}}",
                absent.summary()
            )
        );
    }

    #[test]
    fn a_refusal_names_the_cause_fix_and_ids() {
        let e = VerifyError::Malformed("html".into());
        let r = Refusal::new(&e, "contoso.com", TP, at("2027-01-01T00:00:00Z"), None);
        assert!(sorted(&r) && !r.ok);
        assert_eq!(r.headline(), e.to_string());
        assert_eq!(r.cause, e.cause_and_fix().0);
        assert!(r.error_code.is_none());
    }
}
