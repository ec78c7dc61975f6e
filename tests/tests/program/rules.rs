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

#[test]
fn a_reused_slot_counts_from_zero_and_its_neighbours_keep_counting() {
    let mut inj = injector();
    let old = inj.add(&rule("10.40.0.1/32")).unwrap();
    let neighbour = inj.add(&rule("10.40.0.2/32")).unwrap();
    assert_eq!(
        old.slot / chaos_common::COUNTER_CHUNK,
        neighbour.slot / chaos_common::COUNTER_CHUNK,
        "the two rules share a counter element"
    );
    let send = |inj: &mut Injector, dst: &str, n: u32| {
        let pkt = frame(ip("192.0.2.1"), ip(dst), L4::Udp(1, 2), 0);
        inj.test_run(Direction::Egress, &pkt, n).unwrap();
    };
    send(&mut inj, "10.40.0.1", 5);
    send(&mut inj, "10.40.0.2", 3);
    inj.remove(old).unwrap();
    // Freed slots are handed out last: fill every other one so the next rule gets `old`'s.
    let free = chaos_common::MAX_SLOTS - 2;
    let fillers: Vec<Rule> = (0..free)
        .map(|i| rule(&format!("{}/32", std::net::Ipv4Addr::from(0x0a80_0000 + i))))
        .collect();
    for chunk in fillers.chunks(10_000) {
        inj.add_batch(chunk).unwrap();
    }
    let new = inj.add(&rule("10.40.0.9/32")).unwrap();
    assert_eq!(new.slot, old.slot, "the slot was reused");
    assert_eq!(
        inj.counters(new).unwrap(),
        chaos_common::Counters::default()
    );
    send(&mut inj, "10.40.0.9", 2);
    send(&mut inj, "10.40.0.2", 1);
    assert_eq!(inj.counters(new).unwrap().matched_packets, 2);
    assert_eq!(inj.counters(neighbour).unwrap().matched_packets, 4);
    let many = inj.counters_many(&[new, old, neighbour]).unwrap();
    let matched: Vec<Option<u64>> = many.iter().map(|c| c.map(|c| c.matched_packets)).collect();
    assert_eq!(
        matched,
        [Some(2), None, Some(4)],
        "a removed id has no counters"
    );
}

#[test]
fn an_install_failing_after_its_writes_began_leaves_the_kernel_maps_as_they_were() {
    let mut inj = injector();
    inj.add(&rule("10.52.0.9/32")).unwrap();
    let batch = [
        rule("10.50.0.1/32"),
        rule("10.51.0.0/24"),
        rule("fd00:50::1/128"),
        Rule::blackhole(Direction::Ingress, "10.53.0.0/16".parse().unwrap()),
    ];
    let before = inj.kernel_rule_maps().unwrap();
    assert!(
        before.iter().any(|e| e.starts_with("RULES_V4 ")),
        "the snapshot sees the installed rule: {before:?}"
    );
    // Step 0: slots written; 1: keys too; 2 + k: rule k's index bits too.
    for step in 0..2 + batch.len() {
        inj.fail_next_install_at(step);
        let err = inj.add_batch(&batch).unwrap_err();
        assert!(err.to_string().contains("failpoint"), "step {step}: {err}");
        assert_eq!(inj.kernel_rule_maps().unwrap(), before, "step {step}");
        assert_eq!(inj.len(), 1, "step {step}");
        assert_eq!(egress(&mut inj, "10.50.0.1", L4::Udp(1, 2)), Pass);
        assert_eq!(egress(&mut inj, "10.51.0.7", L4::Udp(1, 2)), Pass);
        assert_eq!(egress(&mut inj, "fd00:50::1", L4::Udp(1, 2)), Pass);
        assert_eq!(egress(&mut inj, "10.52.0.9", L4::Udp(1, 2)), Drop);
    }
    // And the same batch installs and works afterwards.
    inj.add_batch(&batch).unwrap();
    assert_eq!(egress(&mut inj, "10.50.0.1", L4::Udp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "10.51.0.7", L4::Udp(1, 2)), Drop);
    assert_eq!(egress(&mut inj, "fd00:50::1", L4::Udp(1, 2)), Drop);
}

/// Every field a PATCH may change reaches the kernel: after `update(old → new)` the rule maps
/// are exactly what adding `new` alone writes (the DNS response lives in the name's
/// `DNS_RULES` value, not in the slot: an update that wrote only slots left it stale).
#[test]
fn an_update_leaves_the_kernel_maps_as_adding_the_new_rule_would() {
    use chaos_daemon::loader::DnsResponse;
    let ip = |action: Action| rule("10.60.0.0/24").with_action(action);
    let latency = |delay_ms: u64, jitter_ms: u64, distribution, reorder| Action::Latency {
        delay_ns: delay_ms * 1_000_000,
        jitter_ns: jitter_ms * 1_000_000,
        distribution,
        correlation: 0,
        ppm: 1_000_000,
        reorder,
    };
    let dns = |name: &str, response, ppm| {
        Rule::dns(name, response).with_action(Action::Dns { response, ppm })
    };
    let pairs = [
        (
            dns("db.example", DnsResponse::NxDomain, 1_000_000),
            dns("db.example", DnsResponse::ServFail, 500_000),
        ),
        (
            dns("*.example", DnsResponse::Refused, 1_000_000),
            dns("*.example", DnsResponse::NxDomain, 1_000_000),
        ),
        (
            ip(Action::Loss { ppm: 300_000 }),
            ip(Action::Loss { ppm: 700_000 }),
        ),
        (
            ip(latency(50, 0, Distribution::Uniform, false)),
            ip(latency(80, 10, Distribution::Normal, true)),
        ),
        (
            ip(Action::Bandwidth {
                bytes_per_sec: 1_250_000,
                burst_bytes: 0,
            }),
            ip(Action::Bandwidth {
                bytes_per_sec: 2_500_000,
                burst_bytes: 0,
            }),
        ),
    ];
    for (old, new) in pairs {
        let mut updated = injector();
        let id = updated.add(&old).unwrap();
        updated.update(&[id], std::slice::from_ref(&new)).unwrap();
        let mut added = injector();
        added.add(&new).unwrap();
        let after = updated.kernel_rule_maps().unwrap();
        assert_eq!(
            after,
            added.kernel_rule_maps().unwrap(),
            "{old:?} updated to {new:?}"
        );
        // An update failing after its writes writes the old values back.
        updated.fail_next_install_at(0);
        let err = updated
            .update(&[id], std::slice::from_ref(&old))
            .unwrap_err();
        assert!(err.to_string().contains("failpoint"), "{err}");
        assert_eq!(updated.kernel_rule_maps().unwrap(), after, "{new:?} kept");
    }
}
