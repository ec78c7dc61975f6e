//! Counters, removal and all-or-nothing batches.

use crate::*;

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
