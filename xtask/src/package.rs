//! `cargo xtask install` and `cargo xtask package`: the two binaries, the systemd unit, the
//! config example, man pages and shell completions, laid out under /usr/local (install) or as a
//! Debian package; and [`check`], which `cargo xtask test` runs on the package: install it, verify
//! the unit, use the daemon as a non-root member of the `chaos` group, purge it, and see that
//! nothing is left.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{run, stdout_of};

/// Where each kind of file goes, relative to the root it is installed under.
pub struct Layout {
    bin: &'static str,
    unit: &'static str,
    man: &'static str,
    bash: &'static str,
    zsh: &'static str,
    fish: &'static str,
}

/// `cargo xtask install`: what a local build installs (nothing under /usr that a package owns).
pub const LOCAL: Layout = Layout {
    bin: "usr/local/bin",
    unit: "etc/systemd/system",
    man: "usr/local/share/man/man1",
    bash: "usr/local/share/bash-completion/completions",
    zsh: "usr/local/share/zsh/site-functions",
    fish: "usr/local/share/fish/vendor_completions.d",
};

/// The Debian package.
pub const DEBIAN: Layout = Layout {
    bin: "usr/bin",
    unit: "lib/systemd/system",
    man: "usr/share/man/man1",
    bash: "usr/share/bash-completion/completions",
    zsh: "usr/share/zsh/vendor-completions",
    fish: "usr/share/fish/vendor_completions.d",
};

/// The group whose members may use the socket (the config example's `socket_group`).
pub const GROUP: &str = "chaos";
const CONFIG_DIR: &str = "etc/chaos-daemon";
const PACKAGE: &str = "chaos";

/// Writes `bytes` to `dest/dir/name` with `mode`; returns the path.
fn put(dest: &Path, dir: &str, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let dir = dest.join(dir);
    fs::create_dir_all(&dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    let path = dir.join(name);
    // A running binary cannot be overwritten in place (ETXTBSY); a rename replaces it.
    let tmp = dir.join(format!(".{name}.new"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, &path).with_context(|| format!("installing {}", path.display()))?;
    Ok(path)
}

fn output_of(cmd: &mut Command) -> Result<Vec<u8>> {
    let desc = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("cannot run {desc}"))?;
    if !out.status.success() {
        bail!(
            "{desc} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    // -n: no name or time stamp, so the package is the same for the same input.
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    child.stdin.take().expect("piped").write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

/// Puts the binaries from `bins`, the unit (pointing at them), man pages, completions and the
/// config example under `dest`. The config goes in only where there is none: an operator's
/// config is never overwritten (the example then lands beside it as config.toml.example).
pub fn stage(root: &Path, bins: &Path, dest: &Path, l: &Layout) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for b in ["chaos-daemon", "chaosctl"] {
        let path = bins.join(b);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        written.push(put(dest, l.bin, b, &bytes, 0o755)?);
    }
    let unit = fs::read_to_string(root.join("chaos-daemon/systemd/chaos-daemon.service"))?
        .replace("/usr/local/bin/", &format!("/{}/", l.bin));
    written.push(put(
        dest,
        l.unit,
        "chaos-daemon.service",
        unit.as_bytes(),
        0o644,
    )?);
    let roff = output_of(Command::new(bins.join("chaos-daemon")).arg("man"))?;
    written.push(put(dest, l.man, "chaos-daemon.1.gz", &gzip(&roff)?, 0o644)?);
    // chaosctl(1) and a page per verb and kind (chaosctl-add(1) …), which it references.
    let pages = std::env::temp_dir().join(format!("chaosctl-man-{}", std::process::id()));
    let _ = fs::remove_dir_all(&pages);
    fs::create_dir_all(&pages)?;
    let made = output_of(
        Command::new(bins.join("chaosctl"))
            .args(["man", "--dir"])
            .arg(&pages),
    )
    .and_then(|_| {
        let mut names: Vec<_> = fs::read_dir(&pages)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for name in names {
            let roff = fs::read(pages.join(&name))?;
            let name = format!("{}.gz", name.to_string_lossy());
            written.push(put(dest, l.man, &name, &gzip(&roff)?, 0o644)?);
        }
        Ok(())
    });
    let _ = fs::remove_dir_all(&pages);
    made?;
    for (shell, dir, name) in [
        ("bash", l.bash, "chaosctl"),
        ("zsh", l.zsh, "_chaosctl"),
        ("fish", l.fish, "chaosctl.fish"),
    ] {
        let script = output_of(Command::new(bins.join("chaosctl")).args(["completions", shell]))?;
        written.push(put(dest, dir, name, &script, 0o644)?);
    }
    let example = fs::read(root.join("chaos-daemon/config.example.toml"))?;
    let name = if dest.join(CONFIG_DIR).join("config.toml").exists() {
        "config.toml.example"
    } else {
        "config.toml"
    };
    written.push(put(dest, CONFIG_DIR, name, &example, 0o644)?);
    Ok(written)
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cargo xtask install`: a release build, then [`LOCAL`] under `/` and the `chaos` group.
pub fn install(root: &Path) -> Result<()> {
    crate::cargo(&["build", "--release", "-p", "chaos-daemon", "--bins"])?;
    let written = stage(root, &root.join("target/release"), Path::new("/"), &LOCAL)?;
    for w in &written {
        println!("install: {}", w.display());
    }
    if group_exists(GROUP) {
        println!("install: group {GROUP} exists");
    } else {
        run(Command::new("groupadd").args(["--system", GROUP]))?;
        println!("install: group {GROUP} created");
    }
    println!(
        "\nNext:\n  systemctl daemon-reload && systemctl enable --now chaos-daemon\n  \
         usermod -aG {GROUP} USER     # then, after logging in again: chaosctl status\n\
         Config: /{CONFIG_DIR}/config.toml. Uninstall: remove the files above and the group."
    );
    Ok(())
}

/// `cargo xtask package`: a Debian package of the binaries in `bins`, written to `out`.
pub fn package(root: &Path, bins: &Path, out: &Path) -> Result<PathBuf> {
    let version = String::from_utf8(output_of(
        Command::new(bins.join("chaos-daemon")).arg("--version"),
    )?)?;
    let version = version
        .split_whitespace()
        .nth(1)
        .context("chaos-daemon --version printed no version")?
        .to_string();
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string();
    if arch.is_empty() {
        bail!("dpkg --print-architecture printed nothing: is this Debian?");
    }
    let name = format!("{PACKAGE}_{version}_{arch}");
    let stage_dir = out.join(&name);
    let _ = fs::remove_dir_all(&stage_dir);
    fs::create_dir_all(&stage_dir)?;
    stage(root, bins, &stage_dir, &DEBIAN)?;
    // As dh_strip does: debug builds carry ~120 MB of DWARF per binary, which made the
    // package minutes to build and to install in a TCG guest.
    for bin in ["chaos-daemon", "chaosctl"] {
        run(Command::new("strip")
            .arg("--strip-debug")
            .arg(stage_dir.join(DEBIAN.bin).join(bin)))?;
    }
    let control = format!(
        "Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\n\
         Maintainer: chaos developers <chaos@localhost>\nDepends: libc6, passwd\n\
         Section: net\nPriority: optional\n\
         Description: eBPF network fault injector\n \
         Per-destination latency, bandwidth limits, packet loss, blackholes and DNS\n \
         failures applied by TC/XDP programs from BPF maps, with TTLs enforced in the\n \
         kernel and a dead-man switch: nothing is left behind when the daemon stops.\n"
    );
    put(&stage_dir, "DEBIAN", "control", control.as_bytes(), 0o644)?;
    put(
        &stage_dir,
        "DEBIAN",
        "conffiles",
        format!("/{CONFIG_DIR}/config.toml\n").as_bytes(),
        0o644,
    )?;
    let systemd_reload = "if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi";
    let postinst = format!(
        "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  \
         getent group {GROUP} >/dev/null || groupadd --system {GROUP}\n  {systemd_reload}\nfi\n"
    );
    put(&stage_dir, "DEBIAN", "postinst", postinst.as_bytes(), 0o755)?;
    let prerm = "#!/bin/sh\nset -e\n\
         if [ -d /run/systemd/system ]; then systemctl stop chaos-daemon.service || true; fi\n";
    put(&stage_dir, "DEBIAN", "prerm", prerm.as_bytes(), 0o755)?;
    // Purge removes the group too: nothing of the package stays on the host.
    let postrm = format!(
        "#!/bin/sh\nset -e\nif [ \"$1\" = purge ] && getent group {GROUP} >/dev/null; then\n  \
         groupdel {GROUP} || true\nfi\n{systemd_reload}\n"
    );
    put(&stage_dir, "DEBIAN", "postrm", postrm.as_bytes(), 0o755)?;
    let deb = out.join(format!("{name}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage_dir)
        .arg(&deb)
        .stdout(Stdio::null()))?;
    let _ = fs::remove_dir_all(&stage_dir);
    Ok(deb)
}

/// A user account made for the check.
const OPERATOR: &str = "chaos-pkg-op";

/// Undoes [`check`] whatever happened: the daemon, its namespace, the user, the package.
struct Installed {
    ns: String,
    daemon: Option<Child>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("userdel").arg(OPERATOR).status();
        let _ = Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .stdout(Stdio::null())
            .status();
    }
}

fn is_installed(package: &str) -> bool {
    stdout_of(Command::new("dpkg-query").args(["-W", "-f", "${Status}", package]))
        .contains("installed")
}

/// Runs `chaosctl --socket S ARGS` as `user`: (exit code, stdout, stderr).
fn chaosctl_as(user: &str, socket: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new("runuser")
        .args(["-u", user, "--", "/usr/bin/chaosctl", "--socket"])
        .arg(socket)
        .args(args)
        .output()
        .context("cannot run runuser (util-linux)")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The package of the debug binaries installs, its unit passes `systemd-analyze verify`, a
/// non-root member of the group uses the installed daemon as the README says, a user outside
/// it is told to use sudo, and a purge leaves nothing behind.
pub fn check(root: &Path) -> Result<(String, PathBuf)> {
    if is_installed(PACKAGE) || Path::new("/usr/bin/chaos-daemon").exists() {
        bail!(
            "a {PACKAGE} package or /usr/bin/chaos-daemon is already on this host; not touching it"
        );
    }
    let deb = package(
        root,
        &root.join("target/debug"),
        &root.join("target/package"),
    )?;
    let mut guard = Installed {
        ns: format!("chaos-pkg-{}", std::process::id()),
        daemon: None,
    };
    run(Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .stdout(Stdio::null()))?;
    let unit = Path::new("/lib/systemd/system/chaos-daemon.service");
    for f in [
        Path::new("/usr/bin/chaos-daemon"),
        Path::new("/usr/bin/chaosctl"),
        unit,
        Path::new("/etc/chaos-daemon/config.toml"),
        Path::new("/usr/share/man/man1/chaosctl.1.gz"),
        Path::new("/usr/share/man/man1/chaosctl-add.1.gz"),
        Path::new("/usr/share/man/man1/chaosctl-run.1.gz"),
        Path::new("/usr/share/man/man1/chaos-daemon.1.gz"),
        Path::new("/usr/share/bash-completion/completions/chaosctl"),
    ] {
        if !f.exists() {
            bail!("the package did not install {}", f.display());
        }
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .context("systemd-analyze (systemd)")?;
    let complaints = String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !complaints.trim().is_empty() {
        bail!("systemd-analyze verify {}: {complaints}", unit.display());
    }
    let man = String::from_utf8(output_of(
        Command::new("zcat").arg("/usr/share/man/man1/chaosctl.1.gz"),
    )?)?;
    if !man.contains(".TH chaosctl") || !man.contains("update") {
        bail!("the chaosctl man page lacks its title or the update verb");
    }
    if !group_exists(GROUP) {
        bail!("the package did not create group {GROUP}");
    }
    run(Command::new("useradd")
        .args(["--no-create-home", "--no-user-group", "--groups", GROUP])
        .args(["--shell", "/usr/sbin/nologin", OPERATOR]))?;
    run(Command::new("ip").args(["netns", "add", &guard.ns]))?;
    run(Command::new("ip").args(["-n", &guard.ns, "link", "set", "lo", "up"]))?;
    let dir = std::env::temp_dir().join(&guard.ns);
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    let socket = dir.join("chaos.sock");
    let log = fs::File::create(dir.join("daemon.log"))?;
    // The installed binary with the installed config (socket_group = "chaos").
    guard.daemon = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &guard.ns,
                "/usr/bin/chaos-daemon",
                "--socket",
            ])
            .arg(&socket)
            .stderr(log)
            .spawn()
            .context("starting the installed daemon")?,
    );
    let start = Instant::now();
    while !socket.exists() {
        if start.elapsed() > Duration::from_secs(15) {
            bail!(
                "the installed daemon did not open its socket: {}",
                fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = chaosctl_as(OPERATOR, &socket, &["status"])?;
    if code != 0 || !out.contains(", up ") {
        bail!("chaosctl status as a member of {GROUP}: exit {code}: {out}{err}");
    }
    let (code, out, err) = chaosctl_as(
        OPERATOR,
        &socket,
        &[
            "add",
            "blackhole",
            "--to",
            "10.9.9.9",
            "--iface",
            "lo",
            "--ttl",
            "30s",
        ],
    )?;
    if code != 0 {
        bail!("chaosctl add as a member of {GROUP}: exit {code}: {out}{err}");
    }
    let (code, out, _) = chaosctl_as(OPERATOR, &socket, &["ls", "-q"])?;
    if code != 0 || out.lines().count() != 1 {
        bail!("chaosctl ls -q as a member of {GROUP} listed: {out}");
    }
    let (code, _, err) = chaosctl_as("nobody", &socket, &["status"])?;
    if code != 3 || !err.contains("sudo") {
        bail!("a user outside {GROUP} should get exit 3 and the sudo hint, got {code}: {err}");
    }
    let (code, _, err) = chaosctl_as(OPERATOR, &socket, &["rm", "--all"])?;
    if code != 0 {
        bail!("chaosctl rm --all: {err}");
    }
    drop(guard);
    let _ = fs::remove_dir_all(&dir);
    let left: Vec<&str> = [
        "/usr/bin/chaos-daemon",
        "/usr/bin/chaosctl",
        "/lib/systemd/system/chaos-daemon.service",
        "/etc/chaos-daemon",
        "/usr/share/man/man1/chaosctl.1.gz",
        "/usr/share/man/man1/chaosctl-add.1.gz",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    if !left.is_empty() || group_exists(GROUP) || is_installed(PACKAGE) {
        bail!(
            "dpkg --purge left {left:?} (group {GROUP}: {})",
            group_exists(GROUP)
        );
    }
    Ok((
        format!(
            "{} installs, its unit verifies, a member of group {GROUP} uses the daemon without \
             sudo, others are told to use sudo, and a purge leaves nothing",
            deb.file_name().unwrap_or_default().to_string_lossy()
        ),
        deb,
    ))
}

/// The package `deb` under a real systemd: systemd as PID 1 in a VM on Debian's 6.12 kernel
/// runs [`UNIT_CHECK`] (install, start the shipped unit, latency, an experiment with http,
/// prometheus and command probes, kill -9 and restart, stop, purge, nothing left).
pub fn check_under_systemd(root: &Path, deb: &Path) -> Result<String> {
    let p = crate::vm::prepare(root, crate::vm::Kernel::named("6.12")?)?;
    let cmd = format!("DEB='{}'\n{UNIT_CHECK}", deb.display());
    let started = Instant::now();
    let code = crate::vm::run_in(
        root,
        &p,
        crate::vm::Boot::Systemd,
        &cmd,
        Duration::from_secs(600),
    )?;
    if code != 0 {
        bail!("the unit check failed under systemd (exit code {code}); its console is above");
    }
    Ok(format!(
        "{} under systemd 252 as PID 1 (6.12 VM, {:.0} s): the shipped unit runs latency and \
         an experiment with http, prometheus and command probes, restarts after kill -9, and \
         stop and purge leave nothing",
        deb.file_name().unwrap_or_default().to_string_lossy(),
        started.elapsed().as_secs_f64()
    ))
}

const UNIT_CHECK: &str = include_str!("../vm/unit-check.sh");
