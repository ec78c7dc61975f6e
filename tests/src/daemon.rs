//! Runs the real `chaos-daemon` binary inside a namespace with a private socket, and the real
//! `chaosctl` against it. The daemon is killed and its files removed on drop.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::PermissionsExt,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use chaos_daemon::client::Client;
use hyper::Method;
use serde_json::Value;

/// Directory holding the workspace's debug binaries (`CHAOS_BIN_DIR` overrides).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CHAOS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

/// Path of a workspace binary; panics with how to build it if missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p chaos-daemon --bins` first (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A running daemon.
pub struct Daemon {
    /// The daemon process (`ip netns exec … chaos-daemon`; exec replaces ip, so this is the daemon).
    pub child: Child,
    /// Private directory with the socket and config.
    pub dir: PathBuf,
    /// Socket path.
    pub socket: PathBuf,
    /// Namespace the daemon runs in.
    pub ns: String,
    /// Where its log goes.
    pub log: PathBuf,
    /// Runtime for the HTTP client (one per daemon, so requests measure the daemon, not setup).
    rt: tokio::runtime::Runtime,
}

impl Daemon {
    /// Starts the daemon in `ns` with `config` (TOML) and waits until its socket answers.
    pub fn start(ns: &str, config: &str) -> Daemon {
        Self::start_under(ns, config, &[])
    }

    /// As [`Daemon::start`], with the daemon run through `wrapper` (e.g. `prlimit --nofile=…`).
    pub fn start_under(ns: &str, config: &str, wrapper: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("chaos-test-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.join("chaos.sock");
        let conf = dir.join("config.toml");
        std::fs::File::create(&conf)
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        let log = dir.join("daemon.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let child = Self::spawn(ns, &socket, &conf, &log, wrapper);
        let d = Daemon {
            child,
            dir,
            socket,
            ns: ns.to_string(),
            log,
            rt,
        };
        d.wait_ready();
        d
    }

    fn spawn(ns: &str, socket: &Path, conf: &Path, log: &Path, wrapper: &[&str]) -> Child {
        let mut child = Command::new("ip");
        child
            .args(["netns", "exec", ns])
            .args(wrapper)
            .arg(bin("chaos-daemon"))
            .arg("--socket")
            .arg(socket)
            .arg("--config")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            );
        // If the test process dies without unwinding (abort, SIGKILL), take the daemon along.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            child.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        child.spawn().expect("start chaos-daemon")
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                // Generous for the VMs, where loading and verifying the programs is slow.
                start.elapsed() < Duration::from_secs(30),
                "daemon did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again with the same socket, config and log (after it exited or was
    /// killed), as systemd's restart would; waits until it answers.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let conf = self.dir.join("config.toml");
        self.child = Self::spawn(&self.ns, &self.socket, &conf, &self.log, &[]);
        self.wait_ready();
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one request; returns (status, JSON body or Null).
    pub fn call(&self, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, bytes) = self.raw(method, path, body.map(|b| b.as_bytes().to_vec()));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends one request with a raw body; returns (status, body bytes).
    pub fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
        let client = Client::new(&self.socket);
        let (status, bytes) = self
            .rt
            .block_on(client.request(method, path, body))
            .unwrap_or_else(|e| panic!("request failed: {e}\n{}", self.log_text()));
        (status, bytes.to_vec())
    }

    /// Writes `head` (request line and headers, without the blank line) and `body` on a raw
    /// connection, then returns whatever the daemon answered. A write the daemon cut short is not
    /// an error: a server that refuses a body before reading it all closes the connection, and
    /// what matters is the answer it sent first.
    pub fn raw_exchange(&self, head: &str, body: &[u8]) -> String {
        use std::io::Read;
        let mut c = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = c
            .write_all(format!("{head}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .and_then(|()| c.write_all(body));
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let read = c.read_to_end(&mut answer);
        assert!(
            !answer.is_empty(),
            "no answer (write: {sent:?}, read: {read:?})\n{}",
            self.log_text()
        );
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Entries of the daemon's rule-holding maps (hash maps, LPM tries, and the non-zero words of
    /// the prefilter, probe-list and trie-shape arrays), found through its file descriptors:
    /// `{map name: entries}`.
    pub fn rule_entries_in_kernel(&self) -> BTreeMap<String, usize> {
        let pid = self.child.id();
        let mut ids = Vec::new();
        for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
            .unwrap()
            .flatten()
        {
            let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if let Some(id) = info.lines().find_map(|l| l.strip_prefix("map_id:")) {
                ids.push(id.trim().to_string());
            }
        }
        let mut out = BTreeMap::new();
        for id in ids {
            let show = Command::new("bpftool")
                .args(["map", "show", "id", &id, "-j"])
                .output()
                .unwrap();
            let m: Value = serde_json::from_slice(&show.stdout).unwrap_or_default();
            let (name, kind) = (
                m["name"].as_str().unwrap_or(""),
                m["type"].as_str().unwrap_or(""),
            );
            let bitmap = matches!(name, "PREFILTER" | "PROBES" | "KEY_SHAPES");
            let counts = matches!(kind, "hash" | "lpm_trie") || bitmap;
            if !counts {
                continue;
            }
            let dump = Command::new("bpftool")
                .args(["map", "dump", "id", &id, "-j"])
                .output()
                .unwrap();
            let entries: Vec<Value> = serde_json::from_slice(&dump.stdout).unwrap_or_default();
            let n = if bitmap {
                // An array always has every entry: count the words with a bit set.
                entries
                    .iter()
                    .filter(|e| match &e["value"] {
                        Value::Array(bytes) => bytes.iter().any(|x| x.as_str() != Some("0x00")),
                        Value::Number(n) => n.as_u64() != Some(0),
                        _ => true,
                    })
                    .count()
            } else {
                entries.len()
            };
            *out.entry(name.to_string()).or_default() += n;
        }
        out
    }

    /// `POST /v1/faults` that must answer 201; returns the created fault (or array).
    pub fn create(&self, body: &str) -> Value {
        let (status, created) = self.call(Method::POST, "/v1/faults", Some(body));
        assert_eq!(status, 201, "{created}\n{}", self.log_text());
        created
    }

    /// Polls experiment `id` until it is over (at most `limit`); its final view.
    pub fn until_experiment_ends(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (s, e) = self.call(Method::GET, &format!("/v1/experiments/{id}"), None);
            assert_eq!(s, 200, "{e}");
            let state = e["state"].as_str().unwrap_or_default().to_string();
            if !["checking_steady_state", "injecting", "recovering"].contains(&state.as_str()) {
                return e;
            }
            assert!(
                start.elapsed() < limit,
                "still {state} after {limit:?}: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ids of the installed faults (`GET /v1/faults`).
    pub fn fault_ids(&self) -> Vec<String> {
        let (status, list) = self.call(Method::GET, "/v1/faults", None);
        assert_eq!(status, 200, "{list}");
        list.as_array()
            .expect("a JSON array")
            .iter()
            .map(|f| f["id"].as_str().expect("an id").to_string())
            .collect()
    }

    /// Runs `chaosctl --socket S args…`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("chaosctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `chaosctl --socket S args…`, which must succeed; its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "chaosctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("chaosctl prints UTF-8")
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the daemon to exit (≤ 10 s) and returns its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "daemon did not exit:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
