//! `demo`: the library's demo ([`crate::demo`]) told on the terminal: an emulated tenant
//! onboarded by this binary, then the yearly job on a moved clock; what it made stays in
//! `./hybrid-trust-demo/`.

use super::{Context, Failure};
use crate::demo::{Demo, DemoError, FOLDER};

fn fail(e: DemoError) -> Failure {
    let hint = Some(e.hint());
    match e {
        DemoError::NotOurs(_) => Failure::input(e, hint),
        DemoError::Failed(_) => Failure::runtime(e, hint),
    }
}

pub fn run(ctx: &Context, serve: bool) -> Result<u8, Failure> {
    let rt = super::runtime()?;
    let folder = std::path::Path::new(FOLDER);
    let demo = rt.block_on(Demo::start(folder)).map_err(fail)?;
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
    let (r, t) = (&demo.emu.ready, &demo.tenant);
    say(
        "hybrid-trust demo: onboarding an emulated Microsoft 365 tenant, then a year of renewals (everything stays on this machine)\n",
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
    let cert = demo.cert.display().to_string();
    let onboard = [
        "onboard",
        "--tenant",
        &t.domain,
        "--cert",
        &cert,
        "--sip-domain",
        "contoso.com",
        "--pool-fqdn",
        "webext.contoso.com",
        "--client-secret-env",
        "HT_DEMO_SECRET",
        "--yes",
    ];
    if !demo.tool(&onboard, json).map_err(fail)? {
        return Err(fail(DemoError::Failed("onboard failed".into())));
    }
    say(
        "\nstatus: what the ledger says about every tenant (run daily with --check for monitoring):\n",
    );
    if !demo.tool(&["status", "--all"], json).map_err(fail)? {
        return Err(fail(DemoError::Failed("status failed".into())));
    }
    rt.block_on(demo.year(&say)).map_err(fail)?;
    say(&format!(
        "\nWhat the demo made is in ./{FOLDER}/: state/ (ledger.json, audit.log, the on-prem scripts), the certificates, and cloud.json + emulator-ca.pem to point the tool at the emulator (with demo --serve)."
    ));
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
            "\nThe emulator keeps running at {} until Ctrl-C (HYBRID_TRUST_CLOUD_FILE={}, HYBRID_TRUST_STATE_DIR={}).",
            r.cloud.login_url,
            demo.cloud_file.display(),
            demo.state.display()
        ));
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    if json {
        ctx.printer.emit(&serde_json::json!({"ok": true, "tenant": t.domain, "tenant_id": t.tenant_id, "emulator": r.cloud.login_url, "folder": FOLDER}), String::new);
    }
    Ok(0)
}
