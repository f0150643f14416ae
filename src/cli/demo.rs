//! `demo`: the whole onboarding against an in-process emulated tenant on loopback, in seconds,
//! with no network beyond loopback and no prompts. It starts `m365-emulator` in this process
//! (TLS, its own CA), makes a demo OAuthTokenIssuer certificate, runs this very binary's
//! `onboard` against it with a temporary state dir, then shows `status`.

use super::{Context, Failure};
use crate::emulator;
use std::process::Command;

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::runtime(
        anyhow::anyhow!("demo: {e}"),
        Some("this runs only on loopback; report it as a bug".to_string()),
    )
}

/// A demo OAuthTokenIssuer certificate: RSA 2048, CN=sfb.contoso.com, SANs for the SIP domain.
fn demo_certificate() -> Result<String, Failure> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(fail)?;
    let mut p = rcgen::CertificateParams::new(vec![
        "sfb.contoso.com".to_string(),
        "contoso.com".to_string(),
        "sip.contoso.com".to_string(),
    ])
    .map_err(fail)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "sfb.contoso.com");
    dn.push(rcgen::DnType::OrganizationName, "Contoso (demo)");
    p.distinguished_name = dn;
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(730);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.self_signed(&key).map_err(fail)?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

pub fn run(ctx: &Context, serve: bool) -> Result<u8, Failure> {
    let rt = super::runtime()?;
    let emu = rt
        .block_on(emulator::start(emulator::Config {
            tls: true,
            log_requests: false,
            ..emulator::Config::default()
        }))
        .map_err(fail)?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let r = &emu.ready;
    let t = &r.tenants[0];
    let cloud_file = dir.path().join("cloud.json");
    let ca = dir.path().join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).map_err(fail)?;
    let cloud = serde_json::json!({"name": "m365-emulator", "login_url": r.cloud.login_url, "graph_url": r.cloud.graph_url, "acs_url": r.cloud.acs_url, "exchange_url": r.cloud.exchange_url, "ca_file": ca});
    std::fs::write(&cloud_file, cloud.to_string()).map_err(fail)?;
    let cert = dir.path().join("oauth-token-issuer.pem");
    std::fs::write(&cert, demo_certificate()?).map_err(fail)?;
    let state = dir.path().join("state");
    let exe = std::env::current_exe().map_err(fail)?;
    // With --output json, stdout carries one JSON document: the story and the child commands'
    // output go to stderr.
    let json = ctx.printer.json();
    let say = |s: &str| {
        if json {
            ctx.printer.note(s)
        } else {
            ctx.printer.raw(&format!("{s}\n"))
        }
    };
    say(
        "hybrid-trust demo: onboarding an emulated Microsoft 365 tenant (everything stays on this machine)\n",
    );
    say(&format!(
        "  emulated cloud   {} (Entra ID, ACS metadata, Microsoft Graph; TLS with its own CA)",
        r.cloud.login_url
    ));
    say(&format!(
        "  tenant           {} ({})",
        t.domain, t.tenant_id
    ));
    say(
        "  on-prem cert     a fresh RSA-2048 OAuthTokenIssuer certificate for sfb.contoso.com (demo)",
    );
    say(
        "  admin identity   the tenant's admin app, its secret passed in an environment variable\n",
    );
    say("onboard: discover the tenant, check the certificate, sign in, upload the key credential,");
    say("add the pool's service principal name, prove the trust with a real token, write the");
    say("Management Shell script, record the tenant in the ledger.\n");
    let run = |args: &[&str]| -> Result<std::process::ExitStatus, Failure> {
        Command::new(&exe)
            .args(args)
            .env("HYBRID_TRUST_CLOUD_FILE", &cloud_file)
            .env("HYBRID_TRUST_STATE_DIR", &state)
            .env("HYBRID_TRUST_CLIENT_ID", &t.admin.client_id)
            .env("HT_DEMO_SECRET", &t.admin.client_secret)
            .env_remove("HYBRID_TRUST_OUTPUT")
            .env_remove("HYBRID_TRUST_CONFIG")
            .env("HYBRID_TRUST_CONFIG", dir.path().join("no-config.toml"))
            .stdin(std::process::Stdio::null())
            .stdout(if json {
                std::process::Stdio::from(std::io::stderr())
            } else {
                std::process::Stdio::inherit()
            })
            .status()
            .map_err(fail)
    };
    // The config path names a file that does not exist: run with the defaults, not the user's.
    let _ = std::fs::remove_file(dir.path().join("no-config.toml"));
    std::fs::write(dir.path().join("no-config.toml"), "").map_err(fail)?;
    let st = run(&[
        "onboard",
        "--tenant",
        &t.domain,
        "--cert",
        cert.to_str().unwrap_or_default(),
        "--sip-domain",
        "contoso.com",
        "--pool-fqdn",
        "webext.contoso.com",
        "--client-secret-env",
        "HT_DEMO_SECRET",
        "--yes",
    ])?;
    if !st.success() {
        return Err(fail("onboard failed"));
    }
    say(
        "\nstatus: what the ledger says about every tenant (run daily with --check for monitoring):\n",
    );
    let st = run(&["status", "--all"])?;
    if !st.success() {
        return Err(fail("status failed"));
    }
    say("\nWhat next, on your own tenant:");
    say(
        "  hybrid-trust cert inspect oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com",
    );
    say(
        "  hybrid-trust onboard --tenant contoso.onmicrosoft.com --cert oauth.pfx --password-env PFX_PASSWORD --sip-domain contoso.com --pool-fqdn webext.contoso.com",
    );
    say(
        "  hybrid-trust renew --all --yes   and   hybrid-trust remind --all   (daily: scripts/systemd, scripts/cron)",
    );
    if serve {
        say(&format!(
            "\nThe emulator keeps running at {} until Ctrl-C (CA {}, state {}).",
            r.cloud.login_url,
            ca.display(),
            state.display()
        ));
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    if json {
        ctx.printer.emit(&serde_json::json!({"ok": true, "tenant": t.domain, "tenant_id": t.tenant_id, "emulator": r.cloud.login_url}), String::new);
    }
    drop(emu);
    Ok(0)
}
