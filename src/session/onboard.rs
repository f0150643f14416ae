//! The changing half of `onboard`, once the plan is confirmed: upload the certificate as a
//! `Verify` key, add the service principal names, prove the trust with a token (the retry policy
//! for a key Entra does not see yet is [`crate::verify::verify_new_key`]'s), write the on-prem
//! script next to the ledger, and record the tenant. Each step reports itself as it completes,
//! so a failure midway can say what was done.

use super::{Session, SessionError};
use crate::cert::Loaded;
use crate::credential::{Approval, Outcome, standing};
use crate::graph;
use crate::ledger::CertRecord;
use crate::microsoft::SFB_APP_ID;
use crate::onprem::{self, Fqdn, Guid, HttpsUrl, ScriptInput};
use crate::session::keys::KeyOp;
use crate::verify::{Verified, VerifyError};
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// What the confirmed plan holds.
pub struct OnboardPlan<'a> {
    /// The tenant's domain when the user named it by domain (the ledger record's name).
    pub domain: Option<&'a str>,
    pub apps: &'a [String],
    pub cert: &'a Loaded,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub pools: &'a [Fqdn],
    pub metadata_url: &'a str,
    pub autodiscover_url: Option<HttpsUrl>,
}

/// What onboarding did.
pub struct Onboarded {
    /// The applications the key was uploaded to (empty: it was already there).
    pub uploaded: Vec<String>,
    pub names_added: Vec<String>,
    pub names_present: Vec<String>,
    pub verified: Verified,
    pub script: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Script(String),
}

/// A step done: its number (5 to 8, after discovery, the certificate, sign-in and the plan) and
/// what it did.
pub type Progress<'p> = dyn FnMut(usize, String) + 'p;

impl Session {
    /// Carries out a confirmed onboarding plan (steps 5 to 8). The session must be named by the
    /// tenant id.
    pub async fn onboard(
        &mut self,
        p: &OnboardPlan<'_>,
        say: &mut Progress<'_>,
        on_retry: &mut dyn FnMut(u64),
    ) -> Result<Onboarded, OnboardError> {
        let tid = self.name.clone();
        let c = &p.cert.leaf;
        let thumb = c.thumbprint_sha1();
        // A record the ledger has for the domain (from `tenant add`, without the id) learns the
        // id now, so the upload below, which names the tenant by id, finds it.
        if let Some(dn) = p.domain {
            self.tenant_id = Some(tid.clone());
            self.record_named(dn, p.apps, |_| ())
                .map_err(SessionError::from)?;
        }

        // 5. Upload (confirmed as part of the whole plan).
        let new = graph::new_key(c, p.start, p.end);
        let op = KeyOp::Upload(Box::new((new, CertRecord::from_cert(c))));
        let results = self.change_keys(p.apps, &op, &mut standing).await?;
        let uploaded: Vec<String> = results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Applied { .. }))
            .map(|(a, _)| a.clone())
            .collect();
        let key_start = results
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Applied { plan, .. } | Outcome::Unchanged { plan, .. } => plan
                    .added
                    .as_ref()
                    .or(plan.already_present.as_ref())
                    .and_then(|k| k.start_date_time),
                Outcome::Planned { .. } => None,
            })
            .max();
        say(
            5,
            if uploaded.is_empty() {
                format!(
                    "certificate {thumb} was already a key of {}",
                    p.apps.join(", ")
                )
            } else {
                format!("uploaded certificate {thumb} to {}", uploaded.join(", "))
            },
        );

        // 6. Service principal names.
        let names: Vec<String> = p
            .pools
            .iter()
            .map(|f| format!("{SFB_APP_ID}/{}", f.as_str()))
            .collect();
        let changes = if names.is_empty() {
            Default::default()
        } else {
            // The SfB service principal was just read by the upload: its id saves a lookup.
            let sp_id = results
                .iter()
                .find(|(app, _)| app.eq_ignore_ascii_case(SFB_APP_ID))
                .map(|(_, o)| o.service_principal().id.clone());
            self.add_names(&names, sp_id.as_deref(), &mut |_, _| Approval::Standing)
                .await?
        };
        say(
            6,
            format!(
                "service principal names: {} added, {} already there",
                changes.added.len(),
                changes.present.len()
            ),
        );

        // 7. Verify end to end.
        let verified = crate::verify::verify_new_key(
            &self.http,
            &self.cloud,
            &tid,
            p.cert,
            key_start,
            self.clock,
            on_retry,
        )
        .await?;
        say(
            7,
            format!(
                "verified: Entra ID issued a token to 00000004 for Exchange Online ({})",
                verified.token.aud.as_deref().unwrap_or("?")
            ),
        );

        // 8. The on-prem script and the ledger.
        let input = ScriptInput {
            tenant_id: Guid::parse("tenant id", &tid)
                .map_err(|e| OnboardError::Script(e.to_string()))?,
            metadata_url: HttpsUrl::parse("metadata URL", p.metadata_url)
                .map_err(|e| OnboardError::Script(e.to_string()))?,
            pool_fqdns: p.pools.to_vec(),
            autodiscover_url: p.autodiscover_url.clone(),
            client_auth_sts: false,
            generated_at: self.clock.now(),
        };
        let script = self.state_dir.join(format!("onprem-{tid}.ps1"));
        crate::paths::write_atomic(&script, onprem::render(&input, None).as_bytes(), 0o600)
            .map_err(|e| OnboardError::Script(format!("cannot write {}: {e}", script.display())))?;
        let domain = p.domain.unwrap_or(&tid).to_string();
        let now = self.clock.now();
        let pools: Vec<String> = p.pools.iter().map(|f| f.as_str().to_string()).collect();
        self.record(p.apps, |rec| {
            rec.domain = domain.to_ascii_lowercase();
            rec.tenant_id = Some(tid.clone());
            rec.record_pools(&pools, &[], now);
            rec.log(
                now,
                "onboard",
                format!("onboarded with certificate {thumb}; verified"),
            );
        })
        .map_err(SessionError::from)?;
        say(
            8,
            format!(
                "wrote the on-prem script {} and recorded the tenant",
                script.display()
            ),
        );
        Ok(Onboarded {
            uploaded,
            names_added: changes.added,
            names_present: changes.present,
            verified,
            script,
        })
    }
}
