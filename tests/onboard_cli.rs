//! `onboard` end to end against the emulator: the whole setup, idempotence, stopping before any
//! change on a bad certificate, and a failure midway that says what was done and how to finish.

mod support;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use support::*;

fn pem_with_key(tool: &Tool, cert: &TestCert) -> String {
    let p = tool.dir.path().join("oauth.pem");
    std::fs::write(&p, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    p.display().to_string()
}

fn sfb_cert() -> TestCert {
    let now = Utc::now();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    make_cert_with_key(
        "contoso.com",
        now - TimeDelta::days(1),
        now + TimeDelta::days(700),
        kp,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn onboard_does_everything_once_and_is_idempotent() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = sfb_cert();
    let p = pem_with_key(&tool, &cert);
    let args = [
        "onboard",
        "--tenant",
        emu.tenant.domain.as_str(),
        "--cert",
        p.as_str(),
        "--sip-domain",
        "contoso.com",
        "--pool-fqdn",
        "webext.contoso.com",
        "--yes",
    ];
    let o = tool.run_async(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["changed"], true);
    assert_eq!(v["verified"], true);
    assert_eq!(v["tenant_id"], emu.tenant.tenant_id);
    assert_eq!(v["steps"].as_array().unwrap().len(), 8);
    let e = stderr(&o);
    for n in 1..=8 {
        assert!(
            e.contains(&format!("[{n}/8]")),
            "step {n} says what it did: {e}"
        );
    }
    let sp = emu.sp(SFB).await;
    assert_eq!(sp["keyCredentials"][0]["key"], cert.b64());
    assert!(
        sp["servicePrincipalNames"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{SFB}/webext.contoso.com")))
    );
    let script = std::fs::read_to_string(v["onprem_script"].as_str().unwrap()).unwrap();
    assert!(
        script.contains(&emu.tenant.tenant_id),
        "the script names the tenant"
    );
    assert!(script.contains("-ServiceName '00000004-0000-0ff1-ce00-000000000000'"));
    let st = json_out(&tool.run_async(&["status", "--all"]).await);
    assert_eq!(st["tenants"][0]["state"], "ok");
    assert_eq!(st["tenants"][0]["domain"], emu.tenant.domain);
    // Again: nothing changes, and it says so.
    let o = tool.run_async(&args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["changed"], false);
    assert_eq!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let st = json_out(&tool.run_async(&["status", "--all"]).await);
    assert_eq!(
        st["tenants"].as_array().unwrap().len(),
        1,
        "one ledger record"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_certificate_stops_onboarding_before_any_change() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = sfb_cert();
    let p = pem_with_key(&tool, &cert);
    let o = tool
        .run_async(&[
            "onboard",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &p,
            "--sip-domain",
            "fabrikam.com",
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("SIP domain"), "{}", stderr(&o));
    let certonly = tool.write_cert("public.pem", &cert);
    let o = tool
        .run_async(&[
            "onboard",
            "--tenant",
            &emu.tenant.domain,
            "--cert",
            &certonly,
            "--sip-domain",
            "contoso.com",
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("private key"));
    assert!(
        emu.sp(SFB).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was uploaded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_midway_says_what_was_done_and_how_to_finish_or_undo() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = sfb_cert();
    let p = pem_with_key(&tool, &cert);
    // The first PATCH (the key) goes through; every later one (the names) fails.
    let rules = json!({"rules": [{"kind": "503", "method": "PATCH", "path_contains": "/servicePrincipals", "skip": 1, "times": 50}]});
    assert_eq!(emu.control(Method::POST, "faults", rules).await, 204);
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
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let hint = e.lines().find(|l| l.starts_with("hint:")).unwrap();
    assert!(
        hint.contains("done so far")
            && hint.contains("uploaded certificate")
            && hint.contains("run onboard again")
            && hint.contains("credential remove"),
        "{e}"
    );
    // Finish: the fault is gone, run again.
    assert_eq!(
        emu.control(Method::POST, "faults", json!({"rules": []}))
            .await,
        204
    );
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
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["uploaded_to"], json!([]), "the key was already there");
    assert_eq!(
        v["service_principal_names_added"].as_array().unwrap().len(),
        1
    );
}

/// Entra's clock a second behind ours (under what its `Date` header can show): the key just
/// uploaded (starting at our "now") is not valid for it yet, and the verify step is refused with
/// AADSTS700027. onboard says so, tries again, and verifies once Entra's clock has caught up.
/// Three seconds behind, the lag shows in Graph's `Date`: the key starts on Graph's clock and is
/// verified at once (issue 24).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_key_entra_does_not_see_yet_is_verified_on_a_later_try() {
    for (offset, retried) in [(-1, true), (-3, false)] {
        let emu = Emu::start().await;
        assert_eq!(
            emu.control(Method::POST, "clock", json!({"offset_secs": offset}))
                .await,
            200
        );
        let tool = Tool::for_emulator(&emu);
        let cert = sfb_cert();
        let p = pem_with_key(&tool, &cert);
        let o = tool
            .run_async(&[
                "onboard",
                "--tenant",
                emu.tenant.domain.as_str(),
                "--cert",
                p.as_str(),
                "--sip-domain",
                "contoso.com",
                "--yes",
            ])
            .await;
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{e}");
        assert_eq!(
            e.contains("does not accept the new key yet (AADSTS700027); trying again"),
            retried,
            "{offset}: {e}"
        );
        assert_eq!(json_out(&o)["verified"], true);
    }
}
