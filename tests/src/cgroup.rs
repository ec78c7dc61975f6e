//! A cgroup v2 made by a test under the hierarchy's root and removed on drop (its processes
//! killed first), also when the test panics.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A test's cgroup.
pub struct TestCgroup {
    /// Its directory.
    pub path: PathBuf,
}

impl TestCgroup {
    /// Creates `chaos-test-<tag>-<pid>` at the top of the cgroup v2 hierarchy.
    pub fn new(tag: &str) -> TestCgroup {
        let (mount, _) = chaos_daemon::host::cgroup::mount().expect("cgroup v2 is mounted");
        let path = mount.join(format!("chaos-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("mkdir {}: {e} (the tests need root)", path.display()));
        TestCgroup { path }
    }

    /// Starts `args` in this cgroup (the shell moves itself in, then execs them).
    pub fn spawn(&self, args: &[&str]) -> Child {
        spawn_in(Some(&self.path), args)
    }

    /// The pids in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        pids(&self.path)
    }
}

/// Starts `args`, in `cgroup` if given (else where the test runs), stdout captured.
pub fn spawn_in(cgroup: Option<&Path>, args: &[&str]) -> Child {
    let script = match cgroup {
        Some(c) => format!("echo 0 > '{}/cgroup.procs' && exec \"$@\"", c.display()),
        None => "exec \"$@\"".to_string(),
    };
    Command::new("sh")
        .args(["-c", &script, "sh"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// The pids in the cgroup at `path`.
pub fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in the cgroup at `path` and below, then removes them, deepest first;
/// gives up after 5 s.
pub fn remove(path: &Path) {
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove(&entry.path());
        }
    }
    let start = Instant::now();
    while path.exists() && start.elapsed() < Duration::from_secs(5) {
        for pid in pids(path) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::fs::remove_dir(path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove(&self.path);
    }
}
