//! Latency rules let the packet go on (delayed by its departure time, which fq honours) and
//! count it as affected; the rest of the delay is measured on real kernels in `latency.rs`.

use crate::*;

#[test]
fn delayed_packets_pass_and_count() {
    let mut inj = injector();
    let id = inj
        .add(&rule("10.90.0.0/16").with_action(Action::Latency {
            delay_ns: 50_000_000,
            jitter_ns: 10_000_000,
            ppm: 1_000_000,
        }))
        .unwrap();
    for l4 in [L4::Tcp(1, 80), L4::Udp(1, 53)] {
        assert_eq!(egress(&mut inj, "10.90.1.1", l4), Pass);
    }
    assert_eq!(egress(&mut inj, "10.91.1.1", L4::Tcp(1, 80)), Pass);
    let c = inj.counters(id).unwrap();
    assert_eq!((c.matched_packets, c.affected_packets), (2, 2));
}
