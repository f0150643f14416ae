//! `onboard` in the library: the checks before anything changes ([`metadata_ready`],
//! [`certificate_ready`]), and the changing half, once the plan is confirmed: upload the certificate as a
//! `Verify` key, add the service principal names, prove the trust with a token (the retry policy
//! for a key Entra does not see yet is [`crate::verify::verify_new_key`]'s), write the on-prem
//! script next to the ledger, and record the tenant. Each step reports itself as it completes,
//! so a failure midway can say what was done ([`undo_hint`]). The plan's summary and the final
//! report ([`OnboardReport`]) are rendered here too.

use super::{Session, SessionError};
use crate::cert::{CheckOptions, Loaded, Severity};
use crate::credential::{Approval, Outcome, standing};
use crate::graph;
use crate::ledger::CertRecord;
use crate::microsoft::SFB_APP_ID;
use crate::onprem::{self, Fqdn, Guid, HttpsUrl, ScriptInput};
use crate::session::keys::KeyOp;
use crate::tenant::{Discovery, TenantRef};
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

/// Why a tenant or a certificate cannot be onboarded, found before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the tenant's ACS metadata is not usable: {0}")]
    Metadata(String),
    #[error("the certificate is not fit for OAuthTokenIssuer: {0}")]
    Certificate(String),
    #[error(transparent)]
    Window(#[from] graph::WindowError),
}

impl NotReady {
    pub fn hint(&self) -> Option<String> {
        match self {
            NotReady::Metadata(_) => Some("see hybrid-trust tenant discover".into()),
            NotReady::Certificate(_) => Some("fix the certificate (hybrid-trust cert inspect shows every finding), then run onboard again".into()),
            NotReady::Window(_) => None,
        }
    }

    /// Whether the user's own input caused it (exit 2): the certificate; not the tenant (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, NotReady::Metadata(_))
    }
}

/// Step 1's check: the discovered tenant's ACS metadata has no error finding. Returns the step's
/// line.
pub fn metadata_ready(tenant: &TenantRef, d: &Discovery) -> Result<String, NotReady> {
    if let Some(f) = d
        .metadata
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        return Err(NotReady::Metadata(f.message.clone()));
    }
    Ok(format!(
        "tenant {tenant} is {}; its ACS metadata is valid ({} signing key(s))",
        d.tenant_id,
        d.metadata.signing_keys.len()
    ))
}

/// Step 2's check: the certificate is fit for OAuthTokenIssuer (it covers the SIP domain, has
/// its private key, and outlives the next 30 days), and the longest key window it allows from
/// `now`. Returns the window and the step's line.
pub fn certificate_ready(
    cert: &Loaded,
    sip_domain: &Fqdn,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, String), NotReady> {
    let findings = crate::cert::check(
        cert,
        &CheckOptions {
            now,
            sip_domain: Some(sip_domain.as_str().to_string()),
            horizon_days: 30,
            require_private_key: true,
        },
    );
    if let Some(f) = findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(NotReady::Certificate(f.message.clone()));
    }
    let c = &cert.leaf;
    let (start, end) = graph::window(c.not_before, c.not_after, None, None, now)?;
    let line = format!(
        "certificate {} ({}) is fit for OAuthTokenIssuer",
        c.thumbprint_sha1(),
        c.subject
    );
    Ok((start, end, line))
}

impl OnboardPlan<'_> {
    /// The plan for people, before it is confirmed.
    pub fn summary(&self, tenant_id: &str) -> String {
        let names: Vec<String> = self
            .pools
            .iter()
            .map(|p| format!("{SFB_APP_ID}/{}", p.as_str()))
            .collect();
        format!(
            "plan for {tenant_id}: add certificate {} as a Verify key ({} -> {}) on {}; add service principal names {}; verify; write the on-prem script; record the tenant",
            self.cert.leaf.thumbprint_sha1(),
            self.start.format("%Y-%m-%d"),
            self.end.format("%Y-%m-%d"),
            self.apps.join(", "),
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        )
    }
}

/// The hint after a failure midway: what was done, and (once the upload was) how to finish or
/// undo it.
pub fn undo_hint(done: &[String], tenant_id: &str, thumb: &str) -> String {
    let mut hint = format!("done so far: {}", done.join("; "));
    if done.len() >= 5 {
        hint.push_str(&format!(". To finish, fix the cause and run onboard again (it skips what is done); to undo the upload: hybrid-trust credential remove --tenant {tenant_id} --thumbprint {thumb} --yes"));
    }
    hint
}

/// What `onboard` reports once done (keys in alphabetical order, as it has always written them).
#[derive(Debug, serde::Serialize)]
pub struct OnboardReport {
    pub changed: bool,
    pub credential_end: DateTime<Utc>,
    pub next_renewal: DateTime<Utc>,
    pub onprem_script: String,
    pub service_principal_names_added: Vec<String>,
    pub steps: Vec<String>,
    pub tenant: String,
    pub tenant_id: String,
    pub thumbprint_sha1: crate::ids::Thumbprint,
    pub uploaded_to: Vec<String>,
    pub verified: bool,
}

impl OnboardReport {
    /// `steps`: each step's line as it was reported.
    pub fn new(plan: &OnboardPlan<'_>, tid: &str, done: Onboarded, steps: Vec<String>) -> Self {
        OnboardReport {
            changed: !done.uploaded.is_empty() || !done.names_added.is_empty(),
            credential_end: plan.end,
            next_renewal: crate::dates::sub(plan.end, chrono::TimeDelta::days(30)),
            onprem_script: done.script.display().to_string(),
            service_principal_names_added: done.names_added,
            steps,
            tenant: plan.domain.unwrap_or(tid).to_string(),
            tenant_id: tid.to_string(),
            thumbprint_sha1: plan.cert.leaf.thumbprint_sha1(),
            uploaded_to: done.uploaded,
            verified: true,
        }
    }

    pub fn text(&self) -> String {
        let (domain, tid) = (&self.tenant, &self.tenant_id);
        format!(
            "{}\nNext: run {} in the Skype for Business Server Management Shell on a Front End.\nRenewal: hybrid-trust renews from {} (run `hybrid-trust renew --all` daily, see scripts/systemd).\n",
            if self.changed {
                format!("onboarded {domain} ({tid})")
            } else {
                format!("{domain} ({tid}) was already onboarded: nothing changed")
            },
            self.onprem_script,
            self.next_renewal.format("%Y-%m-%d")
        )
    }
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
                .await
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
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_the_hint_and_the_report_say_what_onboarding_does() {
        let kp = rcgen::KeyPair::generate().unwrap();
        let pem = rcgen::CertificateParams::new(vec!["sfb.contoso.com".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap()
            .pem();
        let cert =
            crate::cert::load_bytes(pem.as_bytes(), "c.pem".as_ref(), &mut || Ok(None)).unwrap();
        let thumb = cert.leaf.thumbprint_sha1();
        // No private key: not fit, and the user's own input (exit 2).
        let sip = Fqdn::parse("sip", "contoso.com").unwrap();
        let e = certificate_ready(&cert, &sip, cert.leaf.not_before).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("not fit for OAuthTokenIssuer"),
            "{e}"
        );
        let end = DateTime::parse_from_rfc3339("2027-06-30T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let apps = [SFB_APP_ID.to_string()];
        let pools = [Fqdn::parse("pool", "webext.contoso.com").unwrap()];
        let mut plan = OnboardPlan {
            domain: Some("contoso.com"),
            apps: &apps,
            cert: &cert,
            start: end - chrono::TimeDelta::days(365),
            end,
            pools: &[],
            metadata_url: "https://acs.example/t/metadata/json/1",
            autodiscover_url: None,
        };
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert!(
            plan.summary(tid)
                .contains("add service principal names (none);")
        );
        plan.pools = &pools;
        let s = plan.summary(tid);
        assert!(s.starts_with(&format!("plan for {tid}: add certificate {thumb} as a Verify key (2026-06-30 -> 2027-06-30) on 00000004-")), "{s}");
        assert!(
            s.contains(&format!("names {SFB_APP_ID}/webext.contoso.com;")),
            "{s}"
        );

        let four: Vec<String> = (1..=4).map(|n| format!("step {n}")).collect();
        assert_eq!(undo_hint(&four[..1], tid, &thumb), "done so far: step 1");
        let mut five = four.clone();
        five.push("step 5".into());
        assert!(undo_hint(&five, tid, &thumb).ends_with(&format!(
            "credential remove --tenant {tid} --thumbprint {thumb} --yes"
        )));

        let done = |uploaded: Vec<String>| Onboarded {
            uploaded,
            names_added: Vec::new(),
            names_present: Vec::new(),
            verified: Verified {
                token: crate::verify::TokenFacts {
                    appid: None,
                    appidacr: None,
                    aud: None,
                    exp: None,
                    iss: None,
                    roles: Vec::new(),
                    tid: None,
                },
                signature_verified: true,
                clock_skew_secs: None,
                server_time: None,
            },
            script: PathBuf::from("/state/onprem.ps1"),
        };
        let r = OnboardReport::new(&plan, tid, done(apps.to_vec()), five.clone());
        let direct = serde_json::to_string(&r).unwrap();
        let sorted = serde_json::to_string(&serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(direct, sorted);
        assert_eq!(r.next_renewal.to_rfc3339(), "2027-05-31T00:00:00+00:00");
        assert!(
            r.text()
                .starts_with(&format!("onboarded contoso.com ({tid})\n"))
        );
        let again = OnboardReport::new(&plan, tid, done(Vec::new()), five);
        assert!(!again.changed && again.text().contains("was already onboarded"));
    }
}
