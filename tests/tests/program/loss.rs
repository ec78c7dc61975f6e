//! Loss probabilities: exact at 0 and 100 %, binomial in between.

use crate::*;

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
