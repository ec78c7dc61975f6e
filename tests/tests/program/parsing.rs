//! What the parser classifies and what it lets through untouched.

use crate::*;

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
fn ipv6_extension_headers_are_skipped_to_reach_the_ports() {
    let mut inj = injector();
    inj.add(&rule("fd00:50::/64").on(Protocol::Tcp, Some(443)))
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
    // A fragment header behind Hop-by-Hop is found: the first fragment shows its ports, a
    // later one has none, so the port rule cannot match it.
    let first = with_v6_ext_header(v6_fragment(tcp443.clone(), 0, true), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &first, 1).unwrap().verdict,
        Drop
    );
    let later = with_v6_ext_header(v6_fragment(tcp443.clone(), 100, false), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &later, 1).unwrap().verdict,
        Pass
    );
}

#[test]
fn vlan_tagged_frames_are_classified() {
    let mut inj = injector();
    inj.add(&rule("10.60.0.0/16").on(Protocol::Udp, Some(53)))
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
