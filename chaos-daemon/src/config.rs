//! Daemon configuration (`/etc/chaos-daemon/config.toml`, `--config`). Every key is optional.
//!
//! ```toml
//! max_ttl = "1h"                 # longest TTL a fault may ask for
//! max_rules = 100000             # faults across all interfaces
//! socket_group = "chaos"         # group owning the 0660 socket (default: root's)
//! log_format = "text"            # or "json"
//! protect_ssh_peers = true       # refuse faults hitting established SSH peers without force
//! protected_cidrs = ["10.9.0.0/16"]
//! protected_tcp_ports = [22]     # refuse faults that name these TCP ports without force
//! tc_attach = "auto"             # or "netlink": force the pre-6.6 clsact filter path
//! xdp_mode = "auto"              # or "generic" (never touches the NIC driver) or "native"
//! deadman = "2s"                 # faults lift in the kernel this long after the daemon dies or hangs
//! ```

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::loader::attach::{AttachOptions, TcAttach, XdpAttach};

/// Default socket path (**contract**).
pub const DEFAULT_SOCKET: &str = "/run/chaos-daemon/chaos.sock";
/// Default config path.
pub const DEFAULT_CONFIG: &str = "/etc/chaos-daemon/config.toml";
/// Longest `max_ttl` the config may set: every representation of a deadline (CLOCK_MONOTONIC
/// ns in a u64, RFC 3339 dates up to year 9999) holds it with centuries to spare.
pub const MAX_TTL_LIMIT: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Bounds of `deadman`: shorter trips on an ordinary scheduling hiccup, longer is no longer a
/// safety net.
pub const DEADMAN_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(500)..=Duration::from_secs(60);

/// Parsed configuration with defaults applied.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Longest TTL accepted.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Most faults installed at once, over all interfaces.
    pub max_rules: u32,
    /// Group that may use the socket (mode 0660).
    pub socket_group: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Protect the peers of established SSH sessions (local port 22).
    pub protect_ssh_peers: bool,
    /// CIDRs no fault may hit without `force`.
    pub protected_cidrs: Vec<String>,
    /// TCP ports no fault may name without `force`.
    pub protected_tcp_ports: Vec<u16>,
    /// How the egress program is attached.
    pub tc_attach: TcAttach,
    /// How the ingress XDP program is attached.
    pub xdp_mode: XdpAttach,
    /// The dead-man interval: the kernel ignores every rule once the daemon's heartbeat is this
    /// old (the daemon died or hangs).
    #[serde(with = "humantime_serde")]
    pub deadman: Duration,
    /// Label the fault counters in `/metrics` by fault id (one series per fault) instead of
    /// summing them by name, kind, direction and interface.
    pub metrics_per_fault: bool,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_ttl: Duration::from_secs(3600),
            max_rules: 100_000,
            socket_group: None,
            log_format: LogFormat::Text,
            protect_ssh_peers: true,
            protected_cidrs: Vec::new(),
            protected_tcp_ports: vec![22],
            tc_attach: TcAttach::Auto,
            xdp_mode: XdpAttach::Auto,
            deadman: Duration::from_secs(2),
            metrics_per_fault: false,
        }
    }
}

impl Config {
    /// How the programs are attached.
    pub fn attach_options(&self) -> AttachOptions {
        AttachOptions {
            tc: self.tc_attach,
            xdp: self.xdp_mode,
        }
    }

    /// Refuses values no part of the daemon can honour.
    pub fn check(&self) -> Result<(), String> {
        if self.max_ttl.is_zero() {
            return Err("max_ttl must be positive".into());
        }
        if self.max_ttl > MAX_TTL_LIMIT {
            return Err(format!(
                "max_ttl {} is over the limit of {}",
                humantime::format_duration(self.max_ttl),
                humantime::format_duration(MAX_TTL_LIMIT)
            ));
        }
        if !DEADMAN_RANGE.contains(&self.deadman) {
            return Err(format!(
                "deadman {} must be between {} and {}",
                humantime::format_duration(self.deadman),
                humantime::format_duration(*DEADMAN_RANGE.start()),
                humantime::format_duration(*DEADMAN_RANGE.end())
            ));
        }
        if self.max_rules > chaos_common::MAX_SLOTS {
            return Err(format!(
                "max_rules {} is over the {} rule slots per interface",
                self.max_rules,
                chaos_common::MAX_SLOTS
            ));
        }
        Ok(())
    }

    /// Reads `path`. A missing file is an error only if `required` (given explicitly).
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => anyhow::bail!("cannot read config {}: {e}", path.display()),
        };
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        for cidr in &config.protected_cidrs {
            crate::validate::parse_net(cidr)
                .map_err(|e| anyhow::anyhow!("config {}: protected_cidrs: {e}", path.display()))?;
        }
        config
            .check()
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_and_differs_from_the_defaults_only_in_socket_group() {
        let c: Config = toml::from_str(include_str!("../config.example.toml")).unwrap();
        c.check().unwrap();
        let d = Config::default();
        assert_eq!(c.socket_group.as_deref(), Some("chaos"));
        assert_eq!(
            (c.max_ttl, c.max_rules, c.deadman, c.metrics_per_fault),
            (d.max_ttl, d.max_rules, d.deadman, d.metrics_per_fault)
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let c: Config =
            toml::from_str("max_ttl = \"10m\"\nprotected_cidrs = [\"10.0.0.0/8\"]").unwrap();
        assert_eq!(c.max_ttl, Duration::from_secs(600));
        assert_eq!(c.max_rules, 100_000);
        assert_eq!(c.protected_tcp_ports, vec![22]);
        assert!(
            toml::from_str::<Config>("max_tll = \"1h\"").is_err(),
            "typos are refused"
        );
        let huge: Config = toml::from_str("max_ttl = \"10000y\"").unwrap();
        assert!(huge.check().unwrap_err().contains("max_ttl"));
        let ok: Config = toml::from_str("max_ttl = \"10y\"").unwrap();
        assert!(ok.check().is_ok());
        assert_eq!(ok.deadman, Duration::from_secs(2));
        for bad in ["100ms", "2h"] {
            let c: Config = toml::from_str(&format!("deadman = \"{bad}\"")).unwrap();
            assert!(c.check().unwrap_err().contains("deadman"), "{bad}");
        }
    }
}
