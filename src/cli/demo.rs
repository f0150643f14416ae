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
    // The demo writes its folder and plays its own calendar (the emulator's moved clock).
    ctx.refuse_as_of("demo")?;
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
    say(&demo.intro());
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
    say(&format!(
        "\nrenew --trust exchange: the Exchange Auth Certificate's key onto {}'s dedicated application, from the on-prem export in ./{FOLDER}/{}/:\n",
        t.domain,
        crate::demo::EXCHANGE_EXPORT
    ));
    let export = demo
        .folder
        .join(crate::demo::EXCHANGE_EXPORT)
        .display()
        .to_string();
    let exchange = [
        "renew",
        "--trust",
        "exchange",
        "--tenant",
        &t.domain,
        "--from",
        &export,
        "--client-secret-env",
        "HT_DEMO_SECRET",
        "--yes",
    ];
    if !demo.tool(&exchange, json).map_err(fail)? {
        return Err(fail(DemoError::Failed(
            "renew --trust exchange failed".into(),
        )));
    }
    say(
        "\nstatus: what the ledger says about every tenant (run daily with --check for monitoring):\n",
    );
    if !demo.tool(&["status", "--all"], json).map_err(fail)? {
        return Err(fail(DemoError::Failed("status failed".into())));
    }
    rt.block_on(demo.year(&say)).map_err(fail)?;
    say(&crate::demo::outro());
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
