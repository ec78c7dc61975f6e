//! Checks of the `match` part: CIDR, protocol, port, cgroup; for DNS faults the domain and
//! the resolvers.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ValidationError, parse_domain};
use crate::{
    host::cgroup::Cgroup,
    loader::{DnsMatch, IpMatch, Match, Protocol},
    spec::{ActionSpec, DirectionSpec, FaultSpec, ProtocolSpec},
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

/// The loader match for a DNS fault: the domain, and the resolvers (`match.cidr`, default any;
/// `match.port`, default 53) whose queries it answers. Fills the defaults into `spec`.
fn check_dns(spec: &mut FaultSpec) -> Result<Match, ValidationError> {
    let ActionSpec::Dns { domain, .. } = &mut spec.action else {
        unreachable!("called for DNS faults")
    };
    let d = parse_domain(domain).map_err(|e| ValidationError::invalid("action.domain", e))?;
    *domain = d.spelled();
    let m = &mut spec.matches;
    if m.cidrs.is_some() {
        return Err(ValidationError::invalid(
            "match.cidrs",
            "a DNS fault names its resolvers with one match.cidr: drop match.cidrs",
        ));
    }
    if m.protocol.is_some_and(|p| p != ProtocolSpec::Any) {
        return Err(ValidationError::invalid(
            "match.protocol",
            "a DNS fault covers queries over UDP and TCP alike: drop match.protocol",
        ));
    }
    let resolver = m
        .cidr
        .as_deref()
        .map(parse_net)
        .transpose()
        .map_err(|e| ValidationError::invalid("match.cidr", e))?;
    let port = check_port(m.port)?.unwrap_or(DNS_PORT);
    m.port = Some(port.into());
    Ok(Match::Dns(DnsMatch {
        name: d.name,
        wildcard: d.wildcard,
        port,
        resolver,
    }))
}

fn check_port(port: Option<i64>) -> Result<Option<u16>, ValidationError> {
    match port {
        None => Ok(None),
        Some(p) if !(1..=65535).contains(&p) => Err(ValidationError::invalid(
            "match.port",
            format!("port must be 1-65535, got {p}"),
        )),
        Some(p) => Ok(Some(p as u16)),
    }
}

/// The cgroup `match.cgroup` names, resolved by `resolve`; echoed into `spec` as the directory
/// it resolved to.
pub fn check_cgroup(
    spec: &mut FaultSpec,
    resolve: &dyn Fn(&str) -> Result<Cgroup, String>,
) -> Result<Option<Cgroup>, ValidationError> {
    let Some(given) = spec.matches.cgroup.as_deref() else {
        if spec.until_cgroup_empty {
            return Err(ValidationError::invalid(
                "until_cgroup_empty",
                "until_cgroup_empty needs match.cgroup",
            ));
        }
        return Ok(None);
    };
    let field = "match.cgroup";
    if spec.direction == DirectionSpec::Ingress {
        return Err(ValidationError::invalid(
            field,
            "received packets have no socket yet, so no cgroup: cgroup scoping is egress only",
        ));
    }
    if matches!(spec.action, ActionSpec::Dns { .. }) {
        return Err(ValidationError::invalid(
            field,
            "DNS faults cannot be scoped to a cgroup yet: drop match.cgroup",
        ));
    }
    let cgroup = resolve(given).map_err(|e| ValidationError::invalid(field, e))?;
    spec.matches.cgroup = Some(cgroup.path.display().to_string());
    Ok(Some(cgroup))
}

/// The port DNS faults watch unless `match.port` says otherwise.
const DNS_PORT: u16 = 53;

/// The loader matches for `spec`, one per network (`match.cidr`, or each of `match.cidrs`);
/// fills the protocol default into `spec`.
pub fn check(spec: &mut FaultSpec) -> Result<Vec<Match>, ValidationError> {
    if matches!(spec.action, ActionSpec::Dns { .. }) {
        return check_dns(spec).map(|m| vec![m]);
    }
    let nets = check_networks(spec)?;
    let m = &spec.matches;
    let protocol = match m.protocol.unwrap_or(ProtocolSpec::Any) {
        ProtocolSpec::Any => Protocol::Any,
        ProtocolSpec::Tcp => Protocol::Tcp,
        ProtocolSpec::Udp => Protocol::Udp,
        ProtocolSpec::Icmp => Protocol::Icmp,
    };
    let port = match check_port(m.port)? {
        Some(_) if protocol == Protocol::Icmp => {
            return Err(ValidationError::invalid(
                "match.port",
                "ICMP has no ports: drop match.port or pick tcp/udp",
            ));
        }
        p => p,
    };
    spec.matches.protocol = Some(m.protocol.unwrap_or(ProtocolSpec::Any));
    Ok(nets
        .into_iter()
        .map(|net| {
            Match::Ip(IpMatch {
                net,
                protocol,
                port,
            })
        })
        .collect())
}

/// The networks of `match.cidr` or `match.cidrs` (exactly one of them), each echoed as it is
/// matched (a mapped address in its IPv4 form). A network listed twice is refused: it would be
/// one kernel key for two rules.
fn check_networks(spec: &mut FaultSpec) -> Result<Vec<IpNet>, ValidationError> {
    let m = &mut spec.matches;
    let one = |cidr: &mut String, field: &dyn Fn() -> String| {
        let net = parse_net(cidr).map_err(|e| ValidationError::invalid(field(), e))?;
        if matches!(net, IpNet::V4(_)) && cidr.contains(':') {
            *cidr = if cidr.contains('/') {
                net.to_string()
            } else {
                net.addr().to_string()
            };
        }
        Ok(net)
    };
    match (&mut m.cidr, &mut m.cidrs) {
        (Some(_), Some(_)) => Err(ValidationError::invalid(
            "match.cidrs",
            "give match.cidr or match.cidrs, not both",
        )),
        (Some(cidr), None) => Ok(vec![one(cidr, &|| "match.cidr".into())?]),
        (None, Some(list)) if list.is_empty() => Err(ValidationError::invalid(
            "match.cidrs",
            "match.cidrs must list at least one network",
        )),
        (None, Some(list)) => {
            let mut seen =
                <foldhash::HashMap<_, _> as foldhash::HashMapExt>::with_capacity(list.len());
            let mut nets = Vec::with_capacity(list.len());
            for (i, cidr) in list.iter_mut().enumerate() {
                let field = || format!("match.cidrs[{i}]");
                let net = one(cidr, &field)?;
                if let Some(first) = seen.insert(net, i) {
                    return Err(ValidationError::invalid(
                        field(),
                        format!("{net} is listed twice (also match.cidrs[{first}])"),
                    ));
                }
                nets.push(net);
            }
            Ok(nets)
        }
        (None, None) => Err(ValidationError::invalid(
            "match.cidr",
            "match.cidr (or a match.cidrs list) is required",
        )),
    }
}
