//! `renew` (CONTRACT.md): for each tenant, decide (pure, `renew::decide`) and act: re-window the
//! same certificate (new window in, then the old key out), roll to a new certificate (upload next
//! to the old one and write the `Set-CsCertificate -Roll` step), or finish a roll. `--all` runs
//! every tenant in isolation; a failure is recorded in the ledger (reminders report it) and the
//! run goes on to the next tenant.

use super::password::PasswordArgs;
use super::{Context, Failure};
use crate::audit::AuditLog;
use crate::cert::Certificate;
use crate::credential::{Change, CredentialError, Outcome, standing};
use crate::graph::{self, Graph, KeyCredential, KeyIdentity};
use crate::ledger::{CertRecord, CredentialRecord, RenewalFailure, TenantRecord};
use crate::renew::{self, Decision, Policy};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust renew --all --dry-run\n  hybrid-trust renew --all --yes                     # the yearly (or daily, from a timer) job\n  hybrid-trust renew --tenant contoso.com --new-cert new-oauth.pfx --password-env PFX_PASSWORD\n\nA roll uploads the new certificate next to the old one and writes the on-prem step\n(Set-CsCertificate -Roll -EffectiveDate) next to the ledger; run it on a Front End."
)]
pub struct RenewArgs {
    #[arg(long, conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Every tenant in the ledger.
    #[arg(long)]
    pub all: bool,
    /// Roll to this new OAuthTokenIssuer certificate (its public part is uploaded).
    #[arg(long, value_name = "PATH", requires = "tenant")]
    pub new_cert: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Renew when the credential ends within this many days (default from the settings, 30).
    #[arg(long, value_name = "DAYS")]
    pub horizon_days: Option<i64>,
}

#[derive(serde::Serialize)]
struct TenantResult {
    tenant: String,
    decision: Decision,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    onprem_script: Option<String>,
}

pub fn run(ctx: &Context, a: RenewArgs) -> Result<u8, Failure> {
    ctx.refuse_as_of("renew")?;
    if a.tenant.is_none() && !a.all {
        return Err(Failure::input(
            anyhow::anyhow!("renew needs --tenant T or --all"),
            None,
        ));
    }
    let settings = ctx.settings()?;
    let policy = Policy {
        horizon_days: a.horizon_days.unwrap_or(settings.renewal.horizon_days),
        ..Policy::default()
    };
    let offered = match &a.new_cert {
        Some(p) => Some(super::cert_cmd::load(p, &a.password)?.leaf),
        None => None,
    };
    let ledger = ctx.ledger()?;
    let tenants: Vec<TenantRecord> = match &a.tenant {
        Some(t) => vec![ledger.tenant(t).cloned().ok_or_else(|| {
            Failure::input(
                anyhow::anyhow!("{t} is not in the ledger"),
                Some("onboard it, or record it with hybrid-trust tenant add".to_string()),
            )
        })?],
        None => ledger.tenants.clone(),
    };
    let now = Utc::now();
    let decisions: Vec<Decision> = tenants
        .iter()
        .map(|t| {
            renew::decide(
                t,
                offered.as_ref().map(CertRecord::from_cert).as_ref(),
                now,
                policy,
            )
        })
        .collect();
    let acting = decisions.iter().any(|d| {
        matches!(
            d,
            Decision::Rewindow { .. } | Decision::Roll { .. } | Decision::FinishRoll { .. }
        )
    });
    if acting && !ctx.global.dry_run {
        ctx.require_confirmable()?;
        for (t, d) in tenants.iter().zip(&decisions) {
            eprintln!("{}: {}", t.domain, describe(d));
        }
        if !ctx.confirm("Apply these renewals?") {
            return Err(Failure::input(
                anyhow::anyhow!("cancelled: nothing was changed"),
                Some("run again and answer y, or pass --yes".to_string()),
            ));
        }
    }
    let mut results = Vec::new();
    let mut failed = 0;
    for (t, d) in tenants.iter().zip(decisions) {
        // Decide again under the tenant lock, from the ledger as it is now: another run may have
        // renewed this tenant since the plan above was made.
        let mut _lock = None;
        let (t, d) = if ctx.global.dry_run
            || matches!(d, Decision::Nothing { .. } | Decision::Blocked { .. })
        {
            (t.clone(), d)
        } else {
            // Keyed by the tenant id, as every command that changes the tenant is.
            let id = t.tenant_id.clone().or_else(|| ctx.tenant_id_of(&t.domain));
            _lock = Some(ctx.tenant_lock(id.as_deref().unwrap_or(&t.domain))?);
            let fresh = ctx
                .ledger()?
                .tenant(&t.domain)
                .cloned()
                .unwrap_or_else(|| t.clone());
            let again = renew::decide(
                &fresh,
                offered.as_ref().map(CertRecord::from_cert).as_ref(),
                Utc::now(),
                policy,
            );
            (fresh, again)
        };
        let t = &t;
        let r = if ctx.global.dry_run {
            Ok((
                if matches!(d, Decision::Nothing { .. }) {
                    "nothing"
                } else {
                    "dry-run"
                }
                .to_string(),
                None,
            ))
        } else {
            act(ctx, t, &d, offered.as_ref(), policy)
        };
        match r {
            Ok((outcome, script)) => {
                if matches!(d, Decision::Blocked { .. }) {
                    failed += 1;
                    if !ctx.global.dry_run {
                        record_failure(ctx, t, &describe(&d))?;
                    }
                }
                results.push(TenantResult {
                    tenant: t.domain.clone(),
                    decision: d,
                    outcome,
                    error: None,
                    onprem_script: script,
                });
            }
            Err(e) => {
                failed += 1;
                let msg = format!("{e:#}");
                record_failure(ctx, t, &msg)?;
                results.push(TenantResult {
                    tenant: t.domain.clone(),
                    decision: d,
                    outcome: "failed".into(),
                    error: Some(msg),
                    onprem_script: None,
                });
            }
        }
    }
    let json =
        serde_json::json!({"dry_run": ctx.global.dry_run, "results": results, "failed": failed});
    ctx.printer.emit(&json, || {
        let mut s = String::new();
        for r in &results {
            s.push_str(&format!(
                "{}: {} [{}]\n",
                r.tenant,
                describe(&r.decision),
                r.outcome
            ));
            if let Some(e) = &r.error {
                s.push_str(&format!("  error: {e}\n"));
            }
            if let Some(p) = &r.onprem_script {
                s.push_str(&format!(
                    "  on-prem step written to {p}: run it on a Front End\n"
                ));
            }
        }
        s.push_str(&format!(
            "{} tenant(s), {} failed or blocked\n",
            results.len(),
            failed
        ));
        s
    });
    if failed > 0 {
        let first = results
            .iter()
            .find(|r| r.outcome == "failed" || r.outcome == "blocked")
            .map(|r| {
                format!(
                    "{}: {}",
                    r.tenant,
                    r.error.clone().unwrap_or_else(|| describe(&r.decision))
                )
            })
            .unwrap_or_default();
        return Err(Failure::runtime(
            anyhow::anyhow!("{failed} of {} tenant(s) could not be renewed (first: {first})", results.len()),
            Some("each failure is recorded in the ledger and reported by remind; fix the cause and run renew again".to_string()),
        ));
    }
    Ok(0)
}

fn describe(d: &Decision) -> String {
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
            ..
        } => format!(
            "roll to certificate {thumbprint}: upload it next to the old one, then Set-CsCertificate -Roll -EffectiveDate {}{}",
            day(effective),
            if *late {
                " (LATE: less than 24 h before the old certificate expires; Exchange may still hold the old key)"
            } else {
                ""
            }
        ),
        Decision::FinishRoll { thumbprint } => format!(
            "the old certificate has expired: {thumbprint} is now current (then Remove-CsCertificate -Type OAuthTokenIssuer -Previous on-prem)"
        ),
        Decision::Blocked { reason, hint } => format!("blocked: {reason}; {hint}"),
    }
}

fn record_failure(ctx: &Context, t: &TenantRecord, msg: &str) -> Result<(), Failure> {
    let now = Utc::now();
    ctx.record(&t.domain, &[], |rec| {
        rec.last_renewal_failure = Some(RenewalFailure {
            at: now,
            message: msg.to_string(),
            reported: false,
        });
        rec.log(now, "renew failed", msg);
    })
}

/// The certificate the ledger recorded, re-read from its DER, which must still have the recorded
/// thumbprint: a ledger someone else edited never gets another certificate uploaded.
fn cert_of(r: &CertRecord) -> anyhow::Result<Certificate> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(&r.der_base64)?;
    let cert = Certificate::from_der(&der).map_err(|e| {
        anyhow::anyhow!(
            "the ledger's certificate {} does not parse: {e}",
            r.thumbprint_sha1
        )
    })?;
    anyhow::ensure!(
        cert.thumbprint_sha1()
            .eq_ignore_ascii_case(&r.thumbprint_sha1),
        "the ledger's certificate {} has another thumbprint ({}): the ledger was changed outside hybrid-trust, nothing was uploaded; check who can write the state dir, and upload the right certificate with hybrid-trust credential upload",
        r.thumbprint_sha1,
        cert.thumbprint_sha1()
    );
    Ok(cert)
}

/// Carries out one tenant's decision. Returns the outcome word and the on-prem script written.
fn act(
    ctx: &Context,
    t: &TenantRecord,
    d: &Decision,
    offered: Option<&Certificate>,
    policy: Policy,
) -> anyhow::Result<(String, Option<String>)> {
    let now = Utc::now();
    match d {
        Decision::Nothing { .. } => Ok(("nothing".into(), None)),
        Decision::Blocked { .. } => Ok(("blocked".into(), None)),
        Decision::FinishRoll { .. } => {
            ctx.record(&t.domain, &[], |rec| {
                if let Some(n) = rec.next_cert.take() {
                    rec.log(
                        now,
                        "renew",
                        format!("roll finished: {} is current", n.thumbprint_sha1),
                    );
                    rec.cert = Some(n);
                    rec.roll_effective = None;
                    rec.last_renewal = Some(now);
                    rec.last_renewal_failure = None;
                }
            })
            .map_err(|f| f.error)?;
            Ok(("applied".into(), None))
        }
        Decision::Rewindow { start, end, .. } => {
            let current = t
                .next_cert
                .as_ref()
                .filter(|n| n.not_before <= now)
                .or(t.cert.as_ref())
                .ok_or_else(|| anyhow::anyhow!("no certificate"))?;
            let cert = cert_of(current)?;
            let new = graph::new_key(&cert, *start, *end);
            // The applications renewed before a failing one are recorded all the same: the
            // ledger never forgets a window that is on Graph.
            let (added, failed) = with_graph_each(
                ctx,
                t,
                &RenewOp::Rewindow {
                    new,
                    start: *start,
                    // A window that lasts past the horizon is a renewal already done.
                    covered_until: now + TimeDelta::days(policy.horizon_days.max(1)),
                },
            )?;
            if added.is_empty()
                && let Some(e) = failed
            {
                return Err(e);
            }
            let tp = cert.thumbprint_sha1();
            ctx.record(&t.domain, &[], |rec| {
                for c in added_records(&added, &tp, *start, *end, now) {
                    rec.credentials
                        .retain(|r| !(r.app_id == c.app_id && r.thumbprint_sha1 == tp));
                    rec.record_credential(c);
                }
                rec.last_renewal = Some(now);
                rec.last_renewal_failure = None;
                rec.log(
                    now,
                    "renew",
                    format!("new window {start} -> {end} for {tp}"),
                );
            })
            .map_err(|f| f.error)?;
            if let Some(e) = failed {
                return Err(e);
            }
            Ok(("applied".into(), None))
        }
        Decision::Roll {
            thumbprint,
            start,
            end,
            effective,
            ..
        } => {
            let cert = offered
                .filter(|c| c.thumbprint_sha1() == *thumbprint)
                .ok_or_else(|| anyhow::anyhow!("the new certificate is not at hand"))?
                .clone();
            let new = graph::new_key(&cert, *start, *end);
            let added = with_graph(ctx, t, &RenewOp::Roll { new })?;
            let script = roll_script(ctx, t, &cert, *effective)?;
            ctx.record(&t.domain, &[], |rec| {
                for c in added_records(&added, thumbprint, *start, *end, now) {
                    rec.record_credential(c);
                }
                rec.next_cert = Some(CertRecord::from_cert(&cert));
                rec.roll_effective = Some(*effective);
                rec.last_renewal = Some(now);
                rec.last_renewal_failure = None;
                rec.log(
                    now,
                    "renew",
                    format!("roll to {thumbprint} uploaded; on-prem step effective {effective}"),
                );
            })
            .map_err(|f| f.error)?;
            Ok(("applied".into(), Some(script)))
        }
    }
}

/// The ledger's records of the keys `renew` added (or adopted), one per application, with the
/// dates as on Graph (the start may have been moved up to the moment of sending).
fn added_records(
    added: &[(String, Option<KeyCredential>)],
    thumbprint: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<CredentialRecord> {
    added
        .iter()
        .map(|(app, key)| CredentialRecord {
            app_id: app.clone(),
            key_id: key.as_ref().and_then(|k| k.key_id.clone()),
            thumbprint_sha1: thumbprint.to_string(),
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
        start: DateTime<Utc>,
        /// A window of the certificate lasting until then is a renewal already done (adopted, not
        /// doubled); the windows ending before then are superseded.
        covered_until: DateTime<Utc>,
    },
    /// The new certificate next to the old one.
    Roll { new: KeyCredential },
}

impl RenewOp {
    async fn apply(&self, change: &Change<'_>, sp_id: &str) -> Result<Outcome, CredentialError> {
        match self {
            RenewOp::Roll { new } => {
                change
                    .keys(
                        sp_id,
                        |ex| graph::plan_upload(ex, new.clone(), Utc::now()),
                        &mut standing,
                        "renew: roll, new certificate next to the old",
                    )
                    .await
            }
            RenewOp::Rewindow {
                new,
                start,
                covered_until,
            } => {
                let first = change
                    .keys(
                        sp_id,
                        |ex| graph::plan_rewindow(ex, new.clone(), *covered_until, Utc::now()),
                        &mut standing,
                        "renew: new window",
                    )
                    .await?;
                let (plan, before) = match &first {
                    Outcome::Applied { plan, before, .. } => (plan, before),
                    Outcome::Unchanged { plan, sp } | Outcome::Planned { plan, sp } => (plan, sp),
                };
                // The replacement as it is on Graph: ours as sent (its start may have been moved up
                // to the moment of sending), or another host's that was adopted.
                let Some(replacement) = plan.added.as_ref().or(plan.already_present.as_ref())
                else {
                    return Ok(first);
                };
                // What it supersedes, identified in the read taken before it was added: never a
                // window another host added since.
                let superseded =
                    graph::superseded_windows(&before.key_credentials, replacement, *covered_until);
                if superseded.is_empty() {
                    return Ok(first);
                }
                // The old windows go only once the new one has started.
                let new_start = replacement.start_date_time.unwrap_or(*start);
                let wait = (new_start - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait + Duration::from_millis(1100)).await;
                let replacement = KeyIdentity::of(replacement);
                // The renewal is done once the new window is in: a superseded window that cannot
                // be retired now stays until it ends (the next change drops it as expired).
                if let Err(e) = change
                    .keys(
                        sp_id,
                        |ex| graph::plan_retire(ex, &superseded, &replacement, Utc::now()),
                        &mut standing,
                        "renew: retire the superseded window",
                    )
                    .await
                {
                    tracing::warn!(
                        "{}: the new window is in, but the old one was left in place until it ends: {e}",
                        change.app_id
                    );
                }
                Ok(first)
            }
        }
    }
}

/// Runs `op` on each of the tenant's applications under the tenant lock; returns the key each
/// added (for the ledger).
/// The key each application got (for the ledger).
type AppKeys = Vec<(String, Option<KeyCredential>)>;

fn with_graph(ctx: &Context, t: &TenantRecord, op: &RenewOp) -> anyhow::Result<AppKeys> {
    let (done, failed) = with_graph_each(ctx, t, op)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// [`with_graph`], keeping what the applications before a failing one got: (the keys added,
/// the first failure). The run stops at the first failure.
fn with_graph_each(
    ctx: &Context,
    t: &TenantRecord,
    op: &RenewOp,
) -> anyhow::Result<(AppKeys, Option<anyhow::Error>)> {
    let name = t.tenant_id.clone().unwrap_or_else(|| t.domain.clone());
    let cloud = ctx.cloud().map_err(|f| f.error)?;
    let tokens = ctx.token_provider(&cloud, &name).map_err(|f| f.error)?;
    let http = ctx.http(&cloud).map_err(|f| f.error)?;
    let audit = AuditLog::in_dir(&ctx.state_dir().map_err(|f| f.error)?);
    // The tenant lock is held by the caller (`run`), which decided under it.
    let actor = tokens.actor();
    let rt = super::runtime().map_err(|f| f.error)?;
    let g = Graph::new(&http, &cloud, &tokens);
    let mut out = Vec::new();
    for app in &t.app_ids {
        let outcome = rt.block_on(async {
            let sp_id = g
                .find_service_principal(app)
                .await
                .map_err(CredentialError::Graph)?;
            let change = Change {
                graph: &g,
                tenant: &name,
                app_id: app,
                actor: &actor,
                audit: &audit,
                dry_run: false,
                now: Utc::now(),
            };
            op.apply(&change, &sp_id).await
        });
        let key = match outcome {
            Ok(
                Outcome::Applied { plan, .. }
                | Outcome::Unchanged { plan, .. }
                | Outcome::Planned { plan, .. },
            ) => plan.added.or(plan.already_present),
            Err(e) => return Ok((out, Some(anyhow::anyhow!("{app}: {e} ({})", e.hint())))),
        };
        out.push((app.clone(), key));
    }
    Ok((out, None))
}

/// Writes the on-prem roll step next to the ledger. Every value is validated: the thumbprint is
/// hex, the date is formatted here; `[datetimeoffset]` parses ISO 8601 whatever the server's
/// regional format (which `-EffectiveDate` strings otherwise depend on).
fn roll_script(
    ctx: &Context,
    t: &TenantRecord,
    cert: &Certificate,
    effective: DateTime<Utc>,
) -> anyhow::Result<String> {
    let tp = cert.thumbprint_sha1();
    anyhow::ensure!(
        tp.len() == 40 && tp.bytes().all(|b| b.is_ascii_hexdigit()),
        "bad thumbprint"
    );
    let old_end = t
        .cert
        .as_ref()
        .map(|c| c.not_after.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let text = format!(
        "# Roll the Skype for Business OAuthTokenIssuer certificate for tenant {domain} to {tp}.\r\n\
         # hybrid-trust uploaded the new certificate's key to the tenant next to the old one on {now}.\r\n\
         # First import the new certificate with its private key into the Local Computer store of\r\n\
         # every Front End (the OAuthTokenIssuer certificate is global: same on all servers).\r\n\
         $ErrorActionPreference = 'Stop'\r\n\
         Set-CsCertificate -Identity Global -Type OAuthTokenIssuer -Thumbprint {tp} -Roll -EffectiveDate ([datetimeoffset]'{eff}').LocalDateTime\r\n\
         Get-CsCertificate -Type OAuthTokenIssuer | Format-List Thumbprint, EffectiveDate, PreviousThumbprint\r\n\
         # After the old certificate expires ({old_end}), run: Remove-CsCertificate -Type OAuthTokenIssuer -Previous\r\n\
         # and hybrid-trust renew --tenant {domain} (it makes the new certificate current).\r\n",
        domain = t.domain,
        now = Utc::now().format("%Y-%m-%d %H:%M UTC"),
        eff = effective.format("%Y-%m-%dT%H:%M:%S+00:00"),
    );
    anyhow::ensure!(
        crate::tenant::is_dns_name(&t.domain) || uuid::Uuid::parse_str(&t.domain).is_ok(),
        "bad tenant name"
    );
    let dir = ctx.state_dir().map_err(|f| f.error)?;
    let path = dir.join(format!("roll-{}-{}.ps1", t.domain, &tp[..8]));
    crate::paths::write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(path.display().to_string())
}
