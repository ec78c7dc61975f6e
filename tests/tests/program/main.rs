//! Program tests: the real eBPF programs run on crafted packets with BPF_PROG_TEST_RUN, one
//! module per feature. Needs root (CAP_BPF); fails with the reason otherwise.

mod bandwidth;
mod dns;
mod expiry;
mod fragments;
mod ingress;
mod latency;
mod logging;
mod loss;
mod matching;
mod parsing;
mod rules;
mod scope;

pub use std::net::IpAddr;

pub use chaos_daemon::{
    Action, Direction, Injector, Protocol, Rule,
    clock::monotonic_ns,
    loader::Distribution,
    loader::testrun::Verdict::{self, Drop, Pass},
};
pub use chaos_tests::packet::{
    L4, frame, v4_fragment, v6_fragment, with_v6_ext_header, with_vlan_tag,
};

pub fn injector() -> Injector {
    Injector::detached().expect("loading the programs needs root (CAP_BPF): run as root")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn rule(net: &str) -> Rule {
    Rule::blackhole(Direction::Egress, net.parse().unwrap())
}

/// Egress verdict for a packet from a fixed local address to `dst`.
pub fn egress(inj: &mut Injector, dst: &str, l4: L4) -> Verdict {
    let src = if dst.contains(':') {
        "fd00::1"
    } else {
        "192.0.2.1"
    };
    inj.test_run(Direction::Egress, &frame(ip(src), ip(dst), l4, 32), 1)
        .unwrap()
        .verdict
}
