//! The ledger's side of a roll to a new OAuthTokenIssuer certificate (issue 16): started (the
//! new key uploaded next to the old, the on-prem step written with its EffectiveDate, or blocked
//! when no safe date exists), confirmed (someone or something showed that the Front Ends sign
//! with the new certificate: only then is it `cert`), and the old certificate's keys retired.
//!
//! `cert` is always the certificate the Front Ends sign with as far as anyone has shown; a
//! pending roll's certificate is `next_cert` until it is confirmed. So "when does the trust
//! lapse" reads `cert` and its keys, and nothing here can make a roll nobody ran look done.

use super::{CertRecord, CredentialRecord, TenantRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What showed that the Front Ends sign with the new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmedBy {
    /// `renew --tenant T --confirm-roll`, typed by the admin after the EffectiveDate.
    Admin,
    /// Saved `Get-CsCertificate -Type OAuthTokenIssuer` output (`--current DIR`) showing the new
    /// thumbprint as current.
    OnpremOutput,
    /// Written by versions before issue 24, when `verify` with the new certificate after the
    /// EffectiveDate confirmed a roll; kept so those ledgers load. Nothing confirms so now: a
    /// token from the admin's PFX shows what Entra accepts, not what the Front Ends sign with.
    Verify,
}

impl RollConfirmation {
    /// The confirmation for people.
    pub fn text(&self, tenant: &str) -> String {
        format!(
            "{tenant}: {} is now the certificate the Front Ends sign with (confirmed by {}); the next renew retires the old key {}\n",
            self.thumbprint_sha1,
            self.by.name(),
            self.previous_thumbprint_sha1.as_deref().unwrap_or("-")
        )
    }
}

impl ConfirmedBy {
    pub fn name(self) -> &'static str {
        match self {
            ConfirmedBy::Admin => "admin",
            ConfirmedBy::OnpremOutput => "onprem-output",
            ConfirmedBy::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RollConfirmation {
    pub at: DateTime<Utc>,
    pub by: ConfirmedBy,
    /// The certificate confirmed as current.
    pub thumbprint_sha1: String,
    /// The certificate it replaced.
    #[serde(default)]
    pub previous_thumbprint_sha1: Option<String>,
}

/// Why a roll cannot be confirmed (nothing is changed).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RollError {
    #[error("no roll is pending for {0}")]
    NothingPending(String),
    #[error(
        "the roll to {thumbprint} takes effect at {effective} (its EffectiveDate); the Front Ends sign with the old certificate until then"
    )]
    NotYetEffective {
        thumbprint: String,
        effective: DateTime<Utc>,
    },
}

impl RollError {
    pub fn hint(&self, domain: &str) -> String {
        match self {
            RollError::NothingPending(_) => format!(
                "hybrid-trust status --tenant {domain} shows the state; a roll starts with renew --tenant {domain} --new-cert NEW.pfx"
            ),
            RollError::NotYetEffective { .. } => format!(
                "run the roll script on a Front End, then confirm after the EffectiveDate: hybrid-trust renew --tenant {domain} --confirm-roll"
            ),
        }
    }
}

impl TenantRecord {
    /// Records a roll started: the new certificate's keys are on Graph next to the old, and the
    /// on-prem step takes effect at `effective`; `blocked` says why that date is not a safe one
    /// (the old key or certificate ends too soon after the new key starts).
    pub fn start_roll(
        &mut self,
        next: CertRecord,
        added: Vec<CredentialRecord>,
        effective: DateTime<Utc>,
        blocked: Option<String>,
        now: DateTime<Utc>,
    ) {
        for c in added {
            self.record_credential(c);
        }
        self.log(
            now,
            "renew",
            format!(
                "roll to {} uploaded; on-prem step effective {effective}{}",
                next.thumbprint_sha1,
                blocked
                    .as_deref()
                    .map(|b| format!(" (blocked: {b})"))
                    .unwrap_or_default()
            ),
        );
        self.next_cert = Some(next);
        self.roll_effective = Some(effective);
        self.last_renewal = Some(now);
        match &blocked {
            // Alert at once: a blocked roll is a problem until the roll is confirmed.
            Some(b) => self.record_renewal_failure(&format!("roll blocked: {b}"), now),
            None => self.last_renewal_failure = None,
        }
        self.roll_blocked = blocked;
    }

    /// Records that the Front Ends sign with the pending roll's certificate: it becomes `cert`,
    /// the old one `previous_cert` (its keys are retired by the next `renew`). Refused before the
    /// EffectiveDate unless the evidence is the server's own output.
    pub fn confirm_roll(
        &mut self,
        by: ConfirmedBy,
        now: DateTime<Utc>,
    ) -> Result<RollConfirmation, RollError> {
        let Some(next) = self.next_cert.clone() else {
            return Err(RollError::NothingPending(self.domain.clone()));
        };
        if let Some(e) = self.roll_effective
            && e > now
            && by != ConfirmedBy::OnpremOutput
        {
            return Err(RollError::NotYetEffective {
                thumbprint: next.thumbprint_sha1,
                effective: e,
            });
        }
        let old = self.cert.replace(next.clone());
        let confirmation = RollConfirmation {
            at: now,
            by,
            thumbprint_sha1: next.thumbprint_sha1.clone(),
            previous_thumbprint_sha1: old.as_ref().map(|c| c.thumbprint_sha1.clone()),
        };
        self.log(
            now,
            "roll confirmed",
            format!(
                "{} is current (confirmed by {}); the old key {} is retired by the next renew",
                next.thumbprint_sha1,
                by.name(),
                old.as_ref().map_or("-", |c| c.thumbprint_sha1.as_str())
            ),
        );
        // A previous certificate not yet retired stays the one to retire (its keys are older).
        if self.previous_cert.is_none() {
            self.previous_cert = old;
        }
        self.next_cert = None;
        self.roll_effective = None;
        self.roll_blocked = None;
        self.roll_confirmed = Some(confirmation.clone());
        if self
            .last_renewal_failure
            .as_ref()
            .is_some_and(|f| f.message.starts_with("roll blocked"))
        {
            self.last_renewal_failure = None;
        }
        Ok(confirmation)
    }

    /// The certificate whose keys are to be retired: the one rolled away from, or the signing
    /// one of an unconfirmed roll once it has expired (its keys are worthless then). Never the
    /// certificate the Front Ends sign with while it is valid.
    pub fn to_retire(&self, now: DateTime<Utc>) -> Option<&CertRecord> {
        let has_keys = |c: &CertRecord| {
            self.credentials
                .iter()
                .any(|k| k.thumbprint_sha1 == c.thumbprint_sha1)
        };
        if let Some(p) = self.previous_cert.as_ref().filter(|p| {
            has_keys(p)
                && self
                    .cert
                    .as_ref()
                    .is_none_or(|c| c.thumbprint_sha1 != p.thumbprint_sha1)
        }) {
            return Some(p);
        }
        self.cert
            .as_ref()
            .filter(|c| self.next_cert.is_some() && c.not_after <= now && has_keys(c))
    }

    /// Records that the keys of `thumbprint` were removed from `apps` (the retirement after a
    /// roll); once none is left, the previous certificate is forgotten.
    pub fn record_retirement(&mut self, thumbprint: &str, apps: &[String], now: DateTime<Utc>) {
        self.credentials
            .retain(|c| !(c.thumbprint_sha1 == thumbprint && apps.contains(&c.app_id)));
        let left = self
            .credentials
            .iter()
            .any(|c| c.thumbprint_sha1 == thumbprint);
        if !left
            && self
                .previous_cert
                .as_ref()
                .is_some_and(|p| p.thumbprint_sha1 == thumbprint)
        {
            self.previous_cert = None;
        }
        self.log(
            now,
            "retire",
            format!("{}: removed the old key {thumbprint}", apps.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone as _};

    const APP: &str = crate::microsoft::SFB_APP_ID;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, 8, 0, 0).unwrap()
    }

    fn cert(tp: &str, days: i64) -> CertRecord {
        CertRecord {
            thumbprint_sha1: tp.into(),
            subject: "CN=x".into(),
            not_before: now() - TimeDelta::days(300),
            not_after: now() + TimeDelta::days(days),
            der_base64: String::new(),
        }
    }

    fn key(tp: &str, end_days: i64) -> CredentialRecord {
        CredentialRecord {
            app_id: APP.into(),
            key_id: Some(format!("k-{tp}")),
            thumbprint_sha1: tp.into(),
            start: now() - TimeDelta::days(10),
            end: now() + TimeDelta::days(end_days),
            recorded_at: now(),
        }
    }

    fn rolling() -> TenantRecord {
        let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], now());
        t.cert = Some(cert("OLD", 10));
        t.credentials.push(key("OLD", 10));
        t.start_roll(
            cert("NEW", 700),
            vec![key("NEW", 365)],
            now() + TimeDelta::days(1),
            None,
            now(),
        );
        t
    }

    #[test]
    fn a_started_roll_keeps_the_old_certificate_current_until_confirmed() {
        let mut t = rolling();
        assert_eq!(t.cert.as_ref().unwrap().thumbprint_sha1, "OLD");
        assert_eq!(t.next_cert.as_ref().unwrap().thumbprint_sha1, "NEW");
        assert!(t.to_retire(now()).is_none(), "nothing to retire before");
        // Before the EffectiveDate, the admin's word is refused; the server's output is not.
        let e = t.confirm_roll(ConfirmedBy::Admin, now()).unwrap_err();
        assert!(matches!(e, RollError::NotYetEffective { .. }));
        assert_eq!(t.cert.as_ref().unwrap().thumbprint_sha1, "OLD", "unchanged");
        let later = now() + TimeDelta::days(2);
        let c = t.confirm_roll(ConfirmedBy::Admin, later).unwrap();
        assert_eq!(c.previous_thumbprint_sha1.as_deref(), Some("OLD"));
        assert_eq!(t.cert.as_ref().unwrap().thumbprint_sha1, "NEW");
        assert!(t.next_cert.is_none() && t.roll_effective.is_none());
        assert_eq!(t.to_retire(later).unwrap().thumbprint_sha1, "OLD");
        t.record_retirement("OLD", &[APP.to_string()], later);
        assert!(t.previous_cert.is_none() && t.to_retire(later).is_none());
        assert!(t.credentials.iter().all(|c| c.thumbprint_sha1 == "NEW"));
        assert_eq!(
            t.confirm_roll(ConfirmedBy::Admin, later),
            Err(RollError::NothingPending("contoso.com".into()))
        );
    }

    #[test]
    fn an_unconfirmed_roll_retires_the_old_keys_only_once_its_certificate_has_expired() {
        let t = rolling();
        assert!(t.to_retire(now() + TimeDelta::days(9)).is_none());
        let after = now() + TimeDelta::days(11);
        assert_eq!(t.to_retire(after).unwrap().thumbprint_sha1, "OLD");
        assert_eq!(
            t.cert.as_ref().unwrap().thumbprint_sha1,
            "OLD",
            "still unconfirmed"
        );
    }

    #[test]
    fn a_blocked_roll_is_a_problem_until_it_is_confirmed() {
        let mut t = TenantRecord::new("contoso.com", "global", vec![APP.into()], now());
        t.cert = Some(cert("OLD", 1));
        t.start_roll(
            cert("NEW", 700),
            vec![],
            now() + TimeDelta::hours(1),
            Some("the old key ends in 20 hours".into()),
            now(),
        );
        assert!(
            t.last_renewal_failure
                .as_ref()
                .unwrap()
                .message
                .starts_with("roll blocked")
        );
        t.confirm_roll(ConfirmedBy::OnpremOutput, now()).unwrap();
        assert!(t.last_renewal_failure.is_none() && t.roll_blocked.is_none());
    }
}
