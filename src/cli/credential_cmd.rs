//! `credential list|upload|remove` and `spn add` (CONTRACT.md).

use super::password::PasswordArgs;
use super::printer::display_safe;
use super::{Context, Failure};
use crate::audit::AuditLog;
use crate::credential::{Approval, Outcome};
use crate::graph::{self, Graph, KeyCredential, KeyPlan, ServicePrincipal};
use crate::session::keys::{AppOutcomes, KeyOp};
use crate::session::names::NameChanges;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

pub use crate::microsoft::SFB_APP_ID;

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
        display_safe(j.display_name.as_deref().unwrap_or(""))
    )
}

/// The plan for people: before → after.
pub fn plan_text(sp: &ServicePrincipal, plan: &KeyPlan, now: DateTime<Utc>) -> String {
    let mut s = format!(
        "Service principal {} ({}, object id {}):\n",
        sp.app_id,
        display_safe(sp.display_name.as_deref().unwrap_or("?")),
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

fn graph_failure(e: graph::GraphError) -> Failure {
    let hint = e.hint();
    Failure::runtime(e, Some(hint))
}

pub fn run(ctx: &Context, cmd: CredentialCommand) -> Result<u8, Failure> {
    match cmd {
        CredentialCommand::List { tenant, app_id } => {
            let tenant = super::args::tenant_arg(&tenant)?;
            let app = super::args::app_ids(&app_id.into_iter().collect::<Vec<_>>())?.remove(0);
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
                    display_safe(sp.display_name.as_deref().unwrap_or("?")),
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
                        display_safe(j.kind.as_deref().unwrap_or("?")),
                        display_safe(j.usage.as_deref().unwrap_or("?")),
                        j.start.as_deref().unwrap_or("?"),
                        j.end.as_deref().unwrap_or("?"),
                        j.days_left.map_or("?".into(), |d| d.to_string()),
                        display_safe(j.display_name.as_deref().unwrap_or(""))
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
            let tenant = super::args::tenant_arg(&tenant)?;
            let apps = super::args::app_ids(&apps)?;
            let start = start
                .as_deref()
                .map(|s| super::args::parse_date("--start", s))
                .transpose()?;
            let end = end
                .as_deref()
                .map(|s| super::args::parse_date("--end", s))
                .transpose()?;
            let loaded = password.load_cert(&cert)?;
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
            let tenant = super::args::tenant_arg(&tenant)?;
            let apps = super::args::app_ids(&apps)?;
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

/// Shows the plan (and, when it replaces one shown before, what changed on the service principal
/// meanwhile) and asks. With `--yes` nobody is asked: the approval stands for additive changes.
fn confirm_plan(
    ctx: &Context,
    sp: &ServicePrincipal,
    plan: &KeyPlan,
    shown: Option<&KeyPlan>,
) -> Approval {
    if let Some(prev) = shown {
        eprint!(
            "{}",
            super::printer::terminal_safe(&difference_text(sp, prev, plan, ctx.now))
        );
    }
    eprint!(
        "{}",
        super::printer::terminal_safe(&plan_text(sp, plan, ctx.now))
    );
    if ctx.global.yes {
        return Approval::Standing;
    }
    if ctx.confirm("Apply this change?") {
        Approval::Answered
    } else {
        Approval::Refused
    }
}

/// What changed on the service principal between the read a plan was shown from and a later one.
fn difference_text(
    sp: &ServicePrincipal,
    shown: &KeyPlan,
    now_plan: &KeyPlan,
    now: DateTime<Utc>,
) -> String {
    use crate::graph::KeyIdentity;
    let before = shown.read_keys();
    let after = now_plan.read_keys();
    let has = |ks: &[&KeyCredential], k: &KeyCredential| {
        ks.iter()
            .any(|o| KeyIdentity::of(o).same_window(&KeyIdentity::of(k)) && o.usage == k.usage)
    };
    let mut s = format!(
        "The keys of {} changed since the plan was shown (another admin or host?):\n",
        sp.app_id
    );
    for k in after.iter().filter(|k| !has(&before, k)) {
        s.push_str(&key_line("new", k, now));
    }
    for k in before.iter().filter(|k| !has(&after, k)) {
        s.push_str(&key_line("gone", k, now));
    }
    s.push_str("The plan as the keys are now:\n");
    s
}

/// Runs a key change on each target application (the library's session: lock, plan, confirm,
/// read again, PATCH, read back, ledger) and returns what each came to, with the tenant id.
fn apply_keys(
    ctx: &Context,
    tenant: &str,
    apps: &[String],
    op: &KeyOp,
) -> Result<(AppOutcomes, Option<String>), Failure> {
    let mut session = ctx.session(tenant)?;
    let rt = super::runtime()?;
    let results = rt
        .block_on(session.change_keys(apps, op, &mut |sp, plan, shown| {
            confirm_plan(ctx, sp, plan, shown)
        }))
        .map_err(super::session_failure)?;
    Ok((results, session.tenant_id.clone()))
}

fn change_each(
    ctx: &Context,
    tenant: &str,
    apps: &[String],
    op: &KeyOp,
    thumb: Option<String>,
) -> Result<u8, Failure> {
    let (results, tid) = apply_keys(ctx, tenant, apps, op)?;
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
    let tenant = super::args::tenant_arg(&tenant)?;
    let names: Vec<String> = super::args::pool_fqdns(&pool_fqdns)?
        .iter()
        .map(|f| format!("{SFB_APP_ID}/{}", f.as_str()))
        .collect();
    ctx.require_confirmable()?;
    let NameChanges {
        added,
        present,
        planned,
        names_now,
    } = add_names(ctx, &tenant, &names)?;
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

/// Adds service principal names, asking on the terminal.
fn add_names(ctx: &Context, tenant: &str, names: &[String]) -> Result<NameChanges, Failure> {
    let mut session = ctx.session(tenant)?;
    let rt = super::runtime()?;
    rt.block_on(session.add_names(names, None, &mut |sp, new| {
        eprintln!(
            "{}",
            super::printer::terminal_safe(&format!(
                "Service principal names of {} will be:\n  {}",
                sp.app_id,
                new.join("\n  ")
            ))
        );
        if ctx.global.yes {
            Approval::Standing
        } else if ctx.confirm("Apply this change?") {
            Approval::Answered
        } else {
            Approval::Refused
        }
    }))
    .map_err(super::session_failure)
}
