//! `login` / `logout` with real OS keyrings on Linux: the Secret Service (gnome-keyring under
//! `dbus-run-session`) and the kernel keyring (under `keyctl session`); the device code flow
//! with its refresh token stored; flags and environment winning over a stored login.
//! scripts/test.sh installs dbus, gnome-keyring and keyutils.

mod support;

use std::process::Command;
use support::*;

fn need(bin: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false),
        "{bin} is missing: run scripts/test.sh (it installs dbus, gnome-keyring and keyutils)"
    );
}

fn script(tool: &Tool, body: &str) -> std::path::PathBuf {
    let p = tool.dir.path().join("session.sh");
    let text = format!(
        "set -u\nexport HYBRID_TRUST_CLOUD_FILE='{}' HYBRID_TRUST_STATE_DIR='{}' HT_TEST_SECRET='{}'\nunset HYBRID_TRUST_CLIENT_ID HYBRID_TRUST_CLIENT_SECRET HYBRID_TRUST_KEYRING\nH='{}'\nCID='{}'\n{body}\n",
        tool.cloud_file.display(),
        tool.state_dir.display(),
        tool.secret,
        env!("CARGO_BIN_EXE_hybrid-trust"),
        tool.client_id
    );
    std::fs::write(&p, text).unwrap();
    p
}

const FLOW: &str = r#"
step() { echo "== $1"; }
step login; $H login --tenant contoso.onmicrosoft.com --client-id "$CID" --client-secret-env HT_TEST_SECRET; echo "rc=$?"
step list-stored; $H --output json credential list --tenant contoso.onmicrosoft.com; echo "rc=$?"
step flags-win; HT_BAD=wrong $H credential list --tenant contoso.onmicrosoft.com --client-id "$CID" --client-secret-env HT_BAD 2>&1; echo "rc=$?"
step logout; $H logout --tenant contoso.onmicrosoft.com; echo "rc=$?"
step list-gone; $H credential list --tenant contoso.onmicrosoft.com 2>&1; echo "rc=$?"
step device; $H login --tenant contoso.onmicrosoft.com --device-code 2>&1; echo "rc=$?"
step list-refresh; $H --output json credential list --tenant contoso.onmicrosoft.com; echo "rc=$?"
step logout2; $H logout --tenant contoso.onmicrosoft.com; echo "rc=$?"
"#;

fn check(out: &std::process::Output, tenant_id: &str, keyring: &str) {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let section = |name: &str| -> String {
        let start = text
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no section {name} in:\n{text}"));
        let rest = &text[start + name.len() + 4..];
        rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
    };
    assert!(
        section("login").contains("rc=0") && section("login").contains(keyring),
        "{text}"
    );
    assert!(
        section("list-stored").contains("rc=0") && section("list-stored").contains(tenant_id),
        "{text}"
    );
    assert!(
        section("flags-win").contains("AADSTS7000215") && section("flags-win").contains("rc=1"),
        "flags win over the stored login: {text}"
    );
    assert!(section("logout").contains("removed"), "{text}");
    assert!(
        section("list-gone").contains("no admin identity") && section("list-gone").contains("rc=2"),
        "{text}"
    );
    assert!(
        section("device").contains("enter the code") && section("device").contains("rc=0"),
        "{text}"
    );
    assert!(
        section("list-refresh").contains("rc=0") && section("list-refresh").contains("\"app_id\""),
        "the refresh token signs in: {text}"
    );
    assert!(!text.contains("emu-rt."), "no refresh token printed");
}

fn device_emulator_config() -> m365_emulator::Config {
    let mut cfg = quiet_tls();
    cfg.behaviour.device_code_approve_after_ms = 300;
    cfg.behaviour.device_code_interval_secs = 1;
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_service_keyring_round_trip() {
    need("dbus-run-session");
    need("gnome-keyring-daemon");
    let emu = Emu::start_with(device_emulator_config()).await;
    let tool = Tool::for_emulator(&emu);
    let body = format!(
        "export XDG_DATA_HOME='{}' HOME='{}'\necho -n test-keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null\n{FLOW}",
        tool.dir.path().join("data").display(),
        tool.dir.path().display()
    );
    let s = script(&tool, &body);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["120", "dbus-run-session", "--", "bash"])
            .arg(s)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    check(&out, &emu.tenant.tenant_id, "Secret Service");
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_keyring_round_trip() {
    need("keyctl");
    let emu = Emu::start_with(device_emulator_config()).await;
    let tool = Tool::for_emulator(&emu);
    let s = script(
        &tool,
        &format!("export HYBRID_TRUST_KEYRING=keyutils\n{FLOW}"),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["120", "keyctl", "session", "-", "bash"])
            .arg(s)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    check(&out, &emu.tenant.tenant_id, "kernel keyring");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pfx_password_from_the_kernel_keyring() {
    need("keyctl");
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let pfx = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs/sfb-aes.pfx");
    let body = format!(
        "export HYBRID_TRUST_KEYRING=keyutils PW='Passw0rd!' WRONG=nope\n\
         $H cert remember-password {pfx} --password-env WRONG; echo \"rc=$?\"\n\
         $H cert remember-password {pfx} --password-env PW; echo \"rc=$?\"\n\
         $H --output json cert inspect {pfx} --password-keyring; echo \"rc=$?\"\n\
         P=$(keyctl get_persistent @s); K=$(keyctl search $P user \"keyring:pfx-password:{pfx}@hybrid-trust\") \
         && keyctl unlink $K $P >/dev/null && echo removed\n"
    );
    let s = script(&tool, &body);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["60", "keyctl", "session", "-", "bash"])
            .arg(s)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("wrong password for PFX"),
        "a wrong password is not stored: {text}"
    );
    assert!(text.contains("stored the password of"), "{text}");
    assert!(
        text.contains("\"thumbprint_sha1\": \"C018A043066A6F5CEC76253A1D3CAE84C0E2F730\""),
        "{text}"
    );
    assert!(!text.contains("Passw0rd!"), "never printed");
    // The kernel keyring store keeps entries in the user's persistent keyring, beyond this
    // session: the test's own entry is removed.
    assert!(text.contains("removed"), "{text}");
}
