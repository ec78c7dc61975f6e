//! What an operator meets beyond adding and removing faults: Prometheus scrapes that the
//! reference parsers read (and that stay small at 10,000 faults), the audit trail of refused
//! attempts, `PATCH` of a running fault (the kernel's deadline moves with it), and chaosctl's
//! `get`, `update`, `-o`, `--watch` and errors in flag words. Needs root.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chaos_tests::{
    daemon::{Daemon, bin},
    netns::{B4, B4_ALT, NsPair},
};
use hyper::Method;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Families and series of an exposition as Debian's python3-prometheus-client reads it, with
/// the classic text parser or (`openmetrics`) the OpenMetrics one: `{family: [type, series]}`.
fn parse_with_prometheus_client(text: &str, openmetrics: bool) -> HashMap<String, (String, u64)> {
    let parser = if openmetrics {
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families"
    } else {
        "from prometheus_client.parser import text_string_to_metric_families"
    };
    let script = format!(
        "import sys, json\n{parser}\n\
         print(json.dumps({{f.name: [f.type, len(f.samples)] for f in text_string_to_metric_families(sys.stdin.read())}}))"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (cargo xtask setup installs python3-prometheus-client)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: HashMap<String, (String, u64)> = serde_json::from_slice(&out.stdout).unwrap();
    v
}

/// `GET /metrics` with an `Accept` header, through curl: (Content-Type, body).
fn scrape(d: &Daemon, accept: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D", "-", "--unix-socket"])
        .arg(&d.socket)
        .arg("http://localhost/metrics");
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers, then the body");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (ctype, body.to_string())
}

/// 10,000 blackholes under `names` names (none on the test traffic's addresses).
fn ten_thousand_faults(d: &Daemon, names: usize) {
    let batch: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"name": format!("svc-{}", i % names), "match": {"cidr": format!("10.7.{}.{}", i / 250, i % 250 + 1)},
                   "action": {"kind": "blackhole"}, "ttl": "5m"})
        })
        .collect();
    d.create(&Value::Array(batch).to_string());
}

#[test]
fn metrics_parse_with_the_reference_parsers_and_stay_bounded_at_10000_faults() {
    let p = NsPair::new("prom");
    let d = Daemon::start(&p.a, "");
    ten_thousand_faults(&d, 10);
    // One fault removed: its counts stay in the sums (counters never go down).
    let victim = d.fault_ids()[0].clone();
    assert_eq!(
        d.call(Method::DELETE, &format!("/v1/faults/{victim}"), None)
            .0,
        204
    );

    let (ctype, classic) = scrape(&d, None);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let families = parse_with_prometheus_client(&classic, false);
    let series: u64 = families.values().map(|(_, n)| n).sum();
    eprintln!(
        "classic scrape at 9,999 faults: {} families, {series} series, {} bytes",
        families.len(),
        classic.len()
    );
    for (name, (kind, _)) in &families {
        assert_ne!(kind, "unknown", "{name} is not typed:\n{classic}");
    }
    for f in [
        "chaos_api_requests",
        "chaos_build_info",
        "chaos_faults_active",
        "chaos_fault_matched_packets",
        "chaos_fault_affected_packets",
        "chaos_deadman_trips",
    ] {
        assert!(families.contains_key(f), "{f} missing: {families:?}");
    }
    // 10 names × 3 counters, plus a handful of daemon series.
    assert!(series <= 50, "{series} series:\n{classic}");
    assert_eq!(families["chaos_fault_affected_packets"].1, 10);
    assert!(classic.contains(
        "chaos_fault_affected_packets_total{direction=\"egress\",interface=\"va\",kind=\"blackhole\",name=\"svc-0\"} 0"
    ));
    assert!(classic.contains("chaos_faults_active 9999\n"));
    let series_of = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
            .collect()
    };
    assert_eq!(
        series_of(&classic),
        series_of(&scrape(&d, None).1),
        "two scrapes, same families and series in the same order"
    );

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ctype, om) = scrape(&d, Some(prometheus));
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let families = parse_with_prometheus_client(&om, true);
    assert_eq!(families["chaos_api_requests"].0, "counter");
    assert_eq!(families["chaos_build"].0, "info");
    assert!(om.ends_with("# EOF\n"));

    // Per-fault series on request: one per fault and counter.
    let p2 = NsPair::new("promid");
    let d2 = Daemon::start(&p2.a, "metrics_per_fault = true\n");
    ten_thousand_faults(&d2, 10);
    let (_, per_fault) = scrape(&d2, None);
    let families = parse_with_prometheus_client(&per_fault, false);
    let series: u64 = families.values().map(|(_, n)| n).sum();
    eprintln!(
        "metrics_per_fault = true at 10,000 faults: {series} series, {} bytes",
        per_fault.len()
    );
    assert_eq!(families["chaos_fault_matched_bytes"].1, 10_000);
}

/// `key=value` pairs of a logfmt line (values quoted with backslash escapes, or bare).
fn logfmt(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            v.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next;
    }
    out
}

fn audit_lines(d: &Daemon) -> Vec<HashMap<String, String>> {
    d.log_text()
        .lines()
        .filter(|l| l.contains(" audit: "))
        .map(logfmt)
        .collect()
}

#[test]
fn refused_attempts_are_audited_with_the_caller_and_the_parameters() {
    let p = NsPair::new("audit");
    let d = Daemon::start(&p.a, "");
    let ssh = json!({"name": "ssh \"cut\"", "match": {"cidr": B4, "protocol": "tcp", "port": 22},
                     "action": {"kind": "loss", "percent": 40}, "percent": 50, "ttl": "1m"});
    let (s, e) = d.call(Method::POST, "/v1/faults", Some(&ssh.to_string()));
    assert_eq!(s, 409, "{e}");
    let bad =
        json!({"match": {"cidr": B4}, "action": {"kind": "loss", "percent": 150}, "ttl": "1m"});
    assert_eq!(
        d.call(Method::POST, "/v1/faults", Some(&bad.to_string())).0,
        422
    );
    assert_eq!(
        d.call(Method::POST, "/v1/faults", Some("{\"ttl\": ")).0,
        400
    );
    assert_eq!(d.call(Method::DELETE, "/v1/faults/nosuchid", None).0, 404);
    let experiment = json!({"name": "half-loss", "duration": "10s",
                            "faults": [{"match": {"cidr": B4},
                                        "action": {"kind": "loss", "percent": 150}}]});
    let (s, e) = d.call(
        Method::POST,
        "/v1/experiments",
        Some(&experiment.to_string()),
    );
    assert_eq!(s, 422, "{e}");
    let mut forced = ssh.clone();
    forced["force"] = json!(true);
    let f = d.create(&forced.to_string());

    let lines = audit_lines(&d);
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let me = me.trim_end();
    for l in &lines {
        assert_eq!(l["caller"], "client", "{l:?}");
        assert_eq!(l["uid"], "0");
        assert_eq!(l["gid"], "0");
        assert_eq!(l["pid"], std::process::id().to_string());
        assert_eq!(l["process"], me, "{l:?}");
    }
    let find = |status: &str| {
        lines
            .iter()
            .find(|l| l.get("status").map(String::as_str) == Some(status))
            .unwrap_or_else(|| panic!("no refusal with status {status}: {lines:?}"))
    };
    let protected = find("409");
    assert_eq!(protected["action"], "create");
    assert_eq!(protected["result"], "refused");
    assert_eq!(protected["field"], "match");
    assert_eq!(
        protected["name"], "ssh \"cut\"",
        "quoted and unescaped again"
    );
    assert_eq!(protected["kind"], "loss");
    assert_eq!(protected["percent"], "40.0");
    assert_eq!(protected["share"], "50.0");
    assert_eq!(protected["effective_percent"], "20.0");
    assert_eq!(protected["direction"], "egress");
    assert!(protected["match"].contains("port 22"), "{protected:?}");
    assert!(protected["error"].contains("protected"));
    assert_eq!(find("422")["field"], "action.percent");
    assert!(!find("400").contains_key("kind"), "no fault to describe");
    assert_eq!(find("404")["id"], "nosuchid");
    assert_eq!(find("404")["action"], "delete");
    let refused_experiment = lines
        .iter()
        .find(|l| l["action"] == "experiment")
        .expect("the refused experiment is audited");
    assert_eq!(refused_experiment["result"], "refused");
    assert_eq!(refused_experiment["status"], "422");
    assert_eq!(refused_experiment["name"], "half-loss");
    assert_eq!(
        refused_experiment.get("field").map(String::as_str),
        e["field"].as_str(),
        "{refused_experiment:?}"
    );
    let created = lines
        .iter()
        .find(|l| l["result"] == "ok" && l["action"] == "create")
        .expect("the forced create");
    assert_eq!(created["id"], f["id"].as_str().unwrap());
    assert_eq!(created["forced"], "true");
    assert!(created["overrode"].contains("port"), "{created:?}");
}

#[test]
fn changes_are_audited_with_what_they_do_and_experiments_with_how_they_ended() {
    let p = NsPair::new("auditdo");
    let d = Daemon::start(&p.a, "");
    let dns = json!({"name": "db-dns", "match": {"cidr": B4},
                     "action": {"kind": "dns", "domain": "db.example", "response": "nxdomain"},
                     "ttl": "1m"});
    let id = d.create(&dns.to_string())["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, e) = d.call(
        Method::PATCH,
        &format!("/v1/faults/{id}"),
        Some(r#"{"action": {"kind": "dns", "domain": "db.example", "response": "servfail"}, "ttl": "5m"}"#),
    );
    assert_eq!(s, 200, "{e}");
    // A stop condition that fires at once: the blackholed address stops answering pings.
    let ping = ["ping", "-c", "1", "-W", "1", B4];
    let experiment = json!({"name": "ping-dies", "duration": "20s",
        "probes": [{"id": "ping", "command": {"argv": ping}, "interval": "200ms", "timeout": "2s"}],
        "steady_state": {"before": ["ping"]},
        "stop_when": [{"probe": "ping", "consecutive_failures": 1}],
        "faults": [{"name": "cut", "match": {"cidr": B4}, "action": {"kind": "blackhole"}}]});
    let (s, e) = d.call(
        Method::POST,
        "/v1/experiments",
        Some(&experiment.to_string()),
    );
    assert_eq!(s, 201, "{e}");
    let exp = e["id"].as_str().unwrap().to_string();
    let done = d.until_experiment_ends(&exp, Duration::from_secs(20));
    assert_eq!(done["state"], "aborted", "{done}");

    let lines = audit_lines(&d);
    let find = |action: &str, of: &str| {
        lines
            .iter()
            .find(|l| l["action"] == action && l.get("name").map(String::as_str) == Some(of))
            .unwrap_or_else(|| panic!("no {action} line for {of}: {lines:#?}"))
    };
    assert_eq!(find("create", "db-dns")["does"], "nxdomain for db.example");
    let update = find("update", "db-dns");
    assert_eq!(update["does"], "servfail for db.example", "{update:?}");
    assert_eq!(
        update["was"], "nxdomain for db.example, ttl 1m",
        "{update:?}"
    );
    let start = find("experiment_start", "ping-dies");
    assert_eq!(start["id"], exp);
    assert_eq!(start["caller"], "client");
    for action in ["create", "delete"] {
        let l = find(action, "cut");
        assert_eq!(l["experiment"], exp, "{action} is the experiment's: {l:?}");
        assert_eq!(l["does"], "drop all", "{l:?}");
        assert_eq!(l["uid"], "0", "and its caller's: {l:?}");
    }
    let end = find("experiment_end", "ping-dies");
    assert_eq!(end["state"], "aborted", "{end:?}");
    assert!(
        end["reason"].starts_with("stop condition probe ping"),
        "{end:?}"
    );
}

#[test]
fn patch_moves_the_kernel_deadline_and_changes_the_action_in_place() {
    let p = NsPair::new("patch");
    // A long dead-man interval: the kernel's own TTL is what is tested while the daemon sleeps.
    let d = Daemon::start(&p.a, "deadman = \"60s\"\nmax_ttl = \"2h\"\n");
    let blackhole = |cidr: &str, ttl: &str| {
        json!({"match": {"cidr": cidr}, "action": {"kind": "blackhole"}, "ttl": ttl}).to_string()
    };
    let longer = d.create(&blackhole(B4, "3s"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shorter = d.create(&blackhole(B4_ALT, "1h"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch =
        |id: &str, body: &str| d.call(Method::PATCH, &format!("/v1/faults/{id}"), Some(body));
    let (s, f) = patch(&longer, r#"{"ttl": "9s"}"#);
    assert_eq!(s, 200, "{f}");
    assert!(f["remaining_ms"].as_u64().unwrap() > 8_000, "{f}");
    let (s, f) = patch(&shorter, r#"{"ttl": "2s"}"#);
    assert_eq!(s, 200, "{f}");
    let patched = Instant::now();
    // From now on only the kernel enforces the deadlines.
    d.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4).saturating_sub(patched.elapsed()));
    let extended = p.ping(&p.a, B4, None, 3, "0.05");
    let shortened = p.ping(&p.a, B4_ALT, None, 3, "0.05");
    let checked = patched.elapsed();
    std::thread::sleep(Duration::from_secs(11).saturating_sub(patched.elapsed()));
    let after = p.ping(&p.a, B4, None, 3, "0.05");
    d.signal(Signal::SIGCONT);
    if checked < Duration::from_secs(8) {
        assert_eq!(
            extended,
            (3, 0),
            "past the old 3 s TTL, the kernel still drops"
        );
    }
    assert_eq!(
        shortened,
        (3, 3),
        "the kernel ended the 1 h fault at its new 2 s"
    );
    assert_eq!(after, (3, 3), "and the extended one at its new 9 s");

    let loss = d.create(
        &json!({"name": "l", "match": {"cidr": B4}, "action": {"kind": "loss", "percent": 100}, "ttl": "1m"})
            .to_string(),
    );
    let id = loss["id"].as_str().unwrap();
    assert_eq!(p.ping(&p.a, B4, None, 5, "0.02"), (5, 0));
    let unchanged = d.call(Method::GET, &format!("/v1/faults/{id}"), None).1["spec"].clone();
    for (body, status, field) in [
        (r#"{"action": {"kind": "blackhole"}}"#, 422, "action.kind"),
        (r#"{"ttl": "3h"}"#, 422, "ttl"),
        (
            r#"{"action": {"kind": "loss", "percent": 0}}"#,
            422,
            "action.percent",
        ),
        (r#"{"match": {"cidr": "10.0.0.1"}}"#, 400, "match"),
        ("{}", 422, ""),
    ] {
        let (s, e) = patch(id, body);
        assert_eq!(s, status, "{body}: {e}");
        assert_eq!(
            e["field"].as_str().unwrap_or_default(),
            field,
            "{body}: {e}"
        );
        let now = d.call(Method::GET, &format!("/v1/faults/{id}"), None).1;
        assert_eq!(now["spec"], unchanged, "a refused PATCH changes nothing");
    }
    assert_eq!(patch("nosuchid", r#"{"ttl": "1m"}"#).0, 404);
    let (s, f) = patch(id, r#"{"action": {"kind": "loss", "percent": 0.0001}}"#);
    assert_eq!(s, 200, "{f}");
    assert_eq!(p.ping(&p.a, B4, None, 5, "0.02"), (5, 5));
    let f = d.call(Method::GET, &format!("/v1/faults/{id}"), None).1;
    assert_eq!(f["counters"]["matched"], 10, "counters go on: {f}");
    assert_eq!(f["spec"]["action"]["percent"], 0.0001);
    assert!(
        d.log_text().contains("action=\"update\""),
        "updates are audited"
    );
}

#[test]
fn chaosctl_get_update_outputs_watch_and_errors_in_flag_words() {
    let p = NsPair::new("ctlx");
    let d = Daemon::start(&p.a, "");
    d.ctl_ok(&[
        "add",
        "loss",
        "--to",
        B4,
        "--percent",
        "30",
        "--ttl",
        "5m",
        "--name",
        "redis",
        "-l",
        "team=pay",
    ]);
    let got = d.ctl_ok(&["get", "redis"]);
    for want in [
        "name:      redis",
        "labels:    team=pay",
        "effective: 30% of matching packets",
        "by uid 0 (",
    ] {
        assert!(got.contains(want), "{want:?} missing:\n{got}");
    }
    let updated = d.ctl_ok(&["update", "redis", "--ttl", "30m", "--percent", "50"]);
    assert!(updated.contains("drop 50%"), "{updated}");
    assert!(
        updated.contains("ttl 30m,"),
        "the echo says the ttl given, not the lifetime since creation: {updated}"
    );
    let f: Value = serde_json::from_str(&d.ctl_ok(&["get", "redis", "-o", "json"])).unwrap();
    assert!(f["remaining_ms"].as_u64().unwrap() > 29 * 60 * 1000, "{f}");
    assert_eq!(f["spec"]["action"]["percent"], 50.0);
    assert_eq!(f["effective_percent"], 50.0);

    let wide = d.ctl_ok(&["ls", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    assert!(
        header.contains(" LABELS ") && header.ends_with(" BY"),
        "{wide}"
    );
    assert!(wide.contains("team=pay") && wide.contains("50%"), "{wide}");
    let yaml = d.ctl_ok(&["ls", "-o", "yaml"]);
    assert!(
        yaml.starts_with("- id: ") && yaml.contains("  name: redis"),
        "{yaml}"
    );
    let listed: Value = serde_json::from_str(&d.ctl_ok(&["ls", "-o", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Caught by chaosctl itself: usage errors (exit 2) that name the flag.
    for (args, flag) in [
        (
            &["add", "loss", "--to", B4, "--percent", "5", "--ttl", "60"][..],
            "--ttl",
        ),
        (
            &[
                "add",
                "blackhole",
                "--to",
                B4,
                "--ttl",
                "1m",
                "--proto",
                "sctp",
            ],
            "--proto",
        ),
        (
            &[
                "add",
                "blackhole",
                "--to",
                B4,
                "--ttl",
                "1m",
                "--share",
                "0",
            ],
            "--percent",
        ),
    ] {
        let out = d.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    // Refused by the daemon: in flag words.
    let out = d.ctl(&[
        "add",
        "blackhole",
        "--to",
        B4,
        "--proto",
        "tcp",
        "--port",
        "22",
        "--ttl",
        "1m",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--force") && !err.contains("\"force\""),
        "{err}"
    );
    let unknown_iface = [
        "add",
        "blackhole",
        "--to",
        B4_ALT,
        "--ttl",
        "1m",
        "--iface",
        "nope0",
    ];
    let out = d.ctl(&unknown_iface);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("chaosctl: --iface: ") && err.contains("va"),
        "{err}"
    );
    let out = d.ctl(&[&["--json"][..], &unknown_iface].concat());
    let e: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(
        (e["field"].as_str(), e["flag"].as_str()),
        (Some("interface"), Some("--iface"))
    );
    let out = d.ctl(&["add", "loss", "--to", B4, "--percent", "5", "--ttl", "1m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(f["id"].as_str().unwrap()),
        "a duplicate names the fault: {err}"
    );

    let status = d.ctl_ok(&["status"]);
    for want in [
        ", up ",
        &format!("socket:             {}", d.socket.display()),
        "default interface:  va",
        "attached to:        va",
        "limits:             max_ttl 1h, max_rules 100000",
    ] {
        assert!(status.contains(want), "{want:?} missing:\n{status}");
    }

    // --watch prints the table again until interrupted.
    let watch = Command::new(bin("chaosctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["ls", "--watch", "--interval", "300ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        Signal::SIGINT,
    )
    .unwrap();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "Ctrl-C ends --watch cleanly");
    assert!(text.matches("ID ").count() >= 2, "{text}");
}
