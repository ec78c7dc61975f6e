//! Bandwidth rules: egress packets are paced (each departs one packet-time after the last,
//! dropped beyond the 2 s horizon), ingress packets beyond the bucket are dropped. The
//! goodput on real links is measured in `bandwidth.rs`.

use chaos_common::PACING_HORIZON_NS;

use crate::*;

/// 1 kB/s, the slowest rate the API accepts: no test run lasts long enough to earn a packet.
const RATE: u64 = 1_000;

fn limit(burst_bytes: u32) -> Action {
    Action::Bandwidth {
        bytes_per_sec: RATE,
        burst_bytes,
    }
}

#[test]
fn egress_packets_leave_one_packet_time_apart_up_to_the_horizon() {
    let mut inj = injector();
    let id = inj
        .add(&rule("10.95.0.0/16").with_action(limit(0)))
        .unwrap();
    let packet = frame(ip("192.0.2.1"), ip("10.95.0.1"), L4::Udp(9, 53), 100);
    let cost = packet.len() as u64 * 1_000_000_000 / RATE;
    let start = monotonic_ns();
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        outcomes.push(inj.test_run(Direction::Egress, &packet, 1).unwrap());
    }
    let end = monotonic_ns();
    // The first leaves at once; each next one a packet-time after the one before.
    assert_eq!(
        (outcomes[0].verdict, outcomes[0].departure_ns),
        (Pass, None)
    );
    let stamped: Vec<u64> = outcomes
        .iter()
        .skip(1)
        .take_while(|o| o.verdict == Pass)
        .map(|o| {
            o.departure_ns
                .expect("paced packets carry a departure time")
        })
        .collect();
    assert!(
        stamped.windows(2).all(|w| w[1] - w[0] == cost),
        "departures {stamped:?}, cost {cost}"
    );
    // Paced packets stay in the tree's plain fq band: they keep their socket's back-pressure,
    // as behind a slow link.
    assert!(outcomes.iter().all(|o| o.priority == 0), "{outcomes:?}");
    let last = *stamped.last().unwrap();
    // Each packet is paced against the clock when it is run, which moves on between runs (by
    // much in a TCG guest): the last one queued left less than the horizon after the clock at
    // the end, the first one dropped would have left beyond the horizon from the start.
    assert!(
        last <= end + PACING_HORIZON_NS && last + cost >= start + PACING_HORIZON_NS,
        "queue ends {} ns after the start, {} ns after the end",
        last - start,
        last as i128 - end as i128
    );
    // Beyond the horizon every packet is dropped, silently.
    let dropped = &outcomes[1 + stamped.len()..];
    assert!(!dropped.is_empty() && dropped.iter().all(|o| o.verdict == Drop));
    let c = inj.counters(id).unwrap();
    assert_eq!(
        (c.matched_packets, c.affected_packets),
        (40, 39),
        "all but the first were held back or dropped"
    );
    // Other destinations are neither paced nor dropped.
    let other = frame(ip("192.0.2.1"), ip("10.96.0.1"), L4::Udp(9, 53), 100);
    let o = inj.test_run(Direction::Egress, &other, 1).unwrap();
    assert_eq!((o.verdict, o.departure_ns), (Pass, None));
}

#[test]
fn ingress_policer_passes_the_bucket_then_drops_and_a_new_rule_starts_full() {
    let mut inj = injector();
    let policer = Rule {
        direction: Direction::Ingress,
        ..rule("10.97.0.0/16").with_action(limit(10_000))
    };
    let packet = frame(ip("10.97.0.1"), ip("192.0.2.1"), L4::Tcp(80, 9), 958);
    assert_eq!(packet.len(), 1_012);
    let passes = |inj: &mut Injector| {
        (0..30)
            .map(|_| {
                inj.test_run(Direction::Ingress, &packet, 1)
                    .unwrap()
                    .verdict
            })
            .take_while(|v| *v == Pass)
            .count()
    };
    let id = inj.add(&policer).unwrap();
    // 10,000 bytes of tokens: nine packets of 1,012 bytes (a tenth only if a test run took
    // a whole millisecond to earn the 108 bytes missing).
    let first = passes(&mut inj);
    assert!((9..=10).contains(&first), "{first} packets passed");
    let c = inj.counters(id).unwrap();
    assert_eq!(c.affected_packets, 1, "the first refused packet is counted");
    assert_eq!(
        inj.test_run(Direction::Ingress, &packet, 1)
            .unwrap()
            .verdict,
        Drop
    );
    // The same slot for a new rule: a full bucket, not the old rule's empty one.
    inj.remove(id).unwrap();
    inj.add(&policer).unwrap();
    let again = passes(&mut inj);
    assert!((9..=10).contains(&again), "{again} packets passed");
}
