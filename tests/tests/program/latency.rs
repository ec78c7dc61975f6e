//! Latency rules let the packet go on (delayed by its departure time, which fq honours, in the
//! band of the daemon's qdisc tree where netem orphans it) and count it as affected; the rest of the delay is measured on real kernels in `latency.rs`.

use crate::*;

#[test]
fn delayed_packets_pass_and_count() {
    let mut inj = injector();
    let latency = |distribution, correlation| Action::Latency {
        delay_ns: 50_000_000,
        jitter_ns: 10_000_000,
        distribution,
        correlation,
        ppm: 1_000_000,
        reorder: false,
    };
    let uniform = inj
        .add(&rule("10.90.0.0/16").with_action(latency(Distribution::Uniform, 0)))
        .unwrap();
    // A table distribution with correlation: the path that reads DIST and LAST_RANDOM.
    let normal = inj
        .add(&rule("10.92.0.0/16").with_action(latency(Distribution::Normal, 1 << 31)))
        .unwrap();
    for dst in ["10.90.1.1", "10.92.1.1"] {
        for l4 in [L4::Tcp(1, 80), L4::Udp(1, 53)] {
            assert_eq!(egress(&mut inj, dst, l4), Pass);
        }
    }
    assert_eq!(egress(&mut inj, "10.91.1.1", L4::Tcp(1, 80)), Pass);
    // The departure time handed back by the kernel: 50 ms ± 10 ms uniform from now.
    let before = monotonic_ns();
    let out = inj
        .test_run(
            Direction::Egress,
            &frame(ip("192.0.2.1"), ip("10.90.1.1"), L4::Udp(7, 53), 32),
            1,
        )
        .unwrap();
    let ahead = out.departure_ns.expect("a departure time") as i64 - before as i64;
    assert!(
        (40_000_000..=61_000_000).contains(&ahead),
        "departure {ahead} ns ahead"
    );
    assert_eq!(
        out.priority,
        chaos_common::PRIORITY_DELAYED,
        "a delayed packet goes to the tree's orphaning band"
    );
    let unmatched = inj
        .test_run(
            Direction::Egress,
            &frame(ip("192.0.2.1"), ip("10.91.1.1"), L4::Udp(7, 53), 32),
            1,
        )
        .unwrap();
    assert_eq!(
        (unmatched.departure_ns, unmatched.priority),
        (None, 0),
        "unmatched packets are not stamped nor sent to another band"
    );
    for id in [uniform, normal] {
        let c = inj.counters(id).unwrap();
        let want = if id == uniform { 3 } else { 2 };
        assert_eq!((c.matched_packets, c.affected_packets), (want, want));
    }
}
