//! `credential list|upload|remove` and `spn add` (CONTRACT.md).

use super::password::PasswordArgs;
use super::{Context, Failure};
use crate::audit::AuditLog;
use crate::credential::{Change, CredentialError, NameOutcome, Outcome};
use crate::graph::{self, Graph, KeyCredential, KeyPlan, ServicePrincipal};
use crate::tenant::TenantRef;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::path::PathBuf;

pub const SFB_APP_ID: &str = "00000004-0000-0ff1-ce00-000000000000";
const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
const KNOWN_APPS: &[&str] = &[
    SFB_APP_ID,
    "7557eb47-c689-4224-abcf-aef9bd7573df",
    "db7de2b5-2149-435e-8043-e080dd50afae",
];

#[derive(clap::Subcommand, Debug)]
pub enum CredentialCommand {
    /// List the key credentials of the service principal, identified by certificate thumbprint.
    #[command(
        after_help = "Example:\n  hybrid-trust credential list --tenant contoso.onmicrosoft.com"
    )]
    List {
        #[arg(long)]
        tenant: String,
        /// The application (default 00000004-0000-0ff1-ce00-000000000000, Skype for Business Online).
        #[arg(long = "app-id", value_name = "GUID")]
        app_id: Option<String>,
    },
    /// Add the on-prem certificate as an AsymmetricX509Cert/Verify key credential, keeping every
    /// other valid key and dropping expired ones. Window: start >= max(now, notBefore),
    /// end <= min(start + 365 days, notAfter).
    #[command(
        after_help = "Examples:\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --dry-run\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --yes\n  hybrid-trust credential upload --tenant contoso.onmicrosoft.com --cert oauth.cer --app-id 00000004-0000-0ff1-ce00-000000000000 --app-id 7557eb47-c689-4224-abcf-aef9bd7573df --app-id db7de2b5-2149-435e-8043-e080dd50afae"
    )]
    Upload {
        #[arg(long)]
        tenant: String,
        /// The OAuthTokenIssuer certificate (any format; only its public part is sent).
        #[arg(long, value_name = "PATH")]
        cert: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Start of the window (RFC 3339 or YYYY-MM-DD, UTC); default now.
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        /// End of the window; default the latest allowed.
        #[arg(long, value_name = "DATE")]
        end: Option<String>,
        /// Target application (repeatable; default 00000004-0000-0ff1-ce00-000000000000).
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
    },
    /// Remove the key credential of a certificate, by thumbprint (other valid keys stay).
    #[command(
        after_help = "Example:\n  hybrid-trust credential remove --tenant contoso.onmicrosoft.com --thumbprint C018A043066A6F5CEC76253A1D3CAE84C0E2F730"
    )]
    Remove {
        #[arg(long)]
        tenant: String,
        /// SHA-1 thumbprint (40 hex digits, as Windows shows it).
        #[arg(long, value_name = "HEX")]
        thumbprint: String,
        #[arg(long = "app-id", value_name = "GUID")]
        app_ids: Vec<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum SpnCommand {
    /// Add 00000004-0000-0ff1-ce00-000000000000/<pool external web services FQDN> to the service
    /// principal names, keeping the others.
    #[command(
        after_help = "Example:\n  hybrid-trust spn add --tenant contoso.onmicrosoft.com --pool-fqdn webext.contoso.com --yes"
    )]
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long = "pool-fqdn", value_name = "FQDN", required = true)]
        pool_fqdns: Vec<String>,
    },
}

/// Validates `--app-id` values: GUIDs, never Exchange Online's shared principal.
pub fn app_ids(given: &[String]) -> Result<Vec<String>, Failure> {
    if given.is_empty() {
        return Ok(vec![SFB_APP_ID.to_string()]);
    }
    let mut out: Vec<String> = Vec::new();
    for a in given {
        let id = uuid::Uuid::parse_str(a.trim())
            .ok()
            .filter(|_| a.trim().len() == 36)
            .ok_or_else(|| {
                Failure::input(
                    anyhow::anyhow!("--app-id {a:?} is not a GUID"),
                    Some(format!(
                        "use {SFB_APP_ID} (Skype for Business Online), or a Teams service app id"
                    )),
                )
            })?
            .to_string();
        if id == EXCHANGE_APP_ID {
            return Err(Failure::input(
                anyhow::anyhow!("refusing to add a key to Exchange Online's shared service principal ({EXCHANGE_APP_ID})"),
                Some("Exchange hybrid moved to its own application (April 2025) and EWS through the shared principal is blocked since October 2025; Skype for Business Server needs the key on 00000004-0000-0ff1-ce00-000000000000 only".to_string()),
            ));
        }
        if !KNOWN_APPS.contains(&id.as_str()) {
            tracing::warn!(
                "--app-id {id} is not one of the Skype for Business / Teams service applications"
            );
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// `--start` / `--end`: RFC 3339 (converted to UTC) or a date (midnight UTC).
pub fn parse_date(flag: &str, s: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s.trim()) {
        return super::date_in_range(flag, d.with_timezone(&Utc));
    }
    if let Some(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return super::date_in_range(flag, d.and_utc());
    }
    Err(Failure::input(
        anyhow::anyhow!("{flag} {s:?} is not a date"),
        Some("give RFC 3339 (2027-01-31T00:00:00Z) or YYYY-MM-DD".to_string()),
    ))
}

fn tenant_arg(t: &str) -> Result<String, Failure> {
    Ok(TenantRef::parse(t).map_err(super::bad_tenant)?.to_string())
}

#[derive(Serialize)]
pub struct CredentialJson {
    pub key_id: Option<String>,
    pub thumbprint_sha1: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub usage: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub days_left: Option<i64>,
    pub display_name: Option<String>,
}

/// RFC 3339 in UTC, with the fraction of a second when there is one (a new key starts to the
/// millisecond), as Graph has it.
fn rfc(d: Option<DateTime<Utc>>) -> Option<String> {
    d.map(crate::graph::keys::graph_time)
}

pub fn credential_json(k: &KeyCredential, now: DateTime<Utc>) -> CredentialJson {
    CredentialJson {
        key_id: k.key_id.clone(),
        thumbprint_sha1: k.thumbprint(),
        kind: k.kind.clone(),
        usage: k.usage.clone(),
        start: rfc(k.start_date_time),
        end: rfc(k.end_date_time),
        days_left: k.end_date_time.map(|e| (e - now).num_days()),
        display_name: k.display_name.clone(),
    }
}

fn key_line(verb: &str, k: &KeyCredential, now: DateTime<Utc>) -> String {
    let j = credential_json(k, now);
    format!(
        "  {verb:<7} {}  {} -> {}  {}\n",
        j.thumbprint_sha1
            .as_deref()
            .unwrap_or("(unknown thumbprint)"),
        j.start.as_deref().unwrap_or("?"),
        j.end.as_deref().unwrap_or("?"),
        j.display_name.as_deref().unwrap_or("")
    )
}

/// The plan for people: before → after.
pub fn plan_text(sp: &ServicePrincipal, plan: &KeyPlan, now: DateTime<Utc>) -> String {
    let mut s = format!(
        "Service principal {} ({}, object id {}):\n",
        sp.app_id,
        sp.display_name.as_deref().unwrap_or("?"),
        sp.id
    );
    for k in &plan.keep {
        s.push_str(&key_line("keep", k, now));
    }
    for k in &plan.dropped_expired {
        s.push_str(&key_line("drop", k, now));
    }
    for k in &plan.removed {
        s.push_str(&key_line("remove", k, now));
    }
    if let Some(k) = &plan.added {
        s.push_str(&key_line("add", k, now));
    }
    if let Some(k) = &plan.already_present {
        s.push_str(&key_line("present", k, now));
    }
    s
}

#[derive(Serialize)]
struct ResultJson {
    app_id: String,
    service_principal_id: String,
    action: &'static str,
    thumbprint_sha1: Option<String>,
    key_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    kept: Vec<String>,
    dropped_expired: Vec<String>,
    removed: Vec<String>,
    attempts: u32,
}

fn result_json(app_id: &str, outcome: &Outcome, thumb: Option<String>) -> ResultJson {
    let (plan, sp, action, attempts) = match outcome {
        Outcome::Unchanged { plan, sp } => (
            plan,
            sp,
            if plan.already_present.is_some() {
                "already-present"
            } else {
                "unchanged"
            },
            0,
        ),
        Outcome::Planned { plan, sp } => (plan, sp, "dry-run", 0),
        Outcome::Applied {
            plan,
            after,
            attempts,
            ..
        } => (plan, after, "applied", *attempts),
    };
    let tps = |ks: &[KeyCredential]| {
        ks.iter()
            .filter_map(KeyCredential::thumbprint)
            .collect::<Vec<_>>()
    };
    let key = plan.added.as_ref().or(plan.already_present.as_ref());
    ResultJson {
        app_id: app_id.to_string(),
        service_principal_id: sp.id.clone(),
        action,
        thumbprint_sha1: thumb,
        key_id: key.and_then(|k| k.key_id.clone()),
        start: rfc(key.and_then(|k| k.start_date_time)),
        end: rfc(key.and_then(|k| k.end_date_time)),
        kept: tps(&plan.keep),
        dropped_expired: tps(&plan.dropped_expired),
        removed: tps(&plan.removed),
        attempts,
    }
}

fn cred_failure(e: CredentialError) -> Failure {
    let hint = e.hint();
    match e {
        CredentialError::Declined => Failure::input(e, Some(hint)),
        other => Failure::runtime(other, Some(hint)),
    }
}

fn graph_failure(e: graph::GraphError) -> Failure {
    let hint = e.hint();
    Failure::runtime(e, Some(hint))
}

pub fn run(ctx: &Context, cmd: CredentialCommand) -> Result<u8, Failure> {
    match cmd {
        CredentialCommand::List { tenant, app_id } => {
            let tenant = tenant_arg(&tenant)?;
            let app = app_ids(&app_id.into_iter().collect::<Vec<_>>())?.remove(0);
            let cloud = ctx.cloud()?;
            let tokens = ctx.token_provider(&cloud, &tenant)?;
            let http = ctx.http(&cloud)?;
            let rt = super::runtime()?;
            let (sp, tid) = rt
                .block_on(async {
                    let g = Graph::new(&http, &cloud, &tokens);
                    let id = g.find_service_principal(&app).await?;
                    let sp = g.read_service_principal(&id).await?;
                    let tid = tokens
                        .token(&cloud.graph_scope())
                        .await
                        .ok()
                        .and_then(|t| crate::sts::unverified_claim(t.expose(), "tid"));
                    Ok::<_, graph::GraphError>((sp, tid))
                })
                .map_err(graph_failure)?;
            let creds: Vec<CredentialJson> = sp
                .key_credentials
                .iter()
                .map(|k| credential_json(k, ctx.now))
                .collect();
            let json = serde_json::json!({"tenant_id": tid, "app_id": app, "service_principal_id": sp.id, "credentials": creds});
            ctx.printer.emit(&json, || {
                let mut s = format!(
                    "Service principal {app} ({}) in tenant {}:\n",
                    sp.display_name.as_deref().unwrap_or("?"),
                    tid.as_deref().unwrap_or(&tenant)
                );
                if sp.key_credentials.is_empty() {
                    s.push_str("  no key credentials\n");
                }
                for k in &sp.key_credentials {
                    let j = credential_json(k, ctx.now);
                    s.push_str(&format!(
                        "  {}  {} {}  {} -> {} ({} days left)  {}\n",
                        j.thumbprint_sha1.as_deref().unwrap_or("(unknown)"),
                        j.kind.as_deref().unwrap_or("?"),
                        j.usage.as_deref().unwrap_or("?"),
                        j.start.as_deref().unwrap_or("?"),
                        j.end.as_deref().unwrap_or("?"),
                        j.days_left.map_or("?".into(), |d| d.to_string()),
                        j.display_name.as_deref().unwrap_or("")
                    ));
                }
                s
            });
            Ok(0)
        }
        CredentialCommand::Upload {
            tenant,
            cert,
            password,
            start,
            end,
            app_ids: apps,
        } => {
            ctx.refuse_as_of("credential upload")?;
            let tenant = tenant_arg(&tenant)?;
            let apps = app_ids(&apps)?;
            let start = start
                .as_deref()
                .map(|s| parse_date("--start", s))
                .transpose()?;
            let end = end.as_deref().map(|s| parse_date("--end", s)).transpose()?;
            let loaded = super::cert_cmd::load(&cert, &password)?;
            let c = &loaded.leaf;
            let (ws, we) =
                graph::window(c.not_before, c.not_after, start, end, ctx.now).map_err(|e| {
                    Failure::input(
                        anyhow::Error::new(e).context("the requested key window is not allowed"),
                        Some(
                            "omit --start/--end for the longest allowed window, or stay within it"
                                .to_string(),
                        ),
                    )
                })?;
            if we == c.not_after && end.is_none() {
                ctx.printer.note(&format!(
                    "warning: the certificate expires on {} ({} days), so the key ends then too: plan the roll to a new certificate (hybrid-trust renew --new-cert)",
                    c.not_after.format("%Y-%m-%d"),
                    (c.not_after - ctx.now).num_days()
                ));
            }
            ctx.require_confirmable()?;
            let new = graph::new_key(c, ws, we);
            let thumb = c.thumbprint_sha1();
            change_each(
                ctx,
                &tenant,
                &apps,
                &KeyOp::Upload(Box::new((new, crate::ledger::CertRecord::from_cert(c)))),
                Some(thumb),
            )
        }
        CredentialCommand::Remove {
            tenant,
            thumbprint,
            app_ids: apps,
        } => {
            ctx.refuse_as_of("credential remove")?;
            let tenant = tenant_arg(&tenant)?;
            let apps = app_ids(&apps)?;
            let tp = thumbprint
                .trim()
                .replace([':', ' '], "")
                .to_ascii_uppercase();
            if tp.len() != 40 || !tp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::input(
                    anyhow::anyhow!("--thumbprint {thumbprint:?} is not a SHA-1 thumbprint"),
                    Some("give the 40 hex digits credential list shows".to_string()),
                ));
            }
            ctx.require_confirmable()?;
            change_each(
                ctx,
                &tenant,
                &apps,
                &KeyOp::Remove(tp.clone()),
                Some(tp.clone()),
            )
        }
    }
}

fn confirm_plan(ctx: &Context, sp: &ServicePrincipal, plan: &KeyPlan) -> bool {
    eprint!("{}", plan_text(sp, plan, ctx.now));
    ctx.confirm("Apply this change?")
}

/// A change to the keys of a service principal.
pub enum KeyOp {
    Upload(Box<(KeyCredential, crate::ledger::CertRecord)>),
    Remove(String),
}

impl KeyOp {
    fn plan(
        &self,
        existing: &[KeyCredential],
        now: DateTime<Utc>,
    ) -> Result<KeyPlan, graph::PlanError> {
        match self {
            KeyOp::Upload(b) => graph::plan_upload(existing, b.0.clone(), now),
            KeyOp::Remove(tp) => graph::plan_remove(existing, tp, now),
        }
    }
    fn note(&self) -> &'static str {
        match self {
            KeyOp::Upload(..) => "credential upload",
            KeyOp::Remove(_) => "credential remove",
        }
    }
}

/// Runs a key change on each target application under the tenant lock, and prints the results.
/// What each application's key change came to.
pub type AppOutcomes = Vec<(String, Outcome)>;

/// (added, already present, planned, the names now).
pub type NameChanges = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

/// Applies a key change to each application under the tenant lock and records it in the
/// ledger. `ask`: confirm on the terminal (false when the caller already confirmed).
pub fn apply_keys(
    ctx: &Context,
    tenant: &str,
    apps: &[String],
    op: &KeyOp,
    ask: bool,
) -> Result<(AppOutcomes, Option<String>), Failure> {
    let cloud = ctx.cloud()?;
    let tokens = ctx.token_provider(&cloud, tenant)?;
    let http = ctx.http(&cloud)?;
    let audit = AuditLog::in_dir(&ctx.state_dir()?);
    let _lock = ctx.tenant_lock(tenant)?;
    let actor = tokens.actor();
    let rt = super::runtime()?;
    let g = Graph::new(&http, &cloud, &tokens);
    let mut results = Vec::new();
    for app in apps {
        let outcome = rt.block_on(async {
            let sp_id = g
                .find_service_principal(app)
                .await
                .map_err(CredentialError::Graph)?;
            let change = Change {
                graph: &g,
                tenant,
                app_id: app,
                actor: &actor,
                audit: &audit,
                dry_run: ctx.global.dry_run,
                now: ctx.now,
            };
            change
                .keys(
                    &sp_id,
                    |existing| op.plan(existing, Utc::now()),
                    &mut |sp, plan| !ask || confirm_plan(ctx, sp, plan),
                    op.note(),
                )
                .await
        });
        let outcome = outcome.map_err(cred_failure)?;
        results.push((app.clone(), outcome));
    }
    let tid = rt
        .block_on(tokens.token(&cloud.graph_scope()))
        .ok()
        .and_then(|t| crate::sts::unverified_claim(t.expose(), "tid"));
    if !ctx.global.dry_run {
        record_outcomes(ctx, tenant, tid.as_deref(), apps, op, &results)?;
    }
    Ok((results, tid))
}

fn change_each(
    ctx: &Context,
    tenant: &str,
    apps: &[String],
    op: &KeyOp,
    thumb: Option<String>,
) -> Result<u8, Failure> {
    let (results, tid) = apply_keys(ctx, tenant, apps, op, true)?;
    let audit = AuditLog::in_dir(&ctx.state_dir()?);
    let json = serde_json::json!({
        "tenant": tenant,
        "tenant_id": tid,
        "dry_run": ctx.global.dry_run,
        "results": results.iter().map(|(a, o)| result_json(a, o, thumb.clone())).collect::<Vec<_>>(),
        "audit_log": audit.path().display().to_string(),
    });
    ctx.printer.emit(&json, || {
        let mut s = String::new();
        for (app, o) in &results {
            match o {
                Outcome::Unchanged { plan, .. } if plan.already_present.is_some() => s.push_str(
                    &format!("{app}: the certificate is already there; nothing changed\n"),
                ),
                Outcome::Unchanged { .. } => s.push_str(&format!("{app}: nothing to change\n")),
                Outcome::Planned { plan, sp } => s.push_str(&format!(
                    "{}dry run: nothing was changed\n",
                    plan_text(sp, plan, ctx.now)
                )),
                Outcome::Applied {
                    plan,
                    after,
                    attempts,
                    ..
                } => {
                    s.push_str(&plan_text(after, plan, ctx.now));
                    s.push_str(&format!(
                        "{app}: applied and verified by reading back{}\n",
                        if *attempts > 1 {
                            format!(
                                " (merged again {} time(s) after a concurrent change)",
                                attempts - 1
                            )
                        } else {
                            String::new()
                        }
                    ));
                }
            }
        }
        s
    });
    Ok(0)
}

pub fn run_spn(ctx: &Context, cmd: SpnCommand) -> Result<u8, Failure> {
    let SpnCommand::Add { tenant, pool_fqdns } = cmd;
    ctx.refuse_as_of("spn add")?;
    let tenant = tenant_arg(&tenant)?;
    let names: Vec<String> = super::pool_fqdns(&pool_fqdns)?
        .iter()
        .map(|f| format!("{SFB_APP_ID}/{}", f.as_str()))
        .collect();
    ctx.require_confirmable()?;
    let (added, present, planned, names_now) = add_names(ctx, &tenant, &names, true, None)?;
    let json = serde_json::json!({"tenant": tenant, "app_id": SFB_APP_ID, "dry_run": ctx.global.dry_run, "added": added, "already_present": present, "planned": planned, "service_principal_names": names_now});
    ctx.printer.emit(&json, || {
        let mut s = String::new();
        for n in &added {
            s.push_str(&format!("added {n}\n"));
        }
        for n in &present {
            s.push_str(&format!("already present: {n}\n"));
        }
        for n in &planned {
            s.push_str(&format!("would add (dry run, nothing changed): {n}\n"));
        }
        s
    });
    Ok(0)
}

/// Records applied key changes (and present keys) in the ledger.
fn record_outcomes(
    ctx: &Context,
    tenant: &str,
    tid: Option<&str>,
    apps: &[String],
    op: &KeyOp,
    results: &[(String, Outcome)],
) -> Result<(), Failure> {
    let now = Utc::now();
    ctx.record(tenant, apps, |rec| {
        if rec.tenant_id.is_none() {
            rec.tenant_id = tid.map(str::to_string);
        }
        for (app, outcome) in results {
            let (plan, applied) = match outcome {
                Outcome::Applied { plan, .. } => (plan, true),
                Outcome::Unchanged { plan, .. } => (plan, false),
                Outcome::Planned { .. } => continue,
            };
            match op {
                KeyOp::Upload(b) => {
                    let cert = &b.1;
                    if let Some(k) = plan.added.as_ref().or(plan.already_present.as_ref())
                        && let (Some(s), Some(e)) = (k.start_date_time, k.end_date_time)
                    {
                        {
                            rec.record_credential(crate::ledger::CredentialRecord {
                                app_id: app.clone(),
                                key_id: k.key_id.clone(),
                                thumbprint_sha1: cert.thumbprint_sha1.clone(),
                                start: s,
                                end: e,
                                recorded_at: now,
                            });
                        }
                    }
                    let newer = rec.cert.as_ref().is_none_or(|c| {
                        c.thumbprint_sha1 != cert.thumbprint_sha1 && c.not_after < cert.not_after
                    });
                    if newer && rec.next_cert.is_none() {
                        rec.cert = Some(cert.clone());
                    }
                    if applied {
                        rec.log(
                            now,
                            "credential upload",
                            format!(
                                "{app}: added {} ({} -> {})",
                                cert.thumbprint_sha1,
                                plan.added
                                    .as_ref()
                                    .and_then(|k| k.start_date_time)
                                    .map(|d| d.to_rfc3339())
                                    .unwrap_or_default(),
                                plan.added
                                    .as_ref()
                                    .and_then(|k| k.end_date_time)
                                    .map(|d| d.to_rfc3339())
                                    .unwrap_or_default()
                            ),
                        );
                    }
                }
                KeyOp::Remove(tp) => {
                    rec.credentials
                        .retain(|c| !(c.app_id == *app && c.thumbprint_sha1 == *tp));
                    if applied {
                        rec.log(now, "credential remove", format!("{app}: removed {tp}"));
                    }
                }
            }
            for k in &plan.dropped_expired {
                if let Some(tp) = k.thumbprint() {
                    rec.credentials
                        .retain(|c| !(c.app_id == *app && c.thumbprint_sha1 == tp && c.end <= now));
                }
            }
        }
    })
}

/// Adds service principal names under the tenant lock and records the pools in the ledger.
/// Returns (added, already present, planned, names now).
/// `sp_id`: the SfB service principal's object id when the caller already looked it up (onboard,
/// right after the upload), saving the lookup.
pub fn add_names(
    ctx: &Context,
    tenant: &str,
    names: &[String],
    ask: bool,
    sp_id: Option<&str>,
) -> Result<NameChanges, Failure> {
    let tenant = tenant.to_string();
    let cloud = ctx.cloud()?;
    let tokens = ctx.token_provider(&cloud, &tenant)?;
    let http = ctx.http(&cloud)?;
    let audit = AuditLog::in_dir(&ctx.state_dir()?);
    let _lock = ctx.tenant_lock(&tenant)?;
    let actor = tokens.actor();
    let rt = super::runtime()?;
    let g = Graph::new(&http, &cloud, &tokens);
    let mut added = Vec::new();
    let mut present = Vec::new();
    let mut planned = Vec::new();
    let mut sp_after = None;
    let sp_id = match sp_id {
        Some(id) => id.to_string(),
        None => rt
            .block_on(g.find_service_principal(SFB_APP_ID))
            .map_err(|e| cred_failure(CredentialError::Graph(e)))?,
    };
    for name in names {
        let (changed, sp) = rt
            .block_on(async {
                let change = Change {
                    graph: &g,
                    tenant: &tenant,
                    app_id: SFB_APP_ID,
                    actor: &actor,
                    audit: &audit,
                    dry_run: ctx.global.dry_run,
                    now: ctx.now,
                };
                change
                    .add_name(&sp_id, name, &mut |sp, new| {
                        if !ask {
                            return true;
                        }
                        eprintln!(
                            "Service principal names of {} will be:\n  {}",
                            sp.app_id,
                            new.join("\n  ")
                        );
                        ctx.confirm("Apply this change?")
                    })
                    .await
            })
            .map_err(cred_failure)?;
        match changed {
            NameOutcome::Added => added.push(name.to_string()),
            NameOutcome::Present => present.push(name.to_string()),
            NameOutcome::Planned => planned.push(name.to_string()),
        }
        sp_after = Some(sp);
    }
    let names_now = sp_after
        .map(|s| s.service_principal_names)
        .unwrap_or_default();
    if !ctx.global.dry_run {
        let fqdns: Vec<String> = names
            .iter()
            .filter_map(|n| n.split_once('/').map(|(_, f)| f.to_string()))
            .collect();
        ctx.record(&tenant, &[SFB_APP_ID.to_string()], |rec| {
            for f in &fqdns {
                if !rec.pool_fqdns.contains(f) {
                    rec.pool_fqdns.push(f.clone());
                }
            }
            if !added.is_empty() {
                rec.log(Utc::now(), "spn add", added.join(", "));
            }
        })?;
    }
    Ok((added, present, planned, names_now))
}
