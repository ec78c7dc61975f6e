//! Latency rules let the packet go on (delayed by its departure time, which fq honours) and
//! count it as affected; the rest of the delay is measured on real kernels in `latency.rs`.

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
    for id in [uniform, normal] {
        let c = inj.counters(id).unwrap();
        assert_eq!((c.matched_packets, c.affected_packets), (2, 2));
    }
}
