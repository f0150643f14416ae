//! The emulator as a process: the ready file, the flags and their errors (through the binary).

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(path) {
            return serde_json::from_slice(&bytes)
                .expect("the ready file is complete JSON when it appears");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no ready file at {}", path.display());
}

#[test]
fn the_binary_writes_a_ready_file_usable_as_a_cloud_file() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_m365-emulator"))
        .args([
            "--tls",
            "--quiet",
            "--tenant",
            "contoso.onmicrosoft.com",
            "--tenant",
            "fabrikam.onmicrosoft.com",
            "--ready-file",
        ])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    let v = wait_for(&ready);
    let cloud = &v["cloud"];
    for k in [
        "name",
        "login_url",
        "graph_url",
        "acs_url",
        "exchange_url",
        "ca_file",
    ] {
        assert!(cloud[k].is_string(), "cloud.{k}");
    }
    for k in ["login_url", "graph_url", "acs_url", "exchange_url"] {
        let u = cloud[k].as_str().unwrap();
        assert!(
            u.starts_with("https://127.0.0.1:") && !u.ends_with('/'),
            "{k} = {u}"
        );
    }
    let ca = std::fs::read_to_string(cloud["ca_file"].as_str().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let tenants = v["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[1]["domain"], "fabrikam.onmicrosoft.com");
    assert!(uuid::Uuid::parse_str(tenants[0]["tenant_id"].as_str().unwrap()).is_ok());
    assert!(
        tenants[0]["admin"]["client_id"].is_string()
            && tenants[0]["admin"]["client_secret"].is_string()
    );
}

#[test]
fn the_binary_rejects_bad_flags_with_exit_2_and_one_error_line() {
    for args in [
        vec!["--faults", "418:0.5"],
        vec!["--listen", "0.0.0.0:0"],
        vec!["--tenant", "not a domain"],
        vec!["--latency-ms", "x"],
        vec!["--key-resend", "strict"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_m365-emulator"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines().any(|l| l.starts_with("error:")),
            "{args:?}: {err}"
        );
    }
}

/// `--key-resend`, `--without-service-principal` and `--disabled-service-principal` reach the
/// running emulator (its control API shows them).
#[tokio::test]
async fn the_binary_takes_the_key_resend_mode_and_seed_options() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let sfb = "00000004-0000-0ff1-ce00-000000000000";
    let exo = "00000002-0000-0ff1-ce00-000000000000";
    let child = Command::new(env!("CARGO_BIN_EXE_m365-emulator"))
        .args([
            "--quiet",
            "--key-resend",
            "minimal",
            "--without-service-principal",
            sfb,
            "--disabled-service-principal",
            exo,
            "--ready-file",
        ])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    let ready = tokio::task::spawn_blocking(move || wait_for(&ready))
        .await
        .unwrap();
    let state: Value = reqwest::get(format!("{}/state", ready["control_url"].as_str().unwrap()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["behaviour"]["key_resend"], "minimal");
    let sps = state["tenants"][0]["service_principals"]
        .as_array()
        .unwrap();
    assert!(sps.iter().all(|sp| sp["app_id"] != sfb), "no 00000004");
    let exo_sp = sps.iter().find(|sp| sp["app_id"] == exo).unwrap();
    assert_eq!(exo_sp["account_enabled"], false);
}
