//! Issue 16's four defects, each pinned end to end through the binary against the emulator:
//! 1. a pending roll looked healthy (`status` ok, `--check` OK);
//! 2. the old key was never removed after a roll;
//! 3. the EffectiveDate ignored the old key's end;
//! 4. the same failure reminder went out on every daily run.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use support::*;

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn upload(tool: &Tool, tenant: &str, cert: &str, end: Option<&str>) {
    let mut args = vec![
        "credential",
        "upload",
        "--tenant",
        tenant,
        "--cert",
        cert,
        "--yes",
    ];
    if let Some(e) = end {
        args.extend(["--end", e]);
    }
    let o = tool.run_async(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Defect 1: the old certificate ends in 10 days and a new one is uploaded; nobody ran the
/// script, so the trust still lapses in 10 days: `roll-pending`, and `--check` WARNING.
/// Defect 2: once the roll is confirmed, the next `renew --all` removes the old key.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_roll_warns_until_confirmed_and_the_old_key_is_then_retired() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(10),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(700),
    );
    let (op, np) = (
        tool.write_cert("old.pem", &old),
        tool.write_cert("new.pem", &new),
    );
    upload(&tool, &t, &op, None).await;
    let o = tool
        .run_async(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = json_out(&o)["results"][0]["onprem_script"]
        .as_str()
        .unwrap()
        .to_string();

    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    let s = &v["tenants"][0];
    assert_eq!(s["state"], "roll-pending", "{v}");
    assert!(s["days_left"].as_i64().unwrap() <= 10, "{v}");
    assert!(date(&s["lapses_at"]) <= old.not_after, "{v}");
    let action = s["next_action"].as_str().unwrap();
    let script_name = std::path::Path::new(&script)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(action.contains(script_name), "{action}");
    let mut c = tool.command();
    c.args(["status", "--all", "--check"]);
    let o = c.output().unwrap();
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{line}");
    assert!(line.starts_with("HYBRID-TRUST WARNING"), "{line}");

    // The EffectiveDate passes (the ledger is moved as time would move it: the binary runs on
    // the system clock), and the roll is confirmed from the server's own output, as the roll
    // script prints it (UTC with its offset); the next renew retires the old key.
    let saved = tool.dir.path().join("saved");
    roll_took_effect(
        &tool.state_dir,
        &saved,
        &new.sha1_hex(),
        now - TimeDelta::minutes(5),
    );
    let o = tool
        .run_async(&[
            "renew",
            "--tenant",
            &t,
            "--confirm-roll",
            "--current",
            saved.to_str().unwrap(),
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let o = tool.run_async(&["renew", "--all", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["results"][0]["decision"]["action"], "retire");
    let listed = json_out(
        &tool
            .run_async(&["credential", "list", "--tenant", &t])
            .await,
    );
    let tps: Vec<&str> = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["thumbprint_sha1"].as_str().unwrap())
        .collect();
    assert_eq!(
        tps,
        vec![new.sha1_hex().as_str()],
        "only the new key is left"
    );
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap();
    assert!(audit.contains("confirm-roll") && audit.contains("retire the old certificate"));
    let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "ok", "{v}");
    let mut c = tool.command();
    c.args(["status", "--all", "--check"]);
    assert_eq!(c.output().unwrap().status.code(), Some(0));
}

/// Defect 3: the old key ends in 30 hours, the old certificate in 60 days: the EffectiveDate
/// is at least 24 hours before the old key's end, not a day after the upload.
#[tokio::test(flavor = "multi_thread")]
async fn the_effective_date_respects_the_old_keys_end() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(60),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(700),
    );
    let key_end = (now + TimeDelta::hours(30)).to_rfc3339();
    let (op, np) = (
        tool.write_cert("old.pem", &old),
        tool.write_cert("new.pem", &new),
    );
    upload(&tool, &t, &op, Some(&key_end)).await;
    let o = tool
        .run_async(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = &json_out(&o)["results"][0]["decision"];
    assert_eq!(d["action"], "roll", "{d}");
    let effective = date(&d["effective"]);
    assert!(
        effective <= now + TimeDelta::hours(6) + TimeDelta::minutes(1),
        "24 h before the old key ends: {effective}"
    );
    assert!(
        effective >= now + TimeDelta::minutes(59),
        "after the new key's start + margin: {effective}"
    );
}

/// Defect 4: a blocked tenant retried every day is one problem: reminded once, not again the
/// next day, again after a week.
#[test]
fn a_blocked_renewal_is_reminded_once_then_weekly_not_daily() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let now = Utc::now();
    let short = make_cert(
        "x.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(20),
    );
    let cert = dir.path().join("short.pem");
    std::fs::write(&cert, &short.cert_pem).unwrap();
    let ht = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .env("HYBRID_TRUST_STATE_DIR", &state)
            .env("HYBRID_TRUST_KEYRING", "none-in-tests")
            .env_remove("HYBRID_TRUST_AS_OF")
            .env_remove("HYBRID_TRUST_CONFIG")
            .args(["--output", "json"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let end = (now + TimeDelta::days(20)).format("%Y-%m-%d").to_string();
    let o = ht(&[
        "tenant",
        "add",
        "c.example.com",
        "--cert",
        cert.to_str().unwrap(),
        "--credential-end",
        &end,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let problems = |o: &std::process::Output| -> usize {
        let v = json_out(o);
        let (sent, planned) = (
            v["sent"].as_array().unwrap(),
            v["planned"].as_array().unwrap(),
        );
        sent.iter()
            .chain(planned)
            .filter(|s| s["kind"] == "renewal-failure" || s["message"]["kind"] == "renewal-failure")
            .count()
    };
    // Day 1: blocked (only a new certificate helps), reminded.
    assert_eq!(ht(&["renew", "--all", "--yes"]).status.code(), Some(1));
    assert_eq!(problems(&ht(&["remind", "--all"])), 1);
    // The daily timer runs renew again: the same reason, a new failure time; nothing new to say.
    assert_eq!(ht(&["renew", "--all", "--yes"]).status.code(), Some(1));
    assert_eq!(
        problems(&ht(&["remind", "--all"])),
        0,
        "not again the next run"
    );
    // Planned three days on: still nothing; eight days on: the weekly reminder.
    let plan = |days: i64| {
        let at = (Utc::now() + TimeDelta::days(days)).to_rfc3339();
        problems(&ht(&["--as-of", &at, "--dry-run", "remind", "--all"]))
    };
    assert_eq!(plan(3), 0);
    assert_eq!(plan(8), 1);
}

/// Two admins, two ledgers, one tenant: A rolls to a new certificate, confirms the roll and
/// retires the old key. B, who only knew the old certificate, then runs the daily job. B must
/// not put the retired key back, and must say what happened: whether the old certificate
/// outlives the new key or not (the refusal does not hang on which window is longer).
#[tokio::test(flavor = "multi_thread")]
async fn a_roll_finished_on_one_host_is_not_undone_by_the_other() {
    for old_days in [200, 400] {
        roll_on_a_then_daily_job_on_b(old_days).await;
    }
}

async fn roll_on_a_then_daily_job_on_b(old_days: i64) {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let b = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    // The old certificate has months left; its key ends in 20 days. A rolls early.
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(old_days),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(700),
    );
    let (op, np) = (a.write_cert("old.pem", &old), a.write_cert("new.pem", &new));
    let obp = b.write_cert("old.pem", &old);
    let key_end = (now + TimeDelta::days(20)).format("%Y-%m-%d").to_string();
    upload(&a, &t, &op, Some(&key_end)).await;
    // B records the same tenant and certificate (as a second admin would, from the same PFX),
    // with the key's end as the tenant shows it.
    let end = emu.sp(SFB).await["keyCredentials"][0]["endDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    let o = b
        .run_async(&[
            "tenant",
            "add",
            &t,
            "--cert",
            &obp,
            "--credential-end",
            &end,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A: roll, confirm, retire.
    let o = a
        .run_async(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let saved = a.dir.path().join("saved");
    roll_took_effect(
        &a.state_dir,
        &saved,
        &new.sha1_hex(),
        now - TimeDelta::minutes(5),
    );
    let saved_s = saved.to_str().unwrap();
    let o = a
        .run_async(&[
            "renew",
            "--tenant",
            &t,
            "--confirm-roll",
            "--current",
            saved_s,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = a.run_async(&["renew", "--all", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let only_new = || async {
        let keys = emu.sp(SFB).await["keyCredentials"].clone();
        let ends: Vec<&str> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["endDateTime"].as_str().unwrap())
            .collect();
        assert_eq!(ends.len(), 1, "{keys:#}");
        assert!(
            ends[0] > end.as_str(),
            "the new certificate's year-long key: {keys:#}"
        );
    };
    only_new().await;

    // B's daily job: the old key (due in 20 days: a re-window) is not put back; B is told why
    // and what to do, and the failure is recorded (so remind tells B's people too).
    let o = b.run_async(&["renew", "--all", "--yes"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another admin may have rolled") && err.contains(&new.sha1_hex()),
        "{err}"
    );
    assert!(err.contains("--new-cert"), "the way forward: {err}");
    only_new().await;
    let v = json_out(&b.run_async(&["status", "--tenant", &t]).await);
    assert!(
        v["tenants"][0]["last_renewal_failure"]
            .as_str()
            .is_some_and(|f| f.contains("another admin may have rolled")),
        "{v}"
    );
    // B follows the hint: the newer certificate is recorded as a roll in B's ledger, and
    // nothing changes on the tenant.
    let nbp = b.write_cert("new.pem", &new);
    let o = b
        .run_async(&["renew", "--tenant", &t, "--new-cert", &nbp, "--yes"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    only_new().await;
    let v = json_out(&b.run_async(&["status", "--tenant", &t]).await);
    assert_eq!(v["tenants"][0]["state"], "roll-pending", "{v}");
}
