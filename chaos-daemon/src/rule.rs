//! The typed rule the loader installs: already validated, independent of the API's JSON.

use std::fmt;

use ipnet::IpNet;

/// Which way the packets go, and so which address/port of the packet a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets leaving the interface (TC egress); the rule matches the destination.
    Egress = 0,
    /// Packets arriving on the interface (XDP); the rule matches the source.
    Ingress = 1,
}

/// The transport protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Any protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (IPv4) or ICMPv6, depending on the rule's address family.
    Icmp,
}

/// What happens to matching packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Drop every matching packet, silently.
    Blackhole,
    /// Drop a random share of matching packets, in parts per million (0..=1,000,000).
    Loss {
        /// Loss probability in parts per million.
        ppm: u32,
    },
}

/// One fault rule on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Egress matches destinations, ingress matches sources.
    pub direction: Direction,
    /// The remote network (IPv4 or IPv6).
    pub net: IpNet,
    /// Transport protocol, or any.
    pub protocol: Protocol,
    /// Remote port (destination on egress, source on ingress); `None` = any. Only with TCP/UDP/any.
    pub port: Option<u16>,
    /// What to do.
    pub action: Action,
    /// CLOCK_MONOTONIC ns after which the kernel ignores the rule ([`crate::clock`]); `None` = never.
    pub expires_at_ns: Option<u64>,
}

impl Rule {
    /// A blackhole for `net` in `direction`, any protocol and port, no expiry.
    pub fn blackhole(direction: Direction, net: IpNet) -> Self {
        Rule {
            direction,
            net,
            protocol: Protocol::Any,
            port: None,
            action: Action::Blackhole,
            expires_at_ns: None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Any => "any",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}
