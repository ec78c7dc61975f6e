//! `chaosctl`: the command-line client. Human tables by default, the API's JSON with `--json`.
//! Exit codes: 0 ok, 1 the daemon refused, 2 usage error, 3 daemon unreachable.

use std::{path::PathBuf, time::Duration};

use clap::{Args, CommandFactory, Parser, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    client::{Client, ClientError},
    spec::{ErrorBody, Fault, Health, Removed},
};

/// Exit code: the daemon refused the request.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: the daemon could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;

/// Command line of `chaosctl`.
#[derive(Parser)]
#[command(
    name = "chaosctl",
    version,
    about = "Control chaos-daemon: add, list and remove network faults",
    after_help = "Examples:\n  \
        chaosctl add blackhole --to 10.0.3.7 --ttl 60s\n  \
        chaosctl add loss --to 10.0.3.0/24 --port 6379 --proto tcp --percent 30 --ttl 5m\n  \
        chaosctl add blackhole --from 192.0.2.0/24 --ttl 2m      # ingress, by source\n  \
        chaosctl ls\n  \
        chaosctl rm --all                                        # the panic button\n\n\
        Exit codes: 0 ok, 1 the daemon refused, 2 usage error, 3 daemon unreachable."
)]
pub struct Cli {
    /// Daemon socket.
    #[arg(
        long,
        global = true,
        env = "CHAOS_SOCKET",
        default_value = "/run/chaos-daemon/chaos.sock"
    )]
    pub socket: PathBuf,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Add a fault.
    Add {
        /// Fault kind and its options.
        #[command(subcommand)]
        kind: Box<AddKind>,
    },
    /// List faults with remaining TTL and live counters.
    Ls,
    /// Remove faults by id, or all of them with --all.
    Rm {
        /// Fault ids.
        ids: Vec<String>,
        /// Remove every fault (the panic button).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Daemon health: version, kernel, interfaces, features.
    Status,
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

/// Fault kinds for `add`.
#[derive(Subcommand)]
pub enum AddKind {
    /// Drop every matching packet.
    Blackhole {
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Drop a share of matching packets at random.
    Loss {
        /// Loss in percent (0 < p ≤ 100).
        #[arg(long)]
        percent: f64,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Delay matching packets (needs sch_fq; refused by this daemon version).
    Latency {
        /// Delay, e.g. 300ms.
        #[arg(long)]
        delay: String,
        /// Jitter, e.g. 20ms.
        #[arg(long)]
        jitter: Option<String>,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Answer DNS queries for a domain with an error (refused by this daemon version).
    Dns {
        /// Exact name or *.suffix.
        #[arg(long)]
        domain: String,
        /// nxdomain, servfail, refused or drop.
        #[arg(long)]
        response: String,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
}

/// Options shared by every `add`.
#[derive(Args)]
pub struct Common {
    /// Egress: remote network (destination), IPv4/IPv6 CIDR or address.
    #[arg(long, conflicts_with = "from")]
    pub to: Option<String>,
    /// Ingress: remote network (source), IPv4/IPv6 CIDR or address.
    #[arg(long)]
    pub from: Option<String>,
    /// Remote port (destination with --to, source with --from).
    #[arg(long)]
    pub port: Option<i64>,
    /// tcp, udp, icmp or any.
    #[arg(long)]
    pub proto: Option<String>,
    /// Lifetime, e.g. 90s, 5m (required; capped by the daemon's max_ttl).
    #[arg(long)]
    pub ttl: String,
    /// Interface [default: the one holding the default route].
    #[arg(long)]
    pub iface: Option<String>,
    /// Label shown in listings and metrics.
    #[arg(long)]
    pub name: Option<String>,
    /// Share of matching packets affected, in percent [default: 100].
    #[arg(long)]
    pub share: Option<f64>,
    /// Allow hitting a protected path (SSH sessions, protected CIDRs/ports).
    #[arg(long)]
    pub force: bool,
}

/// Builds the FaultSpec JSON for `add`.
pub fn spec_json(kind: &AddKind) -> Value {
    let (action, common) = match kind {
        AddKind::Blackhole { common } => (json!({"kind": "blackhole"}), common),
        AddKind::Loss { percent, common } => (json!({"kind": "loss", "percent": percent}), common),
        AddKind::Latency {
            delay,
            jitter,
            common,
        } => {
            let mut a = json!({"kind": "latency", "delay": delay});
            if let Some(j) = jitter {
                a["jitter"] = json!(j);
            }
            (a, common)
        }
        AddKind::Dns {
            domain,
            response,
            common,
        } => (
            json!({"kind": "dns", "domain": domain, "response": response}),
            common,
        ),
    };
    let mut m = serde_json::Map::new();
    if let Some(c) = common.to.as_ref().or(common.from.as_ref()) {
        m.insert("cidr".into(), json!(c));
    }
    if let Some(p) = common.port {
        m.insert("port".into(), json!(p));
    }
    if let Some(p) = &common.proto {
        m.insert("protocol".into(), json!(p));
    }
    let mut spec = json!({
        "direction": if common.from.is_some() { "ingress" } else { "egress" },
        "match": m,
        "action": action,
        "ttl": common.ttl,
    });
    for (key, value) in [
        ("interface", common.iface.as_ref().map(|v| json!(v))),
        ("name", common.name.as_ref().map(|v| json!(v))),
        ("percent", common.share.map(|v| json!(v))),
        ("force", common.force.then_some(json!(true))),
    ] {
        if let Some(v) = value {
            spec[key] = v;
        }
    }
    spec
}

/// True if `kind` matches addresses but neither --to nor --from was given.
fn needs_target(kind: &AddKind) -> bool {
    match kind {
        AddKind::Blackhole { common }
        | AddKind::Loss { common, .. }
        | AddKind::Latency { common, .. } => common.to.is_none() && common.from.is_none(),
        AddKind::Dns { .. } => false,
    }
}

/// One-line description of a fault's match.
pub fn describe_match(f: &Fault) -> String {
    let m = &f.spec.matches;
    let mut s = format!(
        "{} {}",
        if matches!(f.spec.direction, crate::spec::DirectionSpec::Ingress) {
            "from"
        } else {
            "to"
        },
        m.cidr.as_deref().unwrap_or("-")
    );
    if let Some(p) = m.protocol.filter(|p| *p != crate::spec::ProtocolSpec::Any) {
        s.push_str(&format!(" {p}"));
    }
    if let Some(port) = m.port {
        s.push_str(&format!(" port {port}"));
    }
    s
}

fn describe_action(f: &Fault) -> String {
    use crate::spec::ActionSpec::*;
    let share = if f.spec.percent < 100.0 {
        format!(" on {}% of packets", f.spec.percent)
    } else {
        String::new()
    };
    let a = match &f.spec.action {
        Blackhole {} => "drop all".to_string(),
        Loss { percent } => format!("drop {percent}%"),
        Latency { delay, .. } => format!("delay {}", humantime::format_duration(*delay)),
        Bandwidth { rate } => format!("limit {rate}"),
        Dns { domain, response } => format!("{response} for {domain}"),
    };
    a + &share
}

/// Renders faults as a table.
pub fn table(faults: &[Fault]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".into(),
        "IFACE".into(),
        "KIND".into(),
        "MATCH".into(),
        "ACTION".into(),
        "TTL LEFT".into(),
        "MATCHED".into(),
        "AFFECTED".into(),
    ]];
    for f in faults {
        let left = Duration::from_secs(f.remaining_ms.div_ceil(1000));
        rows.push([
            f.id.clone(),
            f.spec.name.clone().unwrap_or_else(|| "-".into()),
            f.spec.interface.clone().unwrap_or_default(),
            f.spec.action.kind().into(),
            describe_match(f),
            describe_action(f),
            humantime::format_duration(left).to_string(),
            f.counters.matched.to_string(),
            f.counters.affected.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let client = Client::new(&cli.socket);
    let (method, path, body) = match &cli.cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "chaosctl",
                &mut std::io::stdout(),
            );
            return 0;
        }
        Cmd::Add { kind } if needs_target(kind) => {
            eprintln!(
                "chaosctl add: give --to CIDR (egress) or --from CIDR (ingress)\n\nFor more information, try '--help'."
            );
            return 2;
        }
        Cmd::Add { kind } => (
            Method::POST,
            "/v1/faults".to_string(),
            Some(spec_json(kind).to_string().into_bytes()),
        ),
        Cmd::Ls => (Method::GET, "/v1/faults".to_string(), None),
        Cmd::Status => (Method::GET, "/v1/health".to_string(), None),
        Cmd::Rm { all: true, .. } => (Method::DELETE, "/v1/faults".to_string(), None),
        Cmd::Rm { ids, .. } if ids.is_empty() => {
            eprintln!("chaosctl rm: give fault ids, or --all to remove every fault");
            return 2;
        }
        Cmd::Rm { ids, .. } => {
            let mut code = 0;
            for id in ids {
                match client
                    .request(Method::DELETE, &format!("/v1/faults/{id}"), None)
                    .await
                {
                    Ok((204, _)) if cli.json => println!("{}", json!({"removed": id})),
                    Ok((204, _)) => println!("removed {id}"),
                    Ok((_, body)) => {
                        refused(&body);
                        code = EXIT_REFUSED;
                    }
                    Err(e) => return unreachable(&e),
                }
            }
            return code;
        }
    };
    let (status, body) = match client.request(method, &path, body).await {
        Ok(r) => r,
        Err(e) => return unreachable(&e),
    };
    if !(200..300).contains(&status) {
        refused(&body);
        return EXIT_REFUSED;
    }
    if cli.json {
        println!("{}", String::from_utf8_lossy(&body));
        return 0;
    }
    let text = match &cli.cmd {
        Cmd::Add { .. } => serde_json::from_slice::<Fault>(&body).map(|f| {
            format!(
                "created {}: {} {} on {}, lifts at {} (in {})",
                f.id,
                f.spec.action.kind(),
                describe_match(&f),
                f.spec.interface.as_deref().unwrap_or("?"),
                f.expires_at,
                humantime::format_duration(f.spec.ttl)
            )
        }),
        Cmd::Ls => serde_json::from_slice::<Vec<Fault>>(&body).map(|faults| {
            if faults.is_empty() {
                "no faults".to_string()
            } else {
                table(&faults).trim_end().to_string()
            }
        }),
        Cmd::Status => serde_json::from_slice::<Health>(&body).map(|h| {
            format!(
                "chaos-daemon {} {} — kernel {}, {} fault(s), attached to [{}], tcx: {}, fq: {}",
                h.version,
                h.status,
                h.kernel,
                h.faults,
                h.interfaces.join(", "),
                h.features.tcx,
                h.features.fq
            )
        }),
        Cmd::Rm { .. } => serde_json::from_slice::<Removed>(&body)
            .map(|r| format!("removed {} fault(s)", r.removed)),
        Cmd::Completions { .. } => unreachable!("handled above"),
    };
    match text {
        Ok(t) => {
            println!("{t}");
            0
        }
        Err(e) => {
            eprintln!("chaosctl: unexpected answer from the daemon: {e}");
            EXIT_REFUSED
        }
    }
}

fn refused(body: &[u8]) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => match e.field {
            Some(f) => eprintln!("chaosctl: refused ({f}): {}", e.error),
            None => eprintln!("chaosctl: refused: {}", e.error),
        },
        Err(_) => eprintln!("chaosctl: refused: {}", String::from_utf8_lossy(body)),
    }
}

fn unreachable(e: &ClientError) -> i32 {
    eprintln!(
        "chaosctl: {e}\nStart the daemon with `sudo chaos-daemon` (or `systemctl start chaos-daemon`), \
         or point --socket / CHAOS_SOCKET at its socket."
    );
    EXIT_UNREACHABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_builds_the_api_spec() {
        let cli = Cli::try_parse_from([
            "chaosctl",
            "add",
            "loss",
            "--to",
            "10.0.3.0/24",
            "--port",
            "6379",
            "--proto",
            "tcp",
            "--percent",
            "30",
            "--ttl",
            "5m",
            "--iface",
            "eth0",
        ])
        .unwrap();
        let Cmd::Add { kind } = cli.cmd else {
            panic!("add expected")
        };
        assert_eq!(
            spec_json(&kind),
            json!({"direction":"egress","match":{"cidr":"10.0.3.0/24","port":6379,"protocol":"tcp"},
                   "action":{"kind":"loss","percent":30.0},"ttl":"5m","interface":"eth0"})
        );
        let cli = Cli::try_parse_from([
            "chaosctl",
            "add",
            "blackhole",
            "--from",
            "fd00::/64",
            "--ttl",
            "1m",
            "--force",
        ])
        .unwrap();
        let Cmd::Add { kind } = cli.cmd else {
            panic!("add expected")
        };
        let spec = spec_json(&kind);
        assert_eq!(spec["direction"], "ingress");
        assert_eq!(spec["force"], true);
    }

    #[test]
    fn usage_errors_are_caught_by_clap() {
        assert!(
            Cli::try_parse_from(["chaosctl", "add", "blackhole", "--to", "10.0.0.1"]).is_err(),
            "ttl is required"
        );
        assert!(
            Cli::try_parse_from([
                "chaosctl",
                "add",
                "blackhole",
                "--to",
                "a",
                "--from",
                "b",
                "--ttl",
                "1m"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["chaosctl", "rm", "abc", "--all"]).is_err());
    }
}
