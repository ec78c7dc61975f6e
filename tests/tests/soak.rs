//! Soak, bounded to three minutes: a TCP stream runs between the namespaces the whole time while
//! a client adds and deletes about a thousand rules a second through the API (random TTLs, so
//! some expire on their own) and the daemon is killed with SIGKILL and restarted three times.
//! Afterwards: no API error but the expected conflicts, no rule left in the API or the kernel's
//! maps, nothing attached after each kill, the stream never stalled for more than a second,
//! and the daemon's RSS grew by at most 10 % from the first to the last minute of its last
//! life. Needs root; one test per binary, so nothing else runs beside it.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chaos_daemon::client::Client;
use chaos_tests::{
    daemon::Daemon,
    netns::{B4, NsPair, VETH_A},
};
use hyper::Method;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Lives of the daemon: three short ones ended by SIGKILL, then one long enough to compare
/// its first and last minute of memory.
const LIVES: [Duration; 4] = [
    Duration::from_secs(12),
    Duration::from_secs(12),
    Duration::from_secs(12),
    Duration::from_secs(125),
];
/// Rules per batch and batches per second: 1000 rules a second.
const BATCH: usize = 50;
const TICK: Duration = Duration::from_millis(50);
/// A batch is deleted this many ticks after it was added (if its TTL did not end it first).
const DELETE_AFTER: u64 = 40;

/// What the churn client saw.
#[derive(Default, Debug)]
struct Churn {
    added: u64,
    deleted: u64,
    /// Answers per status, requests that got one.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (the daemon was being killed or restarted).
    unanswered: u64,
    /// Answers nobody should get: 5xx, and 4xx other than a conflict.
    unexpected: Vec<String>,
}

fn batch(tick: u64, seed: &mut u64) -> String {
    let faults: Vec<Value> = (0..BATCH as u64)
        .map(|i| {
            let n = (tick * BATCH as u64 + i) % 62_500;
            // xorshift: TTLs from 1 s to 4 s, so some batches expire before their delete.
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let ttl_ms = 1000 + *seed % 3000;
            json!({"match": {"cidr": format!("10.77.{}.{}", n / 250, n % 250 + 1)},
                   "action": {"kind": "blackhole"}, "ttl": format!("{ttl_ms}ms"),
                   "labels": {"batch": tick.to_string()}})
        })
        .collect();
    Value::Array(faults).to_string()
}

/// Adds a batch every [`TICK`] and deletes the one from [`DELETE_AFTER`] ticks ago, until `stop`.
fn churn(socket: std::path::PathBuf, stop: Arc<AtomicBool>, seen: Arc<Mutex<Churn>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(&socket);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let start = Instant::now();
    let mut tick = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut requests = vec![(
            Method::POST,
            "/v1/faults".to_string(),
            Some(batch(tick, &mut seed)),
        )];
        if tick >= DELETE_AFTER {
            requests.push((
                Method::DELETE,
                format!("/v1/faults?label=batch={}", tick - DELETE_AFTER),
                None,
            ));
        }
        for (method, path, body) in requests {
            let answer =
                rt.block_on(client.request(method.clone(), &path, body.map(String::into_bytes)));
            let mut s = seen.lock().unwrap();
            match answer {
                Ok((status, body)) => {
                    *s.statuses.entry(status).or_default() += 1;
                    match (status, method == Method::POST) {
                        (201, true) => s.added += BATCH as u64,
                        (200, false) => {
                            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                            s.deleted += v["removed"].as_u64().unwrap_or(0);
                        }
                        (409, true) => {}
                        _ => s.unexpected.push(format!(
                            "{method} {path}: {status} {}",
                            String::from_utf8_lossy(&body)
                        )),
                    }
                }
                Err(_) => s.unanswered += 1,
            }
        }
        tick += 1;
        let next = start + TICK * tick as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// The daemon's resident set, kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The longest run of iperf3 intervals that carried no data, in seconds.
fn longest_stall(report: &Value) -> f64 {
    let mut longest: f64 = 0.0;
    let mut current = 0.0;
    for i in report["intervals"].as_array().into_iter().flatten() {
        let sum = &i["sum"];
        if sum["bytes"].as_u64() == Some(0) {
            current += sum["seconds"].as_f64().unwrap_or(0.0);
            longest = longest.max(current);
        } else {
            current = 0.0;
        }
    }
    longest
}

#[test]
fn rules_churn_and_kill_9_leave_nothing_and_never_stall_the_stream() {
    let p = NsPair::new("soak");
    let mut d = Daemon::start(&p.a, "");
    let total: Duration = LIVES.iter().sum::<Duration>() + Duration::from_secs(8);
    // The stream: rate-limited so the daemon and the churn client keep a core between them.
    let _server = KillOnDrop(
        Command::new("ip")
            .args([
                "netns", "exec", &p.b, "iperf3", "-s", "-1", "-p", "5299", "-B", B4,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let secs = total.as_secs().to_string();
    // A file, not a pipe: the JSON report (hundreds of KB) is written at the end in one go.
    let report_path = std::env::temp_dir().join(format!("chaos-soak-{}.json", std::process::id()));
    let stream = Command::new("ip")
        .args([
            "netns", "exec", &p.a, "iperf3", "-c", B4, "-p", "5299", "-t", &secs,
        ])
        .args(["-i", "0.25", "-b", "300M", "-J"])
        .stdout(std::fs::File::create(&report_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3");
    let mut stream = KillOnDrop(stream);

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Churn::default()));
    let client = {
        let (socket, stop, seen) = (d.socket.clone(), stop.clone(), seen.clone());
        std::thread::spawn(move || churn(socket, stop, seen))
    };
    let mut rss = Vec::new();
    for (n, life) in LIVES.iter().enumerate() {
        let born = Instant::now();
        while born.elapsed() < *life {
            std::thread::sleep(Duration::from_secs(1));
            rss.push((born.elapsed(), rss_kb(d.child.id())));
        }
        if n + 1 < LIVES.len() {
            d.signal(Signal::SIGKILL);
            d.wait_exit();
            assert_eq!(
                p.attached(&p.a, VETH_A),
                (0, false),
                "kill -9 number {} left a program attached",
                n + 1
            );
            rss.clear();
            d.restart();
        }
    }
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    // What the churn left: batches not yet deleted end at their TTL (≤ 4 s) or here.
    let (s, _) = d.call(Method::DELETE, "/v1/faults", None);
    assert_eq!(s, 200);
    assert_eq!(d.fault_ids(), Vec::<String>::new());
    let in_kernel = d.rule_entries_in_kernel();
    assert!(
        !in_kernel.is_empty(),
        "the daemon's rule maps were not found"
    );
    assert!(
        in_kernel.values().all(|&n| n == 0),
        "rules left in the kernel's maps: {in_kernel:?}"
    );
    assert_eq!(
        p.attached(&p.a, VETH_A),
        (0, false),
        "no faults, no programs"
    );
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    assert_eq!(p.attached(&p.a, VETH_A), (0, false), "after the final kill");

    stream.wait_or_kill(total + Duration::from_secs(10));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap_or_default())
        .unwrap_or_default();
    let _ = std::fs::remove_file(&report_path);
    let stall = longest_stall(&report);
    let gbps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9;

    let churn = seen.lock().unwrap();
    let minute = Duration::from_secs(60);
    let max_in = |from: Duration, to: Duration| {
        rss.iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, kb)| *kb)
            .max()
            .unwrap_or(0)
    };
    let last_life = LIVES[LIVES.len() - 1];
    let (first, last) = (
        max_in(Duration::ZERO, minute),
        max_in(last_life - minute, last_life + minute),
    );
    eprintln!(
        "soak: {:.0} s, {} rules added ({:.0}/s), {} deleted, statuses {:?}, {} unanswered around the kills; \
         stream {gbps:.2} Gbit/s, longest stall {stall:.2} s; RSS max first minute {first} kB, last minute {last} kB",
        total.as_secs_f64(),
        churn.added,
        churn.added as f64 / total.as_secs_f64(),
        churn.deleted,
        churn.statuses,
        churn.unanswered
    );
    assert!(
        churn.unexpected.is_empty(),
        "unexpected answers: {:?}",
        churn.unexpected
    );
    // The client aims at 1000 rules/s; the kills and restarts (each verifies programs again)
    // cost some of it, a debug-build daemon more.
    assert!(
        churn.added as f64 >= 450.0 * total.as_secs_f64(),
        "the churn fell far below 1000 rules/s: {churn:?}"
    );
    assert!(gbps > 0.0, "the stream carried nothing: {report}");
    assert!(stall <= 1.0, "the stream stalled for {stall} s");
    assert!(first > 0 && last > 0);
    assert!(
        last as f64 <= first as f64 * 1.10,
        "RSS grew from {first} kB to {last} kB"
    );
}

/// A child killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    /// Waits for it to exit by itself, killing it after `limit`.
    fn wait_or_kill(&mut self, limit: Duration) {
        let start = Instant::now();
        while self.0.try_wait().ok().flatten().is_none() && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
