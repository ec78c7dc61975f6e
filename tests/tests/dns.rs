//! DNS faults end to end: a real server (dnsmasq) in namespace B, real clients in A (dig,
//! glibc's getaddrinfo through python3, hickory's resolver), the daemon on A's veth — and on
//! `lo` for a resolver on the host itself, as a local stub is.
//!
//! That an answer came from the kernel and not from the server is shown by the server's query
//! log: the faulted queries never reach it. dig's "Query time" is printed for the record;
//! timing is measured by `cargo xtask bench`, not asserted here.

use std::time::{Duration, Instant};

use chaos_tests::{
    daemon::Daemon,
    dns::{Dnsmasq, ResolvConf, dig, getaddrinfo, hickory_lookup},
    netns::{B4, B6, NsPair},
};
use hyper::Method;
use serde_json::json;

const API: &str = "api.svc.test";
const OTHER: &str = "other.svc.test";
/// glibc's EAI_NONAME: the name does not exist.
const EAI_NONAME: i32 = -2;
/// glibc's EAI_AGAIN: no answer that settles it (SERVFAIL, REFUSED, timeout).
const EAI_AGAIN: i32 = -3;

fn dns_fault(domain: &str, response: &str, ttl: &str) -> String {
    json!({"action": {"kind": "dns", "domain": domain, "response": response}, "ttl": ttl})
        .to_string()
}

/// B serving both names on its IPv4 and IPv6 addresses; glibc in A asking it.
fn setup(tag: &str) -> (NsPair, Dnsmasq, ResolvConf, Daemon) {
    let p = NsPair::new(tag);
    let server = Dnsmasq::start(
        &p.b,
        &[B4, B6],
        &[(API, &["10.1.1.1", "fd00::11"]), (OTHER, &["10.1.1.2"])],
    );
    let conf = ResolvConf::new(&p.a, B4);
    let d = Daemon::start(&p.a, "");
    (p, server, conf, d)
}

fn assert_resolves(ns: &str, name: &str, addr: &str) {
    let got = dig(ns, B4, name, "A");
    assert_eq!(
        (got.status.as_deref(), got.answers.clone()),
        (Some("NOERROR"), vec![addr.to_string()]),
        "{}",
        got.output
    );
}

/// Polls (≤ 5 s) until `name` resolves again.
fn wait_resolves(ns: &str, name: &str) -> Duration {
    let start = Instant::now();
    while dig(ns, B4, name, "A").status.as_deref() != Some("NOERROR") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name} still faulted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn the_faulted_name_gets_nxdomain_from_the_kernel_and_other_names_resolve() {
    let (p, server, _conf, d) = setup("dnsnx");
    assert_resolves(&p.a, API, "10.1.1.1");
    let reached = server.queries_for(API);
    let f = d.create(&dns_fault(API, "nxdomain", "5m"));
    assert_eq!(f["spec"]["match"]["port"], 53, "{f}");
    let (s, dup) = d.call(
        Method::POST,
        "/v1/faults",
        Some(&dns_fault("API.svc.test.", "servfail", "5m")),
    );
    assert_eq!(s, 409, "the same name twice: {dup}");
    assert!(
        dup["error"]
            .as_str()
            .unwrap()
            .contains(f["id"].as_str().unwrap()),
        "the 409 names the fault in the way: {dup}"
    );
    for (resolver, rtype) in [(B4, "A"), (B4, "AAAA"), (B6, "A"), (B6, "AAAA")] {
        let got = dig(&p.a, resolver, API, rtype);
        eprintln!(
            "dig @{resolver} {API} {rtype}: {:?} in {:?} ms",
            got.status, got.query_ms
        );
        assert_eq!(got.status.as_deref(), Some("NXDOMAIN"), "{}", got.output);
        assert!(got.output.contains("flags: qr rd ra;"), "{}", got.output);
        assert!(
            got.output.contains(&format!(";{API}.")),
            "question echoed: {}",
            got.output
        );
    }
    assert_eq!(getaddrinfo(&p.a, API), Err(EAI_NONAME), "glibc");
    let h = hickory_lookup(&p.a, B4.parse().unwrap(), API);
    assert!(
        h.as_ref()
            .is_err_and(|e| e.contains("NoRecordsFound") && e.contains("NXDomain")),
        "hickory: {h:?}"
    );
    assert_eq!(
        server.queries_for(API),
        reached,
        "faulted queries reached the server:\n{}",
        server.log_text()
    );
    assert_resolves(&p.a, OTHER, "10.1.1.2");
    assert_eq!(getaddrinfo(&p.a, OTHER), Ok(vec!["10.1.1.2".to_string()]));
    assert_eq!(
        hickory_lookup(&p.a, B6.parse().unwrap(), OTHER),
        Ok(vec!["10.1.1.2".parse().unwrap()])
    );
    let id = f["id"].as_str().unwrap();
    let (_, got) = d.call(Method::GET, &format!("/v1/faults/{id}"), None);
    let matched = got["counters"]["matched"].as_u64().unwrap();
    assert!(matched >= 6, "counters: {got}");
    assert_eq!(got["counters"]["affected"], got["counters"]["matched"]);
    assert_eq!(
        d.call(Method::DELETE, &format!("/v1/faults/{id}"), None).0,
        204
    );
    assert_resolves(&p.a, API, "10.1.1.1");
    assert_eq!(getaddrinfo(&p.a, API).map(|a| a.len()), Ok(2), "A and AAAA");
}

#[test]
fn servfail_refused_and_drop_as_clients_see_them() {
    let (p, server, _conf, d) = setup("dnsrc");
    let reached = server.queries_for(API);
    let f = d.create(&dns_fault(API, "servfail", "5m"));
    let got = dig(&p.a, B4, API, "A");
    assert_eq!(got.status.as_deref(), Some("SERVFAIL"), "{}", got.output);
    assert_eq!(getaddrinfo(&p.a, API), Err(EAI_AGAIN), "glibc on SERVFAIL");
    let h = hickory_lookup(&p.a, B4.parse().unwrap(), API);
    assert!(
        h.as_ref().is_err_and(|e| e.contains("ServFail")),
        "hickory: {h:?}"
    );
    d.call(
        Method::DELETE,
        &format!("/v1/faults/{}", f["id"].as_str().unwrap()),
        None,
    );
    d.create(&dns_fault("*.svc.test", "refused", "5m"));
    for name in [API, OTHER] {
        let got = dig(&p.a, B6, name, "AAAA");
        assert_eq!(got.status.as_deref(), Some("REFUSED"), "{}", got.output);
    }
    let apex = server.queries_for("svc.test");
    dig(&p.a, B4, "svc.test", "A");
    assert_eq!(
        server.queries_for("svc.test"),
        apex + 1,
        "the apex is not below itself: its query reaches the server"
    );
    assert_eq!(d.call(Method::DELETE, "/v1/faults", None).0, 200);
    d.create(&dns_fault(API, "drop", "5m"));
    let started = Instant::now();
    let got = dig(&p.a, B4, API, "A");
    assert_eq!(
        got.status, None,
        "a dropped query gets no answer: {}",
        got.output
    );
    assert!(got.output.contains("timed out"), "{}", got.output);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(getaddrinfo(&p.a, API), Err(EAI_AGAIN), "glibc on a timeout");
    assert_resolves(&p.a, OTHER, "10.1.1.2");
    assert_eq!(
        server.queries_for(API),
        reached,
        "faulted queries reached the server:\n{}",
        server.log_text()
    );
}

#[test]
fn faults_end_by_ttl_and_by_the_panic_button() {
    let (p, _server, _conf, d) = setup("dnsend");
    d.create(&dns_fault(API, "nxdomain", "2s"));
    assert_eq!(dig(&p.a, B4, API, "A").status.as_deref(), Some("NXDOMAIN"));
    let lifted = wait_resolves(&p.a, API);
    eprintln!("resolving again {lifted:?} after the first check (TTL 2 s)");
    d.create(&dns_fault(API, "servfail", "10m"));
    d.create(&dns_fault(OTHER, "refused", "10m"));
    assert_eq!(dig(&p.a, B4, OTHER, "A").status.as_deref(), Some("REFUSED"));
    let (s, removed) = d.call(Method::DELETE, "/v1/faults", None);
    assert_eq!((s, removed["removed"].as_u64()), (200, Some(2)));
    assert_resolves(&p.a, API, "10.1.1.1");
    assert_resolves(&p.a, OTHER, "10.1.1.2");
}

#[test]
fn a_resolver_on_the_host_itself_is_reached_through_lo() {
    // A local stub (as systemd-resolved on 127.0.0.53) is asked over lo: the fault goes there.
    let p = NsPair::new("dnslo");
    let stub = Dnsmasq::start(&p.a, &["127.0.0.53", "::1"], &[(API, &["10.1.1.1"])]);
    let d = Daemon::start(&p.a, "");
    let out = d.ctl(&[
        "add",
        "dns",
        "--domain",
        API,
        "--response",
        "nxdomain",
        "--ttl",
        "1m",
        "--iface",
        "lo",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stub_addr in ["127.0.0.53", "::1"] {
        let got = dig(&p.a, stub_addr, API, "A");
        assert_eq!(got.status.as_deref(), Some("NXDOMAIN"), "{}", got.output);
    }
    assert_eq!(
        stub.queries_for(API),
        1,
        "only the start-up check reached the stub"
    );
    let ls = d.ctl(&["ls"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.contains("nxdomain for api.svc.test"), "{text}");
    assert!(d.ctl(&["rm", "--all"]).status.success());
    assert_eq!(
        dig(&p.a, "127.0.0.53", API, "A").status.as_deref(),
        Some("NOERROR")
    );
}
