//! The `match` part of a fault: which packets it applies to.

use serde::{Deserialize, Serialize};

/// Which packets a fault applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Remote network, IPv4 or IPv6 (`10.0.3.0/24`, `fd00::/64`, or a bare address); for a
    /// DNS fault the resolvers (default: any).
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

impl MatchSpec {
    /// "to 10.0.3.0/24 tcp port 6379" (egress) or "from …" (ingress).
    pub fn describe(&self, direction: super::DirectionSpec) -> String {
        let mut s = format!(
            "{} {}",
            match direction {
                super::DirectionSpec::Egress => "to",
                super::DirectionSpec::Ingress => "from",
            },
            self.cidr.as_deref().unwrap_or("any")
        );
        if let Some(p) = self.protocol.filter(|p| *p != ProtocolSpec::Any) {
            s.push_str(&format!(" {p}"));
        }
        if let Some(port) = self.port {
            s.push_str(&format!(" port {port}"));
        }
        if let Some(cg) = &self.cgroup {
            s.push_str(&format!(" cgroup {}", cg.escape_default()));
        }
        s
    }
}
