//! The traffic cost of rules that never match it, ours beside the tools users have today
//! (nftables as a linear chain and as a set, tc u32 filters), over a veth pair between two
//! namespaces. Every figure is a ratio to a baseline pair without rules measured in the same
//! round, rounds interleaved, so the machine's noise cancels out.

use std::{fmt::Write as _, time::Instant};

use anyhow::{Result, ensure};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    daemon::Daemon,
    netns::{B4, NsPair, VETH_A},
    traffic::{self, Load, Path},
};

/// Who holds the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Nothing: a second pair without rules, measured as the others are. Its ratios are the
    /// noise of the measurement itself on this machine.
    Control,
    /// Our daemon (TC egress program, rules through the API).
    Ours,
    /// nftables, one `ip daddr … drop` rule per address in an output chain.
    NftChain,
    /// nftables, one interval set holding every address, one rule.
    NftSet,
    /// tc u32 filters on clsact egress, one per address. They classify instead of dropping:
    /// `action drop` needs the act_gact module, which kernels without modules lack, and the
    /// cost measured is the walk over filters that never match anyway.
    TcU32,
    /// A one-instruction classic BPF filter (`return 0`: no match, the packet goes on) on clsact
    /// egress: what the hook costs any program, however little it does. Ours cannot go below it.
    TcFloor,
}

impl Tool {
    /// Key in `results.json` and label in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Control => "none (control)",
            Tool::Ours => "ours",
            Tool::NftChain => "nft chain",
            Tool::NftSet => "nft set",
            Tool::TcU32 => "tc u32",
            Tool::TcFloor => "one-instruction BPF",
        }
    }
}

/// Where the rules are, relative to the measured traffic (to 10.200.0.2, never matched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// /32s in other /16s.
    Outside,
    /// /32s inside the traffic's /16 (at most 65,000 fit; the rest go outside it).
    Inside,
    /// /28s inside the traffic's /16 (at most 4,095 fit; the rest go outside it).
    Cidr,
}

impl Shape {
    /// Label in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Outside => "/32s in other /16s",
            Shape::Inside => "/32s in the traffic's /16",
            Shape::Cidr => "/28s in the traffic's /16",
        }
    }
}

/// The rules of a shape: `n` networks, none covering 10.200.0.0/28 (the traffic's addresses).
pub fn networks(shape: Shape, n: u32) -> Vec<String> {
    let outside = |i: u32| format!("10.{}.{}.{}/32", 201 + i / 65_536, (i / 256) % 256, i % 256);
    (0..n)
        .map(|i| match shape {
            Shape::Outside => outside(i),
            Shape::Inside if i < 65_000 => {
                format!("10.200.{}.{}/32", 1 + i / 256, i % 256)
            }
            Shape::Cidr if i < 4_095 => {
                let base = (i + 1) * 16;
                format!("10.200.{}.{}/28", base / 256, base % 256)
            }
            _ => outside(i),
        })
        .collect()
}

/// One measured setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// Who holds the rules.
    pub tool: Tool,
    /// Where they are.
    pub shape: Shape,
    /// How many.
    pub rules: u32,
}

/// Ratios to the baseline (median over rounds) and how long the rules took to load.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The setting.
    pub setting: Setting,
    /// TCP goodput, ours / baseline.
    pub tcp: f64,
    /// UDP 64-byte packets per second received, ours / baseline.
    pub udp_pps: f64,
    /// Mean ping RTT, ours / baseline (above 1 is slower).
    pub rtt: f64,
    /// Baseline figures of the first round: TCP Mbit/s, UDP packets/s, RTT ms.
    pub baseline: (f64, f64, f64),
    /// Seconds to load the rules.
    pub load_s: f64,
}

/// How long and how often to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds (each measures the baseline pair and the rule pair once).
    pub rounds: usize,
    /// Seconds per TCP and UDP transfer.
    pub secs: u32,
    /// Pings per round.
    pub pings: u32,
}

impl Plan {
    /// The full run: 5 rounds of 2 s transfers and 100 pings.
    pub const FULL: Plan = Plan {
        rounds: 5,
        secs: 2,
        pings: 100,
    };
    /// `--quick`: one round of 1 s transfers and 30 pings.
    pub const QUICK: Plan = Plan {
        rounds: 1,
        secs: 1,
        pings: 30,
    };
}

/// The settings of a run: ours in every shape at 10k and 100k, nftables' chain and set at the
/// same counts, tc u32 at 10k (`quick`: 10k only, no 100k nft chain).
pub fn settings(quick: bool) -> Vec<Setting> {
    let sizes: &[u32] = if quick { &[10_000] } else { &[10_000, 100_000] };
    let mut out = vec![
        Setting {
            tool: Tool::Control,
            shape: Shape::Outside,
            rules: 0,
        },
        Setting {
            tool: Tool::TcFloor,
            shape: Shape::Outside,
            rules: 0,
        },
    ];
    for &rules in sizes {
        for shape in [Shape::Outside, Shape::Inside, Shape::Cidr] {
            out.push(Setting {
                tool: Tool::Ours,
                shape,
                rules,
            });
        }
        for tool in [Tool::NftChain, Tool::NftSet] {
            out.push(Setting {
                tool,
                shape: Shape::Outside,
                rules,
            });
        }
    }
    out.push(Setting {
        tool: Tool::TcU32,
        shape: Shape::Outside,
        rules: 10_000,
    });
    out
}

/// Measures every setting against a baseline pair. Rules live in a namespace pair of their own,
/// deleted (with every nft table and tc filter in it) when the setting is done.
pub fn run(plan: Plan, settings: &[Setting]) -> Result<Vec<Outcome>> {
    let base = NsPair::new("bpbase");
    let mut out = Vec::new();
    for &setting in settings {
        let pair = NsPair::new("bppeer");
        let (_daemon, load_s) = install(&pair, setting)?;
        let (mut tcp, mut udp, mut rtt) = (Vec::new(), Vec::new(), Vec::new());
        // Each round's figure is divided by the mean of the baselines measured just before and
        // just after it, so a drift of the machine during the round cancels out too.
        let first = measure(&base, plan);
        let mut before = first;
        for _ in 0..plan.rounds {
            let r = measure(&pair, plan);
            let after = measure(&base, plan);
            let mean = |f: fn(&(f64, f64, f64)) -> f64| (f(&before) + f(&after)) / 2.0;
            tcp.push(r.0 / mean(|m| m.0));
            udp.push(r.1 / mean(|m| m.1));
            rtt.push(r.2 / mean(|m| m.2));
            before = after;
        }
        let o = Outcome {
            setting,
            tcp: median(tcp),
            udp_pps: median(udp),
            rtt: median(rtt),
            baseline: first,
            load_s,
        };
        println!(
            "{:>9} {:>6} {:<26} TCP {:.3}  UDP64 pps {:.3}  RTT {:.3}  (load {:.2} s)",
            setting.tool.name(),
            setting.rules,
            setting.shape.name(),
            o.tcp,
            o.udp_pps,
            o.rtt,
            o.load_s
        );
        out.push(o);
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// TCP Mbit/s, UDP 64-byte packets/s received, mean ping RTT (ms) from A to B.
pub fn measure(p: &NsPair, plan: Plan) -> (f64, f64, f64) {
    let path = Path::a_to_b(p);
    let tcp = traffic::send(p, path, Load::Tcp, plan.secs).mbit();
    let udp = traffic::send(p, path, Load::UdpPackets(64), plan.secs).goodput_bps / (64.0 * 8.0);
    let pings = p.ping_replies(&p.a, B4, plan.pings, "0.01");
    let rtt = pings.iter().map(|(_, ms)| ms).sum::<f64>() / pings.len() as f64;
    (tcp, udp, rtt)
}

/// Puts the setting's rules in side A of `p` and times the load alone (one API request, one
/// `nft -f`, one `tc -batch`: not the daemon's start nor the writing of the script); our
/// daemon, if it holds them, lives as long as the returned value.
fn install(p: &NsPair, s: Setting) -> Result<(Option<Daemon>, f64)> {
    let nets = networks(s.shape, s.rules);
    match s.tool {
        Tool::Control => Ok((None, 0.0)),
        Tool::Ours => {
            let d = Daemon::start(&p.a, "");
            // One fault for the whole list, as the nft set is one rule for its elements.
            let fault =
                json!({"match": {"cidrs": nets}, "action": {"kind": "blackhole"}, "ttl": "30m"});
            let body = serde_json::to_vec(&fault)?;
            let t = Instant::now();
            let (status, body) = d.raw(Method::POST, "/v1/faults", Some(body));
            let load_s = t.elapsed().as_secs_f64();
            ensure!(
                status == 201,
                "the fault was refused ({status}): {}",
                String::from_utf8_lossy(&body)
            );
            Ok((Some(d), load_s))
        }
        Tool::NftChain | Tool::NftSet => {
            let mut script = String::from(
                "table ip chaos_bench {\n chain out { type filter hook output priority 0; policy accept; }\n}\n",
            );
            if s.tool == Tool::NftSet {
                script.push_str(
                    "add set ip chaos_bench targets { type ipv4_addr; flags interval; }\n",
                );
                for chunk in nets.chunks(1000) {
                    writeln!(
                        script,
                        "add element ip chaos_bench targets {{ {} }}",
                        chunk.join(", ")
                    )?;
                }
                script.push_str("add rule ip chaos_bench out ip daddr @targets drop\n");
            } else {
                for n in &nets {
                    writeln!(script, "add rule ip chaos_bench out ip daddr {n} drop")?;
                }
            }
            let t = Instant::now();
            feed(p, "nft", "-f", &script)?;
            Ok((None, t.elapsed().as_secs_f64()))
        }
        Tool::TcU32 => {
            let mut script = format!("qdisc add dev {VETH_A} clsact\n");
            for n in &nets {
                writeln!(
                    script,
                    "filter add dev {VETH_A} egress protocol ip prio 1 u32 match ip dst {n} classid 1:1"
                )?;
            }
            let t = Instant::now();
            feed(p, "tc", "-batch", &script)?;
            Ok((None, t.elapsed().as_secs_f64()))
        }
        Tool::TcFloor => {
            let script = format!(
                "qdisc add dev {VETH_A} clsact\nfilter add dev {VETH_A} egress bpf bytecode \"1,6 0 0 0,\"\n"
            );
            feed(p, "tc", "-batch", &script)?;
            Ok((None, 0.0))
        }
    }
}

/// Runs `tool flag FILE` in namespace A, FILE holding `script` (`nft -f -` cut its stdin short
/// on a 10k-element set: broken pipe).
pub fn feed(p: &NsPair, tool: &str, flag: &str, script: &str) -> Result<()> {
    let file = std::env::temp_dir().join(format!("chaos-bench-{tool}-{}.txt", std::process::id()));
    std::fs::write(&file, script)?;
    let out = p.exec(&p.a, &[tool, flag, &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    ensure!(
        out.status.success(),
        "{tool} {flag} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The Markdown table of a run.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut md = String::from(
        "| tool | rules | where | TCP | UDP 64 B pkt/s | ping RTT | load (s) |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} |",
            o.setting.tool.name(),
            o.setting.rules,
            match o.setting.tool {
                Tool::Control => "(a second pair, no rules)",
                Tool::TcFloor => "(no rules: the hook's own cost)",
                _ => o.setting.shape.name(),
            },
            o.tcp,
            o.udp_pps,
            o.rtt,
            o.load_s
        );
    }
    md
}

/// What a 64-byte datagram costs on this run's baseline, and how much of it the floor row's hook
/// takes: the scale against which a few hundredths of UDP ratio are read.
pub fn per_datagram(outcomes: &[Outcome]) -> Option<String> {
    let pps: Vec<f64> = outcomes
        .iter()
        .map(|o| o.baseline.1)
        .filter(|p| *p > 0.0)
        .collect();
    if pps.is_empty() {
        return None;
    }
    let ns = 1e9 * pps.len() as f64 / pps.iter().sum::<f64>();
    let mut text = format!("a 64-byte datagram takes {ns:.0} ns on the pair without rules");
    if let Some(floor) = outcomes
        .iter()
        .find(|o| matches!(o.setting.tool, Tool::TcFloor))
        && floor.udp_pps > 0.0
    {
        let _ = write!(
            text,
            ", so the floor's {:.3} is about {:.0} ns of hook per datagram",
            floor.udp_pps,
            ns * (1.0 / floor.udp_pps - 1.0)
        );
    }
    Some(text)
}

/// `results.json` figures: `throughput_ratio[tool][rules]` (the worst shape for ours), and
/// every outcome.
pub fn json(outcomes: &[Outcome]) -> Value {
    let mut ratio = serde_json::Map::new();
    for o in outcomes {
        let tool = ratio
            .entry(o.setting.tool.name())
            .or_insert_with(|| json!({}));
        let key = o.setting.rules.to_string();
        let worst = tool[&key].as_f64().map_or(o.tcp, |t| t.min(o.tcp));
        tool[&key] = json!(worst);
    }
    let all: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            json!({
                "tool": o.setting.tool.name(),
                "rules": o.setting.rules,
                "shape": o.setting.shape.name(),
                "tcp_ratio": o.tcp,
                "udp64_pps_ratio": o.udp_pps,
                "rtt_ratio": o.rtt,
                "baseline": {"tcp_mbit": o.baseline.0, "udp64_pps": o.baseline.1, "rtt_ms": o.baseline.2},
                "load_s": o.load_s,
            })
        })
        .collect();
    json!({"throughput_ratio": ratio, "peers": all})
}

/// Draws TCP throughput ratio against rule count for each tool (ours: its worst shape) as an
/// SVG at `path`.
pub fn chart(outcomes: &[Outcome], path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_rules = outcomes.iter().map(|o| o.setting.rules).max().unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "TCP throughput with rules that never match (ratio to no rules)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_rules * 1.05, 0f64..1.1f64)?;
    chart
        .configure_mesh()
        .x_desc("rules")
        .y_desc("throughput ratio")
        .x_label_formatter(&|x| format!("{}k", (x / 1000.0).round()))
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (tool, color) in [Tool::Ours, Tool::NftChain, Tool::NftSet, Tool::TcU32]
        .into_iter()
        .zip(colors)
    {
        let mut points: Vec<(f64, f64)> = Vec::new();
        for o in outcomes.iter().filter(|o| o.setting.tool == tool) {
            let x = f64::from(o.setting.rules);
            match points.iter_mut().find(|p| p.0 == x) {
                Some(p) => p.1 = p.1.min(o.tcp),
                None => points.push((x, o.tcp)),
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(tool.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_networks_never_cover_the_traffic_and_are_distinct() {
        for shape in [Shape::Outside, Shape::Inside, Shape::Cidr] {
            let nets = networks(shape, 100_000);
            let set: std::collections::HashSet<_> = nets.iter().collect();
            assert_eq!(set.len(), nets.len(), "{shape:?}");
            for n in &nets {
                let net: ipnet::Ipv4Net = n.parse().unwrap();
                assert!(!net.contains(&"10.200.0.2".parse::<std::net::Ipv4Addr>().unwrap()));
            }
        }
        assert!(
            networks(Shape::Inside, 10)
                .iter()
                .all(|n| n.starts_with("10.200."))
        );
        assert!(networks(Shape::Cidr, 10).iter().all(|n| n.ends_with("/28")));
    }

    #[test]
    fn per_datagram_cost_comes_from_the_runs_own_baselines() {
        let outcome = |tool, udp_pps, base_pps| Outcome {
            setting: Setting {
                tool,
                shape: Shape::Outside,
                rules: 0,
            },
            tcp: 1.0,
            udp_pps,
            rtt: 1.0,
            baseline: (1.0, base_pps, 1.0),
            load_s: 0.0,
        };
        assert_eq!(per_datagram(&[]), None);
        // Baselines of 500k and 2M datagrams/s average to 800 ns; a 0.8 ratio is 200 ns more.
        let text = per_datagram(&[
            outcome(Tool::Control, 1.0, 500_000.0),
            outcome(Tool::TcFloor, 0.8, 2_000_000.0),
        ])
        .unwrap();
        assert!(text.contains("takes 800 ns"), "{text}");
        assert!(text.contains("0.800 is about 200 ns"), "{text}");
    }
}
