//! XDP ingress matches the source.

use crate::*;

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
        ..rule("fd00:20::/64").on(Protocol::Tcp, Some(6379))
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
