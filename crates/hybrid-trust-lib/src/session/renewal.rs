//! Carrying out a renewal decision ([`crate::renew::decide`]) on one tenant: decided again under
//! the tenant lock from the ledger as it is then; a re-window (the new window in, then only the
//! windows it supersedes retired once it has started, see [`crate::graph::plan_retire`]); a roll
//! (the new certificate next to the old, and the on-prem step written); a finished roll. A
//! failure is recorded in the ledger, where `status` and reminders find it.

use super::{Session, SessionError};
use crate::cert::Certificate;
use crate::credential::{Change, CredentialError, Outcome, standing};
use crate::graph::{self, KeyCredential, KeyIdentity};
use crate::ledger::{CertRecord, CredentialRecord, LedgerStore, TenantRecord};
use crate::renew::{self, Decision, Policy};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::PathBuf;
use std::time::Duration;

/// What one tenant's renewal came to.
pub struct Renewed {
    /// The ledger record it was decided from.
    pub tenant: TenantRecord,
    pub decision: Decision,
    /// `applied`, `nothing`, `blocked`, `dry-run`, or the failure (recorded in the ledger).
    pub outcome: Result<&'static str, SessionError>,
    /// The on-prem roll step written, if any.
    pub onprem_script: Option<PathBuf>,
}

/// A renewal that needs no tenant session: a dry run, nothing to do, or blocked (the block is
/// recorded in the ledger, where `status` and reminders find it).
pub async fn renew_offline(
    ledger: &LedgerStore,
    t: &TenantRecord,
    d: Decision,
    clock: crate::clock::Clock,
    dry_run: bool,
) -> Result<Renewed, SessionError> {
    let outcome = match (&d, dry_run) {
        (Decision::Nothing { .. }, _) => "nothing",
        (_, true) => "dry-run",
        (Decision::Blocked { .. }, false) => {
            record_failure(ledger, t, &describe(&d), clock.now()).await?;
            "blocked"
        }
        _ => {
            return Err(SessionError::Renewal(
                "this renewal needs the tenant: use Session::renew".into(),
            ));
        }
    };
    Ok(Renewed {
        tenant: t.clone(),
        decision: d,
        outcome: Ok(outcome),
        onprem_script: None,
    })
}

/// Records a renewal failure for `t` (when even a session could not be made for it).
pub async fn record_failure(
    ledger: &LedgerStore,
    t: &TenantRecord,
    message: &str,
    now: DateTime<Utc>,
) -> Result<(), SessionError> {
    let id = t.tenant_id.as_deref();
    ledger
        .update_async(&t.domain, id, super::LEDGER_TIMEOUT, |l| {
            if let Some(rec) = l.tenant_mut(&t.domain) {
                rec.record_renewal_failure(message, now);
            }
        })
        .await?;
    Ok(())
}

impl Session {
    /// Renews this tenant: `planned` is the decision shown to the admin; an acting one is made
    /// again under the tenant lock from the ledger as it is now (another run may have renewed
    /// the tenant since). Failures and blocks are recorded in the ledger (not in a dry run).
    pub async fn renew(
        &mut self,
        t: &TenantRecord,
        planned: Decision,
        offered: Option<&Certificate>,
        policy: Policy,
    ) -> Result<Renewed, SessionError> {
        let acting = planned.acts();
        let (t, d) = if self.dry_run || !acting {
            (t.clone(), planned)
        } else {
            self.lock().await?;
            let fresh = self
                .ledger
                .tenant_async(&t.domain, t.tenant_id.as_deref())
                .await?
                .unwrap_or_else(|| t.clone());
            let again = renew::decide(
                &fresh,
                offered.map(CertRecord::from_cert).as_ref(),
                self.clock.now(),
                policy,
            );
            (fresh, again)
        };
        let mut script = None;
        let outcome = if self.dry_run {
            Ok(if matches!(d, Decision::Nothing { .. }) {
                "nothing"
            } else {
                "dry-run"
            })
        } else {
            self.act(&t, &d, offered, policy, &mut script).await
        };
        if !self.dry_run {
            let failure = match (&outcome, &d) {
                // The new key is in and recorded; what is left (a superseded window) ends by
                // itself: said in this run's report and exit code, not reminded as a failure
                // week after week (nothing the admin runs could finish it).
                (Err(SessionError::Incomplete(_)), _) => None,
                (Err(e), _) => Some(format!("{e}")),
                (Ok(_), Decision::Blocked { .. }) => Some(describe(&d)),
                _ => None,
            };
            if let Some(msg) = failure {
                let now = self.clock.now();
                self.record(&[], |rec| rec.record_renewal_failure(&msg, now))
                    .await?;
            }
        }
        Ok(Renewed {
            tenant: t,
            decision: d,
            outcome,
            onprem_script: script,
        })
    }

    async fn act(
        &mut self,
        t: &TenantRecord,
        d: &Decision,
        offered: Option<&Certificate>,
        policy: Policy,
        script: &mut Option<PathBuf>,
    ) -> Result<&'static str, SessionError> {
        let now = self.clock.now();
        match d {
            Decision::Nothing { .. } => Ok("nothing"),
            Decision::Blocked { .. } => Ok("blocked"),
            Decision::Retire { thumbprint, .. } => self.retire(t, thumbprint).await,
            Decision::Rewindow {
                thumbprint,
                start,
                end,
                ..
            } => {
                let current = t
                    .cert
                    .iter()
                    .chain(t.next_cert.iter())
                    .find(|c| c.thumbprint_sha1 == *thumbprint)
                    .ok_or_else(|| {
                        SessionError::Renewal(format!(
                            "the certificate {thumbprint} is not in the ledger"
                        ))
                    })?;
                let cert = cert_of(current)?;
                let op = RenewOp::Rewindow {
                    new: graph::new_key(&cert, *start, *end),
                    recorded: t
                        .app_ids
                        .iter()
                        .filter_map(|a| t.credential_end(a, thumbprint).map(|e| (a.clone(), e)))
                        .collect(),
                    start: *start,
                    // A window that lasts past the horizon is a renewal already done.
                    covered_until: crate::dates::add(
                        now,
                        crate::dates::days(policy.horizon_days.max(1)),
                    ),
                };
                // The applications renewed before a failing one are recorded all the same: the
                // ledger never forgets a window that is on Graph.
                let each = self.each_app(t, &op).await;
                if each.added.is_empty()
                    && let Some(e) = each.failed
                {
                    return Err(e);
                }
                let tp = cert.thumbprint_sha1();
                let records = added_records(&each.added, &tp, *start, *end, now);
                let detail = format!("new window {start} -> {end} for {tp}");
                self.record(&[], |rec| {
                    each.record_changes(rec);
                    rec.record_rewindow(&tp, records, detail, now)
                })
                .await?;
                each.result()
            }
            Decision::Roll {
                thumbprint,
                start,
                end,
                effective,
                blocked,
                ..
            } => {
                let cert = offered
                    .filter(|c| c.thumbprint_sha1() == *thumbprint)
                    .ok_or_else(|| {
                        SessionError::Renewal("the new certificate is not at hand".into())
                    })?
                    .clone();
                let op = RenewOp::Roll {
                    new: graph::new_key(&cert, *start, *end),
                };
                let mut each = self.each_app(t, &op).await;
                if let Some(e) = each.failed.take() {
                    if !each.changed.is_empty() {
                        self.record(&[], |rec| each.record_changes(rec)).await?;
                    }
                    return Err(e);
                }
                *script = Some(self.write_roll_script(t, &cert, *effective)?);
                let records = added_records(&each.added, thumbprint, *start, *end, now);
                let next = CertRecord::from_cert(&cert);
                let blocked = blocked.clone();
                self.record(&[], |rec| {
                    each.record_changes(rec);
                    rec.start_roll(next, records, *effective, blocked, now);
                })
                .await?;
                each.result()
            }
        }
    }

    /// Runs `op` on each of the tenant's applications (the caller holds the tenant lock): the key
    /// each holds now, what Graph changed, the steps left incomplete, and the first failure (the
    /// run stops there).
    async fn each_app(&self, t: &TenantRecord, op: &RenewOp) -> EachApp {
        let actor = self.actor();
        let g = self.graph();
        let mut out = EachApp::default();
        for app in &t.app_ids {
            // A tenant whose app management policy caps key lifetimes refuses the one-year
            // window (CredentialInvalidLifetimeAsPerAppPolicy, which does not say the cap): the
            // window is shortened step by step, and the ledger learns the cap that worked.
            let mut capped: Option<RenewOp> = None;
            let outcome = loop {
                let op = capped.as_ref().unwrap_or(op);
                let outcome = async {
                    let sp_id = g
                        .find_service_principal(app)
                        .await
                        .map_err(CredentialError::Graph)?;
                    op.apply(&self.change(&g, app, &actor), &sp_id, self.clock)
                        .await
                }
                .await;
                let refused = matches!(&outcome, Err(CredentialError::Graph(e)) if e.code() == Some("CredentialInvalidLifetimeAsPerAppPolicy"));
                match refused.then(|| op.shorter()).flatten() {
                    Some(next) => capped = Some(next),
                    None => break outcome,
                }
            };
            if let Some(days) = capped.as_ref().and_then(RenewOp::lifetime_days)
                && outcome.is_ok()
            {
                let now = self.clock.now();
                let _ = self
                    .record(&[], |rec| rec.key_lifetime_days = Some(days))
                    .await;
                tracing::info!(
                    "{app}: the tenant caps key lifetimes; a {days}-day window was accepted ({now})"
                );
            }
            match outcome {
                Ok(a) => {
                    if let Some(i) = a.incomplete {
                        out.incomplete.push(format!("{app}: {i}"));
                    }
                    out.changed.push((app.clone(), a.changed));
                    out.added.push((app.clone(), a.held));
                }
                Err(e) => {
                    let hint = match &e {
                        // The newer certificate is this ledger's pending roll: confirm it.
                        CredentialError::Plan(graph::PlanError::Superseded { newer, .. })
                            if t.next_cert
                                .as_ref()
                                .is_some_and(|c| c.thumbprint_sha1 == *newer) =>
                        {
                            format!(
                                "nothing was changed; this ledger has the roll to {newer} pending: once the Front Ends sign with it, hybrid-trust renew --tenant {} --confirm-roll",
                                t.domain
                            )
                        }
                        _ => e.hint().replace("<tenant>", &t.domain),
                    };
                    let msg = format!("{app}: {e} ({hint})");
                    out.failed = Some(SessionError::Renewal(msg));
                    return out;
                }
            }
        }
        out
    }

    /// Retires the keys of the old certificate `thumbprint` from every target application, with
    /// the plan, the audit log and read-back of [`crate::credential::Change`]; an application
    /// that no longer has them (another host retired them, or Graph dropped them as expired) is
    /// done. Never the certificate the Front Ends sign with while it is valid.
    async fn retire(
        &self,
        t: &TenantRecord,
        thumbprint: &crate::ids::Thumbprint,
    ) -> Result<&'static str, SessionError> {
        let now = self.clock.now();
        if let Some(c) = &t.cert
            && &c.thumbprint_sha1 == thumbprint
            && c.not_after > now
        {
            return Err(SessionError::Renewal(format!(
                "refused to retire {thumbprint}: the Front Ends still sign with it"
            )));
        }
        let actor = self.actor();
        let g = self.graph();
        let mut done = Vec::new();
        let mut changed = Vec::new();
        let mut failure = None;
        for app in &t.app_ids {
            let outcome = async {
                let sp_id = g
                    .find_service_principal(app)
                    .await
                    .map_err(CredentialError::Graph)?;
                let clock = self.clock;
                self.change(&g, app, &actor)
                    .keys(
                        &sp_id,
                        |ex| graph::plan_remove(ex, thumbprint, clock.now()),
                        &mut standing,
                        "renew: retire the old certificate's key after the roll",
                    )
                    .await
            }
            .await;
            match outcome {
                Ok(o) => {
                    if let Outcome::Applied { resend, .. } = o {
                        changed.push((app.clone(), resend.changed));
                    }
                    done.push(app.clone());
                }
                Err(CredentialError::Plan(graph::PlanError::NoSuchKey(_))) => {
                    done.push(app.clone());
                }
                Err(e) => {
                    failure = Some(SessionError::Renewal(format!("{app}: {e} ({})", e.hint())));
                    break;
                }
            }
        }
        if !done.is_empty() {
            let now = self.clock.now();
            // The kept keys as Graph holds them now (it may have taken them anew).
            let each = EachApp {
                changed,
                ..EachApp::default()
            };
            self.record(&[], |rec| {
                each.record_changes(rec);
                rec.record_retirement(thumbprint, &done, now)
            })
            .await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok("applied"),
        }
    }

    /// Writes the on-prem roll step next to the ledger; returns its path.
    fn write_roll_script(
        &self,
        t: &TenantRecord,
        cert: &Certificate,
        effective: DateTime<Utc>,
    ) -> Result<PathBuf, SessionError> {
        let tp = cert.thumbprint_sha1();
        let text = crate::onprem::roll::render_roll(&crate::onprem::roll::RollInput {
            tenant: &t.domain,
            thumbprint: &tp,
            effective,
            old_not_after: t.cert.as_ref().map(|c| c.not_after),
            uploaded: self.clock.now(),
        })
        .map_err(|e| SessionError::Renewal(e.to_string()))?;
        let path = self
            .state_dir
            .join(format!("roll-{}-{}.ps1", t.domain, &tp[..8]));
        crate::paths::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| SessionError::Renewal(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }
}

/// A decision in words (the plan shown, the ledger's failure record).
pub fn describe(d: &Decision) -> String {
    let day = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    match d {
        Decision::Nothing { next_check } => format!("nothing to do until {}", day(next_check)),
        Decision::Rewindow { start, end, .. } => format!(
            "new key window {} -> {} for the same certificate, then the old key is removed",
            day(start),
            day(end)
        ),
        Decision::Roll {
            thumbprint,
            effective,
            late,
            blocked,
            ..
        } => format!(
            "roll to certificate {thumbprint}: upload it next to the old one, then Set-CsCertificate -Roll -EffectiveDate {}{}",
            day(effective),
            match (late, blocked) {
                (_, Some(b)) => format!(" (BLOCKED: {b}; run it as soon as it is written)"),
                (true, None) => " (LATE: less than 24 h before the old certificate expires; Exchange may still hold the old key)".to_string(),
                _ => String::new(),
            }
        ),
        Decision::Retire { thumbprint, reason } => format!(
            "retire the old key {thumbprint} from every target application ({reason}); on-prem, Remove-CsCertificate -Type OAuthTokenIssuer -Previous"
        ),
        Decision::Blocked { reason, hint } => format!("blocked: {reason}; {hint}"),
    }
}

/// The certificate the ledger recorded, re-read from its DER, which must still have the recorded
/// thumbprint: a ledger someone else edited never gets another certificate uploaded.
fn cert_of(r: &CertRecord) -> Result<Certificate, SessionError> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&r.der_base64)
        .map_err(|e| {
            SessionError::Renewal(format!(
                "the ledger's certificate {} is not Base64: {e}",
                r.thumbprint_sha1
            ))
        })?;
    let cert = Certificate::from_der(&der).map_err(|e| {
        SessionError::Renewal(format!(
            "the ledger's certificate {} does not parse: {e}",
            r.thumbprint_sha1
        ))
    })?;
    if !cert
        .thumbprint_sha1()
        .eq_ignore_ascii_case(&r.thumbprint_sha1)
    {
        return Err(SessionError::Renewal(format!(
            "the ledger's certificate {} has another thumbprint ({}): the ledger was changed outside hybrid-trust, nothing was uploaded; check who can write the state dir, and upload the right certificate with hybrid-trust credential upload",
            r.thumbprint_sha1,
            cert.thumbprint_sha1()
        )));
    }
    Ok(cert)
}

/// The ledger's records of the keys `renew` added (or adopted), one per application, with the
/// dates as on Graph (the start may have been moved up to the moment of sending).
fn added_records(
    added: &[(String, Option<KeyCredential>)],
    thumbprint: &crate::ids::Thumbprint,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<CredentialRecord> {
    added
        .iter()
        .map(|(app, key)| CredentialRecord {
            app_id: app.clone(),
            key_id: key.as_ref().and_then(|k| k.key_id.clone()),
            thumbprint_sha1: thumbprint.clone(),
            start: key
                .as_ref()
                .and_then(|k| k.start_date_time)
                .unwrap_or(start),
            // The window on Graph: another host's, when its renewal was adopted.
            end: key.as_ref().and_then(|k| k.end_date_time).unwrap_or(end),
            recorded_at: now,
        })
        .collect()
}

/// A key change `renew` makes on each application.
enum RenewOp {
    /// A new window for the same certificate, then the windows it supersedes retired once it
    /// has started.
    Rewindow {
        new: KeyCredential,
        /// This ledger's end of the certificate's key, by application ([`graph::refuse_removed`]).
        recorded: Vec<(String, DateTime<Utc>)>,
        start: DateTime<Utc>,
        /// A window of the certificate lasting until then is a renewal already done (adopted, not
        /// doubled); the windows ending before then are superseded.
        covered_until: DateTime<Utc>,
    },
    /// The new certificate next to the old one.
    Roll { new: KeyCredential },
}

/// The windows tried, in days, when a tenant's policy refuses a longer one.
const LIFETIME_STEPS: [i64; 5] = [180, 90, 60, 30, 7];

impl RenewOp {
    fn key(&self) -> &KeyCredential {
        match self {
            RenewOp::Rewindow { new, .. } | RenewOp::Roll { new } => new,
        }
    }

    /// The window's length in whole days.
    fn lifetime_days(&self) -> Option<i64> {
        let k = self.key();
        Some((k.end_date_time? - k.start_date_time?).num_days())
    }

    /// The same change with the next shorter window, if there is one.
    fn shorter(&self) -> Option<RenewOp> {
        let days = self.lifetime_days()?;
        let step = LIFETIME_STEPS.into_iter().find(|s| *s < days)?;
        let mut out = match self {
            RenewOp::Rewindow {
                new,
                recorded,
                start,
                covered_until,
            } => RenewOp::Rewindow {
                new: new.clone(),
                recorded: recorded.clone(),
                start: *start,
                covered_until: (*covered_until)
                    .min(crate::dates::add(*start, TimeDelta::days(step))),
            },
            RenewOp::Roll { new } => RenewOp::Roll { new: new.clone() },
        };
        let (RenewOp::Rewindow { new, .. } | RenewOp::Roll { new }) = &mut out;
        new.end_date_time = new
            .start_date_time
            .map(|s| crate::dates::add(s, TimeDelta::days(step)));
        Some(out)
    }

    async fn apply(
        &self,
        change: &Change<'_>,
        sp_id: &str,
        clock: crate::clock::Clock,
    ) -> Result<Applied, CredentialError> {
        match self {
            RenewOp::Roll { new } => {
                let first = change
                    .keys(
                        sp_id,
                        |ex| graph::plan_upload(ex, new.clone(), clock.now()),
                        &mut standing,
                        "renew: roll, new certificate next to the old",
                    )
                    .await?;
                Ok(Applied::of(first))
            }
            RenewOp::Rewindow {
                new,
                recorded,
                start,
                covered_until,
            } => {
                let recorded = recorded
                    .iter()
                    .find(|(a, _)| a == change.app_id)
                    .map(|(_, e)| *e);
                let first = change
                    .keys(
                        sp_id,
                        |ex| {
                            graph::refuse_removed(ex, new, recorded, clock.now())?;
                            graph::plan_rewindow(ex, new.clone(), *covered_until, clock.now())
                        },
                        &mut standing,
                        "renew: new window",
                    )
                    .await?;
                let mut applied = Applied::of(first);
                let (plan, before) = match &applied.first {
                    Outcome::Applied { plan, before, .. } => (plan, before),
                    Outcome::Unchanged { plan, sp } | Outcome::Planned { plan, sp } => (plan, sp),
                };
                // The replacement as it is on Graph: ours as sent (its start may have been moved up
                // to the moment of sending), or another host's that was adopted.
                let Some(replacement) = plan.added.clone().or(plan.already_present.clone()) else {
                    return Ok(applied);
                };
                // What it supersedes, identified in the read taken before it was added: never a
                // window another host added since.
                let superseded = graph::superseded_windows(
                    &before.key_credentials,
                    &replacement,
                    *covered_until,
                );
                if superseded.is_empty() {
                    return Ok(applied);
                }
                // The superseded windows Graph took anew in that PATCH (issue 28, `minimal`: a
                // new keyId and its own window), as it holds them now.
                let taken_anew: Vec<KeyIdentity> = applied
                    .changed
                    .iter()
                    .filter(|c| {
                        superseded
                            .iter()
                            .any(|s| s.same_window(&KeyIdentity::of(&c.before_key)))
                    })
                    .filter_map(|c| c.after_key.as_ref().map(KeyIdentity::of))
                    .collect();
                // The old windows go only once the new one has started: on Graph's clock when its
                // `Date` is known (it may lag this machine's).
                let new_start = replacement.start_date_time.unwrap_or(*start);
                // `Date` has whole seconds: a lag under two is no lag (as for the start).
                let now = clock.now();
                let on_graph = change
                    .graph
                    .server_now()
                    // Beyond an hour, a clock set wrong (or a hostile `Date`): not waited for.
                    .filter(|g| now - *g > TimeDelta::seconds(2) && now - *g <= TimeDelta::hours(1))
                    .unwrap_or(now);
                let wait = (new_start - on_graph).to_std().unwrap_or_default();
                clock.sleep(wait + Duration::from_millis(1100)).await;
                let replacement = KeyIdentity::of(&replacement);
                // The renewal is done once the new window is in and the superseded ones are gone;
                // one that cannot be retired now stays until it ends, and the step is reported
                // incomplete with what Graph changed.
                match change
                    .keys(
                        sp_id,
                        |ex| {
                            graph::plan_retire(
                                ex,
                                &superseded,
                                &taken_anew,
                                &replacement,
                                clock.now(),
                            )
                        },
                        &mut standing,
                        "renew: retire the superseded window",
                    )
                    .await
                {
                    Ok(retired) => applied.then(retired),
                    Err(e) => {
                        applied.incomplete = Some(format!(
                            "the new window is in, but the window(s) it supersedes could not be removed and stay until they end: {e}{}",
                            applied.graph_changed()
                        ));
                    }
                }
                Ok(applied)
            }
        }
    }
}

/// What a renewal's key change came to on each application.
#[derive(Default)]
struct EachApp {
    /// The key of the certificate each application holds now.
    added: Vec<(String, Option<KeyCredential>)>,
    /// Kept keys Graph changed, by application.
    changed: Vec<(String, Vec<graph::resend::KeptChange>)>,
    /// Steps that could not be finished, by application, in words.
    incomplete: Vec<String>,
    /// The first failure (the applications after it were not tried).
    failed: Option<SessionError>,
}

impl EachApp {
    /// The ledger follows what Graph changed in kept keys: it never records a window the tenant
    /// does not hold.
    fn record_changes(&self, rec: &mut TenantRecord) {
        for (app, changed) in &self.changed {
            super::keys::record_kept_changes(rec, app, changed);
        }
    }

    /// `applied`, or the failure, or the steps left incomplete (exit 1).
    fn result(self) -> Result<&'static str, SessionError> {
        match (self.failed, self.incomplete.is_empty()) {
            (Some(e), _) => Err(e),
            (None, false) => Err(SessionError::Incomplete(self.incomplete.join("; "))),
            (None, true) => Ok("applied"),
        }
    }
}

/// What a key change of `renew` came to on one application.
struct Applied {
    /// The change that added the key (or found it there).
    first: Outcome,
    /// The key of the certificate as the application holds it at the end (Graph may have taken
    /// it anew in a later PATCH of the same renewal: then its new keyId and window).
    held: Option<KeyCredential>,
    /// Every kept key Graph changed (a new keyId, its own window) in the renewal's PATCHes.
    changed: Vec<graph::resend::KeptChange>,
    /// The step that could not be finished, in words (the renewal is then `incomplete`).
    incomplete: Option<String>,
}

impl Applied {
    fn of(first: Outcome) -> Applied {
        let changed = match &first {
            Outcome::Applied { resend, .. } => resend.changed.clone(),
            _ => Vec::new(),
        };
        let held = match &first {
            Outcome::Applied { plan, .. }
            | Outcome::Unchanged { plan, .. }
            | Outcome::Planned { plan, .. } => plan.added.clone().or(plan.already_present.clone()),
        };
        Applied {
            first,
            held,
            changed,
            incomplete: None,
        }
    }

    /// Adds a later change of the same renewal: the key held is followed through what Graph
    /// changed in it.
    fn then(&mut self, later: Outcome) {
        if let Outcome::Applied { resend, .. } = later {
            for c in resend.changed {
                if let Some(h) = &self.held
                    && KeyIdentity::of(&c.before_key).same_window(&KeyIdentity::of(h))
                {
                    self.held = c.after_key.clone();
                }
                self.changed.push(c);
            }
        }
    }

    /// What Graph changed, for a message ("" when nothing).
    fn graph_changed(&self) -> String {
        if self.changed.is_empty() {
            return String::new();
        }
        let what: Vec<String> = self
            .changed
            .iter()
            .map(crate::credential::change_line)
            .collect();
        format!("; Graph changed: {}", what.join("; "))
    }
}
