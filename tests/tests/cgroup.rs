//! Faults scoped to a cgroup (`match.cgroup`) and `chaosctl exec`, end to end: real processes
//! in and outside the cgroup talk to the same destination from the same namespace. Needs root
//! and the binaries built (`cargo xtask test` does both).
//!
//! The daemon runs under `ip netns exec`, which hides the host's cgroup mount (it mounts a
//! fresh sysfs); the daemon mounts cgroup v2 in its own mount namespace. The clients enter only
//! the network namespace (`nsenter --net`), so they share the test's view of the hierarchy.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use chaos_tests::{
    cgroup::{self, TestCgroup},
    daemon::{Daemon, bin},
    netns::{B4, B4_ALT, B6, NsPair},
};
use hyper::Method;
use serde_json::{Value, json};

/// `args` run in network namespace `ns` only (mounts and cgroups as the test's).
fn in_net(ns: &str) -> Vec<String> {
    vec!["nsenter".into(), format!("--net=/run/netns/{ns}")]
}

/// Pings `dst` `n` times from namespace `ns`, inside `cg` if given; (sent, received).
fn ping_from(ns: &str, cg: Option<&TestCgroup>, dst: &str, n: u32) -> (u32, u32) {
    let count = n.to_string();
    let mut args = in_net(ns);
    args.extend(
        [
            "ping", "-n", "-q", "-c", &count, "-i", "0.05", "-W", "1", dst,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cgroup::spawn_in(cg.map(|c| c.path.as_path()), &args)
        .wait_with_output()
        .unwrap();
    chaos_tests::netns::parse_ping(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("no ping summary: {out:?}"))
}

fn scoped_blackhole(cidr: &str, cgroup: &str) -> String {
    json!({"match": {"cidr": cidr, "cgroup": cgroup}, "action": {"kind": "blackhole"}, "ttl": "1m"})
        .to_string()
}

/// Waits up to 10 s for the daemon to list no faults; the time it took.
fn until_no_faults(d: &Daemon) -> Duration {
    let start = Instant::now();
    while !d.fault_ids().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "faults still listed: {}",
            d.call(Method::GET, "/v1/faults", None).1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn a_scoped_fault_hits_its_cgroup_and_below_and_no_one_else() {
    let p = NsPair::new("cgscope");
    let d = Daemon::start(&p.a, "");
    let target = TestCgroup::new("target");
    let child = target.path.join("worker");
    std::fs::create_dir(&child).unwrap();
    let sibling = TestCgroup::new("sibling");
    let rel = format!("/{}", target.path.file_name().unwrap().to_str().unwrap());
    for (cidr, dst) in [(B4, B4), (B6, B6)] {
        let f = d.create(&scoped_blackhole(cidr, &rel));
        assert!(
            f["spec"]["match"]["cgroup"]
                .as_str()
                .unwrap()
                .ends_with(&rel),
            "the resolved directory is echoed: {f}"
        );
        assert_eq!(ping_from(&p.a, Some(&target), dst, 4), (4, 0), "{dst}");
        assert_eq!(ping_from(&p.a, Some(&sibling), dst, 4), (4, 4), "{dst}");
        assert_eq!(ping_from(&p.a, None, dst, 4), (4, 4), "{dst}");
        // Another address of the same host is not matched.
        assert_eq!(ping_from(&p.a, Some(&target), B4_ALT, 2), (2, 2));
        let (_, one) = d.call(
            Method::GET,
            &format!("/v1/faults/{}", f["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(one["counters"]["affected"], 4, "{one}");
    }
    // A process in a cgroup below the scope is covered too, also when its own level holds a
    // scoped rule that does not match: levels are probed deepest first until one matches.
    let worker = TestCgroup { path: child };
    assert_eq!(ping_from(&p.a, Some(&worker), B4, 3), (3, 0));
    let own = d.create(&scoped_blackhole(B4_ALT, &format!("{rel}/worker")));
    assert_eq!(ping_from(&p.a, Some(&worker), B4, 2), (2, 0));
    assert_eq!(ping_from(&p.a, Some(&worker), B4_ALT, 2), (2, 0));
    assert_eq!(ping_from(&p.a, Some(&target), B4_ALT, 2), (2, 2));
    let path = format!("/v1/faults/{}", own["id"].as_str().unwrap());
    assert_eq!(d.call(Method::DELETE, &path, None).0, 204);
    drop(worker);
    // The same match unscoped is another fault, and applies to everyone.
    let all = d.create(
        &json!({"match": {"cidr": B4}, "action": {"kind": "blackhole"}, "ttl": "1m"}).to_string(),
    );
    assert_eq!(ping_from(&p.a, Some(&sibling), B4, 2), (2, 0));
    d.call(
        Method::DELETE,
        &format!("/v1/faults/{}", all["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(ping_from(&p.a, Some(&sibling), B4, 2), (2, 2));
    // Removing the cgroup ends its faults (the service went away), audited.
    drop(target);
    until_no_faults(&d);
    assert!(d.log_text().contains("cgroup_gone"), "{}", d.log_text());
    assert_eq!(ping_from(&p.a, None, B4, 2), (2, 2));
}

#[test]
fn a_cgroup_that_cannot_be_a_scope_is_refused_naming_the_field() {
    let p = NsPair::new("cgbad");
    let d = Daemon::start(&p.a, "");
    let cg = TestCgroup::new("bad");
    let rel = format!("/{}", cg.path.file_name().unwrap().to_str().unwrap());
    let ingress = json!({"direction": "ingress", "match": {"cidr": B4, "cgroup": rel},
                         "action": {"kind": "blackhole"}, "ttl": "1m"});
    let dns = json!({"match": {"cgroup": rel}, "ttl": "1m",
                     "action": {"kind": "dns", "domain": "a.example", "response": "refused"}});
    for (body, says) in [
        (scoped_blackhole(B4, "/no-such-cgroup-here"), "no cgroup"),
        (scoped_blackhole(B4, "/"), "root cgroup"),
        (
            scoped_blackhole(B4, "systemd:no-such-unit.service"),
            "no cgroup for systemd unit",
        ),
        (scoped_blackhole(B4, "/../etc"), "\"..\""),
        (ingress.to_string(), "egress only"),
        (dns.to_string(), "DNS faults"),
    ] {
        let (s, e) = d.call(Method::POST, "/v1/faults", Some(&body));
        assert_eq!(
            (s, e["field"].as_str()),
            (422, Some("match.cgroup")),
            "{body}: {e}"
        );
        assert!(e["error"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    assert!(d.fault_ids().is_empty());
    assert_eq!(p.attached(&p.a, chaos_tests::netns::VETH_A), (0, false));
}

/// `nsenter --net=… chaosctl --socket S exec`, for the caller to add arguments to.
fn chaosctl_exec(ns: &str, socket: &std::path::Path) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg(bin("chaosctl"))
        .arg("--socket")
        .arg(socket)
        .arg("exec");
    c
}

fn exec(p: &NsPair, d: &Daemon, args: &[&str]) -> Output {
    chaosctl_exec(&p.a, &d.socket).args(args).output().unwrap()
}

#[test]
fn chaosctl_exec_faults_its_command_alone_and_lifts_them_when_it_exits() {
    let p = NsPair::new("cgexec");
    let d = Daemon::start(&p.a, "");
    // While the command runs under a blackhole, a sibling process reaches the same address.
    let ping = ["ping", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", B4];
    let mut args = vec!["--blackhole", "--to", B4, "--name", "exec-test", "--"];
    args.extend(ping);
    let mut runner = chaosctl_exec(&p.a, &d.socket);
    runner.args(args);
    let runner = std::thread::spawn(move || runner.output().unwrap());
    let start = Instant::now();
    let listed = loop {
        let (_, list) = d.call(Method::GET, "/v1/faults", None);
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no fault appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let cgroup = listed[0]["spec"]["match"]["cgroup"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cgroup.contains("/chaos-exec/"), "{listed}");
    assert_eq!(listed[0]["spec"]["name"], "exec-test");
    assert_eq!(
        ping_from(&p.a, None, B4, 4),
        (4, 4),
        "a sibling is not affected"
    );
    let out = runner.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("20 packets transmitted, 0 received"),
        "{out:?}"
    );
    // ping's own exit code (1: no reply) comes back.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(d.fault_ids().is_empty(), "lifted when the command exited");
    let (mount, _) = chaos_daemon::host::cgroup::mount().unwrap();
    let name = cgroup.rsplit('/').next().unwrap();
    // One path for the cgroup in every message: this host's (the daemon, under `ip netns
    // exec`, mounts cgroup v2 at /sys/fs/cgroup; this hybrid host has it at .../unified).
    let real = mount.join("chaos-exec").join(name).display().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cgroup {real} on")), "{stderr}");
    let leftover = mount.join("chaos-exec").join(name).exists();
    assert!(!leftover, "the command's cgroup is removed");

    // Exit codes: the command's, 127 when it does not exist; a refusal (no fault) is 125.
    let out = exec(
        &p,
        &d,
        &["--loss", "50", "--to", B4, "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let out = exec(
        &p,
        &d,
        &["--blackhole", "--to", B4, "--", "/no/such/command"],
    );
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let out = exec(
        &p,
        &d,
        &["--blackhole", "--to", B4, "--iface", "nope0", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interface"),
        "{out:?}"
    );
    // Bad syntax is a usage error, caught before anything is set up.
    let out = exec(
        &p,
        &d,
        &["--blackhole", "--to", "10.0.0.0/33", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // An unaffected destination: the command succeeds.
    let out = exec(
        &p,
        &d,
        &[
            "--blackhole",
            "--to",
            B4_ALT,
            "--",
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            B4,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(d.fault_ids().is_empty());
}

#[test]
fn faults_of_a_killed_chaosctl_exec_end_when_its_command_does() {
    let p = NsPair::new("cgkill");
    let d = Daemon::start(&p.a, "");
    let mut ctl = chaosctl_exec(&p.a, &d.socket)
        .args(["--blackhole", "--to", B4, "--", "sleep", "3"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let fault: Value = loop {
        let (_, list) = d.call(Method::GET, "/v1/faults", None);
        if let Some(f) = list.as_array().and_then(|l| l.first()) {
            break f.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no fault appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(fault["spec"]["until_cgroup_empty"], true, "{fault}");
    let (mount, _) = chaos_daemon::host::cgroup::mount().unwrap();
    let dir = fault["spec"]["match"]["cgroup"].as_str().unwrap();
    let dir = mount
        .join("chaos-exec")
        .join(dir.rsplit('/').next().unwrap());
    while cgroup::pids(&dir).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sleep never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ctl.kill().unwrap();
    ctl.wait().unwrap();
    assert_eq!(cgroup::pids(&dir).len(), 1, "sleep outlives chaosctl");
    assert_eq!(d.fault_ids().len(), 1, "the fault stays while sleep runs");
    let left = until_no_faults(&d);
    assert!(d.log_text().contains("cgroup_emptied"), "{}", d.log_text());
    assert!(
        cgroup::pids(&dir).is_empty(),
        "lifted only after the command ended ({left:?})"
    );
    // chaosctl was killed before it could clean up: the daemon removes the emptied cgroup.
    let gone = Instant::now();
    while dir.exists() && gone.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = dir.exists();
    cgroup::remove(&dir);
    let _ = std::fs::remove_dir(dir.parent().unwrap());
    assert!(!left, "{} left after its command ended", dir.display());
}

#[test]
fn empty_cgroups_chaosctl_exec_left_are_swept_and_busy_ones_kept() {
    let p = NsPair::new("cgsweep");
    let (mount, _) = chaos_daemon::host::cgroup::mount().unwrap();
    let parent = mount.join(chaos_daemon::host::cgroup::EXEC_PARENT);
    let made = |tag: &str, age: &str| {
        let dir = parent.join(format!("sweep-{tag}-{}", std::process::id()));
        // The parent is shared: a parallel test's chaosctl exec removes it when it is last out.
        let mut attempts = 0;
        while let Err(e) = std::fs::create_dir(&parent)
            .and_then(|()| std::fs::create_dir(&dir))
            .or_else(|_| std::fs::create_dir(&dir))
        {
            attempts += 1;
            assert!(attempts < 10, "mkdir {}: {e}", dir.display());
        }
        // mkdir sets a cgroup's mtime and nothing later changes it: age it as time would.
        let touched = Command::new("touch")
            .args(["-m", "-d", age])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(touched.success());
        dir
    };
    // A killed chaosctl exec's (empty, 2 minutes old); one whose command left a process that
    // still runs (2 minutes old); and one made a moment ago (its command is about to move in).
    let left = made("left", "2 minutes ago");
    let busy = made("busy", "2 minutes ago");
    let fresh = made("fresh", "now");
    let mut sleeper = cgroup::spawn_in(Some(&busy), &["sleep", "30"]);
    while cgroup::pids(&busy).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Any daemon sweeps (those of parallel tests too): this one at least.
    let d = Daemon::start(&p.a, "");
    let start = Instant::now();
    while left.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = (left.exists(), busy.exists(), fresh.exists());
    let log = d.log_text();
    drop(d);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    for dir in [&left, &busy, &fresh] {
        cgroup::remove(dir);
    }
    let _ = std::fs::remove_dir(&parent);
    assert_eq!(
        outcome,
        (false, true, true),
        "(left, busy, fresh) exist after a sweep: {log}"
    );
}
