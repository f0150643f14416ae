//! The Exchange Server hybrid trust of a tenant (docs/contract.md, third round): the dedicated
//! application `ExchangeServerApp-<organization guid>`, the Auth Certificates `Get-AuthConfig`
//! named at the last export (current, staged next with its EffectiveDate, previous), and the keys
//! this tool put on the application. Kept beside the Skype for Business trust in the tenant's
//! record (`TenantRecord::exchange`); a record without it is read as before, and a tenant may
//! have only this trust. No network here.

use super::{CertRecord, CredentialRecord, RenewalFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One tenant's Exchange hybrid trust.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExchangeTrust {
    /// The dedicated application's appId (client id).
    pub app_id: String,
    /// Its object id (what `PATCH applications/{id}` takes).
    #[serde(default)]
    pub app_object_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `Get-OrganizationConfig`'s Guid.
    #[serde(default)]
    pub organization_guid: Option<String>,
    /// The certificate Exchange signs with (AuthConfig's current), as last exported.
    #[serde(default)]
    pub cert: Option<CertRecord>,
    /// The staged certificate (AuthConfig's next), and when it takes effect.
    #[serde(default)]
    pub next_cert: Option<CertRecord>,
    #[serde(default)]
    pub next_effective: Option<DateTime<Utc>>,
    /// AuthConfig's previous certificate: its keys are retired once the export shows the next
    /// one as current.
    #[serde(default)]
    pub previous_thumbprint: Option<crate::ids::Thumbprint>,
    /// The longest key window the tenant's app management policy allows, as last read.
    #[serde(default)]
    pub key_lifetime_days: Option<i64>,
    /// The keys this tool put on the application (app_id is the dedicated application's).
    #[serde(default)]
    pub credentials: Vec<CredentialRecord>,
    /// When the last export was read.
    #[serde(default)]
    pub exported_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_renewal: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_renewal_failure: Option<RenewalFailure>,
}

impl ExchangeTrust {
    /// Records a key on the application (replacing a record of the same keyId, or of the same
    /// certificate and window).
    pub fn record_credential(&mut self, c: CredentialRecord) {
        self.credentials
            .retain(|x| !(x.key_id.is_some() && x.key_id == c.key_id));
        self.credentials.retain(|x| {
            !(x.thumbprint_sha1 == c.thumbprint_sha1 && x.start == c.start && x.end == c.end)
        });
        self.credentials.push(c);
    }

    /// Forgets the keys of `thumbprint`.
    pub fn forget(&mut self, thumbprint: &str) {
        self.credentials
            .retain(|c| !c.thumbprint_sha1.eq_ignore_ascii_case(thumbprint));
    }

    /// The latest end among the recorded keys of `thumbprint`.
    pub fn credential_end(&self, thumbprint: &str) -> Option<DateTime<Utc>> {
        self.credentials
            .iter()
            .filter(|c| c.thumbprint_sha1.eq_ignore_ascii_case(thumbprint))
            .map(|c| c.end)
            .max()
    }

    /// Every date in the record, named, for the ledger's range check.
    pub fn dates(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut out = Vec::new();
        for (name, c) in [
            ("exchange.cert", &self.cert),
            ("exchange.next_cert", &self.next_cert),
        ] {
            if let Some(c) = c {
                out.push((format!("{name}.not_before"), c.not_before));
                out.push((format!("{name}.not_after"), c.not_after));
            }
        }
        for (name, d) in [
            ("exchange.next_effective", self.next_effective),
            ("exchange.exported_at", self.exported_at),
            ("exchange.last_renewal", self.last_renewal),
            (
                "exchange.last_renewal_failure.at",
                self.last_renewal_failure.as_ref().map(|f| f.at),
            ),
        ] {
            out.extend(d.map(|d| (name.to_string(), d)));
        }
        for (i, c) in self.credentials.iter().enumerate() {
            out.push((format!("exchange.credentials[{i}].start"), c.start));
            out.push((format!("exchange.credentials[{i}].end"), c.end));
            out.push((
                format!("exchange.credentials[{i}].recorded_at"),
                c.recorded_at,
            ));
        }
        out
    }
}
