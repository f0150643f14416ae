//! The ledger: what hybrid-trust knows about every tenant it manages (domain, tenant id, cloud,
//! target applications, the on-prem certificate, the credentials uploaded and their windows,
//! history, reminders sent, the last renewal failure). A versioned, serde-typed JSON document;
//! [`store`] reads and writes it safely. No network here.

pub mod db;
pub mod exchange;
pub mod migrate;
pub mod roll;
pub mod store;

pub use exchange::ExchangeTrust;

use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use roll::{ConfirmedBy, RollConfirmation, RollError};
pub use store::{Damaged, LedgerError, LedgerStore};

/// The format this build writes. Every format ever written is in `fixtures/ledger/` and loads.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ledger {
    pub format: u32,
    #[serde(default)]
    pub tenants: Vec<TenantRecord>,
    /// Tenant records that could not be read, left out of `tenants` ([`LedgerStore::load`]):
    /// every command reports them with their fix instead of stopping the whole fleet.
    #[serde(skip)]
    pub damaged: Vec<store::Damaged>,
}

/// The public facts of a certificate (its DER is public; no key material is ever stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertRecord {
    pub thumbprint_sha1: crate::ids::Thumbprint,
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
    pub thumbprint_sha1: crate::ids::Thumbprint,
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
    /// The host that sent it, in a team's shared state (`--state-url`); absent in a state dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_by: Option<String>,
}

/// The last renewal that failed or was blocked. `at` moves with every attempt; `since` is when
/// this reason (compared without volatile parts, see [`reason_key`]) was first
/// seen, so a daily retry of the same failure is one problem, not a new one every day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RenewalFailure {
    pub at: DateTime<Utc>,
    pub message: String,
    #[serde(default)]
    pub reported: bool,
    /// Absent in ledgers written before the lifecycle (read as `at`).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
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
    /// Why no safe EffectiveDate existed for the pending roll (the new key was uploaded all the
    /// same, and the script takes effect as early as the new key allows).
    #[serde(default)]
    pub roll_blocked: Option<String>,
    /// The certificate rolled away from: its keys are retired by the next `renew`.
    #[serde(default)]
    pub previous_cert: Option<CertRecord>,
    /// The longest key window the tenant's app management policy accepted, when it refused a
    /// one-year one (learned by `renew`; later windows are planned within it).
    #[serde(default)]
    pub key_lifetime_days: Option<i64>,
    /// How the last roll was confirmed (who or what showed the Front Ends sign with the new
    /// certificate).
    #[serde(default)]
    pub roll_confirmed: Option<RollConfirmation>,
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
    /// The order tenants are listed in: the position in a migrated format-1 ledger, else the
    /// creation time in nanoseconds (one file per tenant has no order of its own).
    #[serde(default)]
    pub seq: i64,
    /// The Exchange Server hybrid trust, when this tenant has it (absent in older records, and
    /// not written when there is none, so a Skype-for-Business-only record is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeTrust>,
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
            roll_blocked: None,
            previous_cert: None,
            key_lifetime_days: None,
            roll_confirmed: None,
            credentials: Vec::new(),
            pool_fqdns: Vec::new(),
            history: Vec::new(),
            reminders_sent: Vec::new(),
            last_renewal_failure: None,
            last_renewal: None,
            notify: Vec::new(),
            added_at: now,
            seq: now.timestamp_nanos_opt().unwrap_or(i64::MAX),
            exchange: None,
        }
    }

    /// Whether this tenant has the Skype for Business trust (a tenant recorded only for
    /// Exchange has no certificate, target application or key of it).
    pub fn has_sfb(&self) -> bool {
        self.exchange.is_none()
            || self.cert.is_some()
            || self.next_cert.is_some()
            || !self.app_ids.is_empty()
            || !self.credentials.is_empty()
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

    /// Records an upload to `app`: the key as on Graph (added now, or found already there), the
    /// certificate as current unless a roll is pending or the current one outlives it, and a
    /// history line when something was applied.
    pub fn record_upload(
        &mut self,
        app: &str,
        plan: &crate::graph::KeyPlan,
        cert: &CertRecord,
        applied: bool,
        now: DateTime<Utc>,
    ) {
        if let Some(k) = plan.added.as_ref().or(plan.already_present.as_ref())
            && let (Some(s), Some(e)) = (k.start_date_time, k.end_date_time)
        {
            self.record_credential(CredentialRecord {
                app_id: app.to_string(),
                key_id: k.key_id.clone(),
                thumbprint_sha1: cert.thumbprint_sha1.clone(),
                start: s,
                end: e,
                recorded_at: now,
            });
        }
        // `cert` is the certificate the Front Ends sign with as far as anyone has shown: the
        // first upload records it; another certificate uploaded later is an extra key, not a
        // roll (issue 24: taking a longer-lived upload for the Front Ends' certificate left the
        // one they sign with unprotected and never renewed). A roll is `renew --new-cert`.
        if self.cert.is_none() && self.next_cert.is_none() {
            self.cert = Some(cert.clone());
        }
        if applied {
            let date = |d: Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339()).unwrap_or_default();
            let added = plan.added.as_ref();
            self.log(
                now,
                "credential upload",
                format!(
                    "{app}: added {} ({} -> {})",
                    cert.thumbprint_sha1,
                    date(added.and_then(|k| k.start_date_time)),
                    date(added.and_then(|k| k.end_date_time))
                ),
            );
        }
    }

    /// Records that the keys of certificate `thumbprint` were removed from `app`.
    pub fn record_removal(
        &mut self,
        app: &str,
        thumbprint: &str,
        applied: bool,
        now: DateTime<Utc>,
    ) {
        self.credentials
            .retain(|c| !(c.app_id == app && c.thumbprint_sha1 == thumbprint));
        if applied {
            self.log(
                now,
                "credential remove",
                format!("{app}: removed {thumbprint}"),
            );
        }
    }

    /// Forgets the credentials of `app` that a PATCH dropped as expired.
    pub fn forget_expired(
        &mut self,
        app: &str,
        dropped: &[crate::graph::KeyCredential],
        now: DateTime<Utc>,
    ) {
        for k in dropped {
            if let Some(tp) = k.thumbprint() {
                self.credentials
                    .retain(|c| !(c.app_id == app && c.thumbprint_sha1 == tp && c.end <= now));
            }
        }
    }

    /// Records the pools whose service principal names were added.
    pub fn record_pools(&mut self, fqdns: &[String], added: &[String], now: DateTime<Utc>) {
        for f in fqdns {
            if !self.pool_fqdns.contains(f) {
                self.pool_fqdns.push(f.clone());
            }
        }
        if !added.is_empty() {
            self.log(now, "spn add", added.join(", "));
        }
    }

    /// Records a renewal that failed (or was blocked), for `status` and reminders.
    /// The same reason as the last one keeps its `since` (and its `reported` mark): a blocked
    /// tenant retried daily is one problem, reminded on the cadence of [`crate::remind`].
    pub fn record_renewal_failure(&mut self, message: &str, now: DateTime<Utc>) {
        let same = self
            .last_renewal_failure
            .as_ref()
            .filter(|f| reason_key(&f.message) == reason_key(message));
        let (since, reported) = match same {
            Some(f) => (f.since.unwrap_or(f.at), f.reported),
            None => (now, false),
        };
        self.last_renewal_failure = Some(RenewalFailure {
            at: now,
            message: message.to_string(),
            reported,
            since: Some(since),
        });
        self.log(now, "renew failed", message);
    }

    /// Records a new window of certificate `thumbprint` (one per application, as on Graph): the
    /// older records of that certificate go.
    pub fn record_rewindow(
        &mut self,
        thumbprint: &str,
        added: Vec<CredentialRecord>,
        detail: String,
        now: DateTime<Utc>,
    ) {
        for c in added {
            self.credentials
                .retain(|r| !(r.app_id == c.app_id && r.thumbprint_sha1 == thumbprint));
            self.record_credential(c);
        }
        self.last_renewal = Some(now);
        self.last_renewal_failure = None;
        self.log(now, "renew", detail);
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
            for (name, c) in [
                ("cert", &t.cert),
                ("next_cert", &t.next_cert),
                ("previous_cert", &t.previous_cert),
            ] {
                if let Some(c) = c {
                    dates.push((name, None, "not_before", c.not_before));
                    dates.push((name, None, "not_after", c.not_after));
                }
            }
            let failure = t.last_renewal_failure.as_ref().map(|f| f.at);
            let since = t.last_renewal_failure.as_ref().and_then(|f| f.since);
            let confirmed = t.roll_confirmed.as_ref().map(|c| c.at);
            for (field, d) in [
                ("roll_effective", t.roll_effective),
                ("last_renewal", t.last_renewal),
                ("last_renewal_failure.at", failure),
                ("last_renewal_failure.since", since),
                ("roll_confirmed.at", confirmed),
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
            if let Some((field, d)) = t
                .exchange
                .iter()
                .flat_map(ExchangeTrust::dates)
                .find(|d| !crate::dates::in_range(d.1))
            {
                return Some((t.domain.clone(), field, crate::dates::OutOfRange(d)));
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
            damaged: Vec::new(),
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
        self.tenant_entry_for(name, None, cloud, app_ids, now)
    }

    /// The record for `name` or for `tenant_id` (one tenant named by domain in one run and by GUID
    /// in another has one record), created if missing. A record found by id learns the domain
    /// when it only had the GUID for a name, and a record found by name learns its id.
    pub fn tenant_entry_for(
        &mut self,
        name: &str,
        tenant_id: Option<&str>,
        cloud: &str,
        app_ids: &[String],
        now: DateTime<Utc>,
    ) -> &mut TenantRecord {
        let found = self
            .tenants
            .iter()
            .position(|t| t.is(name))
            .or_else(|| tenant_id.and_then(|id| self.tenants.iter().position(|t| t.is(id))));
        if let Some(i) = found {
            let t = &mut self.tenants[i];
            if t.tenant_id.is_none() {
                t.tenant_id = tenant_id.map(str::to_ascii_lowercase);
            }
            if TenantId::parse(&t.domain).is_some() && TenantId::parse(name).is_none() {
                t.domain = name.to_ascii_lowercase();
            }
            for a in app_ids {
                if !t.app_ids.contains(a) {
                    t.app_ids.push(a.clone());
                }
            }
            return t;
        }
        let mut t = TenantRecord::new(name, cloud, app_ids.to_vec(), now);
        if let Some(id) = TenantId::parse(name) {
            t.tenant_id = Some(id.into_string());
        } else {
            t.tenant_id = tenant_id.map(str::to_ascii_lowercase);
        }
        self.tenants.push(t);
        let last = self.tenants.len() - 1;
        &mut self.tenants[last]
    }
}

/// A failure's message without its volatile parts (GUIDs, request ids, timestamps, dates), so
/// that the same failure retried every day is one problem and a new reason is a new one.
pub fn reason_key(message: &str) -> String {
    message
        .split_whitespace()
        .filter(|w| {
            let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            let hex = w.chars().filter(char::is_ascii_hexdigit).count();
            let digits = w.chars().filter(char::is_ascii_digit).count();
            let idish = hex >= 8 && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let dateish = digits >= 4 && w.contains(['-', ':', '/']) && digits * 2 >= w.len();
            !(idish || dateish)
        })
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_named_by_domain_and_by_id_has_one_record() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 29, 0, 0, 0).unwrap();
        let id = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
        // The GUID first, then the domain: one record, which learns the domain.
        let mut l = Ledger::empty();
        l.tenant_entry_for(id, Some(id), "global", &[], now);
        l.tenant_entry_for("Contoso.onmicrosoft.com", Some(id), "global", &[], now);
        assert_eq!(l.tenants.len(), 1);
        assert_eq!(l.tenants[0].domain, "contoso.onmicrosoft.com");
        assert_eq!(l.tenants[0].tenant_id.as_deref(), Some(id));
        // A record made offline (no id) learns its id from the next run that resolved it; then
        // the GUID finds the same record.
        let mut l = Ledger::empty();
        l.tenant_entry_for("contoso.onmicrosoft.com", None, "global", &[], now);
        l.tenant_entry_for("contoso.onmicrosoft.com", Some(id), "global", &[], now);
        l.tenant_entry_for(id, Some(id), "global", &["x".into()], now);
        assert_eq!(l.tenants.len(), 1);
        assert_eq!(l.tenants[0].tenant_id.as_deref(), Some(id));
        assert_eq!(l.tenants[0].app_ids, vec!["x".to_string()]);
        // Without an id, two names stay two records (nothing says they are one tenant).
        let mut l = Ledger::empty();
        l.tenant_entry("a.example", "global", &[], now);
        l.tenant_entry("b.example", "global", &[], now);
        assert_eq!(l.tenants.len(), 2);
    }
}
