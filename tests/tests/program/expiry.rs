//! Rules past their deadline are ignored in the kernel, whatever the daemon does.

use crate::*;

#[test]
fn expired_rule_is_ignored_in_kernel() {
    let mut inj = injector();
    inj.add(&Rule {
        expires_at_ns: Some(monotonic_ns() - 1),
        ..rule("10.4.0.0/16")
    })
    .unwrap();
    inj.add(&Rule {
        expires_at_ns: Some(monotonic_ns() + 3_600_000_000_000),
        ..rule("10.6.0.0/16")
    })
    .unwrap();
    assert_eq!(egress(&mut inj, "10.4.0.1", L4::Udp(1, 2)), Pass);
    assert_eq!(egress(&mut inj, "10.6.0.1", L4::Udp(1, 2)), Drop);
}
