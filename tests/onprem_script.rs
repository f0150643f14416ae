//! The Management Shell script: snapshots of each case (rendered with a fixed date), drift from
//! saved Get-Cs* output (UTF-8 and UTF-16 LE with BOM, wrapped lines, several objects), and
//! refusal of values that cannot be quoted safely.

use chrono::TimeZone as _;
use hybrid_trust::onprem::{self, Current, Fqdn, Guid, HttpsUrl, ScriptInput};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TID: &str = "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f";

fn getcs(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/getcs")).join(name)
}

fn input(pools: &[&str], autodiscover: Option<&str>, client_auth: bool) -> ScriptInput {
    ScriptInput {
        tenant_id: Guid::parse("t", TID).unwrap(),
        metadata_url: HttpsUrl::parse(
            "m",
            &format!("https://accounts.accesscontrol.windows.net/{TID}/metadata/json/1"),
        )
        .unwrap(),
        pool_fqdns: pools.iter().map(|p| Fqdn::parse("p", p).unwrap()).collect(),
        autodiscover_url: autodiscover.map(|u| HttpsUrl::parse("a", u).unwrap()),
        client_auth_sts: client_auth,
        generated_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
            .unwrap(),
    }
}

fn script_for(dir: Option<&str>, i: &ScriptInput) -> (String, Vec<onprem::Drift>) {
    let d = dir.map(|d| {
        let c = Current::load_dir(&getcs(d)).unwrap();
        onprem::compare(
            &c,
            i.metadata_url.as_str(),
            i.autodiscover_url.as_ref().map(HttpsUrl::as_str),
            i.client_auth_sts,
        )
    });
    (
        onprem::render(i, d.as_ref()),
        d.map(|d| d.drift).unwrap_or_default(),
    )
}

#[test]
fn full_script_snapshot() {
    let (s, _) = script_for(
        None,
        &input(
            &["webext.contoso.com", "webext2.contoso.com"],
            Some("https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc"),
            true,
        ),
    );
    insta::assert_snapshot!("full", s);
}

#[test]
fn minimal_script_snapshot() {
    let (s, _) = script_for(None, &input(&[], None, false));
    insta::assert_snapshot!("minimal", s);
    assert!(s.contains("-ServiceName '00000004-0000-0ff1-ce00-000000000000'"));
    assert!(s.contains("New-CsPartnerApplication -Identity microsoft.exchange -ApplicationIdentifier $ExchangeAppId -ApplicationTrustLevel Full -UseOAuthServer"));
    assert!(s.contains(&format!(
        "$MetadataUrl = 'https://accounts.accesscontrol.windows.net/{TID}/metadata/json/1'"
    )));
    assert!(!s.contains("ExchangeAutodiscoverUrl '"), "only when given");
}

#[test]
fn no_drift_leaves_only_checks_and_verification() {
    let (s, drift) = script_for(
        Some("ok"),
        &input(
            &[],
            Some("https://autodiscover-s.outlook.com/autodiscover/autodiscover.svc"),
            false,
        ),
    );
    assert!(drift.is_empty(), "{drift:?}");
    insta::assert_snapshot!("no_drift", s);
    assert!(
        !s.contains("New-CsOAuthServer")
            && !s.contains("New-CsPartnerApplication")
            && !s.contains("Set-CsOAuthConfiguration")
    );
    assert!(
        s.contains("Get-CsCertificate -Type OAuthTokenIssuer"),
        "the certificate check stays"
    );
}

#[test]
fn stale_utf16_output_is_read_and_every_difference_fixed() {
    let (s, drift) = script_for(Some("stale-utf16"), &input(&[], None, true));
    let props: Vec<String> = drift
        .iter()
        .map(|d| format!("{} {}", d.object, d.property))
        .collect();
    assert_eq!(
        props,
        vec![
            "certificate OAuthTokenIssuer Thumbprint",
            "OAuthServer microsoft.sts MetadataUrl",
            "PartnerApplication microsoft.exchange ApplicationTrustLevel",
            "PartnerApplication microsoft.exchange UseOAuthServer",
            "OAuthConfiguration global ServiceName",
            "OAuthConfiguration global ClientAuthorizationOAuthServerIdentity",
        ]
    );
    assert_eq!(
        drift[1].current.as_deref(),
        Some(
            "https://accounts.accesscontrol.windows.net/5f1e2d3c-0000-4b2a-9c8d-7e6f5a4b3c2d/metadata/json/1"
        ),
        "wrapped line joined"
    );
    assert_eq!(drift[5].current.as_deref(), Some("exch2016.contoso.com"));
    insta::assert_snapshot!("stale", s);
    assert!(
        s.contains("Remove-CsOAuthServer")
            && s.contains("-ClientAuthorizationOAuthServerIdentity microsoft.sts")
    );
}

#[test]
fn a_stale_client_auth_server_is_reported_but_not_changed_unless_asked() {
    let (s, drift) = script_for(Some("stale-utf16"), &input(&[], None, false));
    let d = drift
        .iter()
        .find(|d| d.property == "ClientAuthorizationOAuthServerIdentity")
        .unwrap();
    assert!(d.action.contains("--client-auth-oauth-server"));
    assert!(!s.contains("-ClientAuthorizationOAuthServerIdentity"));
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .output()
        .unwrap()
}

#[test]
fn cli_refuses_unsafe_values_with_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.ps1");
    let o = out.to_str().unwrap();
    for args in [
        vec![
            "onprem",
            "script",
            "--tenant",
            "x';Remove-CsOAuthServer;'",
            "--out",
            o,
        ],
        vec![
            "onprem",
            "script",
            "--tenant",
            TID,
            "--pool-fqdn",
            "web ext.contoso.com",
            "--out",
            o,
        ],
        vec![
            "onprem",
            "script",
            "--tenant",
            TID,
            "--pool-fqdn",
            "a.com'+$(calc)",
            "--out",
            o,
        ],
        vec![
            "onprem",
            "script",
            "--tenant",
            TID,
            "--autodiscover-url",
            "http://autodiscover.contoso.com/x",
            "--out",
            o,
        ],
        vec![
            "onprem",
            "script",
            "--tenant",
            TID,
            "--autodiscover-url",
            "https://a.com/x'$(calc)",
            "--out",
            o,
        ],
        vec![
            "onprem",
            "script",
            "--tenant",
            TID,
            "--current",
            "/nonexistent",
            "--out",
            o,
        ],
    ] {
        let r = cli(&args);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            String::from_utf8_lossy(&r.stderr)
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count()
                == 1
        );
        assert!(!out.exists());
    }
}

#[test]
fn cli_writes_the_script_and_json_reports_drift() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fix.ps1");
    let r = cli(&[
        "--output",
        "json",
        "onprem",
        "script",
        "--tenant",
        TID,
        "--current",
        getcs("stale-utf16").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["tenant_id"], TID);
    assert_eq!(v["drift"].as_array().unwrap().len(), 6);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        v["script"].as_str().unwrap()
    );
    let r = cli(&[
        "onprem",
        "script",
        "--tenant",
        TID,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2), "no silent overwrite");
    // Without --out the script is the only thing on stdout.
    let r = cli(&["onprem", "script", "--tenant", TID]);
    assert!(String::from_utf8_lossy(&r.stdout).starts_with("#Requires -Version 3.0"));
}
