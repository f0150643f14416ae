//! The bad-input corpus: well over a hundred malformed certificates, PFX files, metadata
//! documents, dates, tenant names and Get-Cs* folders. Each one must give exit 2, exactly one
//! `error:` line (with a `hint:`), nothing on stdout, and never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixture(p: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).join(p)
}

fn ht(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env("PW", "Passw0rd!")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn check(state: &Path, what: &str, args: &[&str]) {
    let o = ht(state, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{what}: {err}"
    );
    assert!(o.stdout.is_empty(), "{what}");
}

#[test]
fn over_a_hundred_malformed_inputs_each_exit_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut n = 0;
    let mut case = |name: String, bytes: Vec<u8>, args_after: &[&str], cmd: &[&str]| {
        let p = dir.path().join(&name);
        std::fs::write(&p, bytes).unwrap();
        let mut args: Vec<&str> = cmd.to_vec();
        args.push(p.to_str().unwrap());
        args.extend_from_slice(args_after);
        check(&state, &name, &args);
        n += 1;
    };
    let der = std::fs::read(fixture("certs/sfb.der")).unwrap();
    let pem = std::fs::read(fixture("certs/sfb.pem")).unwrap();
    let pfx = std::fs::read(fixture("certs/sfb-aes.pfx")).unwrap();
    let meta = std::fs::read(fixture("metadata/acs-lenient.json")).unwrap();
    // Certificates: truncated DER at many lengths.
    for len in [
        1,
        2,
        3,
        4,
        10,
        50,
        100,
        200,
        300,
        400,
        500,
        600,
        700,
        der.len() - 200,
        der.len() - 50,
        der.len() - 1,
    ] {
        case(
            format!("der-trunc-{len}.cer"),
            der[..len.min(der.len() - 1)].to_vec(),
            &[],
            &["cert", "inspect"],
        );
    }
    // DER with trailing garbage, or a wrong outer tag.
    case(
        "der-trailing.cer".into(),
        [der.clone(), vec![0, 1, 2]].concat(),
        &[],
        &["cert", "inspect"],
    );
    for tag in [0x31u8, 0x04, 0x02, 0xa0] {
        let mut d = der.clone();
        d[0] = tag;
        case(format!("der-tag-{tag:x}.cer"), d, &[], &["cert", "inspect"]);
    }
    // PEM damaged in many ways.
    let pem_s = String::from_utf8(pem.clone()).unwrap();
    let body: String = pem_s.lines().filter(|l| !l.starts_with("-----")).collect();
    for (i, v) in [
        pem_s.replace("-----END CERTIFICATE-----", ""),
        pem_s.replace("MII", "MII*"),
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", &body[..body.len() / 2]),
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_string(),
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "-----BEGIN PRIVATE KEY-----\nMIIBVQ==\n-----END PRIVATE KEY-----\n".to_string(),
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_string(),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".to_string(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".to_string(),
        pem_s.replace("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"),
    ]
    .into_iter()
    .enumerate()
    {
        case(format!("pem-{i}.pem"), v.into_bytes(), &[], &["cert", "inspect"]);
    }
    // Bare Base64 of broken DER, and text that is nearly Base64.
    use base64::Engine as _;
    for len in [10, 100, 400] {
        case(
            format!("b64-trunc-{len}.cer"),
            base64::engine::general_purpose::STANDARD
                .encode(&der[..len])
                .into_bytes(),
            &[],
            &["cert", "inspect"],
        );
    }
    for (i, t) in [
        "hello",
        "MIIB",
        "=====",
        "QUJD\r\nREVG",
        "\u{feff}MIIC",
        "not a certificate at all",
    ]
    .iter()
    .enumerate()
    {
        case(
            format!("text-{i}.cer"),
            t.as_bytes().to_vec(),
            &[],
            &["cert", "inspect"],
        );
    }
    // Random-looking bytes (deterministic).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..12 {
        let bytes: Vec<u8> = (0..(64 + i * 97))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x & 0xff) as u8
            })
            .collect();
        case(format!("random-{i}.bin"), bytes, &[], &["cert", "inspect"]);
    }
    // PFX: truncated, damaged, wrong passwords, no password.
    for len in [5, 20, 100, 500, 1000, pfx.len() - 100, pfx.len() - 1] {
        case(
            format!("pfx-trunc-{len}.pfx"),
            pfx[..len].to_vec(),
            &["--password-env", "PW"],
            &["cert", "inspect"],
        );
    }
    case(
        "pfx-nopass.pfx".into(),
        pfx.clone(),
        &[],
        &["cert", "inspect"],
    );
    for (i, var) in ["NOPE_UNSET", "HOME"].iter().enumerate() {
        case(
            format!("pfx-wrongpw-{i}.pfx"),
            pfx.clone(),
            &["--password-env", var],
            &["cert", "inspect"],
        );
    }
    let mut bad_version = pfx.clone();
    let i = bad_version.windows(3).position(|w| w == [2, 1, 3]).unwrap();
    bad_version[i + 2] = 2;
    case(
        "pfx-version.pfx".into(),
        bad_version,
        &["--password-env", "PW"],
        &["cert", "inspect"],
    );
    // Metadata documents.
    let meta_s = String::from_utf8(meta.clone()).unwrap();
    for (i, v) in [
        String::new(),
        "   ".into(),
        "{".into(),
        "[]".into(),
        "null".into(),
        "42".into(),
        "\"x\"".into(),
        "{}".into(),
        "{\"value\":[]}".into(),
        "{\"keys\":[{\"foo\":1}]}".into(),
        "<html>502 Bad Gateway</html>".into(),
        meta_s[..meta_s.len() / 3].to_string(),
        meta_s.replace('{', "["),
        "\u{0}\u{1}\u{2}".into(),
        "{\"issuer\": 5}".into(),
        "{\"jwks_uri\": \"x\"}".into(),
    ]
    .into_iter()
    .enumerate()
    {
        case(
            format!("meta-{i}.json"),
            v.into_bytes(),
            &[],
            &["tenant", "metadata", "--file"],
        );
    }
    case(
        "meta-binary.json".into(),
        vec![0xff, 0xfe, 0x00, 0x01],
        &[],
        &["tenant", "metadata", "--file"],
    );
    // Dates.
    let cert = fixture("certs/sfb.pem");
    let c = cert.to_str().unwrap();
    for d in [
        "tomorrow",
        "2027-13-01",
        "2027-02-30",
        "27-01-01",
        "2027/01/01",
        "",
        "2027-01-01T25:00:00Z",
        "1e9",
    ] {
        check(
            &state,
            d,
            &[
                "credential",
                "upload",
                "--tenant",
                "contoso.com",
                "--cert",
                c,
                "--end",
                d,
                "--yes",
                "--client-id",
                "x",
                "--client-secret-env",
                "PW",
            ],
        );
        n += 1;
    }
    for d in ["now", "2027-01-01", "yesterday 10am"] {
        check(&state, d, &["--as-of", d, "status"]);
        n += 1;
    }
    // Tenant names.
    for t in [
        "",
        " ",
        "contoso",
        "con toso.com",
        "-contoso.com",
        "contoso-.com",
        "x'; rm -rf /",
        "$(calc).com",
        "contoso..com",
        "a.b/c",
        "{tenantid}",
        "1.2.3.4",
        "72f988bf-86f1-41af-91ab-2d7cd011db4",
        "😀.com",
    ] {
        check(&state, t, &["tenant", "discover", t]);
        check(&state, t, &["onprem", "script", "--tenant", t]);
        n += 2;
    }
    // Get-Cs* folders: missing, a file, empty.
    let empty = dir.path().join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    for (i, d) in [dir.path().join("nope"), cert.clone(), empty]
        .iter()
        .enumerate()
    {
        check(
            &state,
            &format!("getcs-{i}"),
            &[
                "onprem",
                "script",
                "--tenant",
                "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f",
                "--current",
                d.to_str().unwrap(),
            ],
        );
        n += 1;
    }
    // Settings files.
    for (i, t) in [
        "[reminders]\nthreshold_days=[1]",
        "[[reminders.email]]\nsmtp_url=\"http://x\"",
        "not toml [",
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("cfg-{i}.toml"));
        std::fs::write(&p, t).unwrap();
        check(
            &state,
            t,
            &["--config", p.to_str().unwrap(), "remind", "--all"],
        );
        n += 1;
    }
    assert!(n >= 100, "{n} cases");
    eprintln!("{n} malformed inputs checked");
}

/// Runs with a deadline (a FIFO must not hang the tool) and a 1 GiB address-space cap (an
/// endless file such as /dev/zero must not eat the machine's memory if a read is unbounded).
fn ht_bounded(state: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 1048576; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hybrid-trust"))
        .args(args)
        .env("HYBRID_TRUST_STATE_DIR", state)
        .env_remove("HYBRID_TRUST_OUTPUT")
        .env_remove("HYBRID_TRUST_CONFIG")
        .env_remove("HYBRID_TRUST_CLOUD_FILE")
        .env_remove("HYBRID_TRUST_HTTP_TIMEOUT_SECS")
        .env("HYBRID_TRUST_KEYRING", "none-in-tests")
        .env("PW", "Passw0rd!")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after 20 s (killed); stderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn check_bounded(state: &Path, what: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = ht_bounded(state, args, env);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{what}: {err}"
    );
    assert!(err.contains("hint:"), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}");
    err
}

#[test]
fn fifos_endless_files_and_bad_timeouts_exit_2_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let fifo = dir.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success(), "mkfifo");
    let f = fifo.to_str().unwrap();
    let pfx = fixture("certs/sfb-aes.pfx");
    let pfx = pfx.to_str().unwrap();
    // Get-Cs* folders whose OAuth server file is a FIFO, or endless.
    let fifo_dir = dir.path().join("current-fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let st = Command::new("mkfifo")
        .arg(fifo_dir.join("Get-CsOAuthServer.txt"))
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo");
    let zero_dir = dir.path().join("current-zero");
    std::fs::create_dir_all(&zero_dir).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero_dir.join("Get-CsOAuthServer.txt")).unwrap();
    // A cloud file that points nowhere (port 1 on loopback): only its reading matters.
    let cloud = dir.path().join("cloud.json");
    std::fs::write(&cloud, r#"{"name":"x","login_url":"http://127.0.0.1:1/l","graph_url":"http://127.0.0.1:1/g","acs_url":"http://127.0.0.1:1/a","exchange_url":"http://127.0.0.1:1/e"}"#).unwrap();
    let c = cloud.to_str().unwrap();
    let tenant = "0cc2b5c4-6a6f-4e2b-9f77-8b6a1c1e2d3f";
    for path in [f, "/dev/zero"] {
        let bad_ca = dir.path().join("cloud-ca.json");
        std::fs::write(&bad_ca, format!(r#"{{"name":"x","login_url":"https://127.0.0.1:1/l","graph_url":"https://127.0.0.1:1/g","acs_url":"https://127.0.0.1:1/a","exchange_url":"https://127.0.0.1:1/e","ca_file":"{path}"}}"#)).unwrap();
        let bad_ca = bad_ca.to_str().unwrap();
        let cases: [(&str, Vec<&str>); 7] = [
            ("cert", vec!["cert", "inspect", path]),
            ("metadata", vec!["tenant", "metadata", "--file", path]),
            (
                "password file",
                vec!["cert", "inspect", pfx, "--password-file", path],
            ),
            (
                "cloud file",
                vec!["--cloud-file", path, "tenant", "discover", "contoso.com"],
            ),
            ("config", vec!["--config", path, "remind", "--all"]),
            (
                "client cert",
                vec![
                    "--client-id",
                    "x",
                    "--client-cert",
                    path,
                    "credential",
                    "list",
                    "--tenant",
                    tenant,
                ],
            ),
            (
                "ca_file",
                vec!["--cloud-file", bad_ca, "tenant", "discover", "contoso.com"],
            ),
        ];
        for (what, args) in cases {
            let what = format!("{what} {path}");
            let err = check_bounded(&state, &what, &args, &[]);
            // Refused for what it is, not read until memory ran out.
            assert!(err.contains("not a regular file"), "{what}: {err}");
        }
    }
    for d in [&fifo_dir, &zero_dir] {
        let err = check_bounded(
            &state,
            &format!("current {}", d.display()),
            &[
                "onprem",
                "script",
                "--tenant",
                tenant,
                "--current",
                d.to_str().unwrap(),
            ],
            &[],
        );
        assert!(err.contains("not a regular file"), "{}: {err}", d.display());
    }
    // A regular file over the limit is refused too (sparse: costs no disk).
    let big = dir.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 * 1024 * 1024)
        .unwrap();
    let err = check_bounded(
        &state,
        "big metadata",
        &["tenant", "metadata", "--file", big.to_str().unwrap()],
        &[],
    );
    assert!(err.contains("larger than"), "big metadata: {err}");
    // Garbage in the timeout variable: named, with what is accepted.
    for v in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        let err = check_bounded(
            &state,
            &format!("timeout {v:?}"),
            &["--cloud-file", c, "tenant", "discover", "contoso.com"],
            &[("HYBRID_TRUST_HTTP_TIMEOUT_SECS", v)],
        );
        assert!(
            err.contains("HYBRID_TRUST_HTTP_TIMEOUT_SECS"),
            "{v:?}: {err}"
        );
    }
    // The webhook channel's client checks the variable too.
    let cfg = dir.path().join("hook.toml");
    std::fs::write(
        &cfg,
        "[[reminders.webhook]]\nurl = \"https://hooks.example.com/x\"\n",
    )
    .unwrap();
    let err = check_bounded(
        &state,
        "timeout (remind)",
        &["--config", cfg.to_str().unwrap(), "remind", "--all"],
        &[("HYBRID_TRUST_HTTP_TIMEOUT_SECS", "abc")],
    );
    assert!(err.contains("HYBRID_TRUST_HTTP_TIMEOUT_SECS"), "{err}");
    // Nothing was recorded by any of these runs.
    let tenants = state.join("ledger").join("tenants");
    assert!(!tenants.exists() || std::fs::read_dir(&tenants).unwrap().next().is_none());
}
