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
    /// Instead of `cidr`: a list of networks, one fault for all of them (what an nftables set
    /// is to a rule). Each is a rule of its own in the kernel, with the same protocol, port
    /// and action; the fault's counters are their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidrs: Option<Vec<String>>,
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

/// Networks of a `cidrs` list a description names before it only counts the rest.
const DESCRIBED: usize = 3;

impl MatchSpec {
    /// `10.0.3.0/24`, `any`, or for a list `10.0.0.1, 10.0.0.2, 10.0.0.3 and 99997 more`.
    fn networks(&self) -> String {
        match (&self.cidr, &self.cidrs) {
            (Some(c), _) => c.clone(),
            (None, Some(list)) if !list.is_empty() => {
                let mut s = list[..list.len().min(DESCRIBED)].join(", ");
                if list.len() > DESCRIBED {
                    s.push_str(&format!(" and {} more", list.len() - DESCRIBED));
                }
                s
            }
            (None, _) => "any".into(),
        }
    }

    /// "to 10.0.3.0/24 tcp port 6379" (egress) or "from …" (ingress).
    pub fn describe(&self, direction: super::DirectionSpec) -> String {
        let mut s = format!(
            "{} {}",
            match direction {
                super::DirectionSpec::Egress => "to",
                super::DirectionSpec::Ingress => "from",
            },
            self.networks()
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
