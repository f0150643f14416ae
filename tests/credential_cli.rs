//! `credential list|upload|remove` and `spn add` end to end against the emulator: the window
//! rule, keeping other keys, dropping expired ones, idempotence, refusals, Graph errors, faults,
//! lost updates, concurrent runs and the audit log.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const TEAMS: &str = "7557eb47-c689-4224-abcf-aef9bd7573df";
const VOICEMAIL: &str = "db7de2b5-2149-435e-8043-e080dd50afae";

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_enforces_the_window_and_is_idempotent() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let long = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(800),
    );
    let path = tool.write_cert("long.pem", &long);
    let t = emu.tenant.domain.as_str();

    // Dry run: a plan, no change.
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            t,
            "--cert",
            &path,
            "--dry-run",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["results"][0]["action"], "dry-run");
    assert!(keys(&emu.sp(SFB).await).is_empty());

    // Without --yes and without a terminal: refused before any change.
    let mut c = tool.command();
    let o = tokio::task::spawn_blocking(move || {
        c.args([
            "credential",
            "upload",
            "--tenant",
            "contoso.onmicrosoft.com",
            "--cert",
            &path,
            "--client-secret-env",
            "HT_TEST_SECRET",
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yes"));
    assert!(keys(&emu.sp(SFB).await).is_empty());

    let path = tool.write_cert("long.pem", &long);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            t,
            "--cert",
            &path,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = &json_out(&o)["results"][0];
    assert_eq!(r["action"], "applied");
    assert_eq!(r["thumbprint_sha1"], long.sha1_hex());
    let (start, end) = (date(&r["start"]), date(&r["end"]));
    assert!(
        start >= now && start <= Utc::now() + TimeDelta::seconds(2),
        "start is now: {start}"
    );
    // The latest end allowed, in whole seconds. The start may have been moved up to the moment
    // the PATCH was sent (past a second boundary), and the end stays: so within a second or two
    // below a year after the start as sent, never beyond it.
    assert!(
        end <= start + TimeDelta::days(365)
            && end > start + TimeDelta::days(365) - TimeDelta::seconds(3),
        "the latest end allowed: {start} -> {end}"
    );
    assert_eq!(end.timestamp_subsec_nanos(), 0);
    let k = &keys(&emu.sp(SFB).await)[0];
    assert_eq!(
        (k["type"].as_str(), k["usage"].as_str()),
        (Some("AsymmetricX509Cert"), Some("Verify"))
    );
    assert_eq!(k["key"], long.b64());
    assert!(k["endDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(
        k["displayName"]
            .as_str()
            .unwrap()
            .contains("sfb.contoso.com")
    );

    // Again: already there, nothing sent.
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            t,
            "--cert",
            &path,
            "--yes",
        ])
        .await;
    assert_eq!(json_out(&o)["results"][0]["action"], "already-present");
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1);

    // A certificate ending before a year: the end is the certificate's.
    let short = make_cert(
        "short.contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(40),
    );
    let sp = tool.write_cert("short.pem", &short);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            t,
            "--cert",
            &sp,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(date(&json_out(&o)["results"][0]["end"]), short.not_after);
    assert!(
        stderr(&o).contains("expires on"),
        "a warning, not a refusal"
    );
    assert_eq!(keys(&emu.sp(SFB).await).len(), 2, "the first key is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_outside_the_rule_exit_2_and_change_nothing() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let c = make_cert(
        "sfb.contoso.com",
        now - TimeDelta::days(10),
        now + TimeDelta::days(200),
    );
    let p = tool.write_cert("c.pem", &c);
    let expired = make_cert(
        "old.contoso.com",
        now - TimeDelta::days(400),
        now - TimeDelta::days(1),
    );
    let pe = tool.write_cert("e.pem", &expired);
    let fmt = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let cases: Vec<Vec<String>> = vec![
        vec!["--start".into(), fmt(now - TimeDelta::days(1))],
        vec!["--end".into(), fmt(now + TimeDelta::days(201))],
        vec![
            "--start".into(),
            fmt(now + TimeDelta::days(10)),
            "--end".into(),
            fmt(now + TimeDelta::days(5)),
        ],
        vec!["--start".into(), "tomorrow".into()],
    ];
    for extra in cases {
        let mut args = vec![
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &p,
            "--yes",
        ];
        args.extend(extra.iter().map(String::as_str));
        let o = tool.run_async(&args).await;
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o)
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1
        );
    }
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &pe,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("expired"));
    // An explicit window inside the rule is sent as asked, in UTC.
    let (s, e) = (now + TimeDelta::days(1), now + TimeDelta::days(100));
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &p,
            "--yes",
            "--start",
            &s.with_timezone(&chrono::FixedOffset::east_opt(7200).unwrap())
                .to_rfc3339(),
            "--end",
            &fmt(e),
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let k = &keys(&emu.sp(SFB).await)[0];
    // The start goes to the millisecond (rounded up); the emulator shows whole seconds.
    let ms = s.timestamp_millis() + i64::from(s.timestamp_subsec_nanos() % 1_000_000 > 0);
    assert_eq!(
        k["startDateTime"],
        fmt(DateTime::from_timestamp(ms.div_euclid(1000), 0).unwrap())
    );
    assert_eq!(k["endDateTime"], fmt(e));
}

#[tokio::test(flavor = "multi_thread")]
async fn keeps_other_keys_as_they_were_and_drops_expired_ones() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let now = Utc::now();
    let other = fresh_cert("other.contoso.com");
    let mut ko = key_body(&other);
    ko["displayName"] = json!("kept as it was");
    ko["keyId"] = json!("11111111-2222-3333-4444-555555555555");
    assert_eq!(emu.patch_keys(SFB, json!([ko])).await.0, 204);
    let before = keys(&emu.sp(SFB).await)[0].clone();
    // Plant an expired key (Graph itself would not take one).
    let old = make_cert(
        "old.contoso.com",
        now - TimeDelta::days(400),
        now + TimeDelta::days(400),
    );
    let mut planted: Vec<Value> = vec![
        json!({"key_id": "11111111-2222-3333-4444-555555555555", "custom_key_identifier": before["customKeyIdentifier"], "display_name": "kept as it was", "start": before["startDateTime"], "end": before["endDateTime"], "type": "AsymmetricX509Cert", "usage": "Verify", "key": other.b64()}),
    ];
    planted.push(json!({"key_id": uuid::Uuid::new_v4(), "custom_key_identifier": null, "display_name": "old", "start": now - TimeDelta::days(400), "end": now - TimeDelta::days(2), "type": "AsymmetricX509Cert", "usage": "Verify", "key": old.b64()}));
    assert_eq!(
        emu.control(
            Method::PUT,
            &format!(
                "tenants/{}/servicePrincipals/{SFB}/keyCredentials",
                emu.tenant.domain
            ),
            json!(planted)
        )
        .await,
        204
    );

    let new = fresh_cert("sfb.contoso.com");
    let p = tool.write_cert("new.pem", &new);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.tenant_id,
            "--cert",
            &p,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = &json_out(&o)["results"][0];
    assert_eq!(r["dropped_expired"], json!([old.sha1_hex()]));
    assert_eq!(r["kept"], json!([other.sha1_hex()]));
    let after = keys(&emu.sp(SFB).await);
    assert_eq!(after.len(), 2);
    let kept = after.iter().find(|k| k["key"] == other.b64()).unwrap();
    for f in [
        "keyId",
        "displayName",
        "startDateTime",
        "endDateTime",
        "customKeyIdentifier",
    ] {
        assert_eq!(kept[f], before[f], "{f} kept as it was");
    }
    // The audit log holds before and after, and no secret.
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap();
    let line: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["action"], "keyCredentials.patch");
    assert_eq!(line["before"].as_array().unwrap().len(), 2);
    assert_eq!(line["after"].as_array().unwrap().len(), 2);
    assert!(!audit.contains(&emu.tenant.admin.client_secret));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(tool.state_dir.join("audit.log"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Remove by thumbprint keeps the other.
    let o = tool
        .run_async(&[
            "credential",
            "remove",
            "--tenant",
            &emu.tenant.domain,
            "--thumbprint",
            &other.sha1_hex(),
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = keys(&emu.sp(SFB).await);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["key"], new.b64());
    let o = tool
        .run_async(&[
            "credential",
            "remove",
            "--tenant",
            &emu.tenant.domain,
            "--thumbprint",
            &other.sha1_hex(),
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "no such key");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_identifies_keys_by_thumbprint_even_without_key() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let c = fresh_cert("sfb.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&c)])).await.0, 204);
    for form in ["hex", "base64", "double"] {
        let mut b = emu.control_get("state").await["behaviour"].clone();
        b["custom_key_id_form"] = json!(form);
        b["never_return_key"] = json!(true);
        assert_eq!(emu.control(Method::POST, "behaviour", b).await, 200);
        assert_eq!(emu.patch_keys(SFB, json!([key_body(&c)])).await.0, 204);
        let o = tool
            .run_async(&["credential", "list", "--tenant", &emu.tenant.domain])
            .await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json_out(&o);
        assert_eq!(v["app_id"], SFB);
        assert_eq!(v["tenant_id"], emu.tenant.tenant_id);
        let k = &v["credentials"][0];
        assert_eq!(k["thumbprint_sha1"], c.sha1_hex(), "{form}");
        for f in [
            "key_id",
            "type",
            "usage",
            "start",
            "end",
            "days_left",
            "display_name",
        ] {
            assert!(k.get(f).is_some(), "{f}");
        }
    }
    // A Graph that returns no `key`: an upload would have to drop the key, so it refuses.
    let other = fresh_cert("other.contoso.com");
    let p = tool.write_cert("o.pem", &other);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &p,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("without its certificate"));
    let mut b = emu.control_get("state").await["behaviour"].clone();
    b["never_return_key"] = json!(false);
    emu.control(Method::POST, "behaviour", b).await;
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1, "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_targets_refusals_and_graph_errors() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let c = fresh_cert("sfb.contoso.com");
    let p = tool.write_cert("c.pem", &c);
    let t = emu.tenant.domain.clone();
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--app-id",
            SFB,
            "--app-id",
            TEAMS,
            "--app-id",
            VOICEMAIL,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for app in [SFB, TEAMS, VOICEMAIL] {
        assert_eq!(keys(&emu.sp(app).await).len(), 1, "{app}");
    }
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--app-id",
            "00000002-0000-0ff1-ce00-000000000000",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("dedicated") || stderr(&o).contains("own application"),
        "{}",
        stderr(&o)
    );
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &p,
            "--yes",
            "--app-id",
            "not-a-guid",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    // The tenant's lifetime policy: Graph's error, with a hint; nothing changed.
    assert_eq!(
        emu.control(
            Method::POST,
            &format!("tenants/{t}/policy"),
            json!({"max_key_lifetime_days": 90})
        )
        .await,
        204
    );
    let other = fresh_cert("other.contoso.com");
    let po = tool.write_cert("o.pem", &other);
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &po,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("CredentialInvalidLifetimeAsPerAppPolicy")
            && e.contains("hint:")
            && e.contains("--end"),
        "{e}"
    );
    assert_eq!(keys(&emu.sp(SFB).await).len(), 1);
    let end = (Utc::now() + TimeDelta::days(80))
        .format("%Y-%m-%d")
        .to_string();
    let o = tool
        .run_async(&[
            "credential",
            "upload",
            "--tenant",
            &t,
            "--cert",
            &po,
            "--yes",
            "--end",
            &end,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Wrong secret: Entra's error with the correlation id.
    let mut cmd = tool.command();
    let o = tokio::task::spawn_blocking(move || {
        cmd.env("HT_TEST_SECRET", "wrong")
            .args([
                "credential",
                "list",
                "--tenant",
                "contoso.onmicrosoft.com",
                "--client-secret-env",
                "HT_TEST_SECRET",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("AADSTS7000215") && stderr(&o).contains("correlation id"),
        "{}",
        stderr(&o)
    );
    // No identity at all: usage error.
    let mut cmd = tool.command();
    let o = tokio::task::spawn_blocking(move || {
        cmd.env_remove("HYBRID_TRUST_CLIENT_ID")
            .args(["credential", "list", "--tenant", "contoso.onmicrosoft.com"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no admin identity"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_without_graph_permissions_gets_403_with_a_hint() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let c = fresh_cert("sfb.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&c)])).await.0, 204);
    // Sign in as 00000004 itself with its certificate: a token without Graph roles.
    let pem = tool.dir.path().join("sfb-with-key.pem");
    std::fs::write(&pem, format!("{}{}", c.key_pem, c.cert_pem)).unwrap();
    let mut cmd = tool.command();
    let o = tokio::task::spawn_blocking(move || {
        cmd.env("HYBRID_TRUST_CLIENT_ID", SFB)
            .args([
                "--client-cert",
                pem.to_str().unwrap(),
                "credential",
                "list",
                "--tenant",
                "contoso.onmicrosoft.com",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Authorization_RequestDenied")
            && stderr(&o).contains("Application.ReadWrite.All"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_503_resets_and_lost_writes_are_survived() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let keep = fresh_cert("keep.contoso.com");
    assert_eq!(emu.patch_keys(SFB, json!([key_body(&keep)])).await.0, 204);
    let c = fresh_cert("sfb.contoso.com");
    let p = tool.write_cert("c.pem", &c);
    for (i, kind) in ["429", "503", "reset", "lost-write"].iter().enumerate() {
        let rules = json!({"rules": [
            {"kind": "429", "method": "GET", "path_contains": "/servicePrincipals", "times": 1},
            {"kind": kind, "method": "PATCH", "path_contains": "/servicePrincipals", "times": 1},
        ]});
        assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
        let _ = i;
        let o = tool
            .run_async(&[
                "credential",
                "upload",
                "--tenant",
                &emu.tenant.domain,
                "--cert",
                &p,
                "--yes",
            ])
            .await;
        assert_eq!(o.status.code(), Some(0), "{kind}: {}", stderr(&o));
        let ks = keys(&emu.sp(SFB).await);
        assert!(
            ks.iter().any(|k| k["key"] == keep.b64()),
            "{kind}: the other key survived"
        );
        assert!(
            ks.iter().any(|k| k["key"] == c.b64()),
            "{kind}: the new key is there"
        );
        assert_eq!(ks.len(), 2);
        if *kind == "lost-write" {
            assert!(
                json_out(&o)["results"][0]["attempts"].as_u64().unwrap() >= 2,
                "merged again after the lost write"
            );
        }
        // Reset for the next round.
        assert_eq!(emu.patch_keys(SFB, json!([key_body(&keep)])).await.0, 204);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_on_one_machine_lose_no_key() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let certs: Vec<TestCert> = (0..6)
        .map(|i| fresh_cert(&format!("pool{i}.contoso.com")))
        .collect();
    let paths: Vec<String> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| tool.write_cert(&format!("c{i}.pem"), c))
        .collect();
    let domain = emu.tenant.domain.clone();
    let args: Vec<[&str; 7]> = paths
        .iter()
        .map(|p| {
            [
                "credential",
                "upload",
                "--tenant",
                domain.as_str(),
                "--cert",
                p.as_str(),
                "--yes",
            ]
        })
        .collect();
    let runs = args.iter().map(|a| tool.run_async(a));
    for o in futures_util::future::join_all(runs).await {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let ks = keys(&emu.sp(SFB).await);
    assert_eq!(ks.len(), 6);
    for c in &certs {
        assert!(ks.iter().any(|k| k["key"] == c.b64()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spn_add_keeps_other_names_and_is_idempotent() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let t = emu.tenant.domain.clone();
    let o = tool
        .run_async(&[
            "spn",
            "add",
            "--tenant",
            &t,
            "--pool-fqdn",
            "webext.contoso.com",
            "--pool-fqdn",
            "WebExt2.Contoso.com",
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = emu.sp(SFB).await["servicePrincipalNames"].clone();
    assert_eq!(
        names,
        json!([
            SFB,
            format!("{SFB}/webext.contoso.com"),
            format!("{SFB}/webext2.contoso.com")
        ])
    );
    let o = tool
        .run_async(&[
            "spn",
            "add",
            "--tenant",
            &t,
            "--pool-fqdn",
            "webext.contoso.com",
            "--yes",
        ])
        .await;
    assert_eq!(json_out(&o)["already_present"].as_array().unwrap().len(), 1);
    let o = tool
        .run_async(&[
            "spn",
            "add",
            "--tenant",
            &t,
            "--pool-fqdn",
            "bad fqdn",
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
}
