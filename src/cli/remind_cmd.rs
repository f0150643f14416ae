//! `remind` (docs/contract.md): send each due reminder once per threshold, credential and channel.
//! A delivery is recorded in the ledger as soon as it succeeds; a failed one is not, so the next
//! run retries it, and this run exits 1.

use super::{Context, Failure};
use hybrid_trust::config::Settings;
use hybrid_trust::notify::{Email, Notifier};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hybrid-trust remind --all --dry-run\n  hybrid-trust remind --all            # daily, from cron or the systemd timer in scripts/\n  SMTP_PW=... hybrid-trust remind --remember-smtp-password --smtp-password-env SMTP_PW\n\nChannels come from the settings file ([reminders] in config.toml; see README)."
)]
pub struct RemindArgs {
    /// Every tenant (the default).
    #[arg(long)]
    pub all: bool,
    #[arg(long, conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Store the SMTP password of each email channel with `password_keyring = true` in the OS
    /// keyring, once its server has accepted it (nothing is sent); then exit.
    #[arg(long, requires = "smtp_password_env", conflicts_with_all = ["all", "tenant"])]
    pub remember_smtp_password: bool,
    /// Messages sent at once (one per channel and recipient list: a digest of every tenant).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub concurrency: usize,
    /// With --remember-smtp-password: the environment variable that holds the password.
    #[arg(long, value_name = "VAR", requires = "remember_smtp_password")]
    pub smtp_password_env: Option<String>,
}

fn channels(ctx: &Context, s: &Settings) -> Result<Vec<Box<dyn Notifier>>, Failure> {
    let safe = |s: &str| super::printer::terminal_safe(s).into_owned();
    let (json, cloud) = (ctx.printer.json(), ctx.cloud()?);
    hybrid_trust::notify::channels_in(s, json, safe, &cloud, ctx.clock).map_err(|e| {
        let hint = Some(e.hint.clone());
        if e.usage {
            Failure::input(e, hint)
        } else {
            Failure::runtime(e, hint)
        }
    })
}

/// `--remember-smtp-password`: every channel that reads its password from the keyring signs in
/// with the given password first; only when all have accepted it is it stored (`smtp:USER`).
fn remember_smtp_password(ctx: &Context, settings: &Settings, var: &str) -> Result<u8, Failure> {
    ctx.refuse_as_of("remind --remember-smtp-password")?;
    let pw = hybrid_trust::secret::SecretString::new(std::env::var(var).map_err(|_| {
        Failure::input(
            anyhow::anyhow!("the variable {var} (--smtp-password-env) is not set"),
            Some(format!("export {var} with the SMTP password")),
        )
    })?);
    let channels: Vec<(&str, Email)> = settings
        .reminders
        .email
        .iter()
        .filter(|e| e.password_keyring)
        .filter_map(|e| {
            let user = e.username.as_deref()?;
            let email = Email {
                channel: e.clone(),
                password: Some(pw.clone()),
                oauth: None,
            };
            Some((user, email))
        })
        .collect();
    if channels.is_empty() {
        return Err(Failure::input(
            anyhow::anyhow!(
                "no [[reminders.email]] channel has password_keyring = true and a username"
            ),
            Some("set them in the settings file (README, \"Reminders and monitoring\")".into()),
        ));
    }
    let rt = super::runtime()?;
    for (_, email) in &channels {
        rt.block_on(email.check_login()).map_err(|e| {
            Failure::runtime(
                e,
                Some("check the password, the username and smtp_url; nothing was stored".into()),
            )
        })?;
    }
    let store = hybrid_trust::keyring::SecretStore::open().map_err(|e| {
        let hint = e.hint().to_string();
        Failure::runtime(e, Some(hint))
    })?;
    let mut stored: Vec<String> = Vec::new();
    for (user, _) in &channels {
        let entry = format!("smtp:{user}");
        if !stored.contains(&entry) {
            store
                .set(&entry, &pw)
                .map_err(|e| Failure::runtime(e, Some("unlock the keyring".to_string())))?;
            stored.push(entry);
        }
    }
    ctx.printer.emit(
        &serde_json::json!({"stored": stored, "keyring": store.describe()}),
        || {
            format!(
                "the SMTP server accepted the password; stored {} in {}\n",
                stored.join(", "),
                store.describe()
            )
        },
    );
    Ok(0)
}

pub fn run(ctx: &Context, a: RemindArgs) -> Result<u8, Failure> {
    if let (true, Some(var)) = (a.remember_smtp_password, &a.smtp_password_env) {
        return remember_smtp_password(ctx, &ctx.settings()?, var);
    }
    if !ctx.global.dry_run {
        ctx.refuse_as_of("remind (without --dry-run)")?;
    }
    let settings = ctx.settings()?;
    let notifiers = channels(ctx, &settings)?;
    // Held from reading the ledger to the last mark: an overlapping run waits, then plans from
    // what this one recorded (a dry run sends nothing and takes no lock).
    let _reminders_lock = if ctx.global.dry_run {
        None
    } else {
        Some(
            ctx.reminders_lock()?.map_err(|e| {
                let hint = match &e {
                    hybrid_trust::lock::LockError::State(s) => s.hint(),
                    hybrid_trust::lock::LockError::Busy { .. } => "another remind run is sending from this state dir: let it finish; what it does not deliver, the next run does".to_string(),
                    hybrid_trust::lock::LockError::Open { path, .. } => format!(
                        "check that {} is writable by this user (a run as root may have created it: chown it back)",
                        path.parent().unwrap_or(path).display()
                    ),
                };
                Failure::runtime(e, Some(hint))
            })?,
        )
    };
    let ledger = ctx.ledger()?;
    let tenants: Vec<_> = ledger
        .tenants
        .iter()
        .filter(|t| a.tenant.as_deref().is_none_or(|n| t.is(n)))
        .cloned()
        .collect();
    if let Some(n) = &a.tenant
        && tenants.is_empty()
    {
        return Err(ctx.named_tenant_missing(
            n,
            Failure::input(anyhow::anyhow!("{n} is not in the ledger"), None),
        ));
    }
    // Damaged records are left aside (the others are reminded) and reported at the end.
    let damaged = if a.tenant.is_none() {
        ledger.damaged.clone()
    } else {
        Vec::new()
    };
    let store = ctx.ledger_store()?;
    // Reminders printed on the terminal are the run's output: no bar among them.
    let printed = notifiers.iter().any(|n| n.id() == "stdout");
    let progress: Box<dyn hybrid_trust::progress::Progress> = if printed {
        Box::new(hybrid_trust::progress::Silent)
    } else {
        super::progress::for_run(ctx.printer.json(), ctx.global.verbose)
    };
    let report = super::runtime()?
        .block_on(hybrid_trust::session::remind_all::run_with_damaged(
            &store,
            &tenants,
            &damaged,
            &notifiers,
            &settings.reminders.thresholds_days,
            ctx.clock,
            ctx.global.dry_run,
            a.concurrency,
            &settings.advisories.acknowledged,
            progress.as_ref(),
        ))
        .map_err(|e| Failure::runtime(e, None))?;
    for f in &report.failed {
        ctx.printer.note(&format!(
            "warning: {}; it will be retried on the next run",
            f.error
        ));
    }
    let (mut json, failed) = (report.json(ctx.global.dry_run), &report.failed);
    json["damaged"] = serde_json::Value::Array(
        damaged
            .iter()
            .map(|d| serde_json::json!({"tenant": d.tenant, "file": d.path, "error": d.error, "fix": d.hint}))
            .collect(),
    );
    ctx.printer.emit(&json, || {
        if ctx.global.dry_run {
            let mut s = format!(
                "{} reminder(s) due in {} message(s) (dry run, nothing sent):\n",
                report.planned_entries(),
                report.planned.len()
            );
            for d in &report.planned {
                s.push_str(&format!("  {} -> {}\n", d.subject, d.channel));
            }
            s
        } else {
            format!(
                "{} reminder(s) sent in {} message(s), {} message(s) failed\n",
                report.sent_entries(),
                report.sent.len(),
                failed.len()
            )
        }
    });
    if failed.is_empty()
        && let Some(f) = super::ledger_rec::damaged_failure(&damaged)
    {
        return Err(f);
    }
    if !failed.is_empty() {
        return Err(Failure::runtime(
            anyhow::anyhow!(
                "{} reminder delivery(ies) failed (first: {})",
                failed.len(),
                failed[0].error
            ),
            Some(
                "nothing was marked sent for them: fix the channel and the next run retries"
                    .to_string(),
            ),
        ));
    }
    Ok(0)
}
