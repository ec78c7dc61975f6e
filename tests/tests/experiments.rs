//! Experiments end to end: the real daemon runs them against the demo services
//! (`chaos_tests::services`), and `chaosctl run` drives the example files. Needs root and the
//! binaries built (`cargo xtask test` does both).

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use chaos_tests::{
    daemon::{Daemon, bin},
    netns::{B4, B4_ALT, NsPair, VETH_A},
    services::{DemoServices, get},
};
use hyper::Method;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn health_probe(interval: &str) -> Value {
    json!({"id": "health", "http": {"url": "http://10.200.0.1:8080/healthz"},
           "interval": interval, "timeout": "500ms"})
}

fn cache_blackhole() -> Value {
    json!({"name": "cache-down", "match": {"cidr": B4, "protocol": "tcp", "port": 6379},
           "action": {"kind": "blackhole"}})
}

#[test]
fn a_probe_that_breaks_aborts_the_experiment_and_lifts_every_fault_at_once() {
    let p = NsPair::new("exabort");
    let d = Daemon::start(&p.a, "");
    let _s = DemoServices::start(&p);
    let spec = json!({
        "name": "cache-down", "hypothesis": "health survives the cache going away",
        "faults": [cache_blackhole()], "duration": "30s",
        "probes": [health_probe("100ms")],
        "steady_state": {"before": ["health"], "after": ["health"]},
        "stop_when": [{"probe": "health", "consecutive_failures": 2}],
    });
    let (s, e) = d.call(Method::POST, "/v1/experiments", Some(&spec.to_string()));
    assert_eq!(s, 201, "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    let done = d.until_experiment_ends(&id, Duration::from_secs(20));
    assert_eq!(done["state"], "aborted", "{done}");
    let abort = &done["abort"];
    assert_eq!(abort["by"], "probe health", "{done}");
    let lifted_ms = abort["breach_to_lifted_ms"].as_f64().unwrap();
    println!("breach seen → every fault gone: {lifted_ms} ms");
    assert!(d.fault_ids().is_empty());
    assert_eq!(p.attached(&p.a, VETH_A), (0, false), "programs detached");
    assert_eq!(
        get(&p.a, "/healthz"),
        Some(200),
        "the cache is reachable again"
    );
    // The timeline holds the steady state and the failures that fired the condition.
    let timeline = done["timeline"].as_array().unwrap();
    assert!(
        timeline[0]["phase"] == "before" && timeline[0]["ok"] == true,
        "{done}"
    );
    let failed = timeline
        .iter()
        .filter(|r| r["phase"] == "during" && r["ok"] == false)
        .count();
    assert!(failed >= 2, "{done}");
    assert!(done["injected_at_ms"].as_u64() <= done["lifted_at_ms"].as_u64());
}

#[test]
fn a_steady_state_that_does_not_hold_refuses_and_injects_nothing() {
    let p = NsPair::new("exsteady");
    let d = Daemon::start(&p.a, "");
    let _s = DemoServices::start(&p);
    // A probe whose expectation the healthy service does not meet.
    let spec = json!({
        "name": "needs-teapot", "faults": [cache_blackhole()], "duration": "10s",
        "probes": [{"id": "teapot", "http": {"url": "http://10.200.0.1:8080/healthz"},
                    "expect": {"status": 418}}],
        "steady_state": {"before": ["teapot"]},
    });
    let (s, e) = d.call(Method::POST, "/v1/experiments", Some(&spec.to_string()));
    assert_eq!(s, 201, "{e}");
    let done = d.until_experiment_ends(e["id"].as_str().unwrap(), Duration::from_secs(10));
    assert_eq!(done["state"], "not_started", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("status 200"),
        "{done}"
    );
    assert!(done["injected_at_ms"].is_null(), "{done}");
    assert!(
        !d.log_text().contains("fault create"),
        "no fault was ever created:\n{}",
        d.log_text()
    );
    assert_eq!(p.attached(&p.a, VETH_A), (0, false));
    // A dry run checks the same and injects nothing either, even when it holds.
    let dry = json!({"name": "dry", "faults": [cache_blackhole()], "duration": "10s",
                     "probes": [health_probe("1s")], "steady_state": {"before": ["health"]},
                     "dry_run": true});
    let (_, e) = d.call(Method::POST, "/v1/experiments", Some(&dry.to_string()));
    let done = d.until_experiment_ends(e["id"].as_str().unwrap(), Duration::from_secs(10));
    assert_eq!(done["state"], "completed", "{done}");
    assert!(done["injected_at_ms"].is_null(), "{done}");
    assert_eq!(p.attached(&p.a, VETH_A), (0, false));
}

#[test]
fn bad_experiments_are_refused_naming_the_field_and_leave_nothing() {
    let p = NsPair::new("exbad");
    let d = Daemon::start(&p.a, "max_ttl = \"1m\"");
    let base = json!({"name": "x", "faults": [cache_blackhole()], "duration": "10s",
                      "probes": [health_probe("1s")]});
    let with = |patch: Value| {
        let mut s = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        s.to_string()
    };
    for (body, field) in [
        (with(json!({"duration": "2m"})), "duration"),
        (with(json!({"faults": []})), "faults"),
        (
            with(
                json!({"faults": [{"match": {"cidr": B4}, "action": {"kind": "blackhole"}, "ttl": "1m"}]}),
            ),
            "faults[0].ttl",
        ),
        (
            with(
                json!({"faults": [{"match": {"cidr": "10.0.0.0/33"}, "action": {"kind": "blackhole"}}]}),
            ),
            "faults[0].match.cidr",
        ),
        (
            with(json!({"probes": [{"id": "h", "http": {"url": "https://10.200.0.1/"}}]})),
            "probes[0].http.url",
        ),
        (
            with(json!({"stop_when": [{"probe": "nope"}]})),
            "stop_when[0].probe",
        ),
        (
            with(json!({"stop_when": [{"fault": "cache-down", "above": 5, "counter": "bytes"}]})),
            "stop_when[0].counter",
        ),
        (
            with(json!({"steady_state": {"before": ["nope"]}})),
            "steady_state.before[0]",
        ),
        // Two faults with one match could never both go in: refused now, dry run or not.
        (
            with(
                json!({"faults": [cache_blackhole(), {"match": cache_blackhole()["match"],
                                    "action": {"kind": "loss", "percent": 10}}]}),
            ),
            "faults[1].match",
        ),
        (
            with(json!({"dry_run": true, "faults": [cache_blackhole(),
                        {"match": cache_blackhole()["match"], "action": {"kind": "blackhole"}}]})),
            "faults[1].match",
        ),
    ] {
        let (s, e) = d.call(Method::POST, "/v1/experiments", Some(&body));
        assert_eq!((s, e["field"].as_str()), (422, Some(field)), "{body}: {e}");
    }
    // A match an installed fault holds: 409 naming the fault, as POST /v1/faults answers.
    let held = json!({"match": cache_blackhole()["match"], "action": {"kind": "blackhole"},
                      "ttl": "1m"});
    let installed = d.create(&held.to_string());
    for dry_run in [false, true] {
        let (s, e) = d.call(
            Method::POST,
            "/v1/experiments",
            Some(&with(json!({"dry_run": dry_run}))),
        );
        assert_eq!(
            (s, e["field"].as_str()),
            (409, Some("faults[0].match")),
            "{e}"
        );
        let error = e["error"].as_str().unwrap();
        assert!(error.contains(installed["id"].as_str().unwrap()), "{e}");
    }
    assert_eq!(
        d.call(Method::DELETE, "/v1/faults", None).0,
        200,
        "the held fault goes"
    );
    let (s, e) = d.call(
        Method::POST,
        "/v1/experiments",
        Some(&with(json!({"surprise": 1}))),
    );
    assert!(s == 400 || s == 422, "{s} {e}");
    assert!(e["error"].as_str().unwrap().contains("surprise"), "{e}");
    let (_, list) = d.call(Method::GET, "/v1/experiments", None);
    assert_eq!(list, json!([]));
    assert!(d.fault_ids().is_empty());
    // Two experiments on the same interface and match: the second is refused while the first runs.
    let long = json!({"name": "a", "faults": [cache_blackhole()], "duration": "30s"}).to_string();
    let (s, first) = d.call(Method::POST, "/v1/experiments", Some(&long));
    assert_eq!(s, 201, "{first}");
    let (s, e) = d.call(Method::POST, "/v1/experiments", Some(&long));
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap()),
        "{e}"
    );
    // DELETE stops it: faults lifted, state stopped.
    let (s, stopped) = d.call(
        Method::DELETE,
        &format!("/v1/experiments/{}", first["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        (s, stopped["state"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    assert!(d.fault_ids().is_empty());
}

/// An experiment file in the temp dir: `name`, a blackhole of `matches` (TOML inline-table
/// fields) for `duration`.
fn blackhole_file(name: &str, duration: &str, matches: &str) -> PathBuf {
    let file = std::env::temp_dir().join(format!("chaos-{name}-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\nduration = \"{duration}\"\n[[faults]]\nmatch = {{ {matches} }}\naction = {{ kind = \"blackhole\" }}\n"
        ),
    )
    .unwrap();
    file
}

/// `chaosctl run --junit JUNIT FILE`, which must exit `code`: (its stdout, the JUnit file).
fn run_junit(
    d: &Daemon,
    file: &std::path::Path,
    junit: &std::path::Path,
    code: i32,
) -> (String, String) {
    let out = chaosctl_run(d, &["--junit", junit.to_str().unwrap()])
        .arg(file)
        .output()
        .unwrap();
    show(&file.display().to_string(), &out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stdout}");
    let xml = std::fs::read_to_string(junit).unwrap();
    let _ = std::fs::remove_file(junit);
    (stdout, xml)
}

fn chaosctl_run(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new(bin("chaosctl"));
    c.arg("--socket").arg(&d.socket).arg("run").args(args);
    c
}

/// Echoes a `chaosctl run` transcript into the test log.
fn show(file: &str, out: &std::process::Output) {
    eprintln!(
        "$ chaosctl run --junit report.xml examples/{file}\n{}{}[exit {:?}]",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        out.status.code()
    );
}

#[test]
fn chaosctl_run_reports_each_example_and_writes_junit() {
    let p = NsPair::new("exrun");
    let d = Daemon::start(&p.a, "");
    let _s = DemoServices::start(&p);
    // Every example validates and its steady state holds in the demo setting (dry run).
    for entry in std::fs::read_dir(examples()).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut spec: Value = toml::from_str(&text).unwrap();
        spec["dry_run"] = json!(true);
        let (s, e) = d.call(Method::POST, "/v1/experiments", Some(&spec.to_string()));
        assert_eq!(s, 201, "{}: {e}", entry.path().display());
        let done = d.until_experiment_ends(e["id"].as_str().unwrap(), Duration::from_secs(20));
        assert_eq!(
            done["state"],
            "completed",
            "{}: {done}",
            entry.path().display()
        );
    }
    // One for real: the hypothesis holds (exit 0), the report names the probes and the fault.
    let junit = std::env::temp_dir().join(format!("chaos-junit-{}.xml", std::process::id()));
    let out = chaosctl_run(&d, &["--junit", junit.to_str().unwrap()])
        .arg(examples().join("dependency-blackhole.toml"))
        .output()
        .unwrap();
    show("dependency-blackhole.toml", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("dynamodb-blackhole") && stdout.contains("completed"),
        "{stdout}"
    );
    assert!(stdout.contains("probe orders-fail-fast"), "{stdout}");
    assert!(d.fault_ids().is_empty());
    // The JUnit file parses as XML, with the three steps passing.
    let parsed = Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); s = r.find('testsuite'); print(s.get('tests'), s.get('failures'), len(s.findall('testcase')))"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "3 0 3",
        "{parsed:?}"
    );
    let _ = std::fs::remove_file(&junit);
    // The cache example refutes its hypothesis: aborted by the stop condition, exit 2.
    let (stdout, xml) = run_junit(&d, &examples().join("cache-failure.toml"), &junit, 2);
    assert!(stdout.contains("aborted by probe health"), "{stdout}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(d.fault_ids().is_empty());
    // An invalid file: exit 4, nothing sent.
    let bad = std::env::temp_dir().join(format!("chaos-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "name = \"x\"\nduration = \n").unwrap();
    let out = chaosctl_run(&d, &[]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // A valid file the daemon refuses: exit 4, the message names the field, nothing injected.
    std::fs::write(
        &bad,
        format!(
            "name = \"x\"\nduration = \"10s\"\n[[faults]]\nmatch = {{ cidr = \"{B4}\" }}\naction = {{ kind = \"loss\", percent = 150 }}\n"
        ),
    )
    .unwrap();
    let out = chaosctl_run(&d, &[]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // Named at the file's line, not at a position in the JSON chaosctl sent.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5: refused (faults[0].action.percent)",
            bad.display()
        )),
        "{err}"
    );
    assert!(!err.contains("column"), "{err}");
    assert!(d.fault_ids().is_empty());
    // Faults that affect nothing (no traffic to the port): completed, but not tested: exit 6,
    // the injection skipped in the JUnit file.
    let idle = blackhole_file(
        "idle",
        "1s",
        &format!("cidr = \"{B4}\", protocol = \"tcp\", port = 9"),
    );
    let (stdout, xml) = run_junit(&d, &idle, &junit, 6);
    assert!(stdout.contains("the hypothesis was not tested"), "{stdout}");
    assert!(xml.contains("failures=\"0\" skipped=\"1\""), "{xml}");
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_file(&idle);
}

#[test]
fn ctrl_c_on_chaosctl_run_stops_the_experiment_and_exits_3() {
    let p = NsPair::new("exint");
    let d = Daemon::start(&p.a, "");
    let _s = DemoServices::start(&p);
    let file = blackhole_file("long", "5m", &format!("cidr = \"{B4_ALT}\""));
    let child = chaosctl_run(&d, &[])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while d.fault_ids().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no fault appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped"),
        "{out:?}"
    );
    assert!(d.fault_ids().is_empty(), "Ctrl-C lifted the faults");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn kill_9_of_the_daemon_mid_experiment_leaves_no_fault() {
    let p = NsPair::new("exkill");
    let mut d = Daemon::start(&p.a, "");
    // Run by chaosctl, which is left following an experiment whose daemon dies.
    let file = blackhole_file("k", "5m", &format!("cidr = \"{B4}\""));
    let run = chaosctl_run(&d, &[])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while p.ping(&p.a, B4, None, 1, "0.1") != (1, 0) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the fault never took effect"
        );
    }
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit();
    let out = run.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        out.status.code(),
        Some(7),
        "how it ended is unknown: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The links died with the daemon; the kernel TTL (duration + margin) backs that up.
    assert_eq!(p.attached(&p.a, VETH_A), (0, false));
    assert_eq!(p.ping(&p.a, B4, None, 3, "0.1"), (3, 3));
    d.restart();
    let (_, list) = d.call(Method::GET, "/v1/experiments", None);
    assert_eq!(list, json!([]), "a new daemon knows no experiment");
    assert!(d.fault_ids().is_empty());
}
