//! `demo`: for now, starts the emulator in-process on loopback, checks it answers, and shows how
//! to use it. No network beyond loopback, no prompts, exit 0.

use super::{Context, Failure};
use crate::emulator;

pub fn run(_ctx: &Context, serve: bool) -> Result<u8, Failure> {
    let rt = super::runtime()?;
    rt.block_on(demo(serve)).map_err(|e| {
        Failure::runtime(
            e,
            Some("this is a local emulator run; report it as a bug".to_string()),
        )
    })?;
    Ok(0)
}

async fn demo(serve: bool) -> anyhow::Result<()> {
    let config = emulator::Config {
        tls: true,
        log_requests: false,
        ..emulator::Config::default()
    };
    let emu = emulator::start(config).await?;
    let r = &emu.ready;
    let t = &r.tenants[0];
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?;
    let client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    println!("hybrid-trust demo: the built-in Microsoft cloud emulator");
    println!(
        "(the end-to-end onboarding demo is not built yet; this checks the emulator instead)\n"
    );
    let disc: serde_json::Value = client
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            r.cloud.login_url, t.domain
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "1. Entra discovery for {} -> issuer {}",
        t.domain,
        disc["issuer"].as_str().unwrap_or("?")
    );
    let token: serde_json::Value = client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            r.cloud.login_url, t.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", t.admin.client_id.as_str()),
            ("client_secret", t.admin.client_secret.as_str()),
            ("scope", &format!("{}/.default", r.cloud.graph_url)),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = token["access_token"].as_str().unwrap_or_default();
    println!(
        "2. admin app signed in with client credentials (token of {} bytes)",
        access.len()
    );
    let sps: serde_json::Value = client
        .get(format!(
            "{}/v1.0/servicePrincipals?$filter=appId eq '00000004-0000-0ff1-ce00-000000000000'&$select=id,appId,displayName,keyCredentials",
            r.cloud.graph_url
        ))
        .bearer_auth(access)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let sp = &sps["value"][0];
    println!(
        "3. Graph found service principal {} ({}) with {} key credential(s)",
        sp["displayName"].as_str().unwrap_or("?"),
        sp["appId"].as_str().unwrap_or("?"),
        sp["keyCredentials"].as_array().map_or(0, Vec::len)
    );
    println!("\nRun it yourself for your own scripts:");
    println!("  cargo run --release --bin m365-emulator -- --tls --ready-file /tmp/emu.json");
    println!(
        "  # /tmp/emu.json names the URLs, the CA file and each tenant's admin client id and secret;"
    );
    println!("  # its \"cloud\" object is a --cloud-file for hybrid-trust.");
    if serve {
        println!(
            "\nServing at {} until Ctrl-C (CA: {}).",
            r.cloud.login_url,
            r.cloud.ca_file.as_deref().unwrap_or("-")
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
