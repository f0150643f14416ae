//! Changing a service principal's keyCredentials or servicePrincipalNames safely, on top of
//! Graph's replace-semantics PATCH (docs/protocol.md §1.4): read with `key`, plan the whole new array,
//! confirm, write the before/after to the audit log, PATCH, read back, and if another writer's
//! PATCH crossed ours (no ETag exists), merge again from what is there now.
//!
//! A plan shown for confirmation is stale once a person has answered: the keys are read and
//! planned again before anything is written. When the new plan does something else (another
//! admin added or removed a key meanwhile), the difference is shown and the question asked again;
//! when nobody is there to ask (`--yes`, or a run confirmed as a whole), a changed plan is applied
//! only if it is additive, that is, removes no valid key.
//!
//! Kept keys are re-sent as [`crate::graph::resend`] says: the preferred form first, and when
//! Graph refuses the way they were re-sent (docs/protocol.md §6 item 9, unconfirmed), the next form at
//! once (a 400 changed nothing); the read-back then requires every kept key's certificate with a
//! valid window ([`CredentialError::KeptKeyLost`] otherwise, exit 1) and reports what Graph changed.
//! Each attempt, refusal and change goes to the audit log.
//!
//! How keys, plans and results look to people and scripts is [`report`]'s.

pub mod foreign;
pub mod report;

use crate::audit::{AuditEntry, AuditLog};
use crate::graph::resend::{self, KeptChange, ResendForm};
use crate::graph::{Graph, GraphError, KeyCredential, KeyPlan, PlanError, ServicePrincipal};
use serde_json::json;
use std::time::Duration;

/// What to do about a thumbprint [`thumbprint_arg`] refuses.
pub const THUMBPRINT_HINT: &str = "give the 40 hex digits credential list shows";

/// A SHA-1 thumbprint as typed (colons and spaces allowed, any case): 40 uppercase hex digits.
pub fn thumbprint_arg(s: &str) -> Result<crate::ids::Thumbprint, String> {
    crate::ids::Thumbprint::parse_typed(s)
        .ok_or_else(|| format!("--thumbprint {s:?} is not a SHA-1 thumbprint"))
}

/// What each application's key change came to.
pub type AppOutcomes = Vec<(String, Outcome)>;

/// What adding names came to.
#[derive(Debug, Default)]
pub struct NameChanges {
    pub added: Vec<String>,
    pub present: Vec<String>,
    pub planned: Vec<String>,
    /// The names on the service principal afterwards.
    pub names_now: Vec<String>,
}

/// How many times a lost update is merged again before giving up.
pub const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(
        "the change did not stick after {0} attempts: another writer keeps changing this service principal"
    )]
    LostUpdate(u32),
    #[error("cancelled: nothing was changed")]
    Declined,
    #[error(
        "the keys changed while this change waited, and the plan made from them now would remove a key: it was not applied"
    )]
    ChangedSinceShown,
    /// The read-back lacks a kept key's certificate, or it is no longer valid.
    #[error(
        "LOST KEY: after the PATCH, service principal {sp_id} of {app_id} no longer has a valid key of certificate(s) {}: {}",
        .thumbprints.join(", "), .details.join("; ")
    )]
    KeptKeyLost {
        app_id: String,
        sp_id: String,
        thumbprints: Vec<String>,
        details: Vec<String>,
    },
    /// Every re-send form was refused.
    #[error("Microsoft Graph refused every way of re-sending the kept keys ({tried})")]
    ResendRefused {
        tried: String,
        #[source]
        last: GraphError,
    },
}

impl CredentialError {
    pub fn hint(&self) -> String {
        match self {
            CredentialError::Graph(g) => g.hint(),
            CredentialError::Plan(PlanError::KeyNotReturned { .. }) => "run again; if Graph keeps omitting `key`, report it (the tool will not drop a key it cannot re-send)".into(),
            CredentialError::Plan(PlanError::NoSuchKey(_)) => "list the keys with hybrid-trust credential list".into(),
            CredentialError::Plan(PlanError::WindowPassed(_)) => "run the command again: it plans a new window from now".into(),
            CredentialError::Plan(PlanError::ReplacementMissing(_) | PlanError::ReplacementNotValid(_)) => "list the keys with hybrid-trust credential list; another host or admin changed them. Run renew again: it adopts a valid new window, or adds one".into(),
            CredentialError::Plan(PlanError::LastValidKey(_)) => "nothing was removed; upload the key of the certificate the servers sign with first (hybrid-trust credential upload, or renew --new-cert for a new certificate), then remove this one; hybrid-trust credential list shows the keys".into(),
            CredentialError::Plan(PlanError::MaybeInUse { .. }) => "nothing was removed; if the Front Ends do not sign with it (Get-CsCertificate -Type OAuthTokenIssuer on a Front End shows the one they use), run again with --force".into(),
            CredentialError::Plan(PlanError::InUse { .. }) => "nothing was removed; to replace that certificate, roll to a new one (hybrid-trust renew --new-cert NEW.pfx for the tenant), confirm the roll after its EffectiveDate (--confirm-roll), and the next renew retires the old key".into(),
            CredentialError::Plan(PlanError::Superseded { .. }) => "nothing was changed. If the Front Ends now sign with the newer certificate, record it in this ledger: hybrid-trust renew --tenant <tenant> --new-cert NEW.pfx, then --confirm-roll; if the older one must come back, upload it on purpose with hybrid-trust credential upload".into(),
            CredentialError::ChangedSinceShown => "run again to see the plan as the keys are now".into(),
            CredentialError::Audit(_) => "check that the state dir is writable (--state-dir)".into(),
            CredentialError::LostUpdate(_) => "find the other process or admin changing this application and run again when it is done".into(),
            CredentialError::Declined => "run again and answer y, or pass --yes".into(),
            CredentialError::KeptKeyLost { .. } => "the keys as they were are in the audit log (`before` of the last keyCredentials.patch): upload each missing certificate again (hybrid-trust credential upload --cert), check with hybrid-trust credential list, and report this Graph behaviour".into(),
            CredentialError::ResendRefused { last, .. } => format!("nothing was changed; {}; the audit log has each refused body", last.hint()),
        }
    }
}

/// How a plan was approved (what a confirmation callback answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Approved without asking anyone (`--yes`, or a run confirmed as a whole beforehand): the
    /// plan is fresh, and a plan that changes later is applied only if it is additive.
    Standing,
    /// A person read the plan and answered yes: time passed, so the keys are read again first.
    Answered,
    /// Declined: nothing is changed.
    Refused,
}

/// The confirmation callback: the service principal as read, the plan, and the plan shown before
/// when this one replaces it (the keys changed meanwhile).
pub type Confirm<'c> = dyn FnMut(&ServicePrincipal, &KeyPlan, Option<&KeyPlan>) -> Approval + 'c;

/// The callback of a change nobody is asked about: the run was confirmed as a whole, or `--yes`.
pub fn standing(_: &ServicePrincipal, _: &KeyPlan, _: Option<&KeyPlan>) -> Approval {
    Approval::Standing
}

/// How many times a person is asked again because the keys kept changing under the question.
const MAX_ASKS: u32 = 3;

/// What `add_name` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOutcome {
    Added,
    Present,
    Planned,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Nothing to do.
    Unchanged { plan: KeyPlan, sp: ServicePrincipal },
    /// `--dry-run`: the plan, not applied.
    Planned { plan: KeyPlan, sp: ServicePrincipal },
    /// Applied and read back.
    Applied {
        plan: KeyPlan,
        before: ServicePrincipal,
        after: ServicePrincipal,
        attempts: u32,
        /// How the kept keys went, and what Graph changed.
        resend: Box<Resend>,
    },
}

/// How the kept keys of an applied change were re-sent, and what Graph made of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resend {
    /// The form Graph accepted.
    pub form: ResendForm,
    /// Graph's refusals of earlier forms: (form, Graph's message).
    pub refused: Vec<(ResendForm, String)>,
    /// Kept keys Graph changed (a new keyId, a widened window, …).
    pub changed: Vec<KeptChange>,
}

impl Outcome {
    /// The service principal as last read (after the change when one was applied).
    pub fn service_principal(&self) -> &ServicePrincipal {
        match self {
            Outcome::Unchanged { sp, .. } | Outcome::Planned { sp, .. } => sp,
            Outcome::Applied { after, .. } => after,
        }
    }
}

/// What holds the keys a [`Change`] changes: a service principal (`00000004-…`, the shared
/// `00000002-…`), or an application object (the Exchange hybrid's dedicated application,
/// `PATCH applications/{id}`, docs/protocol.md §5.2). Both take the whole `keyCredentials` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Holder {
    #[default]
    ServicePrincipal,
    Application,
}

pub struct Change<'a> {
    pub graph: &'a Graph<'a>,
    /// Whether `sp_id` names a service principal or an application object.
    pub holder: Holder,
    /// The form kept keys are sent in first (Microsoft's own script sends only `key`, `type`
    /// and `usage` to the shared Exchange principal: [`ResendForm::Minimal`]).
    pub first_form: ResendForm,
    pub tenant: &'a str,
    pub app_id: &'a str,
    pub actor: &'a str,
    pub audit: &'a AuditLog,
    pub dry_run: bool,
    /// Where "now" comes from (the start of a key moved up to the moment it is sent, audit times).
    pub clock: crate::clock::Clock,
}

/// Issue 24's last-valid-key guard is for the keys a trust signs with. The shared Exchange
/// Online principal (`00000002-…`) holds no key of a trust this tool keeps: the Exchange trust's
/// key lives on the dedicated application, and on-prem keys left on `00000002` are what
/// `credential prune --trust exchange --first-party` removes (CVE-2025-53786).
pub fn guards_last_valid_key(app_id: &str) -> bool {
    !app_id.eq_ignore_ascii_case(crate::microsoft::EXCHANGE_APP_ID)
}

impl Change<'_> {
    /// The keys' holder as read now (with `key`: the single-object GET selecting keyCredentials).
    async fn read(&self, id: &str) -> Result<ServicePrincipal, GraphError> {
        match self.holder {
            Holder::ServicePrincipal => self.graph.read_service_principal(id).await,
            Holder::Application => {
                let a = self.graph.read_application(id).await?;
                Ok(ServicePrincipal {
                    id: a.id,
                    app_id: a.app_id,
                    display_name: a.display_name,
                    key_credentials: a.key_credentials,
                    service_principal_names: Vec::new(),
                    account_enabled: None,
                    raw_keys: a.raw_keys,
                })
            }
        }
    }

    async fn patch(&self, id: &str, body: &serde_json::Value) -> Result<(), GraphError> {
        match self.holder {
            Holder::ServicePrincipal => self.graph.patch_service_principal(id, body).await,
            Holder::Application => {
                let keys = body["keyCredentials"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                // Its own read-back is not needed: `keys` reads back below.
                self.graph
                    .patch_application_keys_raw(id, keys)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Applies the key plan `make_plan` computes from the current keys. `confirm` sees the first
    /// plan, and again any plan that differs from the one it approved while a person answered
    /// (see the module doc); a re-merge after a lost update that does the same as the approved
    /// plan is not asked again.
    pub async fn keys(
        &self,
        sp_id: &str,
        make_plan: impl Fn(&[KeyCredential]) -> Result<KeyPlan, PlanError>,
        confirm: &mut Confirm<'_>,
        note: &str,
    ) -> Result<Outcome, CredentialError> {
        let mut attempt = 0;
        let mut asks = 0;
        let mut first: Option<ServicePrincipal> = None;
        // The plan approved last, and how.
        let mut approved: Option<(KeyPlan, Approval)> = None;
        // The form kept keys are re-sent in: once Graph refused one, later attempts start after it.
        let mut form = self.first_form;
        loop {
            let sp = self.read(sp_id).await?;
            let mut plan = make_plan(&sp.key_credentials)?;
            if guards_last_valid_key(self.app_id) {
                plan.check_keeps_a_valid_key(self.clock.now())?;
            }
            if !plan.changes() {
                return match first {
                    // A re-read after a crossed write found our change already there.
                    Some(before) if attempt > 0 => Ok(Outcome::Applied {
                        plan,
                        before,
                        after: sp,
                        attempts: attempt,
                        resend: Box::new(Resend {
                            form,
                            ..Resend::default()
                        }),
                    }),
                    _ => Ok(Outcome::Unchanged { plan, sp }),
                };
            }
            if approved.is_none() && self.dry_run {
                return Ok(Outcome::Planned { plan, sp });
            }
            let shown = approved.as_ref().map(|(p, _)| p);
            let ask = match &approved {
                None => true,
                Some((p, _)) if p.same_effect(&plan) => false,
                // Nobody to show the difference to: only an additive change goes on.
                Some((_, Approval::Standing)) if plan.is_additive() => false,
                Some((_, Approval::Standing)) => return Err(CredentialError::ChangedSinceShown),
                Some((_, _)) => true,
            };
            if ask {
                asks += 1;
                if asks > MAX_ASKS {
                    return Err(CredentialError::ChangedSinceShown);
                }
                match confirm(&sp, &plan, shown) {
                    Approval::Refused => return Err(CredentialError::Declined),
                    // Time passed while the person read: read and plan again before writing.
                    Approval::Answered => {
                        approved = Some((plan, Approval::Answered));
                        continue;
                    }
                    Approval::Standing => approved = Some((plan.clone(), Approval::Standing)),
                }
            } else if let Some((_, how)) = approved.take() {
                approved = Some((plan.clone(), how));
            }
            // A confirmation or a re-merge may have outlasted the planned start.
            plan.start_no_earlier_than(self.clock.now())?;
            if let Some(server) = self.graph.server_now() {
                plan.start_by_server_clock(self.clock.now(), server);
            }
            attempt += 1;
            if first.is_none() {
                first = Some(sp.clone());
            }
            let refused = self.patch_keys(sp_id, &sp, &plan, &mut form, note).await?;
            let after = self.read(sp_id).await?;
            let rb = resend::read_back(&plan, &after.key_credentials, self.clock.now());
            if !rb.crossed {
                let lost = rb.lost();
                if !rb.changes.is_empty() {
                    let what: Vec<String> = rb.changes.iter().map(change_line).collect();
                    // Every workflow (renew too) shows it, not only those that print a result.
                    tracing::warn!(
                        "{}: kept keys re-sent {form}; Graph changed: {}",
                        self.app_id,
                        what.join("; ")
                    );
                    self.audit
                        .append_async(&AuditEntry {
                            ts: self.clock.now(),
                            actor: self.actor,
                            action: "keyCredentials.readback",
                            tenant: self.tenant,
                            app_id: self.app_id,
                            service_principal_id: sp_id,
                            before: Some(&sp.key_credentials),
                            after: Some(&after.key_credentials),
                            before_names: None,
                            after_names: None,
                            note: &format!(
                                "{note}: kept keys re-sent {form}; Graph changed: {}",
                                what.join("; ")
                            ),
                        })
                        .await?;
                }
                if !lost.is_empty() {
                    return Err(CredentialError::KeptKeyLost {
                        app_id: self.app_id.to_string(),
                        sp_id: sp_id.to_string(),
                        thumbprints: lost
                            .iter()
                            .map(|c| {
                                c.thumbprint_sha1
                                    .clone()
                                    .map_or_else(|| "?".to_string(), String::from)
                            })
                            .collect(),
                        details: lost.iter().map(|c| change_line(c)).collect(),
                    });
                }
                let before = first.unwrap_or(sp);
                return Ok(Outcome::Applied {
                    plan,
                    before,
                    after,
                    attempts: attempt,
                    resend: Box::new(Resend {
                        form,
                        refused,
                        changed: rb.changes,
                    }),
                });
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(CredentialError::LostUpdate(attempt));
            }
            tracing::warn!(
                "the keys read back differ from what was sent: another writer crossed this change; merging again"
            );
            self.clock
                .sleep(Duration::from_millis(300 * u64::from(attempt)))
                .await;
        }
    }

    /// Sends `plan` (the audit log first), re-sending the kept keys in `form` and, when Graph
    /// refuses that form ([`resend::refusal`]), at once in the next ([`ResendForm::next`]): a 400
    /// changed nothing. Returns the refusals met; `form` ends as the form Graph accepted. A PATCH
    /// that got no answer is left to the read-back.
    async fn patch_keys(
        &self,
        sp_id: &str,
        sp: &ServicePrincipal,
        plan: &KeyPlan,
        form: &mut ResendForm,
        note: &str,
    ) -> Result<Vec<(ResendForm, String)>, CredentialError> {
        let mut refused = Vec::new();
        loop {
            let body = resend::body(plan, *form, &sp.raw_keys);
            let sent: Vec<KeyCredential> = body
                .iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect();
            self.audit
                .append_async(&AuditEntry {
                    ts: self.clock.now(),
                    actor: self.actor,
                    action: "keyCredentials.patch",
                    tenant: self.tenant,
                    app_id: self.app_id,
                    service_principal_id: sp_id,
                    before: Some(&sp.key_credentials),
                    after: Some(&sent),
                    before_names: None,
                    after_names: None,
                    note: &format!("{note} (kept keys re-sent {form})"),
                })
                .await?;
            let e = match self.patch(sp_id, &json!({ "keyCredentials": body })).await {
                Ok(()) => return Ok(refused),
                Err(e) if e.maybe_applied() => {
                    tracing::warn!(
                        "no answer to the PATCH ({e}); reading back to see whether it applied"
                    );
                    return Ok(refused);
                }
                Err(e) => e,
            };
            let next = match &e {
                GraphError::Api {
                    status, message, ..
                } => resend::refusal(*status, message, plan)
                    .and_then(|r| form.next(&r))
                    .map(|next| (next, message.clone())),
                _ => None,
            };
            let Some((next, message)) = next else {
                return Err(if refused.is_empty() {
                    e.into()
                } else {
                    let mut tried: Vec<String> = refused
                        .iter()
                        .map(|(f, _): &(ResendForm, String)| f.to_string())
                        .collect();
                    tried.push(form.to_string());
                    CredentialError::ResendRefused {
                        tried: tried.join(", "),
                        last: e,
                    }
                });
            };
            tracing::warn!(
                "Graph refused the kept keys re-sent {form} ({message}); sending them again {next}"
            );
            self.audit.append_async(&AuditEntry {
                ts: self.clock.now(),
                actor: self.actor,
                action: "keyCredentials.refused",
                tenant: self.tenant,
                app_id: self.app_id,
                service_principal_id: sp_id,
                before: None,
                after: None,
                before_names: None,
                after_names: None,
                note: &format!(
                    "{note}: Graph refused the kept keys re-sent {form}: {message}; nothing changed; sending them {next}: {}",
                    next.describe()
                ),
            }).await?;
            refused.push((*form, message));
            *form = next;
        }
    }

    /// Adds `name` to the service principal names, keeping the others. The change only adds, so
    /// after a person's answer the names are read again and the list is rebuilt from what is
    /// there now (a name another admin added meanwhile is kept) without asking again.
    pub async fn add_name(
        &self,
        sp_id: &str,
        name: &str,
        confirm: &mut dyn FnMut(&ServicePrincipal, &[String]) -> Approval,
    ) -> Result<(NameOutcome, ServicePrincipal), CredentialError> {
        let mut attempt = 0;
        let mut approved = false;
        loop {
            attempt += 1;
            let sp = self.graph.read_service_principal(sp_id).await?;
            if sp
                .service_principal_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                return Ok((
                    if attempt > 1 {
                        NameOutcome::Added
                    } else {
                        NameOutcome::Present
                    },
                    sp,
                ));
            }
            let mut names = sp.service_principal_names.clone();
            names.push(name.to_string());
            if !approved {
                if self.dry_run {
                    return Ok((NameOutcome::Planned, sp));
                }
                approved = true;
                match confirm(&sp, &names) {
                    Approval::Refused => return Err(CredentialError::Declined),
                    // Time passed while the person read: read again before writing.
                    Approval::Answered => {
                        attempt = 0;
                        continue;
                    }
                    Approval::Standing => {}
                }
            }
            self.audit
                .append_async(&AuditEntry {
                    ts: self.clock.now(),
                    actor: self.actor,
                    action: "servicePrincipalNames.patch",
                    tenant: self.tenant,
                    app_id: self.app_id,
                    service_principal_id: sp_id,
                    before: None,
                    after: None,
                    before_names: Some(&sp.service_principal_names),
                    after_names: Some(&names),
                    note: "spn add",
                })
                .await?;
            match self
                .graph
                .patch_service_principal(sp_id, &json!({ "servicePrincipalNames": names }))
                .await
            {
                Ok(()) => {}
                Err(e) if e.maybe_applied() => {}
                Err(e) => return Err(e.into()),
            }
            let after = self.graph.read_service_principal(sp_id).await?;
            if names.iter().all(|n| {
                after
                    .service_principal_names
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(n))
            }) {
                return Ok((NameOutcome::Added, after));
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(CredentialError::LostUpdate(attempt));
            }
            self.clock
                .sleep(Duration::from_millis(300 * u64::from(attempt)))
                .await;
        }
    }
}

/// One kept key's change, in a line.
pub fn change_line(c: &KeptChange) -> String {
    format!(
        "{}: {}",
        c.thumbprint_sha1
            .as_deref()
            .unwrap_or("(unknown thumbprint)"),
        c.changes.join(", ")
    )
}
