//! `renew --trust exchange` and `credential prune --trust exchange --first-party` over a session
//! (docs/protocol.md §5): find the dedicated application, learn the key lifetime cap from the
//! app management policies, plan with [`crate::exchange::plan`], confirm the whole plan once, and
//! carry each step out as a [`crate::credential::Change`] on the application (read, plan again
//! from what is there now, audit, PATCH, read back); then record the trust in the ledger. The
//! shared Exchange principal's on-prem keys go the same way, kept keys sent minimal first as
//! Microsoft's script sends them.

use super::{Session, SessionError};
use crate::credential::{self, Holder, Outcome};
use crate::exchange::{self, Step, Wanted};
use crate::graph::applications::Application;
use crate::graph::resend::ResendForm;
use crate::graph::{GraphError, KeyCredential, KeyIdentity, KeyPlan, PlanError};
use crate::ledger::{CertRecord, CredentialRecord, ExchangeTrust};
use crate::onprem::exchange::Export;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// What Microsoft's script is run with to create the dedicated application.
pub const CREATE_APP_HINT: &str = "create it with Microsoft's ConfigureExchangeHybridApplication.ps1 -FullyConfigureExchangeHybridApplication (CSS-Exchange, Hybrid/), then run this again; or name an existing one with --exchange-app-id";

/// What a step came to.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    #[serde(flatten)]
    pub step: Step,
    /// applied, planned, unchanged.
    pub outcome: &'static str,
}

/// What `renew --trust exchange` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeRenewReport {
    pub tenant: String,
    pub trust: &'static str,
    pub dry_run: bool,
    pub app_id: String,
    pub app_object_id: String,
    pub display_name: Option<String>,
    /// The policy's cap on a key's lifetime, in days (none: the certificate's validity).
    pub key_lifetime_cap_days: Option<i64>,
    pub current_thumbprint: crate::ids::Thumbprint,
    pub next_thumbprint: Option<crate::ids::Thumbprint>,
    pub next_effective: Option<DateTime<Utc>>,
    pub previous_thumbprint: Option<crate::ids::Thumbprint>,
    pub steps: Vec<StepResult>,
    /// Keys on the application after the run: thumbprint, start, end.
    pub keys: Vec<KeyLine>,
}

/// One key as the Exchange reports list it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyLine {
    pub thumbprint: Option<crate::ids::Thumbprint>,
    pub key_id: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub usage: Option<String>,
}

impl KeyLine {
    pub fn of(k: &KeyCredential) -> KeyLine {
        KeyLine {
            thumbprint: k.thumbprint(),
            key_id: k.key_id.clone(),
            start: k.start_date_time,
            end: k.end_date_time,
            usage: k.usage.clone(),
        }
    }
}

impl ExchangeRenewReport {
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: Exchange hybrid application {} ({}){}",
            self.tenant,
            self.display_name.as_deref().unwrap_or("?"),
            self.app_id,
            match self.key_lifetime_cap_days {
                Some(d) => format!(", keys capped at {d} days by the app management policy"),
                None => String::new(),
            }
        );
        if self.steps.is_empty() {
            let _ = writeln!(
                s,
                "  nothing to do: the application's keys match AuthConfig"
            );
        }
        for r in &self.steps {
            let _ = writeln!(s, "  {}: {}", r.outcome, r.step.text());
        }
        if let (Some(n), Some(e)) = (&self.next_thumbprint, self.next_effective) {
            let _ = writeln!(
                s,
                "  staged on-prem: {n}, effective {}; after Exchange switches to it, export again and renew: the previous key is retired then",
                e.format("%Y-%m-%d %H:%M UTC")
            );
        }
        s
    }
}

/// The dedicated application: by appId when given, else by display name. None, or two of the
/// same name, is the user's to resolve (exit 2, nothing changed).
pub async fn find_app(
    s: &Session,
    display_name: &str,
    app_id: Option<&str>,
) -> Result<Application, SessionError> {
    let g = s.graph();
    let found = match app_id {
        Some(id) => g.find_application_by_app_id(id).await,
        None => g.find_application_by_name(display_name).await,
    };
    match (found, app_id) {
        (Ok(a), _) => Ok(a),
        (Err(GraphError::NoApplication { .. }), Some(id)) => Err(SessionError::Usage(format!(
            "no application with appId {id} in the tenant (--exchange-app-id); check the id, or {CREATE_APP_HINT}"
        ))),
        (Err(GraphError::NoApplication { .. }), None) => Err(SessionError::Usage(format!(
            "the tenant has no application named {display_name}: the Exchange hybrid application is not configured; {CREATE_APP_HINT}"
        ))),
        (Err(GraphError::AmbiguousApplication { count, .. }), _) => {
            Err(SessionError::Usage(format!(
                "{count} applications are named {display_name}: name the one Exchange uses (Get-AuthServer EvoSTS* | Format-List ApplicationIdentifier) with --exchange-app-id"
            )))
        }
        (Err(e), _) => Err(credential::CredentialError::from(e).into()),
    }
}

/// The cap on a key's lifetime, in days, from the application's own app management policy or
/// the tenant's default (docs/protocol.md §5.5). A policy that cannot be read (the admin lacks
/// Policy.Read.All) is said in a warning, and 365 days assumed (the common cap).
pub async fn lifetime_cap(s: &Session, app: &Application) -> Option<i64> {
    match s.graph().key_lifetime_caps(Some(app)).await {
        Ok(c) => c.application.map(|c| c.max_lifetime.num_days()),
        Err(e) => {
            tracing::warn!(
                "cannot read the app management policies ({e}); keys are capped at 365 days"
            );
            Some(365)
        }
    }
}

fn cert_of<'e>(export: &'e Export, tp: &str) -> Option<&'e crate::cert::Certificate> {
    std::iter::once(&export.current)
        .chain(&export.next)
        .chain(&export.previous)
        .find(|c| c.thumbprint == tp)
        .map(|c| &c.cert)
}

/// The plan for one step, made from the keys as read now.
fn step_plan(
    step: &Step,
    export: &Export,
    before: &[KeyCredential],
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    match step {
        Step::Upload {
            thumbprint,
            start,
            end,
            ..
        } => {
            let cert = cert_of(export, thumbprint)
                .ok_or_else(|| PlanError::NoSuchKey(thumbprint.to_string()))?;
            let key = crate::graph::window::new_key_labelled(
                cert,
                (*start).max(now),
                *end,
                "Exchange Auth Certificate",
            );
            crate::graph::plan_rewindow(before, key, *end, now)
        }
        Step::RetireWindows { thumbprint, until } => {
            // The replacement: the window of this certificate that lasts longest and has begun.
            let replacement = before
                .iter()
                .filter(|k| {
                    k.is_verify_cert()
                        && k.thumbprint().as_deref() == Some(thumbprint.as_str())
                        && !k.is_expired(now)
                        && k.start_date_time.is_none_or(|s| s <= now)
                })
                .max_by_key(|k| k.end_date_time)
                .ok_or_else(|| PlanError::ReplacementMissing(thumbprint.to_string()))?;
            let superseded = crate::graph::superseded_windows(before, replacement, *until);
            crate::graph::plan_retire(before, &superseded, &[], &KeyIdentity::of(replacement), now)
        }
        Step::RetirePrevious { thumbprint } => {
            // Never without a valid key of the certificate Exchange signs with.
            let cur = &export.current.thumbprint;
            let covered = before.iter().any(|k| {
                k.is_verify_cert()
                    && k.thumbprint().as_deref() == Some(cur.as_str())
                    && !k.is_expired(now)
                    && k.start_date_time.is_none_or(|s| s <= now)
            });
            if !covered {
                return Err(PlanError::InUse {
                    thumbprint: thumbprint.to_string(),
                    why: "the application has no valid key of the current Auth Certificate yet",
                });
            }
            crate::graph::plan_remove(before, thumbprint, now)
        }
    }
}

/// `renew --trust exchange`: the application's keys in step with the export. `confirm` sees the
/// whole plan once (not asked in a dry run); after it, each step is planned again from what is
/// there and applied with a standing approval (a step that now would remove more is refused).
pub async fn renew(
    s: &mut Session,
    export: &Export,
    app_id: Option<&str>,
    horizon: TimeDelta,
    confirm: &mut dyn FnMut(&[Step]) -> bool,
) -> Result<ExchangeRenewReport, SessionError> {
    s.lock().await?;
    let app = find_app(s, &export.app_display_name(), app_id).await?;
    let cap = lifetime_cap(s, &app).await;
    let g = s.graph();
    let keys = g
        .read_application(&app.id)
        .await
        .map_err(|e| SessionError::from(credential::CredentialError::from(e)))?;
    let now = s.clock.now();
    fn wanted<'c>(c: &'c crate::onprem::exchange::ExportedCert, role: &'static str) -> Wanted<'c> {
        Wanted {
            thumbprint: &c.thumbprint,
            not_before: c.cert.not_before,
            not_after: c.cert.not_after,
            role,
        }
    }
    // The previous certificate: AuthConfig's, or, when the export names none (MEAC's
    // -ClearPreviousCertificate), the one this ledger last saw current.
    let recorded = s
        .ledger
        .tenant(&s.name, s.tenant_id.as_deref())
        .ok()
        .flatten()
        .and_then(|t| t.exchange)
        .and_then(|x| x.cert)
        .map(|c| c.thumbprint_sha1);
    let previous = export.previous_thumbprint.clone().or_else(|| {
        recorded.filter(|r| {
            *r != export.current.thumbprint
                && export.next.as_ref().is_none_or(|n| n.thumbprint != *r)
        })
    });
    let current = wanted(&export.current, "current");
    let next = export.next.as_ref().map(|n| wanted(n, "next"));
    let steps = exchange::plan(
        &current,
        next.as_ref(),
        previous.as_ref(),
        &keys.key_credentials,
        cap,
        horizon,
        now,
    )
    .map_err(|e| SessionError::Usage(format!("no key window is possible: {e}")))?;
    if !steps.is_empty() && !s.dry_run && !confirm(&steps) {
        return Err(credential::CredentialError::Declined.into());
    }
    let actor = s.actor();
    let mut change = s.change(&g, &app.app_id, &actor);
    change.holder = Holder::Application;
    let mut results = Vec::new();
    let mut after_keys = keys.key_credentials.clone();
    // A step that fails ends the run; the steps before it are recorded all the same (the ledger
    // never keeps less than the application holds), and the failure with them.
    let mut failure: Option<SessionError> = None;
    for step in &steps {
        let note = format!("renew --trust exchange: {}", step.text());
        let o = match change
            .keys(
                &app.id,
                |before| step_plan(step, export, before, s.clock.now()),
                &mut credential::standing,
                &note,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        let outcome = match &o {
            Outcome::Applied { .. } => "applied",
            Outcome::Planned { .. } => "planned",
            Outcome::Unchanged { .. } => "unchanged",
        };
        after_keys = o.service_principal().key_credentials.clone();
        results.push(StepResult {
            step: step.clone(),
            outcome,
        });
    }
    if !s.dry_run {
        let rec = |c: &crate::onprem::exchange::ExportedCert| CertRecord::from_cert(&c.cert);
        let now = s.clock.now();
        // The keys of AuthConfig's certificates as the application holds them now, whoever put
        // them there (Microsoft's script uploads without dates: the certificate's validity).
        let named: Vec<&str> = std::iter::once(export.current.thumbprint.as_str())
            .chain(export.next.iter().map(|n| n.thumbprint.as_str()))
            .chain(previous.as_deref())
            .collect();
        let held: Vec<CredentialRecord> = after_keys
            .iter()
            .filter(|k| k.is_verify_cert())
            .filter_map(|k| {
                let tp = k.thumbprint().filter(|t| named.contains(&t.as_str()))?;
                let c = k.certificate();
                Some(CredentialRecord {
                    app_id: app.app_id.clone(),
                    key_id: k.key_id.clone(),
                    thumbprint_sha1: tp,
                    start: k.start_date_time.or(c.as_ref().map(|c| c.not_before))?,
                    end: k.end_date_time.or(c.as_ref().map(|c| c.not_after))?,
                    recorded_at: now,
                })
            })
            .collect();
        let history: Vec<String> = results
            .iter()
            .filter(|r| r.outcome == "applied")
            .map(|r| r.step.text())
            .collect();
        let failed = failure.as_ref().map(ToString::to_string);
        let name = s.name.clone();
        s.record_named(&name, &[], |t| {
            let x = t.exchange.get_or_insert_with(ExchangeTrust::default);
            x.app_id = app.app_id.clone();
            x.app_object_id = Some(app.id.clone());
            x.display_name = app.display_name.clone();
            x.organization_guid = Some(export.organization_guid.clone());
            x.cert = Some(rec(&export.current));
            x.next_cert = export.next.as_ref().map(rec);
            x.next_effective = export.next_effective;
            x.previous_thumbprint = previous.clone();
            x.key_lifetime_days = cap;
            x.exported_at = Some(now);
            x.credentials = held;
            if !history.is_empty() {
                x.last_renewal = Some(now);
                t.log(now, "renew --trust exchange", history.join("; "));
            }
            let x = t.exchange.get_or_insert_with(ExchangeTrust::default);
            match &failed {
                None => x.last_renewal_failure = None,
                Some(m) => {
                    let since = x
                        .last_renewal_failure
                        .as_ref()
                        .filter(|f| f.message == *m)
                        .and_then(|f| f.since)
                        .unwrap_or(now);
                    x.last_renewal_failure = Some(crate::ledger::RenewalFailure {
                        at: now,
                        message: m.clone(),
                        reported: false,
                        since: Some(since),
                    });
                    t.log(now, "renew --trust exchange failed", m.clone());
                }
            }
        })
        .await?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(ExchangeRenewReport {
        tenant: s.tenant_id.clone().unwrap_or_else(|| s.name.clone()),
        trust: "exchange",
        dry_run: s.dry_run,
        app_id: app.app_id.clone(),
        app_object_id: app.id.clone(),
        display_name: app.display_name.clone(),
        key_lifetime_cap_days: cap,
        current_thumbprint: export.current.thumbprint.clone(),
        next_thumbprint: export.next.as_ref().map(|n| n.thumbprint.clone()),
        next_effective: export.next_effective,
        previous_thumbprint: previous.clone(),
        steps: results,
        keys: after_keys.iter().map(KeyLine::of).collect(),
    })
}

/// What `credential prune --trust exchange --first-party` reports.
#[derive(Debug, Clone, Serialize)]
pub struct FirstPartyPruneReport {
    pub tenant: String,
    pub app_id: &'static str,
    pub dry_run: bool,
    /// planned, applied, unchanged.
    pub outcome: &'static str,
    pub removed: Vec<KeyLine>,
    pub kept: Vec<KeyLine>,
    /// How the kept keys were sent (minimal first, as Microsoft's script).
    pub kept_sent: Option<String>,
}

impl FirstPartyPruneReport {
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: on-premises keys on Exchange Online's shared principal {}: {} {}",
            self.tenant,
            self.app_id,
            self.removed.len(),
            match self.outcome {
                "applied" => "removed",
                "planned" => "would be removed (dry run)",
                _ => "to remove",
            }
        );
        for k in &self.removed {
            let _ = writeln!(
                s,
                "  {} {} (until {})",
                if self.outcome == "applied" {
                    "removed"
                } else {
                    "remove"
                },
                k.thumbprint.as_deref().unwrap_or("?"),
                k.end
                    .map(|e| e.format("%Y-%m-%d").to_string())
                    .unwrap_or_default()
            );
        }
        s
    }
}

/// The on-premises keys of the shared principal: its `AsymmetricX509Cert` keys (the Hybrid
/// Configuration Wizard put the Exchange Auth Certificate there; Microsoft's own keys of a
/// first-party application are not in the tenant's copy).
pub fn is_onprem_key(k: &KeyCredential) -> bool {
    k.kind.as_deref() == Some("AsymmetricX509Cert")
}

/// The plan that removes every on-prem key of the shared principal and keeps the rest.
pub fn plan_first_party(
    existing: &[KeyCredential],
    now: DateTime<Utc>,
) -> Result<KeyPlan, PlanError> {
    let (removed, rest): (Vec<_>, Vec<_>) = existing.iter().cloned().partition(is_onprem_key);
    // An expired on-prem key is dropped like any expired one, not listed as removed.
    let (expired, removed): (Vec<_>, Vec<_>) = removed.into_iter().partition(|k| k.is_expired(now));
    let mut plan = crate::graph::plan::removal(&rest, removed, now)?;
    plan.dropped_expired.extend(expired);
    Ok(plan)
}

/// `credential prune --trust exchange --first-party`: removes the on-prem keys of
/// `00000002-…` as ConfigureExchangeHybridApplication.ps1 -ResetFirstPartyServicePrincipalKeyCredentials
/// does (kept keys sent as `key`/`type`/`usage` only), with the plan confirmed, the audit log,
/// and the read-back of [`crate::credential::Change`].
pub async fn prune_first_party(
    s: &mut Session,
    confirm: &mut crate::credential::Confirm<'_>,
) -> Result<FirstPartyPruneReport, SessionError> {
    use crate::microsoft::EXCHANGE_APP_ID;
    s.lock().await?;
    let g = s.graph();
    let sp = g
        .find_service_principal(EXCHANGE_APP_ID)
        .await
        .map_err(|e| SessionError::from(credential::CredentialError::from(e)))?;
    let actor = s.actor();
    let mut change = s.change(&g, EXCHANGE_APP_ID, &actor);
    change.first_form = ResendForm::Minimal;
    let o = change
        .keys(
            &sp,
            |before| plan_first_party(before, s.clock.now()),
            confirm,
            "credential prune --trust exchange --first-party",
        )
        .await?;
    let (plan, outcome, kept_sent) = match &o {
        Outcome::Applied { plan, resend, .. } => (plan, "applied", Some(resend.form.to_string())),
        Outcome::Planned { plan, .. } => (plan, "planned", None),
        Outcome::Unchanged { plan, .. } => (plan, "unchanged", None),
    };
    if outcome == "applied" {
        let now = s.clock.now();
        let n = plan.removed.len();
        let name = s.name.clone();
        let tps: Vec<crate::ids::Thumbprint> = plan
            .removed
            .iter()
            .filter_map(KeyCredential::thumbprint)
            .collect();
        s.record_named(&name, &[], |t| {
            t.log(
                now,
                "credential prune --trust exchange --first-party",
                format!(
                    "{EXCHANGE_APP_ID}: removed {n} on-premises key(s): {}",
                    tps.join(", ")
                ),
            );
        })
        .await?;
    }
    Ok(FirstPartyPruneReport {
        tenant: s.tenant_id.clone().unwrap_or_else(|| s.name.clone()),
        app_id: EXCHANGE_APP_ID,
        dry_run: s.dry_run,
        outcome,
        removed: plan.removed.iter().map(KeyLine::of).collect(),
        kept: o
            .service_principal()
            .key_credentials
            .iter()
            .filter(|k| !is_onprem_key(k))
            .map(KeyLine::of)
            .collect(),
        kept_sent,
    })
}

/// What `credential list --trust exchange` reports: the dedicated application's keys.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeKeyListing {
    pub tenant: String,
    pub trust: &'static str,
    pub app_id: String,
    pub app_object_id: String,
    pub display_name: Option<String>,
    pub credentials: Vec<KeyLine>,
}

impl ExchangeKeyListing {
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "{}: {} ({}), {} key(s)\n",
            self.tenant,
            self.display_name.as_deref().unwrap_or("?"),
            self.app_id,
            self.credentials.len()
        );
        for k in &self.credentials {
            let d = |t: Option<DateTime<Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default()
            };
            let _ = writeln!(
                s,
                "  {} {} -> {} {}",
                k.thumbprint.as_deref().unwrap_or("?"),
                d(k.start),
                d(k.end),
                k.usage.as_deref().unwrap_or("")
            );
        }
        s
    }
}

/// The keys of the Exchange hybrid application `app_id`.
pub async fn list(s: &mut Session, app_id: &str) -> Result<ExchangeKeyListing, SessionError> {
    let app = find_app(s, "", Some(app_id)).await?;
    let keys = s
        .graph()
        .read_application(&app.id)
        .await
        .map_err(|e| SessionError::from(credential::CredentialError::from(e)))?;
    s.resolve_tenant_id().await;
    Ok(ExchangeKeyListing {
        tenant: s.tenant_id.clone().unwrap_or_else(|| s.name.clone()),
        trust: "exchange",
        app_id: app.app_id,
        app_object_id: app.id,
        display_name: app.display_name,
        credentials: keys.key_credentials.iter().map(KeyLine::of).collect(),
    })
}

/// The hint for a failure of the Exchange flow (`renew --trust exchange`, `credential prune
/// --trust exchange --first-party`, `credential list --trust exchange`) for tenant `tenant`: the
/// key plan's refusals say what to do for the dedicated application and AuthConfig (the Skype
/// for Business wording names `--new-cert`, `--confirm-roll` and the Front Ends, which do not
/// apply here); anything else as [`SessionError::hint`] says it.
pub fn hint(e: &SessionError, tenant: &str) -> String {
    let renew = format!("hybrid-trust renew --trust exchange --tenant {tenant} --from DIR");
    let list = format!("hybrid-trust credential list --trust exchange --tenant {tenant}");
    let export = "export Get-AuthConfig again (hybrid-trust onprem script --trust exchange)";
    let SessionError::Credential(c) = e else {
        return e.hint();
    };
    let credential::CredentialError::Plan(p) = c.as_ref() else {
        return e.hint();
    };
    match p {
        PlanError::InUse { .. } | PlanError::LastValidKey(_) => format!(
            "nothing was removed; the previous Auth Certificate's key is retired only once the application holds a valid key of the certificate Exchange signs with: {export} and run {renew} (it uploads the current certificate first, then retires the previous one); {list} shows the keys"
        ),
        PlanError::MaybeInUse { .. } => format!(
            "nothing was removed; Get-AuthConfig on an Exchange server shows the certificate Exchange signs with: {export} and run {renew}"
        ),
        PlanError::NoSuchKey(_) => format!("list the keys with {list}"),
        PlanError::ReplacementMissing(_) | PlanError::ReplacementNotValid(_) => format!(
            "{list} shows the keys; another admin or ConfigureExchangeHybridApplication.ps1 changed them: run {renew} again, it adopts a valid window or adds one"
        ),
        PlanError::Superseded { .. } => format!(
            "nothing was changed; if Exchange now signs with the newer certificate, {export} and run {renew}"
        ),
        _ => e.hint(),
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    /// Issue 27, item 6: the Exchange flow's refusals name the Exchange commands, never the
    /// Skype for Business roll (`--new-cert`, `--confirm-roll`, Front Ends).
    #[test]
    fn the_exchange_flows_hints_name_the_exchange_commands() {
        let plan = |p: PlanError| SessionError::from(credential::CredentialError::Plan(p));
        for e in [
            plan(PlanError::InUse {
                thumbprint: "AB".into(),
                why: "the application has no valid key of the current Auth Certificate yet",
            }),
            plan(PlanError::LastValidKey("AB".into())),
            plan(PlanError::MaybeInUse {
                thumbprint: "AB".into(),
                why: "x".into(),
            }),
            plan(PlanError::NoSuchKey("AB".into())),
            plan(PlanError::ReplacementMissing("AB".into())),
            plan(PlanError::Superseded {
                ours: "A".into(),
                newer: "B".into(),
                newer_end: "2027".into(),
            }),
        ] {
            let h = hint(&e, "contoso.com");
            assert!(h.contains("--trust exchange"), "{e}: {h}");
            for sfb in [
                "--new-cert",
                "--confirm-roll",
                "Front End",
                "OAuthTokenIssuer",
            ] {
                assert!(!h.contains(sfb), "{e}: {h}");
            }
        }
        // Other failures keep their own hint.
        let e = SessionError::Usage("x".into());
        assert_eq!(hint(&e, "contoso.com"), e.hint());
    }
}
