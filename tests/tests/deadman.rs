//! The dead-man switch: the kernel ignores every rule once the daemon's heartbeat is older than
//! `deadman` (2 s by default). A daemon stopped with SIGSTOP (hung) or killed with SIGKILL (on
//! a kernel without TCX its clsact filter outlives it) stops blackholing within the interval
//! plus a second (plus what observing it costs, [`lift_bound`]); a daemon that resumes ends the faults the kernel lifted, audited, and works
//! normally again. Runs on the host and in the 6.1 and 6.12 VMs.

use std::time::{Duration, Instant};

use chaos_tests::{
    daemon::Daemon,
    netns::{B4, NsPair, kernel_has_fq},
};
use hyper::Method;
use nix::sys::signal::Signal;
use serde_json::json;

const INTERVAL: Duration = Duration::from_secs(2);

fn blackhole() -> String {
    json!({"match": {"cidr": B4}, "action": {"kind": "blackhole"}, "ttl": "10m"}).to_string()
}

fn answers(p: &NsPair) -> bool {
    p.exec(&p.a, &["ping", "-n", "-c", "1", "-W", "0.2", B4])
        .status
        .success()
}

/// How long until B answers again, polling; `None` if not within `limit`.
fn until_answers(p: &NsPair, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if answers(p) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn blackholed(p: &NsPair) -> bool {
    (0..3).all(|_| !answers(p))
}

/// How late [`until_answers`] may see traffic flow again: the interval, a second of slack,
/// and two of its own polls (a ping that was already under way when the rules lapsed, then the
/// one that sees it), timed here: in a TCG guest starting a ping takes hundreds of ms.
fn lift_bound(p: &NsPair) -> Duration {
    let start = Instant::now();
    let _ = answers(p);
    INTERVAL + Duration::from_secs(1) + 2 * start.elapsed()
}

#[test]
fn a_hung_daemons_faults_lift_within_the_interval_and_end_when_it_resumes() {
    let p = NsPair::new("hang");
    let d = Daemon::start(&p.a, "deadman = \"2s\"\n");
    let (_, health) = d.call(Method::GET, "/v1/health", None);
    assert_eq!(health["deadman"]["interval_ms"], 2000, "{health}");
    assert!(
        health["deadman"]["heartbeat_age_ms"].as_u64().unwrap() < 2000,
        "{health}"
    );
    d.create(&blackhole());
    assert!(blackholed(&p));
    let bound = lift_bound(&p);
    d.signal(Signal::SIGSTOP);
    let lifted = until_answers(&p, INTERVAL + Duration::from_secs(4));
    eprintln!("SIGSTOP with a 10-minute blackhole: traffic flows again after {lifted:?}");
    let lifted = lifted.expect("the blackhole outlived a stopped daemon");
    assert!(lifted <= bound, "{lifted:?} > {bound:?}");
    // Resumed: the daemon finds the gap, ends the faults the kernel lifted, and re-arms.
    d.signal(Signal::SIGCONT);
    let start = Instant::now();
    while !d.fault_ids().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "faults kept after SIGCONT\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answers(&p), "the blackhole came back after SIGCONT");
    let log = d.log_text();
    assert!(log.contains("dead-man switch tripped"), "{log}");
    assert!(
        log.contains("action=\"deadman\"") || log.contains("action=deadman"),
        "{log}"
    );
    let (_, health) = d.call(Method::GET, "/v1/health", None);
    assert_eq!(
        (
            health["deadman"]["tripped"].as_bool(),
            health["deadman"]["trips"].as_u64()
        ),
        (Some(false), Some(1)),
        "{health}"
    );
    // Re-armed: a new fault works.
    d.create(&blackhole());
    assert!(
        blackholed(&p),
        "a fault created after the re-arm does not act"
    );
    let metrics = String::from_utf8(d.raw(Method::GET, "/metrics", None).1).unwrap();
    assert!(
        metrics.contains("chaos_deadman_heartbeat_age_seconds"),
        "{metrics}"
    );
}

#[test]
fn a_killed_daemons_faults_lift_within_the_interval() {
    let p = NsPair::new("killed");
    let mut d = Daemon::start(&p.a, "");
    d.create(&blackhole());
    assert!(blackholed(&p));
    let bound = lift_bound(&p);
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit();
    let lifted = until_answers(&p, INTERVAL + Duration::from_secs(4));
    eprintln!("kill -9 with a 10-minute blackhole: traffic flows again after {lifted:?}");
    let lifted = lifted.expect("the blackhole outlived a killed daemon");
    assert!(lifted <= bound, "{lifted:?} > {bound:?}");
    // The next daemon starts with a fresh heartbeat of its own: its faults act, the dead
    // daemon's never come back.
    d.restart();
    assert!(answers(&p));
    d.create(&blackhole());
    assert!(blackholed(&p));
}

/// (send time, RTT) of each reply `ping -D` printed, in seconds since the epoch and ms.
fn replies(stdout: &str) -> Vec<(f64, f64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let at: f64 = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let rtt: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((at - rtt / 1e3, rtt))
        })
        .collect()
}

#[test]
fn a_killed_daemons_latency_lifts_within_the_interval_for_a_flow_with_packets_held() {
    let p = NsPair::new("heldlat");
    let mut d = Daemon::start(&p.a, "");
    let slow = json!({"match": {"cidr": B4}, "action": {"kind": "latency", "delay": "3s"},
                      "ttl": "10m"})
    .to_string();
    if !kernel_has_fq(&p.a) {
        // Nothing can be held where fq cannot exist: the fault is refused instead.
        assert_eq!(d.call(Method::POST, "/v1/faults", Some(&slow)).0, 422);
        return;
    }
    d.create(&slow);
    // One flow (one ping, one ICMP id) every 100 ms: when the daemon dies, the packets of its
    // last 3 s are held in the qdisc. Once the rules lapse, the flow's new packets must not
    // queue behind them (on 6.1, with fq at the root, they did until the held ones left:
    // 44-899 ms, up to the delay after the kill).
    let ping = std::process::Command::new("ip")
        .args([
            "netns", "exec", &p.a, "ping", "-D", "-n", "-i", "0.1", "-c", "110",
        ])
        .args(["-w", "16", B4])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let killed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit();
    let out = ping.wait_with_output().unwrap();
    let replies = replies(&String::from_utf8_lossy(&out.stdout));
    let held = replies.iter().filter(|(_, rtt)| *rtt > 2500.0).count();
    let lapsed = killed + INTERVAL.as_secs_f64() + 0.5;
    let after: Vec<f64> = replies
        .iter()
        .filter(|(sent, _)| *sent > lapsed)
        .map(|(_, rtt)| *rtt)
        .collect();
    let worst = after.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "kill -9 with 3 s of latency and a flow holding packets: {held} replies held ~3 s; \
         {} sent from 2.5 s after the kill, the slowest back in {worst:.1} ms",
        after.len()
    );
    assert!(held >= 10, "the fault held nothing: {replies:?}");
    assert!(
        after.len() >= 20,
        "too few replies after the interval: {replies:?}"
    );
    assert!(
        worst < 100.0,
        "packets sent after the interval were still delayed: {replies:?}"
    );
    d.restart();
    assert!(answers(&p));
}
