//! The typed rule the loader installs: already validated, independent of the API's JSON.
//!
//! A rule is a [`Match`] (a sum type: an IP match or a queried domain name), an optional
//! cgroup [`Scope`], an [`Action`] and a deadline. A fault of the API becomes one or more rules.
//!
//! A scope is part of the rule's map key, so faults with the same IP match in different
//! cgroups (two `chaosctl exec` runs side by side) are different keys. The cost falls only on
//! packets that pass the prefilter while scoped rules exist: one more lookup per cgroup level
//! in use (at most `MAX_SCOPE_PROBES`); the miss path stays one probe.

use std::fmt;

use ipnet::IpNet;

pub use chaos_common::Direction;

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
    /// Delay a random share of matching packets (egress only; needs `fq` as root qdisc).
    Latency {
        /// Added delay, ns.
        delay_ns: u64,
        /// Jitter, ns: half-width of the uniform spread, or the standard deviation.
        jitter_ns: u64,
        /// How the jitter is distributed.
        distribution: super::Distribution,
        /// Correlation of successive samples, netem's ρ scaled to 2^32.
        correlation: u32,
        /// Share of matching packets delayed, parts per million.
        ppm: u32,
        /// Jitter may reorder a flow (netem's way); otherwise a flow's departures stay in order.
        reorder: bool,
    },
    /// Hold matching traffic to a rate: paced on egress (needs `fq`), policed on ingress.
    Bandwidth {
        /// Rate, bytes per second (on the wire, L2 header included).
        bytes_per_sec: u64,
        /// Ingress policer's bucket, bytes.
        burst_bytes: u32,
    },
    /// Answer or drop DNS queries ([`Match::Dns`] only).
    Dns {
        /// What the client gets.
        response: DnsResponse,
        /// Share of matching queries answered, parts per million.
        ppm: u32,
    },
}

/// What a DNS fault does to a matching query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsResponse {
    /// The name does not exist (RCODE 3).
    NxDomain,
    /// The resolver failed (RCODE 2).
    ServFail,
    /// The resolver refuses to answer (RCODE 5).
    Refused,
    /// No answer: the query is dropped and the client times out.
    Drop,
}

impl DnsResponse {
    /// The response code the program writes (`DNS_DROP` for a drop).
    pub fn code(self) -> u8 {
        match self {
            DnsResponse::NxDomain => chaos_common::DNS_RCODE_NXDOMAIN,
            DnsResponse::ServFail => chaos_common::DNS_RCODE_SERVFAIL,
            DnsResponse::Refused => chaos_common::DNS_RCODE_REFUSED,
            DnsResponse::Drop => chaos_common::DNS_DROP,
        }
    }
}

/// DNS queries selected by the name asked for (egress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMatch {
    /// Lowercase name without the trailing dot (and without `*.` for a wildcard).
    pub name: String,
    /// Any name strictly below `name` (`*.name`), not `name` itself.
    pub wildcard: bool,
    /// Resolver port the queries go to.
    pub port: u16,
    /// Resolver network the queries go to; `None` = any resolver.
    pub resolver: Option<IpNet>,
}

/// Packets selected by the remote endpoint's address, protocol and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpMatch {
    /// The remote network (IPv4 or IPv6).
    pub net: IpNet,
    /// Transport protocol, or any.
    pub protocol: Protocol,
    /// Remote port (destination on egress, source on ingress); `None` = any. TCP/UDP/any only.
    pub port: Option<u16>,
}

/// A cgroup v2 a rule is limited to: packets from sockets in it or below it (egress only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The cgroup's id (its directory's inode number).
    pub id: u64,
    /// Its depth below the root cgroup (level 0), 1..=`MAX_SCOPE_LEVEL`.
    pub level: u8,
}

/// Which packets a rule selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// By the remote endpoint.
    Ip(IpMatch),
    /// DNS queries, by the name asked for.
    Dns(DnsMatch),
}

/// One fault rule on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Egress matches destinations, ingress matches sources.
    pub direction: Direction,
    /// What to match.
    pub matches: Match,
    /// The cgroup the rule is limited to (egress only); `None` = every socket.
    pub cgroup: Option<Scope>,
    /// What to do.
    pub action: Action,
    /// CLOCK_MONOTONIC ns after which the kernel ignores the rule ([`crate::clock`]); `None` = never.
    pub expires_at_ns: Option<u64>,
}

impl Rule {
    /// True for rules that stamp departure times, which only `fq` honours.
    pub fn needs_fq(&self) -> bool {
        self.direction == Direction::Egress
            && matches!(
                self.action,
                Action::Latency { .. } | Action::Bandwidth { .. }
            )
    }

    /// A blackhole for `net` in `direction`, any protocol and port, no expiry.
    pub fn blackhole(direction: Direction, net: IpNet) -> Self {
        Rule {
            direction,
            matches: Match::Ip(IpMatch {
                net,
                protocol: Protocol::Any,
                port: None,
            }),
            cgroup: None,
            action: Action::Blackhole,
            expires_at_ns: None,
        }
    }

    /// The same rule limited to `protocol` and, if given, one remote `port`.
    pub fn on(mut self, protocol: Protocol, port: Option<u16>) -> Self {
        if let Match::Ip(m) = &mut self.matches {
            m.protocol = protocol;
            m.port = port;
        }
        self
    }

    /// A DNS fault answering queries for `name` (`*.suffix` for names below it) to any
    /// resolver on port 53 with `response`, no expiry.
    pub fn dns(name: &str, response: DnsResponse) -> Self {
        let (name, wildcard) = match name.strip_prefix("*.") {
            Some(suffix) => (suffix, true),
            None => (name, false),
        };
        Rule {
            direction: Direction::Egress,
            matches: Match::Dns(DnsMatch {
                name: name.to_string(),
                wildcard,
                port: 53,
                resolver: None,
            }),
            cgroup: None,
            action: Action::Dns {
                response,
                ppm: chaos_common::PPM_ALL,
            },
            expires_at_ns: None,
        }
    }

    /// The same rule limited to sockets of one cgroup and its descendants.
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.cgroup = Some(scope);
        self
    }

    /// The same rule with another action.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// The same rule, ignored by the kernel from `ns` (CLOCK_MONOTONIC) on.
    pub fn expiring_at(mut self, ns: u64) -> Self {
        self.expires_at_ns = Some(ns);
        self
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
