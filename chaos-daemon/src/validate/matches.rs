//! Checks of the `match` part: CIDR, protocol, port, cgroup.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ValidationError;
use crate::{
    loader::{IpMatch, Match, Protocol},
    spec::{FaultSpec, ProtocolSpec},
};

/// Parses a CIDR or bare address (→ /32, /128). Host bits must be zero. An IPv4-mapped IPv6
/// address (`::ffff:10.0.0.1`) becomes the IPv4 address it stands for: packets on the wire
/// carry the IPv4 form, and protected-path checks must see it too.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let net = match s.parse::<IpNet>() {
        Ok(net) => {
            if net.trunc() != net {
                return Err(format!(
                    "{s} has host bits set; did you mean {}?",
                    net.trunc()
                ));
            }
            net
        }
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an IPv4/IPv6 address or CIDR (e.g. 10.0.3.0/24)"))?,
    };
    Ok(unmap(net))
}

/// `::ffff:a.b.c.d/96+n` → `a.b.c.d/n`.
fn unmap(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// The loader match for `spec`; fills the protocol default into `spec`.
pub fn check(spec: &mut FaultSpec) -> Result<Match, ValidationError> {
    let m = spec.matches.clone();
    if m.cgroup.is_some() {
        return Err(ValidationError::invalid(
            "match.cgroup",
            "cgroup scoping is not supported by this version yet",
        ));
    }
    let cidr = m
        .cidr
        .as_deref()
        .ok_or_else(|| ValidationError::invalid("match.cidr", "match.cidr is required"))?;
    let net = parse_net(cidr).map_err(|e| ValidationError::invalid("match.cidr", e))?;
    let protocol = match m.protocol.unwrap_or(ProtocolSpec::Any) {
        ProtocolSpec::Any => Protocol::Any,
        ProtocolSpec::Tcp => Protocol::Tcp,
        ProtocolSpec::Udp => Protocol::Udp,
        ProtocolSpec::Icmp => Protocol::Icmp,
    };
    let port = match m.port {
        None => None,
        Some(p) if !(1..=65535).contains(&p) => {
            return Err(ValidationError::invalid(
                "match.port",
                format!("port must be 1-65535, got {p}"),
            ));
        }
        Some(_) if protocol == Protocol::Icmp => {
            return Err(ValidationError::invalid(
                "match.port",
                "ICMP has no ports: drop match.port or pick tcp/udp",
            ));
        }
        Some(p) => Some(p as u16),
    };
    spec.matches.protocol = Some(m.protocol.unwrap_or(ProtocolSpec::Any));
    // Echo a mapped address as it is matched: in its IPv4 form.
    if matches!(net, IpNet::V4(_)) && cidr.contains(':') {
        spec.matches.cidr = Some(if cidr.contains('/') {
            net.to_string()
        } else {
            net.addr().to_string()
        });
    }
    Ok(Match::Ip(IpMatch {
        net,
        protocol,
        port,
    }))
}
