//! Bandwidth faults on real links, measured with iperf3.
//!
//! Ingress (an XDP policer) works on any kernel: 10 Mbit/s from one address holds UDP to the
//! rate and leaves its neighbour alone. A policer can only drop, so TCP over a sub-millisecond
//! veth RTT (where even a one-segment window exceeds 10 Mbit/s) falls into retransmission
//! timeouts far below the rate; with a realistic 20 ms RTT (the VMs, where latency works) it
//! holds TCP within ±15 %. Egress (EDT pacing) needs `sch_fq`: where the kernel has it (the
//! VMs) TCP goodput is held within ±10 %; where not (this host) the API refuses and says why.

use chaos_tests::{
    daemon::Daemon,
    netns::{A4, B4, B4_ALT, NsPair, kernel_has_fq},
    traffic::{self, Load, Path, Transfer},
};
use hyper::Method;
use serde_json::json;

fn limit(direction: &str, cidr: &str, rate: &str) -> String {
    json!({"direction": direction, "match": {"cidr": cidr},
           "action": {"kind": "bandwidth", "rate": rate}, "ttl": "10m"})
    .to_string()
}

/// UDP payload share of the wire bytes the rate counts (1400 + UDP 8 + IPv4 20 + Ethernet 14).
const UDP_PAYLOAD_SHARE: f64 = 1400.0 / 1442.0;

fn within(what: &str, got: &Transfer, want_mbit: f64, tolerance: f64) {
    let mbit = got.mbit();
    eprintln!("{what}: {mbit:.2} Mbit/s ({got:?})");
    assert!(
        (mbit - want_mbit).abs() <= want_mbit * tolerance,
        "{what}: {mbit:.2} Mbit/s, want {want_mbit:.2} ± {:.0} %",
        tolerance * 100.0
    );
}

/// The neighbour's UDP offered at 20 Mbit/s beside a 10mbit rule: nothing lost, and well past
/// the limit. Its exact goodput is the sender's: a TCG guest's iperf3 offered 16.8 and 17.4
/// of 20 Mbit/s in two runs, losing nothing, so it is not held to 20 ± 5 %.
fn unlimited(free: &Transfer) {
    eprintln!(
        "the neighbour's UDP at 20 Mbit/s: {:.2} Mbit/s ({free:?})",
        free.mbit()
    );
    assert_eq!(free.lost, 0, "the neighbour lost datagrams: {free:?}");
    assert!(
        free.mbit() >= 1.5 * 10.0,
        "the neighbour got {:.2} Mbit/s, not clearly above the 10 Mbit/s limit",
        free.mbit()
    );
}

#[test]
fn ingress_policer_holds_udp_to_the_rate_and_spares_the_neighbour() {
    let _alone = traffic::exclusive();
    let p = NsPair::new("police");
    let d = Daemon::start(&p.a, "");
    let f = d.create(&limit("ingress", B4, "10mbit"));
    let from = |src| Path {
        from: &p.b,
        src: Some(src),
        to: &p.a,
        dst: A4,
    };
    let policed = traffic::send(&p, from(B4), Load::Udp(20), 4);
    within(
        "UDP offered at 20 Mbit/s through a 10mbit ingress policer",
        &policed,
        10.0 * UDP_PAYLOAD_SHARE,
        0.15,
    );
    unlimited(&traffic::send(&p, from(B4_ALT), Load::Udp(20), 4));
    // TCP at the veth's own RTT: a policer cannot slow TCP below one segment per RTT without
    // timeouts; report the figure and check only that the rate is never exceeded.
    let tcp = traffic::send(&p, from(B4), Load::Tcp, 4);
    eprintln!(
        "TCP through the policer at the veth RTT: {:.2} Mbit/s ({tcp:?})",
        tcp.mbit()
    );
    assert!(tcp.mbit() > 0.1 && tcp.mbit() <= 10.0 * 1.15, "{tcp:?}");
    let (_, listed) = d.call(Method::GET, "/v1/faults", None);
    let counters = &listed[0]["counters"];
    assert_eq!(listed[0]["id"], f["id"]);
    assert!(counters["affected"].as_u64().unwrap() > 0, "{counters}");
}

#[test]
fn ingress_policer_holds_tcp_with_a_realistic_rtt() {
    let _alone = traffic::exclusive();
    let p = NsPair::new("policetcp");
    let d = Daemon::start(&p.a, "");
    if !kernel_has_fq(&p.a) {
        // Without fq no RTT can be added here; the UDP test above covers the policer.
        let (s, _) = d.call(
            Method::POST,
            "/v1/faults",
            Some(&limit("egress", B4, "10mbit")),
        );
        assert_eq!(s, 422);
        return;
    }
    // 20 ms on A's ACKs to B: B's TCP sees a 20 ms RTT, as across a region.
    d.create(
        &json!({"match": {"cidr": B4}, "action": {"kind": "latency", "delay": "20ms"},
                     "ttl": "10m"})
        .to_string(),
    );
    d.create(&limit("ingress", B4, "10mbit"));
    let path = Path::b_to_a(&p);
    let tcp = traffic::send(&p, path, Load::Tcp, 8);
    within(
        "TCP through a 10mbit ingress policer at 20 ms RTT",
        &tcp,
        10.0,
        0.15,
    );
}

#[test]
fn egress_pacing_holds_tcp_to_the_rate_or_is_refused_without_fq() {
    let _alone = traffic::exclusive();
    let p = NsPair::new("pace");
    let fq = kernel_has_fq(&p.a);
    let d = Daemon::start(&p.a, "");
    if !fq {
        let (s, e) = d.call(
            Method::POST,
            "/v1/faults",
            Some(&limit("egress", B4, "10mbit")),
        );
        assert_eq!((s, e["field"].as_str()), (422, Some("action.kind")), "{e}");
        assert!(e["error"].as_str().unwrap().contains("sch_fq"), "{e}");
        return;
    }
    d.create(&limit("egress", B4, "10mbit"));
    let to = |dst| Path {
        from: &p.a,
        src: None,
        to: &p.b,
        dst,
    };
    let paced = traffic::send(&p, to(B4), Load::Tcp, 6);
    within("TCP paced to 10mbit on egress", &paced, 10.0, 0.10);
    let udp = traffic::send(&p, to(B4), Load::Udp(20), 4);
    within(
        "UDP offered at 20 Mbit/s paced to 10mbit",
        &udp,
        10.0 * UDP_PAYLOAD_SHARE,
        0.10,
    );
    unlimited(&traffic::send(&p, to(B4_ALT), Load::Udp(20), 4));
}
