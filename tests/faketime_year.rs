//! Issue 16: the daily job through the real binaries over a simulated year and a half, under
//! Debian's `faketime` (libfaketime shifts the process's wall clock; monotonic time is left
//! alone so timeouts still work), with the emulator's clock moved along to the same day.
//! A first key, its re-window at the horizon, the roll to a new certificate, its confirmation
//! once the EffectiveDate has passed, and the retirement of the old key; `--check` and the
//! reminders at each step. Needs `faketime` (`scripts/test.sh` installs it).

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use support::*;

struct Faked<'a> {
    tool: &'a Tool,
    emu: &'a Emu,
}

impl Faked<'_> {
    /// Runs the binary `days` after now (faketime), the emulator moved to the same moment.
    async fn at(&self, days: i64, args: &[&str]) -> std::process::Output {
        self.emu.running.clock().set_offset_secs(days * 86_400);
        let mut c = std::process::Command::new("faketime");
        c.arg("-f").arg(format!("+{days}d"));
        c.arg(env!("CARGO_BIN_EXE_hybrid-trust"));
        let base = self.tool.command();
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env(
                "HYBRID_TRUST_CONFIG",
                self.tool.dir.path().join("none.toml"),
            )
            .args(["--output", "json", "--client-secret-env", "HT_TEST_SECRET"])
            .args(args)
            .stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }
}

fn check_code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap()
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_year_and_a_half_of_daily_jobs_under_faketime() {
    if std::process::Command::new("faketime")
        .arg("-f")
        .arg("+1d")
        .arg("true")
        .status()
        .is_err()
    {
        panic!("faketime is not installed: apt-get install faketime (scripts/test.sh does)");
    }
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    std::fs::write(tool.dir.path().join("none.toml"), "").unwrap();
    let f = Faked {
        tool: &tool,
        emu: &emu,
    };
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(30),
        now + TimeDelta::days(400),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now + TimeDelta::days(330),
        now + TimeDelta::days(1100),
    );
    let (op, np) = (
        tool.write_cert("old.pem", &old),
        tool.write_cert("new.pem", &new),
    );
    let nk = tool.dir.path().join("new-with-key.pem");
    std::fs::write(&nk, format!("{}{}", new.key_pem, new.cert_pem)).unwrap();
    let nk = nk.display().to_string();
    let o = f
        .at(
            0,
            &[
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &op,
                "--yes",
            ],
        )
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let mut reminded = Vec::new();
    let mut checks = Vec::new();
    let mut rolled = false;
    for day in [
        0, 30, 90, 180, 270, 300, 336, 340, 341, 343, 344, 365, 401, 500, 545,
    ] {
        if day == 340 {
            // The admin: the new certificate arrives and is uploaded next to the old one.
            let o = f
                .at(day, &["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
                .await;
            assert_eq!(o.status.code(), Some(0), "day {day}: {}", stderr(&o));
            assert_eq!(json_out(&o)["results"][0]["decision"]["action"], "roll");
            rolled = true;
            let s = json_out(&f.at(day, &["status", "--tenant", &t]).await);
            assert_eq!(s["tenants"][0]["state"], "roll-pending", "{s}");
        }
        if day == 343 && rolled {
            // The script ran at its EffectiveDate (a day after the upload); `verify` with the
            // new certificate now gets a token, which proves what Entra accepts but confirms
            // nothing (issue 24): it says how to confirm.
            let o = f.at(day, &["verify", "--tenant", &t, "--cert", &nk]).await;
            assert_eq!(o.status.code(), Some(0), "day {day}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("does not show that the Front Ends sign with it"),
                "{}",
                stderr(&o)
            );
            let l = read_ledger(&tool.state_dir);
            assert!(l["tenants"][0]["roll_confirmed"].is_null(), "{l}");
            // The Front End's saved output, as the roll script prints it (UTC with its offset).
            let effective = l["tenants"][0]["roll_effective"]
                .as_str()
                .unwrap()
                .to_string();
            let current = tool.dir.path().join("current");
            std::fs::create_dir_all(&current).unwrap();
            std::fs::write(
                current.join("Get-CsCertificate.txt"),
                format!(
                    "Thumbprint    : {}\r\nEffectiveDate : {effective}\r\nUse           : OAuthTokenIssuer\r\n",
                    new.sha1_hex()
                ),
            )
            .unwrap();
            let dir = current.display().to_string();
            let o = f
                .at(
                    day,
                    &[
                        "renew",
                        "--tenant",
                        &t,
                        "--confirm-roll",
                        "--current",
                        &dir,
                        "--yes",
                    ],
                )
                .await;
            assert_eq!(o.status.code(), Some(0), "day {day}: {}", stderr(&o));
            let l = read_ledger(&tool.state_dir);
            assert_eq!(l["tenants"][0]["roll_confirmed"]["by"], "onprem-output");
        }
        let o = f.at(day, &["renew", "--all", "--yes"]).await;
        assert_eq!(o.status.code(), Some(0), "day {day}: {}", stderr(&o));
        let action = json_out(&o)["results"][0]["decision"]["action"]
            .as_str()
            .unwrap()
            .to_string();
        let o = f.at(day, &["remind", "--all"]).await;
        assert_eq!(o.status.code(), Some(0), "day {day}: {}", stderr(&o));
        reminded.push((day, json_out(&o)["sent"].as_array().unwrap().len()));
        let o = f.at(day, &["status", "--all", "--check"]).await;
        checks.push((day, check_code(&o), action));
    }
    eprintln!("day, --check, renew: {checks:?}\nday, reminders: {reminded:?}");
    // The first key was re-windowed inside the horizon (day 336: it ended on day 365).
    assert!(
        checks.iter().any(|(d, _, a)| *d == 336 && a == "rewindow"),
        "{checks:?}"
    );
    // The old key was retired the day after the confirmation.
    assert!(
        checks.iter().any(|(d, _, a)| *d == 343 && a == "retire"),
        "{checks:?}"
    );
    // Never a lapse: --check never CRITICAL or UNKNOWN.
    assert!(checks.iter().all(|(_, c, _)| *c <= 1), "{checks:?}");
    // Reminded at the 60-day threshold of the first key, and not every day.
    assert!(reminded.iter().any(|(_, n)| *n > 0), "{reminded:?}");
    assert!(
        reminded.iter().filter(|(_, n)| *n > 0).count() <= 4,
        "{reminded:?}"
    );
    // At the end: only the new certificate's key, valid well past the last day.
    let listed = json_out(&f.at(545, &["credential", "list", "--tenant", &t]).await);
    let creds = listed["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1, "{listed}");
    assert_eq!(creds[0]["thumbprint_sha1"], new.sha1_hex());
    assert!(date(&creds[0]["end"]) > now + TimeDelta::days(545));
}
