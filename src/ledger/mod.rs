//! The ledger: what hybrid-trust knows about every tenant it manages (domain, tenant id, cloud,
//! target applications, the on-prem certificate, the credentials uploaded and their windows,
//! history, reminders sent, the last renewal failure). A versioned, serde-typed JSON document;
//! [`store`] reads and writes it safely. No network here.

pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use store::{LedgerError, LedgerStore};

/// The format this build writes. Every format ever written is in `fixtures/ledger/` and loads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ledger {
    pub format: u32,
    #[serde(default)]
    pub tenants: Vec<TenantRecord>,
}

/// The public facts of a certificate (its DER is public; no key material is ever stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertRecord {
    pub thumbprint_sha1: String,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Base64 DER: lets `renew` re-send the same certificate without the file.
    pub der_base64: String,
}

impl CertRecord {
    pub fn from_cert(c: &crate::cert::Certificate) -> CertRecord {
        CertRecord {
            thumbprint_sha1: c.thumbprint_sha1(),
            subject: c.subject.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            der_base64: c.base64(),
        }
    }
}

/// A key credential the tool uploaded (or found, with `status --live`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialRecord {
    pub app_id: String,
    pub key_id: Option<String>,
    pub thumbprint_sha1: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub detail: String,
}

/// One reminder delivered: at most one per (credential, threshold, channel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReminderSent {
    pub credential: String,
    pub threshold_days: i64,
    pub channel: String,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RenewalFailure {
    pub at: DateTime<Utc>,
    pub message: String,
    #[serde(default)]
    pub reported: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantRecord {
    pub domain: String,
    pub tenant_id: Option<String>,
    pub cloud: String,
    pub app_ids: Vec<String>,
    /// The on-prem OAuthTokenIssuer certificate in use.
    pub cert: Option<CertRecord>,
    /// A certificate being rolled to (uploaded next to `cert`, effective on `roll_effective`).
    #[serde(default)]
    pub next_cert: Option<CertRecord>,
    #[serde(default)]
    pub roll_effective: Option<DateTime<Utc>>,
    #[serde(default)]
    pub credentials: Vec<CredentialRecord>,
    #[serde(default)]
    pub pool_fqdns: Vec<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub reminders_sent: Vec<ReminderSent>,
    #[serde(default)]
    pub last_renewal_failure: Option<RenewalFailure>,
    #[serde(default)]
    pub last_renewal: Option<DateTime<Utc>>,
    /// Per-tenant reminder recipients (override the config's defaults).
    #[serde(default)]
    pub notify: Vec<String>,
    pub added_at: DateTime<Utc>,
}

impl TenantRecord {
    pub fn new(
        domain: &str,
        cloud: &str,
        app_ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> TenantRecord {
        TenantRecord {
            domain: domain.to_ascii_lowercase(),
            tenant_id: None,
            cloud: cloud.to_string(),
            app_ids,
            cert: None,
            next_cert: None,
            roll_effective: None,
            credentials: Vec::new(),
            pool_fqdns: Vec::new(),
            history: Vec::new(),
            reminders_sent: Vec::new(),
            last_renewal_failure: None,
            last_renewal: None,
            notify: Vec::new(),
            added_at: now,
        }
    }

    /// Whether `name` (domain or tenant id) names this tenant.
    pub fn is(&self, name: &str) -> bool {
        self.domain.eq_ignore_ascii_case(name)
            || self
                .tenant_id
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(name))
    }

    pub fn log(&mut self, at: DateTime<Utc>, action: &str, detail: impl Into<String>) {
        self.history.push(HistoryEntry {
            at,
            action: action.to_string(),
            detail: detail.into(),
        });
    }

    /// Records a key credential (replacing a record with the same app and key id).
    pub fn record_credential(&mut self, c: CredentialRecord) {
        self.credentials
            .retain(|x| !(x.app_id == c.app_id && x.key_id.is_some() && x.key_id == c.key_id));
        self.credentials.retain(|x| {
            !(x.app_id == c.app_id
                && x.thumbprint_sha1 == c.thumbprint_sha1
                && x.start == c.start
                && x.end == c.end)
        });
        self.credentials.push(c);
    }

    /// The latest end among the credentials of `app_id` for `thumbprint`.
    pub fn credential_end(&self, app_id: &str, thumbprint: &str) -> Option<DateTime<Utc>> {
        self.credentials
            .iter()
            .filter(|c| c.app_id == app_id && c.thumbprint_sha1 == thumbprint)
            .map(|c| c.end)
            .max()
    }
}

impl Ledger {
    /// The first date outside the years 1..=9999 ([`crate::dates`]), with the tenant and field
    /// holding it. [`store::parse`] refuses such a ledger (exit 2: it was edited by hand or
    /// damaged) instead of letting `status`, `remind` or `renew` do arithmetic on it (issue 14,
    /// defect 4: one such date crashed every `status`). Nothing is allocated unless one is found.
    pub fn date_out_of_range(&self) -> Option<(String, String, crate::dates::OutOfRange)> {
        for t in &self.tenants {
            // (list, index in it, field, date)
            let mut dates: Vec<(&str, Option<usize>, &str, DateTime<Utc>)> =
                vec![("", None, "added_at", t.added_at)];
            for (name, c) in [("cert", &t.cert), ("next_cert", &t.next_cert)] {
                if let Some(c) = c {
                    dates.push((name, None, "not_before", c.not_before));
                    dates.push((name, None, "not_after", c.not_after));
                }
            }
            let failure = t.last_renewal_failure.as_ref().map(|f| f.at);
            for (field, d) in [
                ("roll_effective", t.roll_effective),
                ("last_renewal", t.last_renewal),
                ("last_renewal_failure.at", failure),
            ] {
                dates.extend(d.map(|d| ("", None, field, d)));
            }
            for (i, c) in t.credentials.iter().enumerate() {
                dates.push(("credentials", Some(i), "start", c.start));
                dates.push(("credentials", Some(i), "end", c.end));
                dates.push(("credentials", Some(i), "recorded_at", c.recorded_at));
            }
            for (i, h) in t.history.iter().enumerate() {
                dates.push(("history", Some(i), "at", h.at));
            }
            for (i, r) in t.reminders_sent.iter().enumerate() {
                dates.push(("reminders_sent", Some(i), "sent_at", r.sent_at));
            }
            let bad = dates.into_iter().find(|d| !crate::dates::in_range(d.3));
            if let Some((list, i, field, d)) = bad {
                let field = match (list, i) {
                    ("", _) => field.to_string(),
                    (l, Some(i)) => format!("{l}[{i}].{field}"),
                    (l, None) => format!("{l}.{field}"),
                };
                return Some((t.domain.clone(), field, crate::dates::OutOfRange(d)));
            }
        }
        None
    }

    pub fn empty() -> Ledger {
        Ledger {
            format: FORMAT,
            tenants: Vec::new(),
        }
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantRecord> {
        self.tenants.iter().find(|t| t.is(name))
    }

    pub fn tenant_mut(&mut self, name: &str) -> Option<&mut TenantRecord> {
        self.tenants.iter_mut().find(|t| t.is(name))
    }

    /// The record for `name`, created if missing.
    pub fn tenant_entry(
        &mut self,
        name: &str,
        cloud: &str,
        app_ids: &[String],
        now: DateTime<Utc>,
    ) -> &mut TenantRecord {
        if let Some(i) = self.tenants.iter().position(|t| t.is(name)) {
            let t = &mut self.tenants[i];
            for a in app_ids {
                if !t.app_ids.contains(a) {
                    t.app_ids.push(a.clone());
                }
            }
            return t;
        }
        let mut t = TenantRecord::new(name, cloud, app_ids.to_vec(), now);
        if uuid::Uuid::parse_str(name).is_ok() {
            t.tenant_id = Some(name.to_ascii_lowercase());
        }
        self.tenants.push(t);
        let last = self.tenants.len() - 1;
        &mut self.tenants[last]
    }
}
