//! Program tests: the real eBPF programs run on crafted packets with BPF_PROG_TEST_RUN.
//! Needs root (CAP_BPF); fails with the reason otherwise.

use std::net::IpAddr;

use chaos_daemon::{
    Action, Direction, Injector, Protocol, Rule,
    clock::monotonic_ns,
    testrun::Verdict::{self, Drop, Pass},
};
use chaos_tests::packet::{
    L4, as_v4_fragment, as_v6_fragment, frame, with_v6_ext_header, with_vlan_tag,
};

fn injector() -> Injector {
    Injector::detached().expect("loading the programs needs root (CAP_BPF): run as root")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rule(net: &str) -> Rule {
    Rule::blackhole(Direction::Egress, net.parse().unwrap())
}

/// Egress verdict for a packet from a fixed local address to `dst`.
fn egress(inj: &mut Injector, dst: &str, l4: L4) -> Verdict {
    let src = if dst.contains(':') {
        "fd00::1"
    } else {
        "192.0.2.1"
    };
    inj.test_run(Direction::Egress, &frame(ip(src), ip(dst), l4, 32), 1)
        .unwrap()
        .verdict
}

#[test]
fn blackhole_hits_its_cidr_only_v4() {
    let mut inj = injector();
    inj.add(&rule("10.1.2.0/24")).unwrap();
    assert_eq!(egress(&mut inj, "10.1.2.7", L4::Tcp(40000, 80)), Drop);
    assert_eq!(egress(&mut inj, "10.1.2.255", L4::Icmp), Drop);
    assert_eq!(egress(&mut inj, "10.1.3.7", L4::Tcp(40000, 80)), Pass);
    assert_eq!(egress(&mut inj, "10.2.2.7", L4::Udp(40000, 53)), Pass);
}

#[test]
fn blackhole_hits_its_cidr_only_v6() {
    let mut inj = injector();
    inj.add(&rule("fd00:1:2::/48")).unwrap();
    assert_eq!(egress(&mut inj, "fd00:1:2::9", L4::Udp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "fd00:1:2:ffff::9", L4::Icmp), Drop);
    assert_eq!(egress(&mut inj, "fd00:1:3::9", L4::Udp(1, 2)), Pass);
    // IPv4 traffic is not affected by an IPv6 rule.
    assert_eq!(egress(&mut inj, "10.1.2.7", L4::Udp(1, 2)), Pass);
}

#[test]
fn port_and_protocol_must_both_match() {
    let mut inj = injector();
    inj.add(&Rule {
        protocol: Protocol::Udp,
        port: Some(53),
        ..rule("10.0.0.0/8")
    })
    .unwrap();
    inj.add(&Rule {
        protocol: Protocol::Any,
        port: Some(6379),
        ..rule("fd00::/16")
    })
    .unwrap();
    inj.add(&Rule {
        protocol: Protocol::Icmp,
        ..rule("10.9.0.0/16")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.3.3.3", L4::Udp(5000, 53)), Drop);
    assert_eq!(
        egress(&mut inj, "10.3.3.3", L4::Tcp(5000, 53)),
        Pass,
        "TCP on the UDP rule's port"
    );
    assert_eq!(
        egress(&mut inj, "10.3.3.3", L4::Udp(53, 5000)),
        Pass,
        "source port is not matched on egress"
    );
    assert_eq!(egress(&mut inj, "fd00::5", L4::Tcp(1, 6379)), Drop);
    assert_eq!(egress(&mut inj, "fd00::5", L4::Udp(1, 6379)), Drop);
    assert_eq!(egress(&mut inj, "fd00::5", L4::Tcp(1, 6380)), Pass);
    assert_eq!(
        egress(&mut inj, "fd00::5", L4::Icmp),
        Pass,
        "ICMP has no port"
    );
    assert_eq!(egress(&mut inj, "10.9.1.1", L4::Icmp), Drop);
    assert_eq!(egress(&mut inj, "10.9.1.1", L4::Tcp(1, 2)), Pass);
}

#[test]
fn longest_prefix_wins() {
    let mut inj = injector();
    // A /8 blackhole and a /32 inside it with 0 % loss: the /32 decides.
    inj.add(&rule("10.0.0.0/8")).unwrap();
    inj.add(&Rule {
        action: Action::Loss { ppm: 0 },
        ..rule("10.5.5.5/32")
    })
    .unwrap();
    // A /24 TCP:443 rule with 0 % loss vs the /8: the /24 is longer, so it decides for TCP:443.
    inj.add(&Rule {
        protocol: Protocol::Tcp,
        port: Some(443),
        action: Action::Loss { ppm: 0 },
        ..rule("10.7.7.0/24")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.5.5.5", L4::Tcp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.5.5.6", L4::Tcp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "10.7.7.1", L4::Tcp(1, 443)), Pass);
    assert_eq!(egress(&mut inj, "10.7.7.1", L4::Tcp(1, 80)), Drop);
}

#[test]
fn expired_rule_is_ignored_in_kernel() {
    let mut inj = injector();
    inj.add(&Rule {
        expires_at_ns: Some(monotonic_ns() - 1),
        ..rule("10.4.0.0/16")
    })
    .unwrap();
    inj.add(&Rule {
        expires_at_ns: Some(monotonic_ns() + 3_600_000_000_000),
        ..rule("10.6.0.0/16")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.4.0.1", L4::Udp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.6.0.1", L4::Udp(1, 2)), Drop);
}

#[test]
fn loss_of_0_and_100_percent_is_exact() {
    let mut inj = injector();
    let none = inj
        .add(&Rule {
            action: Action::Loss { ppm: 0 },
            ..rule("10.10.0.1/32")
        })
        .unwrap();
    let all = inj
        .add(&Rule {
            action: Action::Loss { ppm: 1_000_000 },
            ..rule("10.10.0.2/32")
        })
        .unwrap();
    let n = 100_000u64;
    for dst in ["10.10.0.1", "10.10.0.2"] {
        let pkt = frame(ip("192.0.2.1"), ip(dst), L4::Udp(1, 2), 10);
        inj.test_run(Direction::Egress, &pkt, n as u32).unwrap();
    }
    let (c0, c1) = (inj.counters(none).unwrap(), inj.counters(all).unwrap());
    assert_eq!((c0.matched_packets, c0.affected_packets), (n, 0));
    assert_eq!((c1.matched_packets, c1.affected_packets), (n, n));
}

#[test]
fn loss_30_percent_lands_within_5_sigma() {
    let mut inj = injector();
    let id = inj
        .add(&Rule {
            action: Action::Loss { ppm: 300_000 },
            ..rule("10.11.0.0/16")
        })
        .unwrap();
    let n = 200_000u32;
    let pkt = frame(ip("192.0.2.1"), ip("10.11.3.4"), L4::Tcp(1, 2), 0);
    inj.test_run(Direction::Egress, &pkt, n).unwrap();
    let c = inj.counters(id).unwrap();
    assert_eq!(c.matched_packets, u64::from(n));
    let (mean, sigma) = (0.3 * f64::from(n), (f64::from(n) * 0.3 * 0.7).sqrt());
    let dropped = c.affected_packets as f64;
    assert!(
        (dropped - mean).abs() <= 5.0 * sigma,
        "dropped {dropped}, expected {mean} ± {}",
        5.0 * sigma
    );
}

#[test]
fn counters_count_packets_and_bytes() {
    let mut inj = injector();
    let id = inj.add(&rule("10.12.0.0/16")).unwrap();
    let pkt = frame(ip("192.0.2.1"), ip("10.12.0.1"), L4::Udp(1, 2), 100);
    inj.test_run(Direction::Egress, &pkt, 7).unwrap();
    // Non-matching traffic is not counted.
    inj.test_run(
        Direction::Egress,
        &frame(ip("192.0.2.1"), ip("10.13.0.1"), L4::Udp(1, 2), 100),
        5,
    )
    .unwrap();
    let c = inj.counters(id).unwrap();
    assert_eq!(c.matched_packets, 7);
    assert_eq!(c.affected_packets, 7);
    assert_eq!(c.matched_bytes, 7 * pkt.len() as u64);
}

#[test]
fn unparseable_packets_pass_untouched() {
    let mut inj = injector();
    inj.add(&rule("0.0.0.0/0")).unwrap();
    inj.add(&rule("::/0")).unwrap();
    let v4 = frame(ip("192.0.2.1"), ip("10.0.0.1"), L4::Tcp(1, 2), 0);
    let v6 = frame(ip("fd00::1"), ip("fd00::2"), L4::Tcp(1, 2), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &v4, 1).unwrap().verdict,
        Drop,
        "sanity: rule works"
    );
    assert_eq!(
        inj.test_run(Direction::Egress, &v6, 1).unwrap().verdict,
        Drop,
        "sanity: rule works"
    );
    let mut arp = v4.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // (case, frame, also run on egress). The kernel's skb test harness refuses frames whose IP
    // header is incomplete (such an skb cannot reach TC egress either), so those run on XDP only.
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("IPv4 header of one byte", v4[..15].to_vec(), false),
        ("IPv4 header cut", v4[..14 + 12].to_vec(), false),
        ("IPv6 header cut", v6[..14 + 30].to_vec(), false),
        ("IPv4 ports cut", v4[..14 + 20 + 3].to_vec(), true),
        ("IPv6 ports cut", v6[..14 + 40 + 2].to_vec(), true),
        ("IPv4 fragment", as_v4_fragment(v4.clone()), true),
        ("IPv6 fragment", as_v6_fragment(v6.clone()), true),
        ("ARP", arp, true),
    ];
    for (what, pkt, on_egress) in cases {
        let dirs: &[Direction] = if on_egress {
            &[Direction::Egress, Direction::Ingress]
        } else {
            &[Direction::Ingress]
        };
        for &dir in dirs {
            let out = inj
                .test_run(dir, &pkt, 1)
                .unwrap_or_else(|e| panic!("{what} on {dir}: {e}"));
            assert_eq!(out.verdict, Pass, "{what} on {dir}");
        }
    }
}

#[test]
fn ingress_matches_source_address_and_port() {
    let mut inj = injector();
    inj.add(&Rule {
        direction: Direction::Ingress,
        ..rule("10.20.0.0/24")
    })
    .unwrap();
    inj.add(&Rule {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        port: Some(6379),
        ..rule("fd00:20::/64")
    })
    .unwrap();
    let run = |inj: &mut Injector, dir, src: &str, dst: &str, l4| {
        inj.test_run(dir, &frame(ip(src), ip(dst), l4, 0), 1)
            .unwrap()
            .verdict
    };
    assert_eq!(
        run(
            &mut inj,
            Direction::Ingress,
            "10.20.0.9",
            "192.0.2.1",
            L4::Icmp
        ),
        Drop
    );
    assert_eq!(
        run(
            &mut inj,
            Direction::Ingress,
            "192.0.2.1",
            "10.20.0.9",
            L4::Icmp
        ),
        Pass,
        "destination is not matched on ingress"
    );
    assert_eq!(
        run(
            &mut inj,
            Direction::Egress,
            "192.0.2.1",
            "10.20.0.9",
            L4::Icmp
        ),
        Pass,
        "an ingress rule does not act on egress"
    );
    assert_eq!(
        run(
            &mut inj,
            Direction::Ingress,
            "fd00:20::5",
            "fd00::1",
            L4::Tcp(6379, 40000)
        ),
        Drop
    );
    assert_eq!(
        run(
            &mut inj,
            Direction::Ingress,
            "fd00:20::5",
            "fd00::1",
            L4::Tcp(40000, 6379)
        ),
        Pass
    );
}

#[test]
fn removed_rules_stop_matching_and_batches_are_atomic() {
    let mut inj = injector();
    let id = inj.add(&rule("10.30.0.0/16")).unwrap();
    assert_eq!(egress(&mut inj, "10.30.1.1", L4::Udp(1, 2)), Drop);
    inj.remove(id).unwrap();
    assert_eq!(egress(&mut inj, "10.30.1.1", L4::Udp(1, 2)), Pass);
    assert!(inj.remove(id).is_err(), "a removed id is gone");
    // The second rule conflicts with the first: nothing of the batch is installed.
    let batch = [
        rule("10.31.0.0/16"),
        rule("10.32.0.0/16"),
        rule("10.31.0.0/16"),
    ];
    assert!(inj.add_batch(&batch).is_err());
    assert_eq!(inj.len(), 0);
    assert_eq!(egress(&mut inj, "10.31.1.1", L4::Udp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.32.1.1", L4::Udp(1, 2)), Pass);
}

#[test]
fn exact_rules_beat_shorter_prefixes_and_keep_shape_order() {
    let mut inj = injector();
    // A /32 with 0 % loss against a /24 TCP:443 blackhole: the /32 is longer, so it decides.
    inj.add(&Rule {
        action: Action::Loss { ppm: 0 },
        ..rule("10.40.0.5/32")
    })
    .unwrap();
    inj.add(&Rule {
        protocol: Protocol::Tcp,
        port: Some(443),
        ..rule("10.40.0.0/24")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.40.0.5", L4::Tcp(1, 443)), Pass);
    assert_eq!(egress(&mut inj, "10.40.0.6", L4::Tcp(1, 443)), Drop);
    // Two /32s on one address: TCP:80 is more specific than any-protocol, for TCP:80 only.
    inj.add(&Rule {
        protocol: Protocol::Tcp,
        port: Some(80),
        ..rule("10.40.0.5/32")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.40.0.5", L4::Tcp(1, 80)), Drop);
    assert_eq!(egress(&mut inj, "10.40.0.5", L4::Tcp(1, 81)), Pass);
    // An expired /32 falls through to the /16 around it.
    inj.add(&Rule {
        expires_at_ns: Some(monotonic_ns() - 1),
        action: Action::Loss { ppm: 0 },
        ..rule("10.41.0.1/32")
    })
    .unwrap();
    inj.add(&rule("10.41.0.0/16")).unwrap();
    assert_eq!(egress(&mut inj, "10.41.0.1", L4::Udp(1, 2)), Drop);
    // /128 on ingress matches the source only, in its own direction.
    inj.add(&Rule {
        direction: Direction::Ingress,
        ..rule("fd00:41::9/128")
    })
    .unwrap();
    let from = frame(ip("fd00:41::9"), ip("fd00::1"), L4::Udp(1, 2), 0);
    assert_eq!(
        inj.test_run(Direction::Ingress, &from, 1).unwrap().verdict,
        Drop
    );
    assert_eq!(
        inj.test_run(Direction::Egress, &from, 1).unwrap().verdict,
        Pass
    );
    let to = frame(ip("fd00::1"), ip("fd00:41::9"), L4::Udp(1, 2), 0);
    assert_eq!(
        inj.test_run(Direction::Ingress, &to, 1).unwrap().verdict,
        Pass
    );
}

#[test]
fn ipv6_extension_headers_are_skipped_to_reach_the_ports() {
    let mut inj = injector();
    inj.add(&Rule {
        protocol: Protocol::Tcp,
        port: Some(443),
        ..rule("fd00:50::/64")
    })
    .unwrap();
    let tcp443 = frame(ip("fd00::1"), ip("fd00:50::7"), L4::Tcp(1, 443), 0);
    let tcp80 = frame(ip("fd00::1"), ip("fd00:50::7"), L4::Tcp(1, 80), 0);
    for kind in [0u8, 43, 60, 51] {
        let hit = with_v6_ext_header(tcp443.clone(), kind);
        assert_eq!(
            inj.test_run(Direction::Egress, &hit, 1).unwrap().verdict,
            Drop,
            "header {kind}"
        );
        let miss = with_v6_ext_header(tcp80.clone(), kind);
        assert_eq!(
            inj.test_run(Direction::Egress, &miss, 1).unwrap().verdict,
            Pass,
            "header {kind}"
        );
    }
    // Two in a row (Hop-by-Hop then Destination Options).
    let two = with_v6_ext_header(with_v6_ext_header(tcp443.clone(), 60), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &two, 1).unwrap().verdict,
        Drop
    );
    // A fragment header behind Hop-by-Hop still means "fragment": untouched.
    let frag = with_v6_ext_header(as_v6_fragment(tcp443.clone()), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &frag, 1).unwrap().verdict,
        Pass
    );
}

#[test]
fn vlan_tagged_frames_are_classified() {
    let mut inj = injector();
    inj.add(&Rule {
        protocol: Protocol::Udp,
        port: Some(53),
        ..rule("10.60.0.0/16")
    })
    .unwrap();
    inj.add(&Rule {
        direction: Direction::Ingress,
        ..rule("fd00:60::/64")
    })
    .unwrap();
    let dns = frame(ip("192.0.2.1"), ip("10.60.1.1"), L4::Udp(5000, 53), 0);
    let other = frame(ip("192.0.2.1"), ip("10.60.1.1"), L4::Udp(5000, 54), 0);
    let tagged = with_vlan_tag(dns, 0x8100);
    assert_eq!(
        inj.test_run(Direction::Egress, &tagged, 1).unwrap().verdict,
        Drop
    );
    let tagged_other = with_vlan_tag(other, 0x8100);
    assert_eq!(
        inj.test_run(Direction::Egress, &tagged_other, 1)
            .unwrap()
            .verdict,
        Pass
    );
    // QinQ on XDP ingress, IPv6 by source.
    let v6 = frame(ip("fd00:60::9"), ip("fd00::1"), L4::Tcp(1, 2), 0);
    let qinq = with_vlan_tag(with_vlan_tag(v6, 0x8100), 0x88a8);
    assert_eq!(
        inj.test_run(Direction::Ingress, &qinq, 1).unwrap().verdict,
        Drop
    );
    // Three tags is past the limit: the same packet passes untouched.
    let three = with_vlan_tag(qinq, 0x8100);
    assert_eq!(
        inj.test_run(Direction::Ingress, &three, 1).unwrap().verdict,
        Pass
    );
}
