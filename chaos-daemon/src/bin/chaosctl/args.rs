//! The command line of `chaosctl` (clap).

use std::path::PathBuf;

use chaos_daemon::config::DEFAULT_SOCKET;
use clap::{Args, Parser, Subcommand};

/// Command line of `chaosctl`.
#[derive(Parser)]
#[command(
    name = "chaosctl",
    version,
    about = "Control chaos-daemon: add, list and remove network faults",
    after_help = "Examples:\n  \
        chaosctl add blackhole --to 10.0.3.7 --ttl 60s\n  \
        chaosctl add loss --to 10.0.3.0/24 --port 6379 --proto tcp --percent 30 --ttl 5m\n  \
        chaosctl add latency --to 10.0.3.0/24 --port 6379 --proto tcp --delay 300ms --ttl 5m\n  \
        chaosctl add bandwidth --to 10.0.3.7 --rate 10mbit --ttl 5m\n  \
        chaosctl add blackhole --from 192.0.2.0/24 --ttl 2m      # ingress, by source\n  \
        chaosctl add loss --to 10.0.3.7 --percent 5 --ttl 5m -l team=payments\n  \
        chaosctl add loss --to 10.0.3.7 --percent 30 --cgroup systemd:api.service --ttl 5m\n  \
        chaosctl exec --loss 30 --to 10.0.0.0/8 -- cargo test     # that command alone\n  \
        chaosctl ls -l team=payments                             # faults with that label\n  \
        chaosctl ls --sort-by affected                           # the busiest faults first\n  \
        chaosctl rm 3f9c                                         # one fault, by a unique id prefix\n  \
        chaosctl rm -l team=payments                             # every fault with that label\n  \
        chaosctl rm --all                                        # the panic button\n\n\
        Exit codes: 0 ok, 1 the daemon refused, 2 usage error, 3 daemon unreachable."
)]
pub struct Cli {
    /// Daemon socket.
    #[arg(long, global = true, env = "CHAOS_SOCKET", default_value = DEFAULT_SOCKET)]
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
    /// List faults with remaining TTL and live counters (all, or those selected).
    Ls {
        /// Which faults.
        #[command(flatten)]
        select: Select,
        /// Order of the rows: oldest first (created), by name, by TTL left (soonest to end
        /// first) or by affected packets (most first).
        #[arg(long, value_enum, default_value_t = SortBy::Created)]
        sort_by: SortBy,
        /// Print only the fault ids, one per line (for scripts: `chaosctl rm $(chaosctl ls -q -l exp=42)`).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove faults by id (or a unique prefix of one), by name or label, or all with --all.
    Rm {
        /// Fault ids or unique id prefixes.
        #[arg(conflicts_with_all = ["name", "labels"])]
        ids: Vec<String>,
        /// Which faults, instead of ids.
        #[command(flatten)]
        select: Select,
        /// Remove every fault (the panic button).
        #[arg(long, conflicts_with_all = ["ids", "name", "labels"])]
        all: bool,
    },
    /// Run an experiment from a TOML file: steady state, faults for a bounded time, stop
    /// conditions, steady state again (see examples/ and the README).
    ///
    /// The daemon runs it: probes and stop conditions are evaluated there, so an abort lifts
    /// the faults within milliseconds whatever happens to chaosctl. A live status line on a
    /// terminal (plain lines otherwise), then a report. Ctrl-C stops the experiment.
    #[command(after_help = "Examples:\n  \
        chaosctl run examples/cache-latency.toml\n  \
        chaosctl run --junit report.xml examples/az-loss.toml\n  \
        chaosctl --json run examples/dependency-blackhole.toml   # the final state as JSON\n\n\
        Exit codes: 0 the hypothesis held, 1 deviated (steady state not back after), 2 aborted \
        by a stop condition, 3 stopped (Ctrl-C), 4 invalid file, refused, daemon unreachable or \
        steady state not met before the start (nothing injected), 5 the daemon failed (faults \
        lifted).")]
    Run {
        /// The experiment file.
        file: PathBuf,
        /// Also write a JUnit XML report here (one test case per step).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Run a command with faults that affect it and its children alone.
    ///
    /// The command runs in a fresh cgroup (under the cgroup v2 mount, in chaos-exec/); each
    /// --to becomes one fault scoped to that cgroup, so other processes talking to the same
    /// destinations are untouched. The faults are lifted when the command exits (or, if
    /// chaosctl is killed, once the daemon sees the cgroup empty; the kernel TTL ends them in
    /// any case). Needs write access to the cgroup tree (root).
    #[command(after_help = "Examples:
              chaosctl exec --loss 30 --to 10.0.0.0/8 -- cargo test
              chaosctl exec --blackhole --to 10.0.3.7 --port 6379 --proto tcp -- ./integration.sh
              chaosctl exec --latency 50ms --to 10.0.3.0/24 --ttl 10m -- make bench

            Exit codes: the command's own (128+N when a signal N ended it); 125 chaosctl could not \
            set up the faults (refused, daemon unreachable, no cgroup), 126 the command could not \
            be run, 127 the command was not found.")]
    Exec(Box<ExecArgs>),
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
    /// Drop every matching packet (or, with --percent, that share of them).
    Blackhole {
        /// Percent of matching packets dropped [default: 100] (the API's "percent").
        #[arg(long, alias = "share")]
        percent: Option<f64>,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Drop a random percent of matching packets (as netem's `loss`).
    Loss {
        /// Percent of matching packets lost (0 < p ≤ 100; resolution 0.0001).
        #[arg(long)]
        percent: f64,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Delay matching packets (egress only; the daemon puts fq, which honours the departure
    /// times, on the interface while latency faults are there; a kernel without sch_fq refuses).
    Latency {
        /// Delay, e.g. 300ms (delay + jitter ≤ 60s).
        #[arg(long)]
        delay: String,
        /// The delay varies uniformly by up to this much either way, e.g. 20ms (≤ delay); a
        /// flow is never reordered unless --reorder.
        #[arg(long)]
        jitter: Option<String>,
        /// uniform (default), normal, pareto or paretonormal, as netem; with normal and the
        /// Pareto kinds --jitter is the standard deviation.
        #[arg(long, value_parser = ["uniform", "normal", "pareto", "paretonormal"])]
        distribution: Option<String>,
        /// Correlation of successive jitter samples, percent (0-100), as netem.
        #[arg(long)]
        correlation: Option<f64>,
        /// Let jitter reorder a flow's packets, as netem does.
        #[arg(long)]
        reorder: bool,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Limit matching traffic to a rate. With --to (egress) packets are paced (queued up to
    /// 2 s, then dropped; needs sch_fq like latency); with --from (ingress) a policer drops
    /// what exceeds the rate.
    Bandwidth {
        /// Rate in bits ("10mbit", "1gbit") or bytes ("1.25MB/s") per second, L2 headers
        /// included.
        #[arg(long)]
        rate: String,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Answer DNS queries for a name with an error, in the kernel, before they leave the host.
    /// Other names resolve as before. --to narrows it to resolvers in a CIDR, --port to another
    /// resolver port (default 53); for a local stub resolver (127.0.0.53) use --iface lo.
    /// Over TCP a matching query is dropped whatever the response.
    #[command(
        after_help = "Examples:\n  chaosctl add dns --domain api.example.com --response nxdomain --ttl 5m\n  chaosctl add dns --domain '*.dynamodb.us-east-1.amazonaws.com' --response servfail --ttl 10m\n  chaosctl add dns --domain db.internal --response drop --iface lo --ttl 1m"
    )]
    Dns {
        /// An exact name (api.example.com) or *.suffix for every name below the suffix (not the
        /// suffix itself); case-insensitive, trailing dot optional.
        #[arg(long)]
        domain: String,
        /// nxdomain (no such name), servfail (resolver failure), refused, or drop (no answer:
        /// the client times out).
        #[arg(long, value_parser = ["nxdomain", "servfail", "refused", "drop"])]
        response: String,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
}

/// `chaosctl exec`: one fault kind, its destinations, and the command.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).multiple(false))]
pub struct ExecArgs {
    /// Drop every packet to the destinations.
    #[arg(long, group = "kind")]
    pub blackhole: bool,
    /// Drop this percent of packets (0 < p ≤ 100).
    #[arg(long, group = "kind", value_name = "PERCENT")]
    pub loss: Option<f64>,
    /// Delay packets by this much, e.g. 50ms (needs sch_fq).
    #[arg(long, group = "kind", value_name = "DELAY")]
    pub latency: Option<String>,
    /// Limit traffic to a rate, e.g. 10mbit (needs sch_fq).
    #[arg(long, group = "kind", value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// Destination network, IPv4/IPv6 CIDR or address; repeatable (one fault each).
    #[arg(long, required = true, value_name = "CIDR")]
    pub to: Vec<String>,
    /// Longest the faults may live [default: the daemon's max_ttl]; they end sooner when the
    /// command exits.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Port, protocol, interface, name, labels.
    #[command(flatten)]
    pub opts: FaultOpts,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// Row order of `ls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Oldest first.
    Created,
    /// By name (unnamed last), then oldest first.
    Name,
    /// Soonest to expire first.
    Ttl,
    /// Most affected packets first.
    Affected,
}

/// Selects faults by name and labels (all must match).
#[derive(Args)]
pub struct Select {
    /// Faults with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Faults carrying this label (repeatable: all must match).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

impl Select {
    /// The API's selector.
    pub fn selector(&self) -> chaos_daemon::spec::Selector {
        chaos_daemon::spec::Selector {
            name: self.name.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// `KEY=VALUE`, as `--label` takes it.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
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
    /// With --to: only packets from sockets in this cgroup v2 or below it — a path under the
    /// cgroup mount, one relative to it (/system.slice/api.service), or systemd:NAME.service.
    #[arg(long, value_name = "CGROUP", conflicts_with = "from")]
    pub cgroup: Option<String>,
    /// Lifetime, e.g. 90s, 5m (required; capped by the daemon's max_ttl).
    #[arg(long)]
    pub ttl: String,
    /// Port, protocol, interface, name, labels.
    #[command(flatten)]
    pub opts: FaultOpts,
}

/// What a fault takes besides its kind, remote network and lifetime (`add` and `exec`).
#[derive(Args, Clone)]
pub struct FaultOpts {
    /// Remote port (destination with --to, source with --from).
    #[arg(long)]
    pub port: Option<i64>,
    /// tcp, udp, icmp or any.
    #[arg(long)]
    pub proto: Option<String>,
    /// Interface [default: the one holding the default route].
    #[arg(long)]
    pub iface: Option<String>,
    /// Label shown in listings and metrics.
    #[arg(long)]
    pub name: Option<String>,
    /// A label to select the fault by later (`ls -l`, `rm -l`); repeatable.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Allow hitting a protected path (SSH sessions, protected CIDRs/ports, every address).
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Cli::try_parse_from(["chaosctl", "rm", "abc", "-l", "a=b"]).is_err());
        assert!(Cli::try_parse_from(["chaosctl", "rm", "--all", "--name", "x"]).is_err());
        assert!(Cli::try_parse_from(["chaosctl", "ls", "-l", "a=b", "--name", "x"]).is_ok());
        assert!(Cli::try_parse_from(["chaosctl", "rm", "-l", "a=b"]).is_ok());
    }

    #[test]
    fn exec_takes_exactly_one_kind_a_destination_and_a_command() {
        let ok = [
            "chaosctl", "exec", "--loss", "5", "--to", "10.0.0.1", "--", "true",
        ];
        assert!(Cli::try_parse_from(ok).is_ok());
        for bad in [
            &["chaosctl", "exec", "--to", "10.0.0.1", "--", "true"][..],
            &[
                "chaosctl",
                "exec",
                "--blackhole",
                "--loss",
                "5",
                "--to",
                "a",
                "--",
                "true",
            ],
            &["chaosctl", "exec", "--blackhole", "--", "true"],
            &["chaosctl", "exec", "--blackhole", "--to", "10.0.0.1"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
