//! Which rule a packet meets: CIDR, protocol and port, longest prefix, exact rules.

use crate::*;

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
    inj.add(&rule("10.0.0.0/8").on(Protocol::Udp, Some(53)))
        .unwrap();
    inj.add(&rule("fd00::/16").on(Protocol::Any, Some(6379)))
        .unwrap();
    inj.add(&rule("10.9.0.0/16").on(Protocol::Icmp, None))
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
    inj.add(
        &rule("10.7.7.0/24")
            .on(Protocol::Tcp, Some(443))
            .with_action(Action::Loss { ppm: 0 }),
    )
    .unwrap();
    assert_eq!(egress(&mut inj, "10.5.5.5", L4::Tcp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.5.5.6", L4::Tcp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "10.7.7.1", L4::Tcp(1, 443)), Pass);
    assert_eq!(egress(&mut inj, "10.7.7.1", L4::Tcp(1, 80)), Drop);
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
    inj.add(&rule("10.40.0.0/24").on(Protocol::Tcp, Some(443)))
        .unwrap();
    assert_eq!(egress(&mut inj, "10.40.0.5", L4::Tcp(1, 443)), Pass);
    assert_eq!(egress(&mut inj, "10.40.0.6", L4::Tcp(1, 443)), Drop);
    // Two /32s on one address: TCP:80 is more specific than any-protocol, for TCP:80 only.
    inj.add(&rule("10.40.0.5/32").on(Protocol::Tcp, Some(80)))
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
fn pairs_beyond_the_hashed_list_go_to_the_tries_and_longest_still_wins() {
    let mut inj = injector();
    let pass = |net: &str| Rule {
        action: Action::Loss { ppm: 0 },
        ..rule(net)
    };
    // Eight lengths fill the hashed list (chaos_common::MAX_PROBES): blackholes. Four more
    // lengths go to the trie: 0 % loss, so a packet they decide passes.
    let mut hashed = Vec::new();
    for len in [16u8, 18, 19, 20, 21, 22, 23, 24] {
        hashed.push(inj.add(&rule(&format!("10.50.0.0/{len}"))).unwrap());
    }
    for len in [25u8, 26, 27, 28] {
        inj.add(&pass(&format!("10.50.0.0/{len}"))).unwrap();
    }
    inj.add(&rule("10.50.0.0/30")).unwrap();
    inj.add(&pass("10.50.128.0/17")).unwrap();
    // The trie's /30 beats every hashed length; its /28 beats the hashed /24.
    assert_eq!(egress(&mut inj, "10.50.0.1", L4::Udp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "10.50.0.9", L4::Udp(1, 2)), Pass);
    // The trie's /17 beats the hashed /16; outside it, the /16 decides.
    assert_eq!(egress(&mut inj, "10.50.200.1", L4::Udp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.50.100.1", L4::Udp(1, 2)), Drop);
    // Removing the /24 frees a place in the list: a new pair, /29 TCP, is hashed and, being
    // longer, beats the trie's /28 for TCP only.
    inj.remove(hashed.pop().unwrap()).unwrap();
    inj.add(&rule("10.50.0.8/29").on(Protocol::Tcp, None))
        .unwrap();
    assert_eq!(egress(&mut inj, "10.50.0.9", L4::Tcp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "10.50.0.9", L4::Udp(1, 2)), Pass);
    // Every rule removed: nothing matches any more.
    inj.remove_all().unwrap();
    assert_eq!(egress(&mut inj, "10.50.0.1", L4::Udp(1, 2)), Pass);
}

#[test]
fn ipv6_rules_match_their_own_nets_within_one_slash32() {
    let mut inj = injector();
    inj.add(&rule("2001:db8:7::/48")).unwrap();
    inj.add(&rule("2001:db8:9:1::5/128").on(Protocol::Tcp, Some(443)))
        .unwrap();
    assert_eq!(egress(&mut inj, "2001:db8:7:ffff::1", L4::Udp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "2001:db8:8::1", L4::Udp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "2001:db8:9:1::5", L4::Tcp(1, 443)), Drop);
    assert_eq!(egress(&mut inj, "2001:db8:9:1::5", L4::Tcp(1, 80)), Pass);
}
