//! The tool's upload, remove, renew (re-window and roll) and onboard flows under each answer to
//! docs/protocol.md §6 item 9 (how Graph treats kept keys a PATCH re-sends), played by the emulator's
//! `--key-resend full|unchanged|minimal`: every flow succeeds, no key is lost, and what Graph did
//! (a refusal, the form it accepted, a kept key taken anew with a new keyId and its certificate's
//! validity as window) is in the result and the audit log.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use m365_emulator::KeyResend;
use serde_json::Value;
use support::*;

const MODES: [KeyResend; 3] = [KeyResend::Full, KeyResend::Unchanged, KeyResend::Minimal];

async fn emu(mode: KeyResend) -> Emu {
    let mut cfg = quiet_tls();
    cfg.behaviour.key_resend = mode;
    Emu::start_with(cfg).await
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn keys(sp: &Value) -> Vec<Value> {
    sp["keyCredentials"].as_array().unwrap().clone()
}

/// The keys of `cert` on the service principal.
fn of<'a>(ks: &'a [Value], cert: &TestCert) -> Vec<&'a Value> {
    ks.iter().filter(|k| k["key"] == cert.b64()).collect()
}

fn audit(tool: &Tool) -> Vec<Value> {
    std::fs::read_to_string(tool.state_dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pem_with_key(tool: &Tool, name: &str, cert: &TestCert) -> String {
    let p = tool.dir.path().join(name);
    std::fs::write(&p, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_and_remove_keep_every_key_under_each_resend_mode() {
    for mode in MODES {
        let emu = emu(mode).await;
        let tool = Tool::for_emulator(&emu);
        let t = emu.tenant.domain.clone();
        let now = Utc::now();
        let a = make_cert(
            "a.contoso.com",
            now - TimeDelta::days(3),
            now + TimeDelta::days(800),
        );
        let b = fresh_cert("b.contoso.com");
        let (pa, pb) = (tool.write_cert("a.pem", &a), tool.write_cert("b.pem", &b));
        let up = |p: &str| {
            vec![
                "credential".to_string(),
                "upload".into(),
                "--tenant".into(),
                t.clone(),
                "--cert".into(),
                p.to_string(),
                "--yes".into(),
            ]
        };
        let run = |args: Vec<String>| {
            let tool = &tool;
            async move {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                tool.run_async(&a).await
            }
        };
        // The first key: nothing to keep, so nothing to re-send.
        let o = run(up(&pa)).await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let a_key = of(&keys(&emu.sp(SFB).await), &a)[0].clone();

        // The second keeps the first.
        let o = run(up(&pb)).await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let r = &json_out(&o)["results"][0];
        let ks = keys(&emu.sp(SFB).await);
        assert_eq!(ks.len(), 2, "{mode}: {ks:?}");
        assert_eq!(of(&ks, &b).len(), 1, "{mode}");
        let a_now = of(&ks, &a)[0].clone();
        match mode {
            KeyResend::Full | KeyResend::Unchanged => {
                assert_eq!(r["resend"], "full", "{mode}: {r}");
                assert_eq!(r["resend_refused"], serde_json::json!([]), "{mode}");
                assert_eq!(r["graph_changed"], serde_json::json!([]), "{mode}");
                assert_eq!(a_now, a_key, "{mode}: the kept key as it was");
            }
            KeyResend::Minimal => {
                assert_eq!(r["resend"], "minimal", "{r}");
                assert_eq!(r["resend_refused"][0]["form"], "full", "{r}");
                assert!(
                    r["resend_refused"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains("Send only type, usage and key"),
                    "{r}"
                );
                // Graph took the kept key anew: a new keyId, its certificate's validity.
                assert_ne!(a_now["keyId"], a_key["keyId"]);
                assert_eq!(date(&a_now["startDateTime"]), a.not_before);
                assert_eq!(date(&a_now["endDateTime"]), a.not_after);
                let c = &r["graph_changed"][0];
                assert_eq!(c["thumbprint_sha1"], a.sha1_hex(), "{r}");
                assert_eq!(c["lost"], false);
                assert_eq!(c["after"]["key_id"], a_now["keyId"]);
                let what = c["changes"].to_string();
                assert!(
                    what.contains("new keyId")
                        && what.contains("window widened")
                        && what.contains("(the certificate's validity)"),
                    "{what}"
                );
                let text = {
                    let mut c = tool.command();
                    c.args(["--client-secret-env", "HT_TEST_SECRET"]).args([
                        "credential",
                        "list",
                        "--tenant",
                        &t,
                    ]);
                    tokio::task::spawn_blocking(move || c.output().unwrap())
                        .await
                        .unwrap()
                };
                assert_eq!(text.status.code(), Some(0));
                // The audit log has the refused body, the refusal and what Graph changed.
                let log = audit(&tool);
                let actions: Vec<&str> =
                    log.iter().map(|e| e["action"].as_str().unwrap()).collect();
                assert!(actions.contains(&"keyCredentials.refused"), "{actions:?}");
                assert!(actions.contains(&"keyCredentials.readback"), "{actions:?}");
                let sent_minimal = log
                    .iter()
                    .rfind(|e| e["action"] == "keyCredentials.patch")
                    .unwrap();
                let kept = sent_minimal["after"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["key"] == a.b64())
                    .unwrap();
                assert_eq!(kept.as_object().unwrap().len(), 3, "{kept}");
                // The ledger follows Graph: the first key's record has its new keyId and window.
                let l = read_ledger(&tool.state_dir);
                let rec = l["tenants"][0]["credentials"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["thumbprint_sha1"] == a.sha1_hex())
                    .unwrap()
                    .clone();
                assert_eq!(rec["key_id"], a_now["keyId"], "{rec}");
                assert_eq!(date(&rec["end"]), a.not_after);
            }
        }

        // Removing the second keeps the first (re-sent again) under every mode. The second was
        // issued after the ledger's current certificate, so its removal needs --force.
        let o = tool
            .run_async(&[
                "credential",
                "remove",
                "--tenant",
                &t,
                "--thumbprint",
                &b.sha1_hex(),
                "--yes",
                "--force",
            ])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let ks = keys(&emu.sp(SFB).await);
        assert_eq!(ks.len(), 1, "{mode}: {ks:?}");
        assert_eq!(ks[0]["key"], a.b64(), "{mode}");
        assert!(date(&ks[0]["endDateTime"]) > Utc::now(), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_rewindows_and_rolls_under_each_resend_mode() {
    for mode in MODES {
        let emu = emu(mode).await;
        let tool = Tool::for_emulator(&emu);
        let t = emu.tenant.domain.clone();
        let now = Utc::now();
        let cert = make_cert(
            "sfb.contoso.com",
            now - TimeDelta::days(30),
            now + TimeDelta::days(700),
        );
        let other = fresh_cert("other.contoso.com");
        assert_eq!(
            emu.patch_keys(SFB, serde_json::json!([key_body(&other)]))
                .await
                .0,
            204
        );
        let p = tool.write_cert("c.pem", &cert);
        let end = (now + TimeDelta::days(20)).format("%Y-%m-%d").to_string();
        let o = tool
            .run_async(&[
                "credential",
                "upload",
                "--tenant",
                &t,
                "--cert",
                &p,
                "--yes",
                "--end",
                &end,
            ])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));

        // Re-window: a year's key of the same certificate is in, and valid, whatever Graph did
        // to the kept ones.
        let o = tool.run_async(&["renew", "--tenant", &t, "--yes"]).await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let ks = keys(&emu.sp(SFB).await);
        assert_eq!(of(&ks, &other).len(), 1, "{mode}: the other key survived");
        let latest = of(&ks, &cert)
            .iter()
            .map(|k| date(&k["endDateTime"]))
            .max()
            .unwrap();
        assert!(latest > now + TimeDelta::days(360), "{mode}: {ks:?}");
        let v = json_out(&tool.run_async(&["status", "--tenant", &t]).await);
        assert_eq!(v["tenants"][0]["state"], "ok", "{mode}: {v}");

        // Roll to a new certificate: next to the old one.
        let next = fresh_cert("sfb.contoso.com");
        let np = tool.write_cert("next.pem", &next);
        let o = tool
            .run_async(&["renew", "--tenant", &t, "--new-cert", &np, "--yes"])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let ks = keys(&emu.sp(SFB).await);
        for (name, c) in [("old", &cert), ("new", &next), ("other", &other)] {
            assert!(
                of(&ks, c)
                    .iter()
                    .any(|k| date(&k["endDateTime"]) > Utc::now()),
                "{mode}: the {name} certificate has a valid key: {ks:?}"
            );
        }
        if mode == KeyResend::Minimal {
            let log = audit(&tool);
            assert!(
                log.iter().any(|e| e["action"] == "keyCredentials.refused"
                    && e["note"].as_str().unwrap().starts_with("renew")),
                "the renewal met the refusal and went on"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn onboard_under_each_resend_mode() {
    for mode in MODES {
        let emu = emu(mode).await;
        let tool = Tool::for_emulator(&emu);
        let other = fresh_cert("other.contoso.com");
        assert_eq!(
            emu.patch_keys(SFB, serde_json::json!([key_body(&other)]))
                .await
                .0,
            204
        );
        let now = Utc::now();
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = make_cert_with_key(
            "contoso.com",
            now - TimeDelta::days(1),
            now + TimeDelta::days(700),
            kp,
        );
        let p = pem_with_key(&tool, "oauth.pem", &cert);
        let o = tool
            .run_async(&[
                "onboard",
                "--tenant",
                &emu.tenant.domain,
                "--cert",
                &p,
                "--sip-domain",
                "contoso.com",
                "--pool-fqdn",
                "webext.contoso.com",
                "--yes",
            ])
            .await;
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let v = json_out(&o);
        assert_eq!(v["verified"], true, "{mode}: {v}");
        let ks = keys(&emu.sp(SFB).await);
        assert_eq!(of(&ks, &cert).len(), 1, "{mode}");
        assert_eq!(of(&ks, &other).len(), 1, "{mode}: the other key was kept");
    }
}
