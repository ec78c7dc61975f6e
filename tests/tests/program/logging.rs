//! Anomaly reports through aya-log reach the daemon's logger, when logging is on.

use std::sync::{Arc, Mutex};

use chaos_daemon::loader::bpf_log::{Level, PUMP_DELAY};

use crate::*;

/// Keeps every record's message.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

#[test]
fn odd_packets_are_reported_and_ordinary_ones_are_not() {
    let seen = Collect::default();
    let mut inj = Injector::detached_logging(Level::Debug, seen.clone())
        .expect("loading the programs needs root (CAP_BPF): run as root");
    inj.add(&rule("fd00:80::/64")).unwrap();
    let plain = frame(ip("fd00::1"), ip("fd00:80::1"), L4::Udp(1, 2), 0);
    assert_eq!(
        inj.test_run(Direction::Egress, &plain, 1).unwrap().verdict,
        Drop
    );
    std::thread::sleep(PUMP_DELAY);
    assert!(
        seen.0.lock().unwrap().is_empty(),
        "{:?}",
        seen.0.lock().unwrap()
    );
    // Five Destination Options headers: one more than the parser follows.
    let mut long = plain.clone();
    for _ in 0..5 {
        long = with_v6_ext_header(long, 60);
    }
    let v = inj.test_run(Direction::Egress, &long, 1).unwrap().verdict;
    assert_eq!(v, Drop, "the address rule still matches");
    let mut bad_v4 = frame(ip("192.0.2.1"), ip("10.80.0.1"), L4::Udp(1, 2), 0);
    bad_v4[14] = 0x43; // IHL 3: 12 bytes, shorter than any IPv4 header
    assert_eq!(
        inj.test_run(Direction::Ingress, &bad_v4, 1)
            .unwrap()
            .verdict,
        Pass
    );
    std::thread::sleep(PUMP_DELAY);
    let seen = seen.0.lock().unwrap();
    assert!(
        seen.iter().any(|m| m.contains("IPv6 extension chain")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| m.contains("bad IPv4 header")),
        "{seen:?}"
    );
}
