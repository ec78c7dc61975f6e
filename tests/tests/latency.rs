//! Latency (EDT + fq). Where the kernel has `sch_fq` (the VMs: Debian 6.1 and 6.12), a 50 ms
//! fault delays one address by 50 ms and leaves its neighbour alone, beside netem's figure,
//! and the root qdisc is restored; where it has not (this host), the API refuses latency and
//! says why. Which case applies is measured independently of the daemon, with `tc`.

use std::process::Command;

use chaos_tests::{
    daemon::Daemon,
    netns::{B4, B4_ALT, NsPair, VETH_A},
};
use hyper::Method;
use nix::sys::signal::Signal;
use serde_json::json;

fn latency(cidr: &str, delay: &str) -> String {
    json!({"match": {"cidr": cidr}, "action": {"kind": "latency", "delay": delay}, "ttl": "10m"})
        .to_string()
}

/// Whether `tc` can install fq in namespace `ns` (on its loopback), removing it again.
fn kernel_has_fq(ns: &str) -> bool {
    let tc = |args: &[&str]| {
        Command::new("tc")
            .args(["-n", ns, "qdisc"])
            .args(args)
            .output()
            .expect("tc (iproute2)")
    };
    let added = tc(&["add", "dev", "lo", "root", "fq"]);
    let ok = added.status.success();
    if ok {
        tc(&["del", "dev", "lo", "root"]);
    } else {
        eprintln!("tc says: {}", String::from_utf8_lossy(&added.stderr).trim());
    }
    ok
}

/// (icmp_seq, RTT ms) of each reply, in the order they arrived, over `n` pings `interval`
/// seconds apart.
fn replies(p: &NsPair, dst: &str, n: u32, interval: &str) -> Vec<(u32, f64)> {
    let count = n.to_string();
    let out = p.exec(
        &p.a,
        &["ping", "-n", "-c", &count, "-i", interval, "-W", "2", dst],
    );
    let got: Vec<(u32, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let rtt = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((seq, rtt))
        })
        .collect();
    assert!(
        got.len() as u32 >= n * 9 / 10,
        "lost pings to {dst}: {got:?}"
    );
    got
}

/// Median RTT in ms over `n` pings from A to `dst`.
fn median_rtt(p: &NsPair, dst: &str, n: u32) -> f64 {
    let mut rtts: Vec<f64> = replies(p, dst, n, "0.05")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts[rtts.len() / 2]
}

fn latency_with(cidr: &str, action: serde_json::Value) -> String {
    json!({"match": {"cidr": cidr}, "action": action, "ttl": "10m"}).to_string()
}

#[test]
fn jitter_follows_its_distribution_and_never_reorders_a_flow() {
    let p = NsPair::new("jitter");
    let d = Daemon::start(&p.a, "");
    let normal =
        json!({"kind": "latency", "delay": "50ms", "jitter": "10ms", "distribution": "normal"});
    let spec = latency_with(B4, normal);
    if !kernel_has_fq(&p.a) {
        assert_eq!(d.call(Method::POST, "/v1/faults", Some(&spec)).0, 422);
        return;
    }
    // Normal, sigma 10 ms, pings 100 ms apart (so a flow's order never holds one back).
    d.create(&spec);
    let rtts: Vec<f64> = replies(&p, B4, 150, "0.1")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let mean = rtts.iter().sum::<f64>() / rtts.len() as f64;
    let sd = (rtts.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rtts.len() as f64).sqrt();
    eprintln!(
        "normal 50ms, sigma 10ms: mean {mean:.2} ms, sd {sd:.2} ms over {} pings",
        rtts.len()
    );
    assert!((7.5..=12.5).contains(&sd), "sd {sd} ms, configured 10 ms");
    assert!((47.0..=54.0).contains(&mean), "mean {mean} ms");
    // Pings 5 ms apart with ±20 ms uniform jitter: netem would reorder most of them; a flow
    // under our jitter never is.
    let (s, _) = d.call(Method::DELETE, "/v1/faults", None);
    assert_eq!(s, 200);
    let uniform = json!({"kind": "latency", "delay": "50ms", "jitter": "20ms"});
    d.create(&latency_with(B4, uniform));
    let order: Vec<u32> = replies(&p, B4, 100, "0.005")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "replies reordered: {order:?}"
    );
}

fn root_qdisc(p: &NsPair) -> String {
    String::from_utf8_lossy(&p.exec(&p.a, &["tc", "qdisc", "show", "dev", VETH_A]).stdout)
        .into_owned()
}

#[test]
fn fifty_ms_to_one_address_or_a_refusal_that_says_why() {
    let p = NsPair::new("latency");
    let fq = kernel_has_fq(&p.a);
    let mut d = Daemon::start(&p.a, "");
    let (s, health) = d.call(Method::GET, "/v1/health", None);
    assert_eq!(s, 200);
    assert_eq!(
        health["features"]["fq"], fq,
        "features.fq is measured, not guessed"
    );
    if !fq {
        let (s, e) = d.call(Method::POST, "/v1/faults", Some(&latency(B4, "50ms")));
        assert_eq!((s, e["field"].as_str()), (422, Some("action.kind")), "{e}");
        assert!(e["error"].as_str().unwrap().contains("sch_fq"), "{e}");
        return;
    }
    let base = median_rtt(&p, B4, 20);
    let base_alt = median_rtt(&p, B4_ALT, 20);
    d.create(&latency(B4, "50ms"));
    assert!(root_qdisc(&p).contains("qdisc fq "), "{}", root_qdisc(&p));
    let ours = median_rtt(&p, B4, 40);
    let alt = median_rtt(&p, B4_ALT, 40);
    eprintln!(
        "RTT ms: baseline {base:.2} / {base_alt:.2}; with 50 ms to {B4}: {ours:.2}, neighbour {alt:.2}"
    );
    assert!(
        (50.0..=52.0).contains(&ours),
        "RTT to the delayed address: {ours} ms"
    );
    assert!(
        (alt - base_alt).abs() <= 1.0,
        "neighbour moved: {base_alt} -> {alt} ms"
    );
    let (s, _) = d.call(Method::DELETE, "/v1/faults", None);
    assert_eq!(s, 200);
    assert!(
        !root_qdisc(&p).contains("qdisc fq "),
        "fq left after the last fault: {}",
        root_qdisc(&p)
    );
    // netem, the classic way, in the same place: the whole device.
    p.exec(
        &p.a,
        &[
            "tc", "qdisc", "add", "dev", VETH_A, "root", "netem", "delay", "50ms",
        ],
    );
    let netem = median_rtt(&p, B4, 40);
    let netem_alt = median_rtt(&p, B4_ALT, 20);
    p.exec(&p.a, &["tc", "qdisc", "del", "dev", VETH_A, "root"]);
    eprintln!("netem 50ms on {VETH_A}: {netem:.2} ms to {B4}, {netem_alt:.2} ms to its neighbour");
    assert!(
        (50.0..=52.0).contains(&netem),
        "netem reference: {netem} ms"
    );
    // SIGTERM with a latency fault restores the qdisc too.
    d.create(&latency(B4, "20ms"));
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0), "{}", d.log_text());
    assert!(
        !root_qdisc(&p).contains("qdisc fq "),
        "fq left after SIGTERM: {}",
        root_qdisc(&p)
    );
}

#[test]
fn a_crashed_daemons_fq_is_restored_at_the_next_start() {
    let p = NsPair::new("fqcrash");
    if !kernel_has_fq(&p.a) {
        // Nothing to restore where fq cannot exist; the refusal is covered above.
        let d = Daemon::start(&p.a, "");
        let (s, _) = d.call(Method::POST, "/v1/faults", Some(&latency(B4, "50ms")));
        assert_eq!(s, 422);
        return;
    }
    let mut d = Daemon::start(&p.a, "");
    d.create(&latency(B4, "30ms"));
    assert!(root_qdisc(&p).contains("qdisc fq "));
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit();
    // The links died with the process (TCX) or stay inert until the TTL (clsact); fq stays.
    assert!(root_qdisc(&p).contains("qdisc fq "), "{}", root_qdisc(&p));
    let state = d.dir.join("state.json");
    assert!(std::fs::read_to_string(&state).unwrap().contains(VETH_A));
    d.restart();
    assert!(
        !root_qdisc(&p).contains("qdisc fq "),
        "not restored: {}\n{}",
        root_qdisc(&p),
        d.log_text()
    );
    assert!(
        d.log_text()
            .contains("removed the fq an earlier daemon installed"),
        "{}",
        d.log_text()
    );
}
