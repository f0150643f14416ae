//! Issue 24: the key the Front Ends sign with is never removed. Each of the three ways found to
//! lose it, and the clock-skew gap, pinned end to end through the binary against the emulator:
//! 1. `verify` with the new certificate's PFX was taken as proof of a roll nobody ran;
//! 2. a local-time EffectiveDate in saved `Get-CsCertificate` output was read as UTC;
//! 3. `credential prune --foreign` on a second host removed the only valid key;
//! 4. with Microsoft's clock behind this machine's, the only key started in Entra's future.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

fn has(ks: &[Value], c: &TestCert) -> bool {
    ks.iter().any(|k| k["key"] == c.b64())
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn ok(tool: &Tool, args: &[&str]) -> Value {
    let o = tool.run_async(args).await;
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    json_out(&o)
}

/// A PEM file with the certificate and its private key (what `verify --cert` signs with).
fn with_key(tool: &Tool, name: &str, c: &TestCert) -> String {
    let p = tool.dir.path().join(name);
    std::fs::write(&p, format!("{}{}", c.key_pem, c.cert_pem)).unwrap();
    p.display().to_string()
}

struct Rolled {
    emu: Emu,
    a: Tool,
    t: String,
    old: TestCert,
    new: TestCert,
}

/// Host A uploads O, then `renew --new-cert N`: N's key is next to O's, the roll script is
/// written, and nobody has run it.
async fn pending_roll() -> Rolled {
    pending_roll_on(Emu::start().await).await
}

/// [`pending_roll`] on the emulator `emu`.
async fn pending_roll_on(emu: Emu) -> Rolled {
    let a = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let old = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(300),
        now + TimeDelta::days(200),
    );
    let new = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(700),
    );
    let (op, np) = (a.write_cert("old.pem", &old), a.write_cert("new.pem", &new));
    ok(
        &a,
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
    let r = ok(&a, &["renew", "--tenant", &t, "--new-cert", &np, "--yes"]).await;
    assert_eq!(r["results"][0]["decision"]["action"], "roll", "{r}");
    Rolled {
        emu,
        a,
        t,
        old,
        new,
    }
}

/// Defect 1: 25 hours after `renew --new-cert` (the EffectiveDate passed; the ledger is moved as
/// time would move it), nobody ran the roll script. `verify --cert N.pfx` gets a token (Entra
/// accepts N), which must not confirm the roll: the next `renew` keeps O's key, and the Front
/// Ends, still signing with O, still get tokens.
#[tokio::test(flavor = "multi_thread")]
async fn verify_with_the_new_certificate_confirms_no_roll() {
    let Rolled {
        emu,
        a,
        t,
        old,
        new,
    } = pending_roll().await;
    let mut l = read_ledger(&a.state_dir);
    l["tenants"][0]["roll_effective"] = json!((Utc::now() - TimeDelta::hours(1)).to_rfc3339());
    write_ledger(&a.state_dir, &l);

    let nk = with_key(&a, "new-key.pem", &new);
    let o = a
        .run_async(&["verify", "--tenant", &t, "--cert", &nk])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("does not show that the Front Ends sign with it")
            && err.contains("--confirm-roll"),
        "{err}"
    );
    let l = read_ledger(&a.state_dir);
    assert!(l["tenants"][0]["roll_confirmed"].is_null(), "{l}");
    assert_eq!(l["tenants"][0]["cert"]["thumbprint_sha1"], old.sha1_hex());

    let r = ok(&a, &["renew", "--all", "--yes"]).await;
    assert_ne!(r["results"][0]["decision"]["action"], "retire", "{r}");
    let ks = keys(&emu.sp(SFB).await);
    assert!(has(&ks, &old) && has(&ks, &new), "{ks:#?}");
    let ok_ = with_key(&a, "old-key.pem", &old);
    let o = a
        .run_async(&["verify", "--tenant", &t, "--cert", &ok_])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = ok(&a, &["status", "--tenant", &t]).await;
    assert_eq!(v["tenants"][0]["state"], "roll-pending", "{v}");
}

/// Defect 2: saved on a Front End in US Pacific time, `Get-CsCertificate | Format-List` shows the
/// EffectiveDate as local time without an offset. Two hours before E (UTC), that output must not
/// confirm the roll (it was read as UTC, eight hours earlier, and confirmed); nor may any date in
/// the output move the ledger's E earlier. Plain `--confirm-roll` is refused too.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_time_effective_date_does_not_confirm_a_roll_early() {
    let Rolled {
        emu,
        a,
        t,
        old,
        new,
        ..
    } = pending_roll().await;
    let e = Utc::now() + TimeDelta::hours(2);
    let mut l = read_ledger(&a.state_dir);
    l["tenants"][0]["roll_effective"] = json!(e.to_rfc3339());
    write_ledger(&a.state_dir, &l);
    let pacific = e - TimeDelta::hours(8);
    let saved = a.dir.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    std::fs::write(
        saved.join("Get-CsCertificate.txt"),
        format!(
            "Thumbprint    : {}\r\nEffectiveDate : {}\r\nPreviousThumbprint : {}\r\nUse           : OAuthTokenIssuer\r\n",
            new.sha1_hex(),
            pacific.format("%-m/%-d/%Y %-I:%M:%S %p"),
            old.sha1_hex()
        ),
    )
    .unwrap();
    let dir = saved.display().to_string();
    for args in [
        vec!["renew", "--tenant", &t, "--confirm-roll", "--current", &dir],
        vec!["renew", "--tenant", &t, "--confirm-roll"],
    ] {
        let o = a.run_async(&args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error:"), "{}", stderr(&o));
    }
    let l = read_ledger(&a.state_dir);
    assert!(l["tenants"][0]["roll_confirmed"].is_null(), "{l}");
    let r = ok(&a, &["renew", "--all", "--yes"]).await;
    assert_ne!(r["results"][0]["decision"]["action"], "retire", "{r}");
    assert!(has(&keys(&emu.sp(SFB).await), &old));
}

/// Defect 3: host A onboards with O, rolls to N, confirms and retires O. Host B, whose ledger
/// knows only O, runs `credential prune --foreign --yes`: N is another host's key (its display
/// name says hybrid-trust put it there), not foreign, and it stays; nor may B remove it by name
/// while it is the only valid key. The same during A's pending roll. A key planted behind the
/// tool's back is still foreign and pruned.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_host_never_prunes_the_only_valid_key() {
    let Rolled {
        emu,
        a,
        t,
        old,
        new,
        ..
    } = pending_roll().await;
    let b = Tool::for_emulator(&emu);
    let obp = b.write_cert("old.pem", &old);
    ok(&b, &["tenant", "add", &t, "--cert", &obp]).await;

    // During A's pending roll: B's prune keeps N (and O, its own).
    let r = ok(
        &b,
        &["credential", "prune", "--tenant", &t, "--foreign", "--yes"],
    )
    .await;
    let ks = keys(&emu.sp(SFB).await);
    assert!(has(&ks, &old) && has(&ks, &new), "{r}\n{ks:#?}");
    let listed = ok(&b, &["credential", "list", "--tenant", &t]).await;
    let n = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["thumbprint_sha1"] == new.sha1_hex())
        .unwrap()
        .clone();
    assert_eq!(n["foreign"], false, "{listed}");
    assert_eq!(n["another_host"], true, "{listed}");

    // A confirms (after E, from the Front End's output) and retires O.
    let saved = a.dir.path().join("saved");
    roll_took_effect(
        &a.state_dir,
        &saved,
        &new.sha1_hex(),
        Utc::now() - TimeDelta::minutes(5),
    );
    ok(
        &a,
        &[
            "renew",
            "--tenant",
            &t,
            "--confirm-roll",
            "--current",
            saved.to_str().unwrap(),
        ],
    )
    .await;
    let r = ok(&a, &["renew", "--all", "--yes"]).await;
    assert_eq!(r["results"][0]["decision"]["action"], "retire", "{r}");
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1);

    // B: prune --foreign keeps N, the only valid key.
    let o = b
        .run_async(&["credential", "prune", "--tenant", &t, "--foreign", "--yes"])
        .await;
    let ks = keys(&emu.sp(SFB).await);
    assert!(has(&ks, &new), "{}\n{ks:#?}", stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Named by thumbprint: it is another host's key (B's ledger does not know it), so the Front
    // Ends may sign with it: refused; with --force, it is still the last valid key: refused too.
    // Nothing changed.
    let tp = new.sha1_hex();
    for (force, why) in [(false, "another host"), (true, "last valid key")] {
        let mut args = vec![
            "credential",
            "remove",
            "--tenant",
            &t,
            "--thumbprint",
            &tp,
            "--yes",
        ];
        if force {
            args.push("--force");
        }
        let o = b.run_async(&args).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(why) && err.lines().filter(|l| l.starts_with("error:")).count() == 1,
            "{err}"
        );
        assert!(has(&keys(&emu.sp(SFB).await), &new));
    }
    // A's own ledger: removing the key of the certificate the Front Ends sign with is refused
    // even when another valid key is there.
    let other = fresh_cert("other.contoso.com");
    let opath = a.write_cert("other.pem", &other);
    ok(
        &a,
        &[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &opath,
            "--yes",
        ],
    )
    .await;
    let o = a
        .run_async(&[
            "credential",
            "remove",
            "--tenant",
            &t,
            "--thumbprint",
            &new.sha1_hex(),
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Front Ends sign with"),
        "{}",
        stderr(&o)
    );
    assert!(has(&keys(&emu.sp(SFB).await), &new));

    // An attacker's key (a name the tool never writes) is foreign, flagged and pruned.
    let planted = fresh_cert("attacker.example");
    let mut ks: Vec<Value> = emu.control_get("state").await["tenants"][0]["service_principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["app_id"] == SFB)
        .unwrap()["key_credentials"]
        .as_array()
        .unwrap()
        .clone();
    ks.push(json!({"key_id": uuid::Uuid::new_v4(), "custom_key_identifier": planted.sha1_hex(), "display_name": "CN=attacker.example", "start": planted.not_before, "end": planted.not_after, "type": "AsymmetricX509Cert", "usage": "Verify", "key": planted.b64()}));
    let path = format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials");
    assert_eq!(emu.control(Method::PUT, &path, Value::Array(ks)).await, 204);
    let listed = ok(&a, &["credential", "list", "--tenant", &t]).await;
    let p = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["thumbprint_sha1"] == planted.sha1_hex())
        .unwrap()
        .clone();
    assert_eq!(
        (p["foreign"].clone(), p["another_host"].clone()),
        (json!(true), json!(false))
    );
    ok(
        &a,
        &["credential", "prune", "--tenant", &t, "--foreign", "--yes"],
    )
    .await;
    let ks = keys(&emu.sp(SFB).await);
    assert!(!has(&ks, &planted) && has(&ks, &new), "{ks:#?}");
}

/// Item 4: Microsoft's clock minutes behind this machine's. The key `credential upload` adds
/// starts no later than Graph's own now (from its `Date`), so `verify` gets a token at once
/// instead of AADSTS700027 for ten minutes.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_starts_on_microsofts_clock_when_it_lags_ours() {
    let emu = Emu::start().await;
    // Four minutes: inside the five Entra allows for assertions (AADSTS700024 beyond), so
    // `verify` itself can sign in.
    emu.running.clock().set_offset_secs(-240);
    let a = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let c = fresh_cert("sfb.contoso.com");
    let p = a.write_cert("c.pem", &c);
    ok(
        &a,
        &[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
        ],
    )
    .await;
    let ks = keys(&emu.sp(SFB).await);
    let start = date(&ks[0]["startDateTime"]);
    let server_now = emu.running.clock().now();
    assert!(
        start <= server_now,
        "the key starts {start}, Graph's clock says {server_now}"
    );
    let end = date(&ks[0]["endDateTime"]);
    assert!(end - start <= TimeDelta::days(366), "{start} .. {end}");
    let k = with_key(&a, "c-key.pem", &c);
    let o = a.run_async(&["verify", "--tenant", &t, "--cert", &k]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Found while mending defect 3: `credential upload` of another, longer-lived certificate made it
/// the ledger's `cert` (the Front Ends' certificate as far as the ledger knew), so the one they
/// really sign with lost its protection and was never renewed. An upload is an extra key; only a
/// roll changes `cert`.
#[tokio::test(flavor = "multi_thread")]
async fn uploading_another_certificate_is_not_a_roll() {
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let fe = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(300),
    );
    let other = make_cert(
        "other.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
    );
    let (fp, op) = (
        a.write_cert("fe.pem", &fe),
        a.write_cert("other.pem", &other),
    );
    for p in [&fp, &op] {
        ok(
            &a,
            &["credential", "upload", "--tenant", &t, "--cert", p, "--yes"],
        )
        .await;
    }
    let l = read_ledger(&a.state_dir);
    assert_eq!(
        l["tenants"][0]["cert"]["thumbprint_sha1"],
        fe.sha1_hex(),
        "{l}"
    );
    let o = a
        .run_async(&[
            "credential",
            "remove",
            "--tenant",
            &t,
            "--thumbprint",
            &fe.sha1_hex(),
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(has(&keys(&emu.sp(SFB).await), &fe));
}

/// Found by the model test (tests/key_invariant.rs, seed 101564): A rolls the Front Ends to C1;
/// B, whose ledger knows C0, uploads C1 too (an extra key, not a roll), then removes it by name
/// while C0's key is still valid. C1 was issued after B's current certificate: another host may
/// have rolled the Front Ends to it, so the removal is refused unless B says --force.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_newer_certificate_than_the_ledger_knows_needs_force() {
    let Rolled {
        emu,
        a,
        t,
        old,
        new,
        ..
    } = pending_roll().await;
    let b = Tool::for_emulator(&emu);
    let (obp, nbp) = (b.write_cert("old.pem", &old), b.write_cert("new.pem", &new));
    ok(&b, &["tenant", "add", &t, "--cert", &obp]).await;
    ok(
        &b,
        &[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &nbp,
            "--yes",
        ],
    )
    .await;
    let tp = new.sha1_hex();
    let remove = |force: bool| {
        let mut v = vec![
            "credential",
            "remove",
            "--tenant",
            &t,
            "--thumbprint",
            &tp,
            "--yes",
        ];
        if force {
            v.push("--force");
        }
        v.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = remove(false);
    let o = b
        .run_async(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--force") && stderr(&o).contains("issued after"),
        "{}",
        stderr(&o)
    );
    assert!(has(&keys(&emu.sp(SFB).await), &new));
    // A's ledger has C1 as its pending roll: refused even with --force.
    let args = remove(true);
    let o = a
        .run_async(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(has(&keys(&emu.sp(SFB).await), &new));
    // B knows better (the Front Ends never used it): --force removes it; C0's key stays.
    ok(&b, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let ks = keys(&emu.sp(SFB).await);
    assert!(!has(&ks, &new) && has(&ks, &old), "{ks:#?}");
}

/// Review of issue 24: under a Graph that takes kept keys anew (`--key-resend minimal`), a kept
/// key loses the display name that says hybrid-trust put it there (Graph names it after the
/// certificate's subject). Host A's pending roll key N must still not be "foreign" to host B:
/// B's prune, run twice with an attacker's key to remove each time, keeps N and removes the
/// attacker's; `status --live --check` warns about N as a key this ledger does not know.
#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_roll_key_of_another_host_survives_prune_under_minimal() {
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = m365_emulator::KeyResend::Minimal;
    let Rolled {
        emu, t, old, new, ..
    } = pending_roll_on(Emu::start_with(cfg).await).await;
    let b = Tool::for_emulator(&emu);
    let obp = b.write_cert("old.pem", &old);
    ok(&b, &["tenant", "add", &t, "--cert", &obp]).await;
    for round in 0..2 {
        let planted = fresh_cert("attacker.example");
        let mut ks: Vec<Value> = emu.control_get("state").await["tenants"][0]["service_principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|sp| sp["app_id"] == SFB)
            .unwrap()["key_credentials"]
            .as_array()
            .unwrap()
            .clone();
        ks.push(json!({"key_id": uuid::Uuid::new_v4(), "custom_key_identifier": planted.sha1_hex(), "display_name": "planted", "start": planted.not_before, "end": planted.not_after, "type": "AsymmetricX509Cert", "usage": "Verify", "key": planted.b64()}));
        let path = format!("tenants/{t}/servicePrincipals/{SFB}/keyCredentials");
        assert_eq!(emu.control(Method::PUT, &path, Value::Array(ks)).await, 204);
        ok(
            &b,
            &["credential", "prune", "--tenant", &t, "--foreign", "--yes"],
        )
        .await;
        let ks = keys(&emu.sp(SFB).await);
        assert!(has(&ks, &new) && has(&ks, &old), "round {round}: {ks:#?}");
        assert!(!has(&ks, &planted), "round {round}: {ks:#?}");
    }
    // N has lost its name by now (taken anew), and B's live check still names it.
    let ks = keys(&emu.sp(SFB).await);
    let n = ks.iter().find(|k| k["key"] == new.b64()).unwrap();
    assert!(
        !n["displayName"]
            .as_str()
            .unwrap_or("")
            .starts_with("hybrid-trust"),
        "{n}"
    );
    let mut c = b.command();
    c.args([
        "--client-secret-env",
        "HT_TEST_SECRET",
        "status",
        "--live",
        "--all",
        "--check",
    ]);
    let o = c.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Review of issue 24: `credential remove` over two applications whose second PATCH fails for
/// good. The first application's key is gone from Graph, and the ledger says so at once (it used
/// to keep the removed window until a later run), while the second keeps its key and record.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_over_two_applications_records_the_first_when_the_second_fails() {
    const TEAMS: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";
    let emu = Emu::start().await;
    let a = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let now = Utc::now();
    let fe = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(300),
    );
    let extra = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(20),
        now + TimeDelta::days(300),
    );
    let (fp, xp) = (
        a.write_cert("fe.pem", &fe),
        a.write_cert("extra.pem", &extra),
    );
    for p in [&fp, &xp] {
        ok(
            &a,
            &[
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                p,
                "--app-id",
                SFB,
                "--app-id",
                TEAMS,
                "--yes",
            ],
        )
        .await;
    }
    let rules = json!({"rules": [{"kind": "503", "method": "PATCH", "skip": 1, "times": 50}]});
    assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
    let tp = extra.sha1_hex();
    let mut c = a.command();
    c.env("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "1").args([
        "--output",
        "json",
        "--client-secret-env",
        "HT_TEST_SECRET",
        "credential",
        "remove",
        "--tenant",
        &t,
        "--thumbprint",
        &tp,
        "--app-id",
        SFB,
        "--app-id",
        TEAMS,
        "--yes",
    ]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!has(&keys(&emu.sp(SFB).await), &extra));
    assert!(has(&keys(&emu.sp(TEAMS).await), &extra));
    let l = read_ledger(&a.state_dir);
    let recorded = |app: &str| {
        l["tenants"][0]["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["app_id"] == app && c["thumbprint_sha1"] == tp)
    };
    assert!(!recorded(SFB), "{l}");
    assert!(recorded(TEAMS), "{l}");
}
