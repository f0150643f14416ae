//! Issue 14, defect 9: text that comes from outside (here a key's `displayName` set through
//! Graph) never reaches the terminal as control characters: no ESC (`ESC[2J` clears the screen,
//! `ESC]0;… BEL` retitles the window), no BEL, no C1 control, no bidi override, and no newline
//! that would forge a line of output. JSON output escapes them too.

mod support;

use serde_json::json;
use support::*;

const HOSTILE: &str = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}\nforged line\u{9b}31m\u{202e}gnp.exe";

fn assert_clean(what: &str, o: &std::process::Output) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
            assert!(
                !text.contains(bad),
                "{what}: {stream} carries U+{:04X}: {text:?}",
                bad as u32
            );
        }
        assert!(
            !text.lines().any(|l| l.starts_with("forged line")),
            "{what}: {stream} has a forged line: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn display_names_from_graph_are_escaped_in_text_and_json() {
    let emu = Emu::start().await;
    let tool = Tool::for_emulator(&emu);
    let cert = fresh_cert("hostile.contoso.com");
    let mut key = key_body(&cert);
    key["displayName"] = json!(HOSTILE);
    let (s, v) = emu.patch_keys(SFB, json!([key])).await;
    assert!(s.is_success(), "{v}");
    let t = emu.tenant.domain.clone();

    // credential list, text.
    let mut c = tool.command();
    c.args([
        "--client-secret-env",
        "HT_TEST_SECRET",
        "credential",
        "list",
        "--tenant",
        &t,
    ]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_clean("credential list", &o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&cert.sha1_hex()), "{out}");
    assert!(
        out.contains("evil\\x1b[2J\\x1b]0;pwned\\x07\\nforged line\\u{9b}31m\\u{202e}gnp.exe"),
        "the name is shown, escaped: {out}"
    );

    // The upload plan (dry run) lists the key it keeps, with its name.
    let other = fresh_cert("new.contoso.com");
    let path = tool.write_cert("new.pem", &other);
    let mut c = tool.command();
    c.args([
        "--client-secret-env",
        "HT_TEST_SECRET",
        "credential",
        "upload",
        "--tenant",
        &t,
        "--cert",
        &path,
        "--dry-run",
    ]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_clean("credential upload --dry-run", &o);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("evil\\x1b[2J"), "{all}");

    // JSON: still the exact name once decoded, but no raw control character on the wire.
    let o = tool
        .run_async(&["credential", "list", "--tenant", &t])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_clean("credential list --output json", &o);
    assert_eq!(
        json_out(&o)["credentials"][0]["display_name"],
        json!(HOSTILE)
    );
}
