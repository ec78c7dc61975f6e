//! The daemon attacked as a careless or hostile operator would: absurd values, held
//! connections, files in the socket's place, a second daemon, interfaces that vanish and
//! return, fragments. Each case failed on an earlier version. Needs root.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chaos_tests::{
    daemon::{Daemon, bin},
    netns::{A4, B4, B4_ALT, B6, NsPair, VETH_A},
};
use hyper::Method;
use nix::sys::signal::Signal;
use serde_json::json;

fn blackhole(cidr: &str, ttl: &str) -> String {
    json!({"match": {"cidr": cidr}, "action": {"kind": "blackhole"}, "ttl": ttl}).to_string()
}

/// Runs `chaos-daemon args…` to completion inside `ns`.
fn daemon_once(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("chaos-daemon"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn ttls_beyond_what_deadlines_can_hold_are_refused_before_any_map_write() {
    let p = NsPair::new("hugettl");
    let dir = std::env::temp_dir().join(format!("chaos-hugettl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("config.toml");
    std::fs::write(&conf, "max_ttl = \"10000y\"\n").unwrap();
    let socket = dir.join("s.sock");
    let out = daemon_once(
        &p.a,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("max_ttl"), "{stderr}");
    assert!(!socket.exists(), "nothing left behind");
    let _ = std::fs::remove_dir_all(&dir);
    // Under the largest allowed cap, an 8000-year TTL is a 422 and the kernel holds nothing.
    let d = Daemon::start(&p.a, "max_ttl = \"10y\"\n");
    let (s, e) = d.call(Method::POST, "/v1/faults", Some(&blackhole(B4, "8000y")));
    assert_eq!((s, e["field"].as_str()), (422, Some("ttl")), "{e}");
    assert_eq!(p.attached(&p.a, VETH_A), (0, false));
    assert_eq!(p.ping(&p.a, B4, None, 3, "0.02"), (3, 3));
    let f = d.create(&blackhole(B4, "9y"));
    assert!(f["expires_at"].as_str().unwrap().ends_with('Z'), "{f}");
    assert_eq!(d.fault_ids().len(), 1);
}

#[test]
fn held_connections_cannot_lock_out_the_panic_button() {
    let p = NsPair::new("held");
    // 1024 open files, as systemd's default soft limit: the cap is far below it.
    let d = Daemon::start_under(&p.a, "", &["prlimit", "--nofile=1024:1024", "--"]);
    d.create(&blackhole(B4, "10m"));
    // 1000 idle, partial-header and partial-body connections.
    let held: Vec<UnixStream> = (0..1000).filter_map(|i| hold(&d.socket, i)).collect();
    // The signal answers at once, whatever the connections do.
    d.signal(Signal::SIGUSR1);
    let start = Instant::now();
    while p.ping(&p.a, B4, None, 1, "0.1") != (1, 1) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "SIGUSR1 did not lift the fault"
        );
    }
    // And the API answers again once the held connections time out (5 s header deadline,
    // 10 s body deadline), though they are still open on the client side.
    let start = Instant::now();
    loop {
        let client = chaos_daemon::client::Client::new(&d.socket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        if let Ok((200, _)) = rt.block_on(client.request(Method::GET, "/v1/health", None)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "API still locked out:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(d.fault_ids().len(), 0);
    assert!(
        d.log_text().contains("connection limit reached"),
        "{}",
        d.log_text()
    );
    drop(held);
}

/// A connection that holds a slot: idle, stopped inside its headers, or inside its body.
fn hold(socket: &std::path::Path, i: usize) -> Option<UnixStream> {
    let mut c = UnixStream::connect(socket).ok()?;
    let _ = match i % 3 {
        0 => Ok(()),
        1 => c.write_all(b"GET /v1/health HTTP/1.1\r\nHo"),
        _ => c.write_all(b"POST /v1/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{"),
    };
    Some(c)
}

/// One `DELETE /v1/faults` on a fresh connection: its status line, and how long it took.
fn panic_button(socket: &std::path::Path) -> (String, Duration) {
    let start = Instant::now();
    let mut answer = String::new();
    if let Ok(mut c) = UnixStream::connect(socket) {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"DELETE /v1/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = c.read_to_string(&mut answer);
    }
    let status = answer.lines().next().unwrap_or("no answer").to_string();
    (status, start.elapsed())
}

#[test]
fn the_api_panic_button_answers_through_a_cap_held_by_idle_slow_and_reconnecting_clients() {
    let p = NsPair::new("capfull");
    // 1024 open files: a cap of 384 connections, held several times over.
    let d = Daemon::start_under(&p.a, "", &["prlimit", "--nofile=1024:1024", "--"]);
    let held: Vec<UnixStream> = (0..600).filter_map(|i| hold(&d.socket, i)).collect();
    // And a client that keeps reconnecting, holding its newest 300.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reconnecting = {
        let stop = stop.clone();
        let socket = d.socket.clone();
        std::thread::spawn(move || {
            let mut recent = std::collections::VecDeque::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(c) = hold(&socket, i) {
                    recent.push_back(c);
                }
                if recent.len() > 300 {
                    recent.pop_front();
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        })
    };
    let mut times = Vec::new();
    for i in 0..100 {
        if i % 10 == 0 {
            d.create(&blackhole(B4, "10m"));
        }
        let (status, took) = panic_button(&d.socket);
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "try {i}: {status} after {took:?}\n{}",
            d.log_text()
        );
        times.push(took);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let attempts = reconnecting.join().unwrap();
    times.sort();
    eprintln!(
        "DELETE /v1/faults through a full cap ({} held, {attempts} reconnects): median {:?}, \
         p99 {:?}, max {:?}",
        held.len(),
        times[50],
        times[98],
        times[99]
    );
    assert!(d.fault_ids().is_empty());
    assert_eq!(p.ping(&p.a, B4, None, 2, "0.1"), (2, 2));
    drop(held);
}

#[test]
fn a_regular_file_in_the_sockets_place_survives() {
    let p = NsPair::new("file");
    let path = std::env::temp_dir().join(format!("chaos-not-a-socket-{}.txt", std::process::id()));
    std::fs::write(&path, "precious").unwrap();
    for args in [
        vec!["--socket", path.to_str().unwrap(), "cleanup"],
        vec!["--socket", path.to_str().unwrap()],
    ] {
        let out = daemon_once(&p.a, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("not a socket"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_missing_socket_group_leaves_no_socket_behind() {
    let p = NsPair::new("nogroup");
    let path = std::env::temp_dir().join(format!("chaos-nogroup-{}.sock", std::process::id()));
    let out = daemon_once(
        &p.a,
        &[
            "--socket",
            path.to_str().unwrap(),
            "--socket-group",
            "no-such-group-x",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-group-x"), "{stderr}");
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn a_second_daemon_in_the_namespace_is_refused_and_named() {
    let p = NsPair::new("second");
    let d = Daemon::start(&p.a, "");
    let other = d.dir.join("other.sock");
    let out = daemon_once(&p.a, &["--socket", other.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", d.child.id()))
            && stderr.contains(d.socket.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!other.exists());
    let out = daemon_once(&p.a, &["--socket", d.socket.to_str().unwrap(), "cleanup"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cleanup refuses while a daemon runs"
    );
    assert!(d.socket.exists());
}

#[test]
fn a_deleted_socket_stops_its_daemon_and_spares_the_next_ones() {
    let p = NsPair::new("rmsock");
    let mut d = Daemon::start(&p.a, "");
    d.create(&blackhole(B4, "10m"));
    std::fs::remove_file(&d.socket).unwrap();
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    assert!(
        d.log_text().contains("deleted or replaced"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        p.attached(&p.a, VETH_A),
        (0, false),
        "its faults went with it"
    );
    assert_eq!(p.ping(&p.a, B4, None, 3, "0.02"), (3, 3));
}

#[test]
fn a_recreated_interface_gets_its_faults_enforced() {
    let p = NsPair::new("recreate");
    let d = Daemon::start(&p.a, "");
    d.create(&blackhole(B4, "10m"));
    // B6 carries no fault: it tells when the new link is up.
    p.recreate_link(&[B6]);
    // Within the second the old daemon needed to notice: a new fault is in force when 201 says
    // so, and the old one follows the interface.
    d.create(&blackhole(B4_ALT, "10m"));
    assert_eq!(p.ping(&p.a, B4_ALT, None, 3, "0.02"), (3, 0));
    assert_eq!(p.ping(&p.a, B4, None, 3, "0.02"), (3, 0));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.fault_ids().len(), 2, "{}", d.log_text());
    assert_eq!(p.ping(&p.a, B4_ALT, None, 3, "0.02"), (3, 0));
    assert_eq!(p.attached(&p.a, VETH_A).0, 1);
    assert!(
        d.log_text().contains("action=\"interface_replaced\""),
        "{}",
        d.log_text()
    );
}

#[test]
fn fragmented_datagrams_to_a_blackholed_address_are_dropped_both_ways() {
    let p = NsPair::new("frag");
    let d = Daemon::start(&p.a, "");
    assert_eq!(
        p.ping_sized(&p.a, B4, 4000, 3),
        (3, 3),
        "fragments pass without faults"
    );
    for (dst, direction) in [
        (B4, "egress"),
        (B6, "egress"),
        (B4, "ingress"),
        (B6, "ingress"),
    ] {
        let spec = json!({"direction": direction, "match": {"cidr": dst}, "action": {"kind": "blackhole"}, "ttl": "1m"});
        d.create(&spec.to_string());
        assert_eq!(
            p.ping_sized(&p.a, dst, 4000, 5),
            (5, 0),
            "{dst} {direction}"
        );
        let (s, _) = d.call(Method::DELETE, "/v1/faults", None);
        assert_eq!(s, 200);
    }
    // Fragmented UDP from B to A, blackholed on A's ingress by source: nothing arrives.
    let spec = json!({"direction": "ingress", "match": {"cidr": B4, "protocol": "udp"}, "action": {"kind": "blackhole"}, "ttl": "1m"});
    d.create(&spec.to_string());
    let got = chaos_tests::netns::in_ns(&p.a, || {
        let rx = std::net::UdpSocket::bind((A4, 7000)).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        chaos_tests::netns::in_ns(&p.b, || {
            let tx = std::net::UdpSocket::bind((B4, 0)).unwrap();
            for _ in 0..5 {
                tx.send_to(&[7u8; 4000], (A4, 7000)).unwrap();
            }
        });
        let mut buf = [0u8; 8192];
        rx.recv(&mut buf).is_ok()
    });
    assert!(!got, "a fragmented datagram got through");
}

#[test]
fn selectors_narrow_and_unknown_query_parameters_are_refused_never_ignored() {
    let p = NsPair::new("query");
    let d = Daemon::start(&p.a, "");
    let fault = |cidr: &str, name: &str, team: &str| {
        serde_json::json!({"name": name, "labels": {"team": team}, "match": {"cidr": cidr},
                           "action": {"kind": "blackhole"}, "ttl": "1m"})
    };
    let batch = serde_json::json!([
        fault(B4, "bulk-7", "a"),
        fault(B4_ALT, "bulk-8", "a"),
        fault(B6, "bulk-9", "b")
    ]);
    d.create(&batch.to_string());
    for path in [
        "/v1/faults?nam=bulk-7",
        "/v1/faults?",
        "/v1/faults?name=bulk-7&labl=team=a",
        "/v1/faults?label=team",
        "/v1/health?x=1",
    ] {
        for method in [Method::DELETE, Method::GET] {
            let (s, e) = d.call(method.clone(), path, None);
            if path.starts_with("/v1/health") && method == Method::DELETE {
                continue;
            }
            assert_eq!(s, 400, "{method} {path}: {e}");
            assert!(
                e["error"].as_str().unwrap().contains("query")
                    || e["error"].as_str().unwrap().contains("KEY=VALUE"),
                "{e}"
            );
        }
    }
    let (s, e) = d.call(Method::DELETE, "/v1/faults?nam=bulk-7", None);
    assert_eq!((s, e["field"].as_str()), (400, Some("nam")), "{e}");
    let post = fault("10.200.0.9", "x", "c").to_string();
    assert_eq!(
        d.call(Method::POST, "/v1/faults?name=x", Some(&post)).0,
        400
    );
    assert_eq!(d.fault_ids().len(), 3, "nothing was removed or added");
    let count = |q: &str| {
        d.call(Method::GET, &format!("/v1/faults?{q}"), None)
            .1
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("label=team%3Da"), 2);
    assert_eq!(count("name=bulk-7"), 1);
    assert_eq!(count("name=bulk-7&label=team=a"), 1);
    assert_eq!(count("name=bulk-7&label=team=b"), 0);
    let (s, r) = d.call(Method::DELETE, "/v1/faults?label=team=a", None);
    assert_eq!((s, r["removed"].as_u64()), (200, Some(2)), "{r}");
    let left = d.call(Method::GET, "/v1/faults", None).1;
    assert_eq!(left[0]["spec"]["name"], "bulk-9", "{left}");
    assert_eq!(left[0]["spec"]["labels"]["team"], "b", "{left}");
    // Without a query, DELETE is still the panic button.
    assert_eq!(d.call(Method::DELETE, "/v1/faults", None).1["removed"], 1);
    // A bad id escape is a JSON 400 too.
    let (s, e) = d.call(Method::GET, "/v1/faults/%ff%fe", None);
    assert_eq!((s, e["error"].is_string()), (400, true), "{e}");
}

#[test]
fn signals_other_than_term_neither_kill_nor_leave_anything() {
    let p = NsPair::new("sigs");
    let d = Daemon::start(&p.a, "");
    d.create(&blackhole(B4, "10m"));
    d.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.fault_ids().len(), 1, "SIGHUP is ignored");
    d.signal(Signal::SIGUSR1);
    let start = Instant::now();
    while !d.fault_ids().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "SIGUSR1 did not remove the faults"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        d.log_text().contains("action=\"delete_all\""),
        "{}",
        d.log_text()
    );
    assert_eq!(
        d.call(Method::GET, "/v1/health", None).0,
        200,
        "still serving"
    );
}

#[test]
fn half_closed_clients_get_their_answer() {
    let p = NsPair::new("halfclose");
    let d = Daemon::start(&p.a, "");
    for _ in 0..20 {
        let mut c = UnixStream::connect(&d.socket).unwrap();
        c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
}

#[test]
fn chaosctl_exits_quietly_on_a_closed_pipe() {
    let p = NsPair::new("pipe");
    let d = Daemon::start(&p.a, "");
    let batch: Vec<_> = (1..=200)
        .map(|i| json!({"match": {"cidr": format!("10.99.{}.{}", i / 200, i % 200 + 1)}, "action": {"kind": "blackhole"}, "ttl": "1m"}))
        .collect();
    d.create(&json!(batch).to_string());
    for args in [
        vec!["ls"],
        vec!["--json", "ls"],
        vec!["completions", "bash"],
    ] {
        let mut child = Command::new(bin("chaosctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe, as `| head -c 1` does.
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        out.read_exact(&mut one).unwrap();
        drop(out);
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(result.status.code(), Some(101), "{args:?}");
    }
}
