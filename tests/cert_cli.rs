//! `cert inspect` and `cert export` against fixtures made by OpenSSL (scripts/gen-fixtures.sh),
//! cross-checked with OpenSSL's own fingerprints, dates and DER (fixtures/certs/expected.tsv).

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const PW: &str = "Passw0rd!";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs")).join(name)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"));
    c.args(args)
        .stdin(Stdio::null())
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_AS_OF");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("runs")
}

fn inspect_json(file: &str, extra: &[&str]) -> (i32, Value) {
    let path = fixture(file);
    let mut args = vec![
        "--output",
        "json",
        "cert",
        "inspect",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args, &[("FIXTURE_PW", PW)]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

struct Expected {
    sha1: String,
    not_before: String,
    not_after: String,
    base64: String,
}

fn expected() -> HashMap<String, Expected> {
    let text = std::fs::read_to_string(fixture("expected.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                Expected {
                    sha1: f[1].into(),
                    not_before: f[2].into(),
                    not_after: f[3].into(),
                    base64: f[4].into(),
                },
            )
        })
        .collect()
}

#[test]
fn every_format_of_the_same_certificate_gives_openssls_facts() {
    let exp = expected();
    let sfb = &exp["sfb.pem"];
    // (file, needs password, has key, format)
    let cases = [
        ("sfb.pem", false, false, "PEM"),
        ("sfb.der", false, false, "DER"),
        ("sfb-crlf.cer", false, false, "PEM"),
        ("sfb-bare.b64", false, false, "Base64"),
        ("sfb-oneline.b64", false, false, "Base64"),
        ("sfb-chain-ca-first.pem", false, false, "PEM"),
        ("sfb-key-cert-chain.pem", false, true, "PEM"),
        ("sfb-pkcs1-key-cert.pem", false, true, "PEM"),
        ("sfb-empty-password.pfx", false, true, "PFX"),
        ("sfb-aes.pfx", true, true, "PFX"),
        ("sfb-3des.pfx", true, true, "PFX"),
        ("sfb-rc2.pfx", true, true, "PFX"),
        ("sfb-chain.pfx", true, true, "PFX"),
        ("sfb-certonly.pfx", true, false, "PFX"),
        ("sfb-aes-pfx.b64", true, true, "PFX"),
    ];
    for (file, pw, key, format) in cases {
        let extra: &[&str] = if pw {
            &["--password-env", "FIXTURE_PW"]
        } else {
            &[]
        };
        let (code, v) = inspect_json(file, extra);
        assert_eq!(code, 0, "{file}: {v}");
        assert_eq!(v["thumbprint_sha1"], sfb.sha1.as_str(), "{file}");
        assert_eq!(v["not_before"], sfb.not_before.as_str(), "{file}");
        assert_eq!(v["not_after"], sfb.not_after.as_str(), "{file}");
        assert_eq!(
            v["base64"],
            sfb.base64.as_str(),
            "{file}: base64 equals OpenSSL's DER"
        );
        assert_eq!(v["has_private_key"], key, "{file}");
        assert_eq!(v["format"], format, "{file}");
        if key {
            assert_eq!(v["private_key_matches"], true, "{file}");
        }
        assert_eq!(
            v["subject"], "CN=sfb.contoso.com, O=Contoso, C=US",
            "{file}"
        );
        assert_eq!(
            v["sans"],
            serde_json::json!([
                "sfb.contoso.com",
                "*.contoso.com",
                "lyncdiscover.contoso.com"
            ]),
            "{file}"
        );
        assert_eq!(
            (v["key_type"].as_str(), v["key_bits"].as_u64()),
            (Some("RSA"), Some(2048)),
            "{file}"
        );
    }
    let (_, v) = inspect_json("sfb-chain.pfx", &["--password-env", "FIXTURE_PW"]);
    assert_eq!(v["chain"], serde_json::json!(["CN=Contoso Test Root CA"]));
}

#[test]
fn json_has_exactly_the_contract_keys_and_thumbprint_forms() {
    let (_, v) = inspect_json("sfb.pem", &[]);
    for k in [
        "subject",
        "issuer",
        "sans",
        "not_before",
        "not_after",
        "key_type",
        "key_bits",
        "thumbprint_sha1",
        "x5t",
        "x5t_s256",
        "has_private_key",
        "base64",
        "findings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let t = v["thumbprint_sha1"].as_str().unwrap();
    assert!(
        t.len() == 40
            && t.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    use base64::Engine as _;
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["x5t"].as_str().unwrap())
        .unwrap();
    let hex: String = x5t.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex, t, "x5t is the base64url of the SHA-1 thumbprint");
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v["x5t_s256"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert!(!v["base64"].as_str().unwrap().contains('\n'));
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["severity"].as_str().unwrap(),
                f["code"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn oauth_token_issuer_rules_become_findings_with_exit_1_on_errors() {
    let exp = expected();
    let cases: Vec<(&str, Vec<&str>, Vec<&str>, i32)> = vec![
        (
            "sfb.pem",
            vec!["--sip-domain", "sfb.contoso.com"],
            vec![],
            0,
        ),
        (
            "sfb.pem",
            vec!["--sip-domain", "sip.contoso.com"],
            vec![],
            0,
        ),
        (
            "sfb.pem",
            vec!["--sip-domain", "fabrikam.com"],
            vec!["error:sip-domain-missing"],
            1,
        ),
        (
            "sfb.pem",
            vec!["--require-private-key"],
            vec!["error:no-private-key"],
            1,
        ),
        ("weak-1024.pem", vec![], vec!["error:key-too-small"], 1),
        ("ec-p256.pem", vec![], vec!["error:key-not-rsa"], 1),
        ("ec-p256-key-cert.pem", vec![], vec!["error:key-not-rsa"], 1),
        ("sha1-signed.pem", vec![], vec!["warning:sha1-signature"], 0),
        (
            "no-digital-signature.pem",
            vec![],
            vec!["error:key-usage-no-signature"],
            1,
        ),
        (
            "mismatched-key.pem",
            vec![],
            vec!["error:private-key-mismatch"],
            1,
        ),
    ];
    for (file, args, want, code) in cases {
        let (c, v) = inspect_json(file, &args);
        assert_eq!(codes(&v), want, "{file} {args:?}");
        assert_eq!(c, code, "{file} {args:?}");
        for f in v["findings"].as_array().unwrap() {
            assert!(
                f["message"].as_str().unwrap().contains(':'),
                "message says what to do: {f}"
            );
        }
    }
    let (_, v) = inspect_json("ec-p256-key-cert.pem", &[]);
    assert_eq!(v["private_key_matches"], true, "EC keys are matched too");
    // Dates, evaluated --as-of.
    let nb = &exp["sfb.pem"].not_before;
    let before = format!("{}0Z", &nb[..nb.len() - 2]).replace(&nb[..4], "2020");
    let out = run(
        &[
            "--output",
            "json",
            "--as-of",
            &before,
            "cert",
            "inspect",
            fixture("sfb.pem").to_str().unwrap(),
        ],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (codes(&v), out.status.code()),
        (vec!["error:not-yet-valid".to_string()], Some(1))
    );
    for (as_of, want, code) in [
        ("2126-10-20T00:00:00Z", "warning:expires-soon", 0),
        ("2127-01-01T00:00:00Z", "error:expired", 1),
    ] {
        let out = run(
            &[
                "--output",
                "json",
                "--as-of",
                as_of,
                "cert",
                "inspect",
                fixture("sfb.pem").to_str().unwrap(),
            ],
            &[],
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (codes(&v), out.status.code()),
            (vec![want.to_string()], Some(code)),
            "{as_of}"
        );
    }
    let (_, v) = inspect_json("forever-9999.pem", &[]);
    assert_eq!(v["not_after"], exp["forever-9999.pem"].not_after.as_str());
    assert!(v["not_after"].as_str().unwrap().starts_with("9999-12-31T"));
}

#[test]
fn bad_input_exits_2_with_one_error_line_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (fixture("empty.pem"), vec![], "is empty"),
        (fixture("whitespace.pem"), vec![], "is empty"),
        (fixture("garbage.bin"), vec![], "not a certificate"),
        (fixture("text.txt"), vec![], "not a certificate"),
        (fixture("truncated.der"), vec![], "truncated"),
        (fixture("truncated.pfx"), vec![], "PFX is malformed"),
        (
            fixture("unterminated.pem"),
            vec![],
            "no -----END CERTIFICATE-----",
        ),
        (fixture("bad-base64.pem"), vec![], "not valid Base64"),
        (fixture("key-only.pem"), vec![], "no certificate"),
        (
            fixture("encrypted-key-cert.pem"),
            vec![],
            "encrypted PEM private key",
        ),
        (fixture("sfb-aes.pfx"), vec![], "no password was given"),
        (
            fixture("sfb-aes.pfx"),
            vec!["--password-env", "WRONG_PW"],
            "wrong password",
        ),
        (
            fixture("sfb-aes.pfx"),
            vec!["--password-env", "HYBRID_TRUST_TEST_UNSET"],
            "not set",
        ),
        (
            fixture("sfb-aes.pfx"),
            vec!["--password-file", "/nonexistent/pw"],
            "cannot read the password",
        ),
        (fixture("."), vec![], "is a directory"),
        (fixture("nosuch.pem"), vec![], "cannot read"),
        (big, vec![], "too large"),
    ];
    for (path, extra, want) in cases {
        let mut args = vec!["cert", "inspect", path.to_str().unwrap()];
        args.extend_from_slice(&extra);
        let out = run(&args, &[("WRONG_PW", "nope")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {err}");
        assert!(out.stdout.is_empty(), "{path:?}");
        let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error_lines.len(), 1, "{path:?}: {err}");
        assert!(error_lines[0].contains(want), "{path:?}: {err}");
        assert!(
            err.lines().any(|l| l.starts_with("hint:")),
            "{path:?}: every error says what to do: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn password_file_and_the_pfx_password_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, format!("{PW}\r\n")).unwrap();
    let out = run(
        &[
            "cert",
            "inspect",
            fixture("sfb-aes.pfx").to_str().unwrap(),
            "--password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PW));
    assert!(!all.contains("PRIVATE KEY"));
}

#[test]
fn export_prints_base64_der_or_writes_a_windows_cer_without_key_material() {
    let exp = expected();
    let out = run(
        &[
            "cert",
            "export",
            fixture("sfb-aes.pfx").to_str().unwrap(),
            "--password-env",
            "FIXTURE_PW",
        ],
        &[("FIXTURE_PW", PW)],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", exp["sfb.pem"].base64)
    );

    let dir = tempfile::tempdir().unwrap();
    let cer = dir.path().join("oauth.cer");
    let cer_s = cer.to_str().unwrap();
    let out = run(
        &[
            "cert",
            "export",
            fixture("sfb-key-cert-chain.pem").to_str().unwrap(),
            "--out",
            cer_s,
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cer).unwrap();
    assert!(
        text.starts_with("-----BEGIN CERTIFICATE-----\r\n")
            && text.ends_with("-----END CERTIFICATE-----\r\n")
    );
    assert!(!text.contains("PRIVATE"));
    assert!(
        text.split("\r\n")
            .all(|l| l.len() <= 64 || l.starts_with("-----"))
    );
    // OpenSSL reads it back to the same certificate.
    if let Ok(o) = Command::new("openssl")
        .args(["x509", "-in", cer_s, "-noout", "-fingerprint", "-sha1"])
        .output()
    {
        let fp = String::from_utf8_lossy(&o.stdout).replace(':', "");
        assert!(fp.contains(&exp["sfb.pem"].sha1), "{fp}");
    }
    // Never overwrites silently; --force does.
    let before = std::fs::read(&cer).unwrap();
    let out = run(
        &[
            "cert",
            "export",
            fixture("other.pem").to_str().unwrap(),
            "--out",
            cer_s,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&cer).unwrap(), before, "unchanged");
    let out = run(
        &[
            "cert",
            "export",
            fixture("other.pem").to_str().unwrap(),
            "--out",
            cer_s,
            "--force",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read(&cer).unwrap(), before);
    // --as-of is refused for a write.
    let out = run(
        &[
            "--as-of",
            "2030-01-01T00:00:00Z",
            "cert",
            "export",
            fixture("sfb.pem").to_str().unwrap(),
            "--out",
            dir.path().join("x.cer").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("x.cer").exists());
    // So are the other commands that change something: the keyring, the demo's folder.
    for args in [
        vec![
            "cert",
            "remember-password",
            "x.pfx",
            "--password-env",
            "NOPE",
        ],
        vec!["demo"],
    ] {
        let mut a = vec!["--as-of", "2030-01-01T00:00:00Z"];
        a.extend(args);
        // In a scratch directory: were the demo to run, its folder lands there.
        let out = Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args(&a)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .env_remove("HYBRID_TRUST_OUTPUT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--as-of is for read-only commands"),
            "{a:?}: {err}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["cert", "inspect"],
        vec!["--as-of", "yesterday", "cert", "inspect", "x"],
        vec!["--output", "yaml", "cert", "inspect", "x"],
        vec!["cert", "frobnicate"],
    ] {
        let out = run(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
}

/// On a terminal with no password flag, `cert inspect` asks for the PFX password on /dev/tty
/// with echo off: the right one opens the file, a wrong one exits 2 with one error line, and the
/// typed password never shows on the terminal.
#[test]
fn the_terminal_prompt_opens_a_pfx_and_never_echoes_the_password() {
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tty_prompt.py");
    let pfx = fixture("sfb-aes.pfx");
    let on_tty = |answer: &str| {
        let o = Command::new("python3")
            .arg(driver)
            .arg(env!("CARGO_BIN_EXE_hybrid-trust"))
            .args(["cert", "inspect"])
            .arg(&pfx)
            .env("TTY_INPUT", answer)
            .env("NO_COLOR", "1")
            .env_remove("HYBRID_TRUST_OUTPUT")
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, text) = on_tty("Passw0rd!");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PFX password:"), "it asked: {text}");
    let tp = &expected()["sfb.pem"].sha1;
    assert!(text.contains(tp.as_str()), "{text}");
    assert!(
        !text.contains("Passw0rd!"),
        "the password was echoed: {text}"
    );
    let (code, text) = on_tty("not-the-password");
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("wrong password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}
