//! `hybrid-trust demo` runs without network or prompts and exits 0.

#[test]
fn demo_runs_offline_and_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hybrid-trust"))
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Skype for Business Online"), "{stdout}");
}
