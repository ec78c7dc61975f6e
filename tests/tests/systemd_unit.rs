//! The shipped systemd unit is valid (`systemd-analyze verify`) once its binary path exists.

use chaos_tests::daemon::bin;

#[test]
fn unit_file_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chaos-daemon/systemd/chaos-daemon.service"
    ))
    .expect("unit file");
    assert!(unit.contains("Type=notify"), "the daemon sends READY=1");
    let daemon = bin("chaos-daemon");
    let local = unit.replace("/usr/local/bin/chaos-daemon", daemon.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("chaos-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chaos-daemon.service");
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (systemd) must be installed");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
