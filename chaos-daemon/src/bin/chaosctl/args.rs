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
        #[arg(short, long, conflicts_with = "output")]
        quiet: bool,
        /// Output: table, wide (every column: direction, effective percent, labels, expiry,
        /// bytes, who made it), json or yaml (the API's fields).
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Print the table again every --interval until Ctrl-C (live counters).
        #[arg(short, long)]
        watch: bool,
        /// How often --watch refreshes.
        #[arg(long, default_value = "2s", value_parser = duration, requires = "watch")]
        interval: String,
    },
    /// Everything about one fault: spec with defaults, effective percent, live counters,
    /// created and expiry times, and who made it.
    Get {
        /// Fault id, unique id prefix, or name.
        fault: String,
        /// Output: the description (table), json or yaml.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Change a running fault in place: its TTL (from now: extend or shorten) and its action's
    /// parameters. What it matches cannot change (remove it and add another).
    #[command(after_help = "Examples:\n  \
        chaosctl update 3f9c --ttl 10m              # lifts 10 minutes from now\n  \
        chaosctl update redis --percent 50          # a loss fault named redis: now 50%\n  \
        chaosctl update 3f9c --delay 500ms --jitter 50ms")]
    Update(Box<UpdateArgs>),
    /// Remove faults by id (or a unique name, or a unique prefix of an id), by name or label,
    /// or all with --all.
    Rm {
        /// Faults as `get` and `update` find them: an exact id, else a unique name, else a
        /// unique id prefix (an ambiguous one is refused).
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
        chaosctl run examples/cache-failure.toml\n  \
        chaosctl run --junit report.xml examples/az-loss.toml\n  \
        chaosctl --json run examples/dependency-blackhole.toml   # the final state as JSON\n\n\
        Exit codes: 0 the hypothesis held, 1 deviated (steady state not back after), 2 aborted \
        by a stop condition, 3 stopped (Ctrl-C), 4 invalid file, refused, daemon unreachable or \
        steady state not met before the start (nothing injected), 5 the daemon failed (faults \
        lifted), 6 completed but not tested (no fault affected a packet), 7 the daemon became \
        unreachable while it ran (its faults end with the daemon, or at their TTL).")]
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
    /// Print the man page (roff), or with --dir write every page (chaosctl.1, chaosctl-add.1,
    /// …), as `cargo xtask install` and the Debian package install them.
    #[command(hide = true)]
    Man {
        /// Write all the pages into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell), e.g.
    /// `chaosctl completions bash > /usr/share/bash-completion/completions/chaosctl`.
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
        #[arg(long, alias = "share", value_parser = percent)]
        percent: Option<f64>,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Drop a random percent of matching packets (as netem's `loss`).
    Loss {
        /// Percent of matching packets lost (0 < p ≤ 100; resolution 0.0001).
        #[arg(long, value_parser = percent)]
        percent: f64,
        /// Match, TTL and the rest.
        #[command(flatten)]
        common: Common,
    },
    /// Delay matching packets (egress only; the daemon puts fq, which honours the departure
    /// times, on the interface while latency faults are there; a kernel without sch_fq refuses).
    Latency {
        /// Delay, e.g. 300ms (delay + the jitter's largest sample ≤ 60s: 1× jitter for uniform,
        /// 3.66× for normal, 4× for the Pareto kinds).
        #[arg(long, value_parser = duration)]
        delay: String,
        /// The delay varies uniformly by up to this much either way, e.g. 20ms (≤ delay); a
        /// flow is never reordered unless --reorder.
        #[arg(long, value_parser = duration)]
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
        /// Percent of matching packets delayed [default: 100] (the API's "percent").
        #[arg(long, value_parser = percent)]
        percent: Option<f64>,
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
        #[arg(long, value_parser = rate)]
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
        #[arg(long, value_parser = domain)]
        domain: String,
        /// nxdomain (no such name), servfail (resolver failure), refused, or drop (no answer:
        /// the client times out).
        #[arg(long, value_parser = ["nxdomain", "servfail", "refused", "drop"])]
        response: String,
        /// Percent of matching queries answered so [default: 100]; the others resolve.
        #[arg(long, value_parser = percent)]
        percent: Option<f64>,
        /// Resolvers, TTL and the rest.
        #[command(flatten)]
        common: DnsCommon,
    },
}

/// What a DNS fault takes besides its name and response: only what narrows a query.
#[derive(Args)]
pub struct DnsCommon {
    /// Only queries to resolvers in this network (IPv4/IPv6 CIDR or address) [default: any].
    #[arg(long = "to", value_name = "CIDR", value_parser = cidr)]
    pub resolver: Option<String>,
    /// The resolvers' port [default: 53].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Lifetime, e.g. 90s, 5m (required; capped by the daemon's max_ttl).
    #[arg(long, value_parser = duration)]
    pub ttl: String,
    /// Interface, name, labels.
    #[command(flatten)]
    pub tags: Tags,
}

/// `chaosctl exec`: one fault kind, its destinations, and the command.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).multiple(false))]
pub struct ExecArgs {
    /// Drop every packet to the destinations.
    #[arg(long, group = "kind")]
    pub blackhole: bool,
    /// Drop this percent of packets (0 < p ≤ 100).
    #[arg(long, group = "kind", value_name = "PERCENT", value_parser = percent)]
    pub loss: Option<f64>,
    /// Delay packets by this much, e.g. 50ms (needs sch_fq).
    #[arg(long, group = "kind", value_name = "DELAY", value_parser = duration)]
    pub latency: Option<String>,
    /// Limit traffic to a rate, e.g. 10mbit (needs sch_fq).
    #[arg(long, group = "kind", value_name = "RATE", value_parser = rate)]
    pub bandwidth: Option<String>,
    /// Destination network, IPv4/IPv6 CIDR or address; repeatable (one fault each).
    #[arg(long, required = true, value_name = "CIDR", value_parser = cidr)]
    pub to: Vec<String>,
    /// Longest the faults may live [default: the daemon's max_ttl]; they end sooner when the
    /// command exits.
    #[arg(long, value_parser = duration)]
    pub ttl: Option<String>,
    /// Port, protocol, interface, name, labels.
    #[command(flatten)]
    pub opts: FaultOpts,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `chaosctl update`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
pub struct UpdateArgs {
    /// Fault id, unique id prefix, or name.
    pub fault: String,
    /// Time left from now, e.g. 10m (≤ the daemon's max_ttl).
    #[arg(long, value_parser = duration, group = "change")]
    pub ttl: Option<String>,
    /// Percent of matching packets dropped (loss, blackhole) or affected (other kinds).
    #[arg(long, value_parser = percent, group = "change")]
    pub percent: Option<f64>,
    /// Latency: the delay, e.g. 300ms.
    #[arg(long, value_parser = duration, group = "change")]
    pub delay: Option<String>,
    /// Latency: the jitter, e.g. 20ms.
    #[arg(long, value_parser = duration, group = "change")]
    pub jitter: Option<String>,
    /// Bandwidth: the rate, e.g. 10mbit.
    #[arg(long, group = "change", value_parser = rate)]
    pub rate: Option<String>,
    /// DNS: nxdomain, servfail, refused or drop.
    #[arg(long, value_parser = ["nxdomain", "servfail", "refused", "drop"], group = "change")]
    pub response: Option<String>,
}

/// How `ls` and `get` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// Aligned columns, all of them.
    Wide,
    /// The API's JSON.
    Json,
    /// The API's fields as YAML.
    Yaml,
}

/// A humantime duration with its unit ("90s", "5m", "1h30m"), checked here so a bare number
/// is a usage error that says what to write, not the daemon's parser column.
pub fn duration(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{s:?} has no unit: write {s}s, {s}ms or {s}m"));
    }
    humantime::parse_duration(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{e} (write e.g. 90s, 5m, 1h30m)"))
}

/// An IPv4/IPv6 CIDR or address, checked as the daemon checks it (kept as typed).
pub fn cidr(s: &str) -> Result<String, String> {
    chaos_daemon::validate::parse_net(s).map(|_| s.to_string())
}

/// A rate ("10mbit", "1.25MB/s"), checked as the daemon checks it (kept as typed).
pub fn rate(s: &str) -> Result<String, String> {
    chaos_daemon::validate::parse_rate(s).map(|_| s.to_string())
}

/// A DNS fault's name, checked as the daemon checks it (kept as typed).
pub fn domain(s: &str) -> Result<String, String> {
    chaos_daemon::validate::parse_domain(s).map(|_| s.to_string())
}

/// A percent, 0 < p ≤ 100.
pub fn percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        Ok(_) => Err("must be more than 0 and at most 100".into()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
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
    /// Faults carrying this label; repeat it, or separate labels with commas
    /// (`-l team=payments,exp=42`): all must match. Only KEY=VALUE (no `!=`).
    #[arg(
        short = 'l',
        long = "label",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        value_parser = parse_label
    )]
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

/// `KEY=VALUE`, as `--label` takes it, checked as the daemon checks labels (a selector that
/// could never match is a usage error, not "removed 0").
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    chaos_daemon::spec::check_label(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// Options shared by every `add`.
#[derive(Args)]
pub struct Common {
    /// Egress: remote network (destination), IPv4/IPv6 CIDR or address. Repeat it, or separate
    /// networks with commas, for one fault over a list (`match.cidrs`).
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = cidr,
        conflicts_with = "from"
    )]
    pub to: Vec<String>,
    /// Ingress: remote network (source), IPv4/IPv6 CIDR or address; repeatable as --to.
    #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = cidr)]
    pub from: Vec<String>,
    /// With --to: only packets from sockets in this cgroup v2 or below it — a path under the
    /// cgroup mount, one relative to it (/system.slice/api.service), or systemd:NAME.service.
    #[arg(long, value_name = "CGROUP", conflicts_with = "from")]
    pub cgroup: Option<String>,
    /// Lifetime, e.g. 90s, 5m (required; capped by the daemon's max_ttl).
    #[arg(long, value_parser = duration)]
    pub ttl: String,
    /// Port, protocol, interface, name, labels.
    #[command(flatten)]
    pub opts: FaultOpts,
}

/// What a fault takes besides its kind, remote network and lifetime (`add` and `exec`).
#[derive(Args, Clone)]
pub struct FaultOpts {
    /// Remote port (destination with --to, source with --from).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// tcp, udp, icmp or any.
    #[arg(long, value_parser = ["tcp", "udp", "icmp", "any"])]
    pub proto: Option<String>,
    /// Interface, name, labels.
    #[command(flatten)]
    pub tags: Tags,
}

/// Where a fault goes and how it is named, for every kind.
#[derive(Args, Clone)]
pub struct Tags {
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
    fn values_the_daemon_would_refuse_are_usage_errors_naming_the_flag() {
        let add = |extra: &[&str]| {
            let mut a = vec![
                "chaosctl",
                "add",
                "loss",
                "--to",
                "10.0.0.1",
                "--percent",
                "5",
            ];
            a.extend(extra);
            Cli::try_parse_from(a)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(add(&["--ttl", "1m"]).is_ok());
        let e = add(&["--ttl", "60"]).unwrap_err();
        assert!(e.contains("--ttl") && e.contains("60s"), "{e}");
        let e = add(&["--ttl", "1m", "--proto", "sctp"]).unwrap_err();
        assert!(e.contains("--proto") && e.contains("tcp"), "{e}");
        let e = add(&["--ttl", "1m", "--port", "70000"]).unwrap_err();
        assert!(e.contains("--port"), "{e}");
        let e = Cli::try_parse_from([
            "chaosctl",
            "add",
            "blackhole",
            "--to",
            "10.0.0.1",
            "--ttl",
            "1m",
            "--share",
            "0",
        ])
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains("--percent") && e.contains("more than 0"), "{e}");
        // Values whose syntax the daemon would refuse never reach it.
        for (args, flag) in [
            (&["add", "bandwidth", "--rate", "10mbps"][..], "--rate"),
            (&["add", "bandwidth", "--rate", "10"], "--rate"),
            (&["add", "blackhole", "--to", "10.0.0.300"], "--to"),
            (
                &["add", "blackhole", "--to", "10.0.0.1,10.0.0.1/33"],
                "--to",
            ),
            (
                &[
                    "add",
                    "dns",
                    "--response",
                    "nxdomain",
                    "--domain",
                    "bad..name",
                ],
                "--domain",
            ),
            (&["update", "abc", "--rate", "fast"], "--rate"),
            (
                &[
                    "exec",
                    "--bandwidth",
                    "10mbps",
                    "--to",
                    "10.0.0.1",
                    "--",
                    "true",
                ],
                "--bandwidth",
            ),
        ] {
            let mut argv = vec!["chaosctl"];
            argv.extend(args);
            if argv[1] == "add" {
                argv.extend(["--ttl", "1m"]);
                if argv[2] != "blackhole" && !argv.contains(&"--to") {
                    argv.extend(["--to", "10.0.0.1"]);
                }
            }
            let e = Cli::try_parse_from(&argv).map(|_| ()).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{argv:?}"
            );
            assert!(e.to_string().contains(flag), "{argv:?}: {e}");
        }
        assert!(
            Cli::try_parse_from(["chaosctl", "update", "abc"]).is_err(),
            "nothing to change"
        );
        assert!(Cli::try_parse_from(["chaosctl", "update", "abc", "--ttl", "5m"]).is_ok());
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
