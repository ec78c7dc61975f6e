//! `cargo xtask bench`, VM part (runs inside `cargo xtask vm` on a kernel with sch_fq and netem):
//! latency accuracy of ours beside netem at 1 / 10 / 50 / 300 ms, the fidelity table (each fault
//! beside netem's equivalent: RTT, requests, bulk TCP both ways, UDP, jitter, loss), and the cost
//! to traffic no rule matches of 10,000 rules, ours beside netem with u32 filters, against no program at all.
//! Rounds are interleaved; every figure is compared within this run.
//!
//! `chaos-vmbench measure DIR` (in the VM, whose view of the host is read-only) writes
//! `DIR/results.json` and `DIR/section.md`; `chaos-vmbench merge DIR` (on the host) puts them
//! into `target/bench/results.json` (key `vm`) and appends the section to `BENCHMARKS.md`.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context, Result, ensure};
use chaos_tests::{
    bench::{Spread, cmd_output, merge_json, rtts_to_b},
    daemon::Daemon,
    fidelity,
    netns::{NsPair, VETH_A},
    peers,
};
use hyper::Method;
use serde_json::{Value, json};

/// Pings per accuracy figure and round.
const PINGS: u32 = 40;
/// Rounds of each measurement, interleaved ours / reference.
const ROUNDS: usize = 3;
/// Rules installed for the throughput figure.
const RULES: u32 = 10_000;

fn tc(p: &NsPair, args: &[&str]) -> Result<()> {
    let out = Command::new("tc")
        .args(["-n", &p.a, "qdisc"])
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// (ours, netem) RTT statistics for a `ms` delay to B.
fn accuracy(p: &NsPair, d: &Daemon, ms: u32) -> Result<(Spread, Spread)> {
    let (mut ours, mut netem) = (Vec::new(), Vec::new());
    let fault = fidelity::latency(ms);
    for _ in 0..ROUNDS {
        for (side, rtts) in [(false, &mut ours), (true, &mut netem)] {
            fidelity::install(p, d, &fault, side)?;
            rtts.extend(rtts_to_b(p, PINGS));
            fidelity::remove(p, d, side)?;
        }
    }
    Ok((Spread::of(ours), Spread::of(netem)))
}

/// `RULES` latency faults on /32s in `base` (a /16 given as its first two octets), none of them B.
fn rules(base: [u8; 2]) -> String {
    let faults: Vec<Value> = (0..RULES)
        .map(|i| {
            let (c, d) = ((i / 250 + 1) as u8, (i % 250 + 1) as u8);
            json!({"match": {"cidr": format!("{}.{}.{c}.{d}", base[0], base[1])},
                   "action": {"kind": "latency", "delay": "50ms"}, "ttl": "10m"})
        })
        .collect();
    Value::Array(faults).to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Rules that never match the measured traffic, put in place and taken away between figures.
enum Setup<'a> {
    /// `RULES` latency faults in a /16 (its first two octets).
    Ours(&'a Daemon, [u8; 2]),
    /// netem under a prio band that `RULES` u32 filters select.
    Netem(&'a NsPair),
}

impl Setup<'_> {
    fn install(&self) -> Result<()> {
        match self {
            Setup::Ours(d, base) => {
                let (s, v) = d.call(Method::POST, "/v1/faults", Some(&rules(*base)));
                ensure!(s == 201, "{RULES} rules refused: {v}");
            }
            Setup::Netem(p) => {
                let mut script = format!(
                    "qdisc replace dev {VETH_A} root handle 1: prio bands 4\n\
                     qdisc add dev {VETH_A} parent 1:4 handle 40: netem delay 50ms\n"
                );
                // One u32 table holds at most 4095 filters (12-bit node ids): a new priority,
                // hence a new table, every 4000. Packets still walk them all.
                for (i, n) in peers::networks(peers::Shape::Outside, RULES)
                    .iter()
                    .enumerate()
                {
                    script.push_str(&format!(
                        "filter add dev {VETH_A} parent 1: protocol ip prio {} u32 match ip dst {n} flowid 1:4\n",
                        1 + i / 4000
                    ));
                }
                peers::feed(p, "tc", "-batch", &script)?;
            }
        }
        Ok(())
    }

    fn remove(&self) -> Result<()> {
        match self {
            Setup::Ours(d, _) => {
                let (s, _) = d.call(Method::DELETE, "/v1/faults", None);
                ensure!(s == 200, "panic button failed");
            }
            Setup::Netem(p) => tc(p, &["del", "dev", VETH_A, "root"])?,
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("measure"), Some(dir)) => measure(std::path::Path::new(dir)),
        (Some("merge"), Some(dir)) => merge(std::path::Path::new(dir)),
        _ => anyhow::bail!("usage: chaos-vmbench measure DIR | merge DIR"),
    }
}

fn merge(dir: &std::path::Path) -> Result<()> {
    let results: Value = serde_json::from_str(&fs::read_to_string(dir.join("results.json"))?)?;
    fs::create_dir_all("target/bench")?;
    merge_json("target/bench/results.json", &json!({ "vm": results }))?;
    let mut all = fs::read_to_string("BENCHMARKS.md").unwrap_or_default();
    all.push_str(&fs::read_to_string(dir.join("section.md"))?);
    fs::write("BENCHMARKS.md", all)?;
    println!("merged the VM figures into BENCHMARKS.md and target/bench/results.json");
    Ok(())
}

fn measure(dir: &std::path::Path) -> Result<()> {
    let exe = std::env::current_exe()?;
    // SAFETY: single-threaded here; nothing reads the environment concurrently.
    unsafe { std::env::set_var("CHAOS_BIN_DIR", exe.parent().context("exe dir")?) };
    let kernel = cmd_output("uname", &["-r"]);
    let p = NsPair::new("vmbench");
    let d = Daemon::start(&p.a, "");

    let mut accuracy_json = BTreeMap::new();
    let mut md = format!(
        "\n## Latency and throughput in a VM (`cargo xtask vm`, Debian kernel {kernel}, qemu TCG, one vCPU)\n\n\
         Ping RTT from one namespace to the other over a veth, {PINGS} pings 50 ms apart per round, {ROUNDS} rounds\n\
         interleaved with netem's `delay` on the same device. Baseline RTT (no fault) is included in every figure.\n\n\
         | delay | ours mean / p50 / p99 / sd (ms) | netem mean / p50 / p99 / sd (ms) | mean, ours − netem |\n|---:|---:|---:|---:|\n"
    );
    for ms in [1u32, 10, 50, 300] {
        let (ours, netem) = accuracy(&p, &d, ms)?;
        println!("{ms} ms: ours {ours:?}, netem {netem:?}");
        md.push_str(&format!(
            "| {ms} ms | {:.2} / {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} / {:.2} | {:+.2} ms |\n",
            ours.mean, ours.p50, ours.p99, ours.sd, netem.mean, netem.p50, netem.p99, netem.sd,
            ours.mean - netem.mean
        ));
        accuracy_json.insert(
            format!("{ms}ms"),
            json!({"ours": ours.json(), "netem": netem.json(), "mean_diff_ms": ((ours.mean - netem.mean) * 1000.0).round() / 1000.0}),
        );
    }

    let (fidelity_md, fidelity) = chaos_tests::fidelity::table(&p, &d)?;
    md.push_str(&fidelity_md);

    // Traffic no rule matches, beside netem: ours with rules elsewhere (another /16: the
    // prefilter answers) and in B's own /16 (the exact-match lookup runs), fq being the root
    // qdisc while latency rules exist, so its cost is part of ours; netem the way per-destination
    // delay is built with it (a prio qdisc, netem under one band, one u32 filter per address).
    let plan = peers::Plan {
        rounds: ROUNDS,
        secs: 4,
        pings: 50,
    };
    let setups = [
        (
            "ours_other_slash16",
            "ours, /32 latency rules in another /16",
        ),
        (
            "ours_same_slash16",
            "ours, /32 latency rules in the traffic's own /16",
        ),
        (
            "netem_u32",
            "netem under prio, one u32 filter per /32 (other /16s)",
        ),
    ];
    let mut ratios: Vec<[Vec<f64>; 3]> = vec![Default::default(); setups.len()];
    let mut baseline = None;
    for _ in 0..ROUNDS {
        let b = peers::measure(&p, plan);
        baseline.get_or_insert(b);
        for (k, (key, _)) in setups.iter().enumerate() {
            let installed = match *key {
                "ours_other_slash16" => Setup::Ours(&d, [10, 50]),
                "ours_same_slash16" => Setup::Ours(&d, [10, 200]),
                _ => Setup::Netem(&p),
            };
            installed.install()?;
            let r = peers::measure(&p, plan);
            installed.remove()?;
            for (m, (r, b)) in [(r.0, b.0), (r.1, b.1), (r.2, b.2)].into_iter().enumerate() {
                ratios[k][m].push(r / b);
            }
        }
    }
    let baseline = baseline.expect("rounds");
    let mut throughput = BTreeMap::new();
    let mut rows = String::new();
    for ((key, label), [tcp, udp, rtt]) in setups.iter().zip(ratios) {
        let (tcp, udp, rtt) = (median(tcp), median(udp), median(rtt));
        println!("{label}: TCP {tcp:.3} UDP64 {udp:.3} RTT {rtt:.3}");
        rows.push_str(&format!("| {label} | {tcp:.3} | {udp:.3} | {rtt:.3} |\n"));
        throughput.insert(
            key.to_string(),
            json!({"throughput_ratio": round3(tcp), "udp64_pps_ratio": round3(udp), "rtt_ratio": round3(rtt)}),
        );
    }
    md.push_str(&format!(
        "\nTraffic no rule matches, {RULES} rules, ratios to no program and no qdisc measured in the same round\n\
         (median of {ROUNDS} rounds, interleaved; iperf3 TCP goodput and UDP 64-byte datagrams/s over {} s, mean RTT of {}\n\
         pings; above 1 is slower). Baseline: TCP {:.0} Mbit/s, UDP {:.0} pkt/s, RTT {:.3} ms. The VM is CPU-bound.\n\n\
         | setup | TCP | UDP 64 B pkt/s | ping RTT |\n|---|---:|---:|---:|\n{rows}",
        plan.secs, plan.pings, baseline.0, baseline.1, baseline.2
    ));
    fs::create_dir_all(dir)?;
    let results = json!({"kernel": kernel, "latency_accuracy": accuracy_json, "fidelity": fidelity, "unmatched_traffic_10k_rules": throughput});
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    fs::write(dir.join("section.md"), md)?;
    println!("wrote the VM figures to {}", dir.display());
    Ok(())
}
