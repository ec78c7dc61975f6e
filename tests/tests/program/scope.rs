//! Rules scoped to a cgroup. A test run's packet has no socket, so it belongs to no cgroup: a
//! scoped rule must never match it, and must not hide the unscoped rules beside it. (Packets
//! from real sockets in and outside the cgroup: `tests/cgroup.rs`.)

use crate::*;
use chaos_daemon::loader::Scope;

const SCOPE: Scope = Scope {
    id: 0x1234_5678,
    level: 2,
};

#[test]
fn scoped_rules_skip_socketless_packets_and_leave_unscoped_rules_in_force() {
    let mut inj = injector();
    for net in ["10.7.0.9/32", "10.7.1.0/24", "fd07::9/128", "fd07:1::/64"] {
        inj.add(&rule(net).scoped(SCOPE)).unwrap();
    }
    for dst in ["10.7.0.9", "10.7.1.1", "fd07::9", "fd07:1::1"] {
        assert_eq!(egress(&mut inj, dst, L4::Tcp(1, 80)), Pass, "{dst}");
    }
    // The same match unscoped is another key, not a conflict, and applies to everyone.
    let unscoped = inj.add(&rule("10.7.0.9/32")).unwrap();
    inj.add(&rule("fd07:1::/64").on(Protocol::Tcp, Some(80)))
        .unwrap();
    assert_eq!(egress(&mut inj, "10.7.0.9", L4::Tcp(1, 80)), Drop);
    assert_eq!(egress(&mut inj, "fd07:1::1", L4::Tcp(1, 80)), Drop);
    assert_eq!(egress(&mut inj, "10.7.1.1", L4::Tcp(1, 80)), Pass);
    // The scoped twin again conflicts with itself only.
    assert!(inj.add(&rule("10.7.0.9/32").scoped(SCOPE)).is_err());
    inj.remove(unscoped).unwrap();
    assert_eq!(egress(&mut inj, "10.7.0.9", L4::Tcp(1, 80)), Pass);
}

#[test]
fn scopes_at_more_depths_than_the_program_probes_are_refused() {
    let mut inj = injector();
    let max = chaos_common::MAX_SCOPE_PROBES as u8;
    let ids: Vec<_> = (1..=max)
        .map(|level| {
            let scope = Scope {
                id: 100 + u64::from(level),
                level,
            };
            inj.add(&rule(&format!("10.8.{level}.1/32")).scoped(scope))
                .unwrap()
        })
        .collect();
    // A further depth is refused, leaving the maps as they were; one in use is fine.
    let deeper = Scope {
        id: 999,
        level: max + 1,
    };
    let err = inj.add(&rule("10.8.99.1/32").scoped(deeper)).unwrap_err();
    assert!(err.to_string().contains("depths"), "{err}");
    assert_eq!(inj.len(), ids.len());
    let same_depth = Scope {
        id: 998,
        level: max,
    };
    inj.add(&rule("10.8.98.1/32").scoped(same_depth)).unwrap();
    // Once a depth is free again, another can take its place.
    inj.remove(ids[0]).unwrap();
    inj.add(&rule("10.8.99.1/32").scoped(deeper)).unwrap();
    assert_eq!(egress(&mut inj, "10.8.99.1", L4::Udp(1, 2)), Pass);
}

#[test]
fn ingress_rules_cannot_be_scoped() {
    let mut inj = injector();
    let r = Rule::blackhole(Direction::Ingress, "10.9.0.1/32".parse().unwrap()).scoped(SCOPE);
    let err = inj.add(&r).unwrap_err();
    assert!(err.to_string().contains("egress only"), "{err}");
    assert!(inj.is_empty());
}
