//! Fragments: every fragment carries the addresses, only the first carries the ports.

use crate::*;

/// (first fragment, later fragment) of a 4000-byte UDP datagram to port 53.
fn fragments(src: &str, dst: &str) -> [(&'static str, Vec<u8>); 2] {
    let whole = frame(ip(src), ip(dst), L4::Udp(5000, 53), 1400);
    if dst.contains(':') {
        [
            ("first fragment", v6_fragment(whole.clone(), 0, true)),
            ("later fragment", v6_fragment(whole, 175, false)),
        ]
    } else {
        [
            ("first fragment", v4_fragment(whole.clone(), 0, true)),
            ("later fragment", v4_fragment(whole, 175, false)),
        ]
    }
}

#[test]
fn address_rules_drop_every_fragment_both_ways_v4_and_v6() {
    for (local, remote) in [("192.0.2.1", "10.70.0.9"), ("fd00::1", "fd00:70::9")] {
        for direction in [Direction::Egress, Direction::Ingress] {
            let mut inj = injector();
            inj.add(&Rule::blackhole(direction, ip(remote).into()))
                .unwrap();
            let (src, dst) = match direction {
                Direction::Egress => (local, remote),
                Direction::Ingress => (remote, local),
            };
            for (what, pkt) in fragments(src, dst) {
                let v = inj.test_run(direction, &pkt, 1).unwrap().verdict;
                assert_eq!(v, Drop, "{what} {src} -> {dst} on {direction}");
            }
        }
    }
}

#[test]
fn port_rules_see_the_first_fragment_and_protocol_rules_all() {
    for (local, remote) in [("192.0.2.1", "10.71.0.0/16"), ("fd00::1", "fd00:71::/64")] {
        let dst = if remote.contains(':') {
            "fd00:71::5"
        } else {
            "10.71.0.5"
        };
        let mut inj = injector();
        // The first fragment has the ports: a port rule drops it, and without it the
        // datagram is never reassembled. Later fragments carry no port.
        inj.add(&rule(remote).on(Protocol::Udp, Some(53))).unwrap();
        let [(_, first), (_, later)] = fragments(local, dst);
        assert_eq!(
            inj.test_run(Direction::Egress, &first, 1).unwrap().verdict,
            Drop
        );
        assert_eq!(
            inj.test_run(Direction::Egress, &later, 1).unwrap().verdict,
            Pass
        );
        // A protocol rule without a port matches every fragment of that protocol.
        let mut inj = injector();
        inj.add(&rule(remote).on(Protocol::Udp, None)).unwrap();
        for pkt in [first, later] {
            assert_eq!(
                inj.test_run(Direction::Egress, &pkt, 1).unwrap().verdict,
                Drop
            );
        }
    }
}
