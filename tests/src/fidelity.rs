//! Fidelity: what each fault does to traffic beside netem's equivalent, on the same device in the
//! same run (`cargo xtask bench`, VM part). A fault must do what the network condition it names
//! would do, so the figures compare: ping RTT, HTTP request/response (curl against Python's
//! http.server, one connection per request), bulk TCP sent and received by the faulted host,
//! bulk UDP sent by it, jitter's spread, and bulk TCP under loss with GSO on and off.

use std::{fmt::Write as _, process::Child};

use anyhow::{Result, ensure};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    bench::{Spread, rtts_to_b},
    daemon::Daemon,
    netns::{B4, NsPair, VETH_A},
    traffic::{self, Load, Path},
};

/// Seconds of each iperf3 transfer below 300 ms of delay; at 300 ms a transfer this short is
/// mostly slow start, whose few round trips swing the figure by half between runs (measured:
/// 15.8 vs 34.8 Mbit/s in one 4 s pair, 61–70 vs 48–65 over three 8 s pairs).
const SECS: u32 = 4;
/// Seconds of each transfer at 300 ms and more.
const LONG_SECS: u32 = 8;
/// Rounds of every figure, ours and netem interleaved; the table shows medians.
const ROUNDS: usize = 3;
/// UDP offered by the faulted host, Mbit/s.
const UDP_MBIT: u32 = 100;

/// One fault, as our API spells it and as netem's arguments do.
pub struct Fault {
    label: String,
    action: Value,
    netem: Vec<String>,
    /// Its delay (0: none), which sets how long requests and transfers take.
    delay_ms: u32,
}

/// `ms` of delay.
pub fn latency(ms: u32) -> Fault {
    Fault {
        label: format!("latency {ms} ms"),
        action: json!({"kind": "latency", "delay": format!("{ms}ms")}),
        netem: vec!["delay".into(), format!("{ms}ms")],
        delay_ms: ms,
    }
}

/// 50 ms ± 10 ms, uniform as netem's default. netem reorders a flow; ours keeps its order
/// unless `reorder` (then a packet's departure is its own sample, as netem's).
fn jittered(reorder: bool) -> Fault {
    Fault {
        label: format!(
            "latency 50 ms ± 10 ms, {}",
            if reorder { "reorder" } else { "ours in order" }
        ),
        action: json!({"kind": "latency", "delay": "50ms", "jitter": "10ms", "reorder": reorder}),
        netem: ["delay", "50ms", "10ms"].map(String::from).to_vec(),
        delay_ms: 50,
    }
}

/// Each figure's median over rounds (objects of numbers with the same keys).
fn medians(rounds: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for key in rounds[0].as_object().into_iter().flat_map(|o| o.keys()) {
        let mut v: Vec<f64> = rounds.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        out.insert(key.clone(), json!(v[v.len() / 2]));
    }
    Value::Object(out)
}

/// Puts `fault` in force on A's egress towards B: ours through the daemon, netem on the device.
pub fn install(p: &NsPair, d: &Daemon, fault: &Fault, netem: bool) -> Result<()> {
    if netem {
        let mut args = vec!["tc", "qdisc", "add", "dev", VETH_A, "root", "netem"];
        args.extend(fault.netem.iter().map(String::as_str));
        args.extend(["limit", "100000"]);
        let out = p.exec(&p.a, &args);
        ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        let spec = json!({"match": {"cidr": B4}, "action": fault.action, "ttl": "10m"});
        let (s, v) = d.call(Method::POST, "/v1/faults", Some(&spec.to_string()));
        ensure!(s == 201, "{} refused: {v}", fault.label);
    }
    Ok(())
}

/// Lifts what [`install`] put in force.
pub fn remove(p: &NsPair, d: &Daemon, netem: bool) -> Result<()> {
    if netem {
        let out = p.exec(&p.a, &["tc", "qdisc", "del", "dev", VETH_A, "root"]);
        ensure!(
            out.status.success(),
            "tc qdisc del: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        ensure!(
            d.call(Method::DELETE, "/v1/faults", None).0 == 200,
            "panic button failed"
        );
    }
    Ok(())
}

/// Python's http.server in B, killed on drop.
struct Http(Child);

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HTTP_PORT: &str = "8088";

fn http_server(p: &NsPair) -> Http {
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &p.b, "python3", "-m", "http.server"])
        .args([
            "--bind",
            B4,
            HTTP_PORT,
            "--directory",
            "/usr/share/doc/curl",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let http = Http(child);
    for _ in 0..50 {
        if !request_ms(p, 1).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    http
}

/// Milliseconds of each of `n` HTTP requests by curl from A, a new connection each (handshake,
/// request, response: two round trips).
fn request_ms(p: &NsPair, n: usize) -> Vec<f64> {
    let url = format!("http://{B4}:{HTTP_PORT}/copyright");
    let mut args = vec![
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "5",
        "-w",
        "%{time_total}\\n",
    ];
    args.extend(std::iter::repeat_n(url.as_str(), n));
    let out = p.exec(&p.a, &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(|s| s * 1000.0)
        .collect()
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Everything measured of one side (ours or netem) under one latency, in one round.
fn measure_latency(p: &NsPair, fault: &Fault) -> Value {
    let sent = Path::a_to_b(p);
    let received = Path::b_to_a(p);
    let ms = fault.delay_ms.max(1);
    let secs = if ms >= 300 { LONG_SECS } else { SECS };
    let ping = Spread::of(rtts_to_b(p, 30));
    let requests = Spread::of(request_ms(p, (3000 / ms as usize).clamp(10, 40)));
    json!({
        "rtt_mean_ms": r2(ping.mean),
        "rtt_p99_ms": r2(ping.p99),
        "request_p50_ms": r2(requests.p50),
        "request_p99_ms": r2(requests.p99),
        "tcp_sent_mbit": r2(traffic::send(p, sent, Load::Tcp, secs).mbit()),
        "tcp_received_mbit": r2(traffic::send(p, received, Load::Tcp, secs).mbit()),
        "udp_sent_mbit": r2(traffic::send(p, sent, Load::Udp(UDP_MBIT), secs).mbit()),
    })
}

/// GSO and TSO on or off on A's veth (ethtool): off, the faults meet MTU-sized packets as on a
/// wire; on, whole super-packets.
fn gso(p: &NsPair, on: bool) -> Result<()> {
    let state = if on { "on" } else { "off" };
    let out = p.exec(&p.a, &["ethtool", "-K", VETH_A, "gso", state, "tso", state]);
    ensure!(
        out.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The fidelity table: (markdown section, JSON for results.json's `fidelity`).
pub fn table(p: &NsPair, d: &Daemon) -> Result<(String, Value)> {
    let _http = http_server(p);
    let mut rows = String::new();
    let mut latency_json = serde_json::Map::new();
    for fault in [
        latency(10),
        latency(50),
        latency(300),
        jittered(false),
        jittered(true),
    ] {
        let mut rounds: [Vec<Value>; 2] = Default::default();
        for _ in 0..ROUNDS {
            for (side, netem) in [false, true].into_iter().enumerate() {
                install(p, d, &fault, netem)?;
                let m = measure_latency(p, &fault);
                remove(p, d, netem)?;
                println!(
                    "{} ({}): {m}",
                    fault.label,
                    if netem { "netem" } else { "ours" }
                );
                rounds[side].push(m);
            }
        }
        let (o, n) = (&medians(&rounds[0]), &medians(&rounds[1]));
        for (key, label) in [
            ("rtt_mean_ms", "ping RTT mean, ms"),
            ("rtt_p99_ms", "ping RTT p99, ms"),
            ("request_p50_ms", "HTTP request p50, ms"),
            ("request_p99_ms", "HTTP request p99, ms"),
            ("tcp_sent_mbit", "bulk TCP sent, Mbit/s"),
            ("tcp_received_mbit", "bulk TCP received, Mbit/s"),
            ("udp_sent_mbit", "bulk UDP sent (100 offered), Mbit/s"),
        ] {
            let (a, b) = (
                o[key].as_f64().unwrap_or(0.0),
                n[key].as_f64().unwrap_or(0.0),
            );
            let ratio = if b > 0.0 { a / b } else { f64::NAN };
            writeln!(
                rows,
                "| {} | {label} | {a:.2} | {b:.2} | {ratio:.2} |",
                fault.label
            )?;
        }
        latency_json.insert(fault.label.clone(), json!({"ours": o, "netem": n}));
    }

    // Jitter: the spread of ping RTTs under 50 ms ± 10 ms (normal), pings 100 ms apart.
    let jitter = Fault {
        label: "jitter".into(),
        action: json!({"kind": "latency", "delay": "50ms", "jitter": "10ms", "distribution": "normal"}),
        netem: ["delay", "50ms", "10ms", "distribution", "normal"]
            .map(String::from)
            .to_vec(),
        delay_ms: 50,
    };
    let mut spread = Vec::new();
    for netem in [false, true] {
        install(p, d, &jitter, netem)?;
        let v = p
            .ping_replies(&p.a, B4, 60, "0.1")
            .into_iter()
            .map(|(_, ms)| ms)
            .collect::<Vec<_>>();
        remove(p, d, netem)?;
        spread.push(Spread::of(v));
    }
    writeln!(
        rows,
        "| 50 ms ± 10 ms normal | ping RTT mean / sd, ms | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} (sd) |",
        spread[0].mean,
        spread[0].sd,
        spread[1].mean,
        spread[1].sd,
        spread[0].sd / spread[1].sd
    )?;

    // Loss on bulk TCP sent by the faulted host, super-packets and MTU-sized packets.
    let sent = Path::a_to_b(p);
    let mut loss_json = serde_json::Map::new();
    for gso_on in [true, false] {
        gso(p, gso_on)?;
        for pct in [1u32, 10] {
            let fault = Fault {
                label: format!("loss {pct} %"),
                action: json!({"kind": "loss", "percent": pct}),
                netem: vec!["loss".into(), format!("{pct}%")],
                delay_ms: 0,
            };
            let mut rounds: [Vec<Value>; 2] = Default::default();
            for _ in 0..ROUNDS {
                for (side, netem) in [false, true].into_iter().enumerate() {
                    install(p, d, &fault, netem)?;
                    let mbit = traffic::send(p, sent, Load::Tcp, SECS).mbit();
                    remove(p, d, netem)?;
                    rounds[side].push(json!({ "mbit": mbit }));
                }
            }
            let side = rounds.map(|r| medians(&r)["mbit"].as_f64().unwrap_or(0.0));
            let g = if gso_on { "GSO on" } else { "GSO off" };
            writeln!(
                rows,
                "| loss {pct} %, {g} | bulk TCP sent, Mbit/s | {:.2} | {:.2} | {:.2} |",
                side[0],
                side[1],
                side[0] / side[1]
            )?;
            loss_json.insert(
                format!("{pct}pct_{}", if gso_on { "gso" } else { "nogso" }),
                json!({"ours_mbit": r2(side[0]), "netem_mbit": r2(side[1])}),
            );
        }
    }
    gso(p, true)?;

    let md = format!(
        "\nFidelity: each fault beside netem's equivalent on the same device, in the same run (ours as a\n\
         fault to B only, netem on the whole device with `limit 100000`). Ping: 30 pings 50 ms apart; HTTP:\n\
         curl against Python's http.server in B, a new connection per request; bulk: iperf3 for {SECS} s ({LONG_SECS} s\n\
         at 300 ms), TCP sent by the faulted host (its data delayed), received by it (its ACKs delayed), UDP sent\n\
         at {UDP_MBIT} Mbit/s offered. Every figure is the median of {ROUNDS} rounds, ours and netem interleaved.\n\
         Jitter is netem's default (uniform); netem reorders a flow, ours keeps it in order unless `reorder` is\n\
         set: in order, a packet leaves no earlier than the one before it, so a flow's delay is nearer the top of\n\
         the jitter. Ratio: ours / netem.\n\n\
         | fault | figure | ours | netem | ratio |\n|---|---|---:|---:|---:|\n{rows}"
    );
    let json = json!({
        "latency": latency_json,
        "jitter_50ms_10ms_normal": {"ours": spread[0].json(), "netem": spread[1].json()},
        "loss_bulk_tcp": loss_json,
    });
    Ok((md, json))
}
