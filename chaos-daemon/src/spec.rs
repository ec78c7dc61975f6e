//! The API's JSON types (**contract**, see the README): what clients send and get back.
//! Syntax only; meaning is checked by [`crate::validate`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fault as a client describes it (`POST /v1/faults`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Free-form label shown in listings and metrics (≤ 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Interface to inject on; defaults to the one holding the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `egress` (default, matches destinations) or `ingress` (matches sources).
    #[serde(default)]
    pub direction: DirectionSpec,
    /// What traffic the fault applies to.
    #[serde(rename = "match", default)]
    pub matches: MatchSpec,
    /// What happens to that traffic.
    pub action: ActionSpec,
    /// Share of matching packets affected, 0 < percent ≤ 100 (default 100).
    #[serde(default = "hundred")]
    pub percent: f64,
    /// How long the fault lives (humantime, e.g. "90s", "5m"); required, capped by `max_ttl`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Allow a fault that touches a protected path (SSH sessions, protected CIDRs/ports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

fn hundred() -> f64 {
    100.0
}

/// Traffic direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionSpec {
    /// Leaving the host; matches the destination.
    #[default]
    Egress,
    /// Arriving at the host; matches the source.
    Ingress,
}

/// Which packets a fault applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Remote network, IPv4 or IPv6 (`10.0.3.0/24`, `fd00::/64`, or a bare address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// `tcp`, `udp`, `icmp` or `any` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolSpec>,
    /// Remote port 1–65535 (destination on egress, source on ingress); TCP/UDP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// cgroup v2 path to scope the fault to (egress only). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

/// Transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolSpec {
    /// Any protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP / ICMPv6.
    Icmp,
}

/// What a fault does. Tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ActionSpec {
    /// Drop every matching packet, silently.
    Blackhole {},
    /// Drop `percent` % of matching packets at random.
    Loss {
        /// Loss probability, 0 < percent ≤ 100.
        percent: f64,
    },
    /// Delay matching packets (EDT + fq). Not supported yet by this build.
    Latency {
        /// Added delay.
        #[serde(with = "humantime_serde")]
        delay: Duration,
        /// Random extra delay up to this much.
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        jitter: Option<Duration>,
    },
    /// Limit matching traffic to a rate. Not supported yet by this build.
    Bandwidth {
        /// Rate such as "1mbit".
        rate: String,
    },
    /// Answer DNS queries for a domain with an error. Not supported yet by this build.
    Dns {
        /// Exact name or `*.suffix`.
        domain: String,
        /// `nxdomain`, `servfail`, `refused` or `drop`.
        response: String,
    },
}

impl std::fmt::Display for DirectionSpec {
    /// The JSON spelling: `egress`, `ingress`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DirectionSpec::Egress => "egress",
            DirectionSpec::Ingress => "ingress",
        })
    }
}

impl std::fmt::Display for ProtocolSpec {
    /// The JSON spelling: `any`, `tcp`, `udp`, `icmp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtocolSpec::Any => "any",
            ProtocolSpec::Tcp => "tcp",
            ProtocolSpec::Udp => "udp",
            ProtocolSpec::Icmp => "icmp",
        })
    }
}

impl ActionSpec {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Blackhole {} => "blackhole",
            ActionSpec::Loss { .. } => "loss",
            ActionSpec::Latency { .. } => "latency",
            ActionSpec::Bandwidth { .. } => "bandwidth",
            ActionSpec::Dns { .. } => "dns",
        }
    }
}

/// Packet counters of a fault, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersView {
    /// Packets that matched.
    pub matched: u64,
    /// Bytes of those packets.
    pub matched_bytes: u64,
    /// Packets the action was applied to.
    pub affected: u64,
}

/// An installed fault as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Fault id (use it with `DELETE /v1/faults/{id}`).
    pub id: String,
    /// The spec, with defaults filled in (interface, protocol).
    pub spec: FaultSpec,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Expiry time, RFC 3339 UTC.
    pub expires_at: String,
    /// Milliseconds left before the fault lifts.
    pub remaining_ms: u64,
    /// Packet counters.
    pub counters: CountersView,
}

/// Error body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong and, where possible, what to do.
    pub error: String,
    /// JSON path of the offending field (`ttl`, `match.port`, `[3].action.percent`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /v1/health` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always "ok" when the daemon answers.
    pub status: String,
    /// Daemon version.
    pub version: String,
    /// Kernel release.
    pub kernel: String,
    /// Interfaces with programs attached.
    pub interfaces: Vec<String>,
    /// Kernel features.
    pub features: Features,
    /// Active faults.
    pub faults: usize,
}

/// Kernel features relevant to the fault kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// `sch_fq` is available (needed for latency/bandwidth).
    pub fq: bool,
    /// TCX links are available (kernel ≥ 6.6).
    pub tcx: bool,
}

/// `DELETE /v1/faults` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// How many faults were removed.
    pub removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_json_spelling() {
        for d in [DirectionSpec::Egress, DirectionSpec::Ingress] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.to_string());
        }
        for p in [
            ProtocolSpec::Any,
            ProtocolSpec::Tcp,
            ProtocolSpec::Udp,
            ProtocolSpec::Icmp,
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.to_string());
        }
    }
}
