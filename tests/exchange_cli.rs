//! The Exchange Server hybrid trust through the binary against the emulator (issue 27): the
//! export folder as Windows PowerShell 5.1 writes it, `renew --trust exchange` with a 365-day app
//! management policy (the current Auth Certificate uploaded, MEAC's staged one uploaded ahead, the
//! switch, the previous retired), `verify --trust exchange` with its roles, bad export folders
//! refused with nothing changed, and `credential prune --trust exchange --first-party`.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const EXO: &str = "00000002-0000-0ff1-ce00-000000000000";
const ORG: &str = "8d2b4c4e-1a0b-4c2d-9e3f-5a6b7c8d9e0f";

fn utf16le_bom(s: &str) -> Vec<u8> {
    [0xff, 0xfe]
        .into_iter()
        .chain(s.encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect()
}

/// Writes an export folder as the script writes it on Windows PowerShell 5.1: `ConvertTo-Json`
/// indented, `Out-File` UTF-16LE with a BOM, dates as `\/Date(ms)\/`, one DER `.cer` per
/// certificate named.
fn export(
    dir: &std::path::Path,
    org: &str,
    current: &TestCert,
    previous: Option<&TestCert>,
    next: Option<(&TestCert, DateTime<Utc>)>,
) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let q =
        |c: Option<&TestCert>| c.map_or("null".to_string(), |c| format!("\"{}\"", c.sha1_hex()));
    let auth = format!(
        "{{\r\n    \"CurrentCertificateThumbprint\":  \"{}\",\r\n    \"PreviousCertificateThumbprint\":  {},\r\n    \"NextCertificateThumbprint\":  {},\r\n    \"NextCertificateEffectiveDate\":  {}\r\n}}\r\n",
        current.sha1_hex(),
        q(previous),
        q(next.map(|n| n.0)),
        next.map_or("null".to_string(), |(_, e)| format!(
            "\"\\/Date({})\\/\"",
            e.timestamp_millis()
        )),
    );
    std::fs::write(dir.join("authconfig.json"), utf16le_bom(&auth)).unwrap();
    std::fs::write(
        dir.join("organization.json"),
        utf16le_bom(&format!("{{\r\n    \"Guid\":  \"{org}\"\r\n}}\r\n")),
    )
    .unwrap();
    for c in std::iter::once(current)
        .chain(previous)
        .chain(next.map(|n| n.0))
    {
        std::fs::write(dir.join(format!("{}.cer", c.sha1_hex())), &c.der).unwrap();
    }
}

/// The dedicated application's keys, as Graph holds them.
async fn app_keys(emu: &Emu, app_object_id: &str) -> Vec<Value> {
    let (s, _, v) = emu
        .graph(
            Method::GET,
            &format!("applications/{app_object_id}?$select=id,keyCredentials"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["keyCredentials"].as_array().unwrap().clone()
}

fn thumbprints(keys: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = keys
        .iter()
        .map(|k| {
            let der = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                k["key"].as_str().unwrap(),
            )
            .unwrap();
            <sha1::Sha1 as sha1::Digest>::digest(&der)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .collect();
    t.sort();
    t
}

fn date(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn with_key(tool: &Tool, name: &str, c: &TestCert) -> String {
    let p = tool.dir.path().join(name);
    std::fs::write(&p, format!("{}{}", c.cert_pem, c.key_pem)).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exchange_trust_from_first_upload_through_meacs_renewal_to_the_retirement() {
    exchange_lifecycle(true).await;
}

/// MEAC's `-ClearPreviousCertificate`: the export after the switch names no previous
/// certificate; the one the ledger last saw current is retired all the same.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_switch_that_cleared_the_previous_certificate_the_ledgers_one_is_retired() {
    exchange_lifecycle(false).await;
}

async fn exchange_lifecycle(previous_named: bool) {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let tid = emu.tenant.tenant_id.clone();
    let seeded = emu
        .running
        .seed_exchange_app(&tid, ORG.parse().unwrap(), true)
        .unwrap();
    let (app_obj, app_id) = (
        seeded["id"].as_str().unwrap().to_string(),
        seeded["app_id"].as_str().unwrap().to_string(),
    );
    // A 365-day cap on application keys; the Auth Certificates are five-year ones (MEAC's).
    assert_eq!(
        emu.control(
            Method::POST,
            &format!("tenants/{tid}/policy"),
            json!({"max_key_lifetime_days": 365})
        )
        .await,
        204
    );
    let now = Utc::now();
    let old = make_cert(
        "Microsoft Exchange Server Auth Certificate",
        now - TimeDelta::days(1000),
        now + TimeDelta::days(800),
    );
    let dir = tool.dir.path().join("export");
    export(&dir, ORG, &old, None, None);
    let from = dir.display().to_string();

    // 1. The current Auth Certificate: uploaded within the policy, the tenant recorded.
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_out(&o);
    assert_eq!(r["app_id"], app_id.as_str());
    assert_eq!(r["key_lifetime_cap_days"], 365);
    assert_eq!(r["steps"][0]["action"], "upload");
    assert_eq!(r["steps"][0]["outcome"], "applied");
    let keys = app_keys(&emu, &app_obj).await;
    assert_eq!(thumbprints(&keys), vec![old.sha1_hex()]);
    let end = date(&keys[0]["endDateTime"]);
    assert!(
        end <= now + TimeDelta::days(366) && end < old.not_after,
        "{end}"
    );
    let ledger = read_ledger(&tool.state_dir);
    let t = &ledger["tenants"][0];
    assert_eq!(t["exchange"]["app_id"], app_id.as_str());
    assert_eq!(
        t["exchange"]["cert"]["thumbprint_sha1"],
        old.sha1_hex().as_str()
    );
    // A tenant kept only for Exchange: no Skype for Business certificate or target.
    assert!(
        t["cert"].is_null() && t["app_ids"].as_array().unwrap().is_empty(),
        "{t}"
    );
    // The daily `renew --all` has no Skype for Business trust to renew here: nothing fails.
    let o = tool.run_async(&["renew", "--all", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = &read_ledger(&tool.state_dir)["tenants"][0];
    assert!(t["last_renewal_failure"].is_null(), "{t}");
    // Again: nothing to do.
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["steps"], json!([]));

    // The proof: a token for Exchange Online as the dedicated application, with its role.
    let pem = with_key(&tool, "old.pem", &old);
    let o = tool
        .run_async(&[
            "verify", "--trust", "exchange", "--tenant", &tid, "--cert", &pem, "--from", &from,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["app_id"], app_id.as_str());
    assert!(
        v["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("full_access_as_app")),
        "{v}"
    );

    // 2. MEAC renews on-prem: a new five-year certificate staged 30 days ahead. It is uploaded
    // now, next to the current one, within the policy.
    let new = make_cert(
        "Microsoft Exchange Server Auth Certificate",
        now - TimeDelta::hours(1),
        now + TimeDelta::days(1826),
    );
    export(
        &dir,
        ORG,
        &old,
        None,
        Some((&new, now + TimeDelta::days(30))),
    );
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_out(&o);
    assert_eq!(r["steps"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["steps"][0]["role"], "next");
    let keys = app_keys(&emu, &app_obj).await;
    let mut both = vec![old.sha1_hex(), new.sha1_hex()];
    both.sort();
    assert_eq!(thumbprints(&keys), both);
    let new_key = keys
        .iter()
        .find(|k| thumbprints(&[(*k).clone()]) == vec![new.sha1_hex()])
        .unwrap();
    assert!(date(&new_key["endDateTime"]) <= Utc::now() + TimeDelta::days(366));
    // Exchange does not sign with it yet: the old key stays, whatever the date.
    let new_pem = with_key(&tool, "new.pem", &new);
    let o = tool
        .run_async(&[
            "verify", "--trust", "exchange", "--tenant", &tid, "--cert", &new_pem,
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // 3. The switch: the export shows the new certificate current and the old one previous.
    export(&dir, ORG, &new, previous_named.then_some(&old), None);
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_out(&o);
    assert_eq!(r["steps"][0]["action"], "retire-previous", "{r}");
    assert_eq!(r["steps"][0]["outcome"], "applied");
    assert_eq!(
        thumbprints(&app_keys(&emu, &app_obj).await),
        vec![new.sha1_hex()]
    );
    let o = tool
        .run_async(&[
            "verify", "--trust", "exchange", "--tenant", &tid, "--cert", &pem,
        ])
        .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "the retired certificate gets no token"
    );
    let l = read_ledger(&tool.state_dir);
    let x = &l["tenants"][0]["exchange"];
    assert_eq!(x["cert"]["thumbprint_sha1"], new.sha1_hex().as_str());
    assert_eq!(x["credentials"].as_array().unwrap().len(), 1, "{x}");
    // Every change is in the audit log.
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap_or_default();
    assert!(
        audit.matches("keyCredentials.patch").count() >= 3,
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_export_folders_and_a_missing_application_change_nothing() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let tid = emu.tenant.tenant_id.clone();
    let now = Utc::now();
    let c = make_cert("auth", now - TimeDelta::days(1), now + TimeDelta::days(800));
    let other = make_cert(
        "other",
        now - TimeDelta::days(1),
        now + TimeDelta::days(800),
    );
    let dir = tool.dir.path().join("export");
    let from = dir.display().to_string();
    let renew = |tool: &Tool| {
        tool.run(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
    };
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no authconfig.json",
            Box::new(|| {
                export(&dir, ORG, &c, None, None);
                std::fs::remove_file(dir.join("authconfig.json")).unwrap();
            }),
            "has no authconfig.json",
        ),
        (
            "a thumbprint with no .cer",
            Box::new(|| {
                export(&dir, ORG, &c, None, None);
                std::fs::remove_file(dir.join(format!("{}.cer", c.sha1_hex()))).unwrap();
            }),
            ".cer for the current certificate",
        ),
        (
            "a .cer of another certificate",
            Box::new(|| {
                export(&dir, ORG, &c, None, None);
                std::fs::write(dir.join(format!("{}.cer", c.sha1_hex())), &other.der).unwrap();
            }),
            "not the",
        ),
        (
            "unreadable JSON",
            Box::new(|| {
                export(&dir, ORG, &c, None, None);
                std::fs::write(dir.join("authconfig.json"), utf16le_bom("{\"Current")).unwrap();
            }),
            "is not the JSON",
        ),
        (
            "no application for the organization",
            Box::new(|| export(&dir, ORG, &c, None, None)),
            "ConfigureExchangeHybridApplication.ps1 -FullyConfigureExchangeHybridApplication",
        ),
    ];
    for (what, make, says) in cases {
        make();
        let o = renew(&tool);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        assert!(err.contains("hint:"), "{what}: {err}");
        assert!(
            read_ledger(&tool.state_dir)["tenants"]
                .as_array()
                .is_none_or(|t| t.is_empty()),
            "{what}: the ledger changed"
        );
    }
    // Two applications of that name: the user names one.
    for _ in 0..2 {
        let (s, _, v) = emu
            .graph(
                Method::POST,
                "applications",
                Some(json!({"displayName": format!("ExchangeServerApp-{ORG}")})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let o = renew(&tool);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--exchange-app-id"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_first_party_removes_the_onprem_keys_of_the_shared_exchange_principal() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let tid = emu.tenant.tenant_id.clone();
    let now = Utc::now();
    let a = make_cert(
        "hcw-1",
        now - TimeDelta::days(10),
        now + TimeDelta::days(300),
    );
    let b = make_cert(
        "hcw-2",
        now - TimeDelta::days(10),
        now + TimeDelta::days(200),
    );
    let key = |c: &TestCert| {
        json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": c.b64(),
               "startDateTime": c.not_before.to_rfc3339(), "endDateTime": c.not_after.to_rfc3339()})
    };
    let (s, v) = emu.patch_keys(EXO, json!([key(&a), key(&b)])).await;
    assert!(s.is_success(), "{v}");
    // The tenant has the Exchange trust: status --live lists the leftovers, --check warns.
    emu.running
        .seed_exchange_app(&tid, ORG.parse().unwrap(), true)
        .unwrap();
    let auth = make_cert("auth", now - TimeDelta::days(1), now + TimeDelta::days(800));
    let dir = tool.dir.path().join("export");
    export(&dir, ORG, &auth, None, None);
    let o = tool
        .run_async(&[
            "renew",
            "--trust",
            "exchange",
            "--tenant",
            &tid,
            "--from",
            &dir.display().to_string(),
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = json_out(
        &tool
            .run_async(&["status", "--tenant", &tid, "--live"])
            .await,
    );
    let t = &st["tenants"][0];
    let left: Vec<&str> = t["exchange_first_party_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{st}"))
        .iter()
        .map(|k| k["thumbprint"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{st}");
    assert!(left.contains(&a.sha1_hex().as_str()) && left.contains(&b.sha1_hex().as_str()));
    assert_eq!(t["trusts"][0]["kind"], "exchange", "{st}");
    assert_eq!(t["trusts"].as_array().unwrap().len(), 1, "{st}");
    let o = tool
        .run_async(&["status", "--tenant", &tid, "--live", "--check"])
        .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("2 on-premises key(s) left on Exchange Online's shared principal"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Dry run: the plan, nothing changed.
    let o = tool
        .run_async(&[
            "credential",
            "prune",
            "--trust",
            "exchange",
            "--first-party",
            "--tenant",
            &tid,
            "--dry-run",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["outcome"], "planned");
    assert_eq!(
        emu.sp(EXO).await["keyCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Both are valid keys: the last-valid-key guard of the trusts' applications must not stop
    // this (the Exchange trust's key is on the dedicated application).
    let o = tool
        .run_async(&[
            "credential",
            "prune",
            "--trust",
            "exchange",
            "--first-party",
            "--tenant",
            &tid,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_out(&o);
    assert_eq!(r["outcome"], "applied");
    assert_eq!(r["removed"].as_array().unwrap().len(), 2);
    assert!(
        emu.sp(EXO).await["keyCredentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = std::fs::read_to_string(tool.state_dir.join("audit.log")).unwrap_or_default();
    assert!(audit.contains("--first-party"), "{audit}");
    let st = json_out(
        &tool
            .run_async(&["status", "--tenant", &tid, "--live"])
            .await,
    );
    assert_eq!(
        st["tenants"][0]["exchange_first_party_keys"],
        json!([]),
        "{st}"
    );
    // Nothing left: nothing to do.
    let o = tool
        .run_async(&[
            "credential",
            "prune",
            "--trust",
            "exchange",
            "--first-party",
            "--tenant",
            &tid,
            "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["outcome"], "unchanged");
}

/// A tenant whose Auth Certificate Microsoft's script already uploaded (no dates: Entra takes
/// the certificate's): renew has nothing to do, and the ledger records the key the application
/// holds, so status shows the trust as it is rather than missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_microsofts_script_uploaded_is_recorded_as_found() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let tid = emu.tenant.tenant_id.clone();
    let seeded = emu
        .running
        .seed_exchange_app(&tid, ORG.parse().unwrap(), true)
        .unwrap();
    let app_obj = seeded["id"].as_str().unwrap().to_string();
    let now = Utc::now();
    let c = make_cert(
        "auth",
        now - TimeDelta::days(100),
        now + TimeDelta::days(900),
    );
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{app_obj}"),
            Some(json!({"keyCredentials": [{"displayName": "Added by ConfigureExchangeHybridApplication.ps1",
                "keyId": "0b6f2f7e-1c1f-4c38-9c1a-3d3b1b8f2a11", "type": "AsymmetricX509Cert",
                "usage": "Verify", "key": c.b64()}]})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let dir = tool.dir.path().join("export");
    export(&dir, ORG, &c, None, None);
    let from = dir.display().to_string();
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_out(&o)["steps"], json!([]));
    let l = read_ledger(&tool.state_dir);
    let creds = l["tenants"][0]["exchange"]["credentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(creds.len(), 1, "{l}");
    assert_eq!(creds[0]["thumbprint_sha1"], c.sha1_hex().as_str());
    let st = json_out(&tool.run_async(&["status", "--tenant", &tid]).await);
    let t = &st["tenants"][0];
    assert_eq!(t["state"], "ok", "{st}");
    assert_eq!(t["trusts"][0]["kind"], "exchange");
    assert_eq!(t["trusts"][0]["state"], "ok");
}

/// `status --live` reads the Exchange trust's keys from the dedicated application (issue 27):
/// a key removed behind the tool's back (someone re-ran Microsoft's script without the current
/// certificate) shows the trust missing, and a key uploaded by hand shows it healthy again,
/// whatever the ledger says; the ledger itself is left as it was.
#[tokio::test(flavor = "multi_thread")]
async fn status_live_reads_the_exchange_apps_keys_from_graph() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let tid = emu.tenant.tenant_id.clone();
    let seeded = emu
        .running
        .seed_exchange_app(&tid, ORG.parse().unwrap(), true)
        .unwrap();
    let app_obj = seeded["id"].as_str().unwrap().to_string();
    let now = Utc::now();
    let c = make_cert(
        "auth",
        now - TimeDelta::days(100),
        now + TimeDelta::days(900),
    );
    let dir = tool.dir.path().join("export");
    export(&dir, ORG, &c, None, None);
    let from = dir.display().to_string();
    let o = tool
        .run_async(&[
            "renew", "--trust", "exchange", "--tenant", &tid, "--from", &from, "--yes",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let exchange = |st: &Value| {
        st["tenants"][0]["trusts"]
            .as_array()
            .and_then(|t| t.iter().find(|x| x["kind"] == "exchange"))
            .unwrap_or_else(|| panic!("{st}"))["state"]
            .clone()
    };
    let args = ["status", "--tenant", tid.as_str(), "--live"];
    let live = || tool.run_async(&args);
    assert_eq!(exchange(&json_out(&live().await)), "ok");
    // The key goes from the application.
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{app_obj}"),
            Some(json!({"keyCredentials": []})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let ledger_before = read_ledger(&tool.state_dir);
    let st = json_out(&live().await);
    assert_eq!(exchange(&st), "missing", "{st}");
    assert_eq!(st["tenants"][0]["state"], "missing", "{st}");
    let from_ledger = json_out(&tool.run_async(&["status", "--tenant", &tid]).await);
    assert_eq!(exchange(&from_ledger), "ok", "the ledger is not rewritten");
    assert_eq!(read_ledger(&tool.state_dir), ledger_before);
    // Put back by hand the way Microsoft's script does (no dates): the certificate's validity.
    let (s, _, v) = emu
        .graph(
            Method::PATCH,
            &format!("applications/{app_obj}"),
            Some(
                json!({"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify",
                "key": c.b64(), "keyId": "0b6f2f7e-1c1f-4c38-9c1a-3d3b1b8f2a12"}]}),
            ),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let st = json_out(&live().await);
    assert_eq!(exchange(&st), "ok", "{st}");
}
