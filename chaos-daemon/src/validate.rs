//! Meaning checks: turns a [`FaultSpec`] into a loader [`Rule`] or an [`ApiError`] that names the
//! field. Pure: the environment (interfaces, limits, protected paths) comes in as [`Env`].

use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;

use crate::{
    Action, Direction, Protocol, Rule,
    spec::{ActionSpec, DirectionSpec, FaultSpec, ProtocolSpec},
};

/// An API error: HTTP status, message, offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Message for the client.
    pub error: String,
    /// JSON path of the offending field.
    pub field: Option<String>,
}

impl ApiError {
    /// 422 for `field`.
    pub fn unprocessable(field: impl Into<String>, error: impl Into<String>) -> Self {
        ApiError {
            status: 422,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    /// Any status, no field.
    pub fn new(status: u16, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// Prefixes the field path (for items of a batch: `[3].ttl`).
    pub fn at(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = Some(match self.field {
                Some(f) => format!("{prefix}.{f}"),
                None => prefix.to_string(),
            });
        }
        self
    }
}

/// A path that faults must not hit without `force`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protected {
    /// Any traffic to/from this network.
    Net {
        /// Protected network.
        net: IpNet,
        /// Why (shown in the 409).
        why: String,
    },
    /// Faults that name this TCP port.
    TcpPort {
        /// Protected port.
        port: u16,
        /// Why.
        why: String,
    },
}

/// What validation needs to know about the host.
pub struct Env<'a> {
    /// Longest TTL accepted.
    pub max_ttl: Duration,
    /// Interface holding the default route, if any.
    pub default_iface: Option<String>,
    /// Whether an interface exists.
    pub iface_exists: &'a dyn Fn(&str) -> bool,
    /// Protected paths.
    pub protected: &'a [Protected],
}

/// A spec that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// The spec with defaults filled in.
    pub spec: FaultSpec,
    /// Interface to install on.
    pub iface: String,
    /// The rule for the loader (`expires_at_ns` is set when it is installed).
    pub rule: Rule,
}

/// Parses a CIDR or bare address (→ /32, /128). Host bits must be zero.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IPv4/IPv6 address or CIDR (e.g. 10.0.3.0/24)"))
}

fn percent(field: &str, p: f64) -> Result<f64, ApiError> {
    if !(p > 0.0 && p <= 100.0) {
        return Err(ApiError::unprocessable(
            field,
            format!("{field} must be > 0 and ≤ 100, got {p}"),
        ));
    }
    Ok(p)
}

/// Validates one spec.
pub fn validate(spec: &FaultSpec, env: &Env) -> Result<Validated, ApiError> {
    let mut spec = spec.clone();
    if let Some(name) = &spec.name
        && (name.chars().count() > 64 || name.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(
            "name",
            "name must be at most 64 printable characters",
        ));
    }
    let iface = match &spec.interface {
        Some(i) if i.is_empty() || i.len() > 15 || i.contains('/') => {
            return Err(ApiError::unprocessable(
                "interface",
                format!("{i:?} is not a valid interface name"),
            ));
        }
        Some(i) if !(env.iface_exists)(i) => {
            return Err(ApiError::unprocessable(
                "interface",
                format!("interface {i} not found"),
            ));
        }
        Some(i) => i.clone(),
        None => env.default_iface.clone().ok_or_else(|| {
            ApiError::unprocessable(
                "interface",
                "no default route to pick an interface from: give \"interface\"",
            )
        })?,
    };
    spec.interface = Some(iface.clone());

    let direction = match spec.direction {
        DirectionSpec::Egress => Direction::Egress,
        DirectionSpec::Ingress => Direction::Ingress,
    };
    let share = percent("percent", spec.percent)?;
    let action = match &spec.action {
        ActionSpec::Blackhole {} => Action::Blackhole,
        ActionSpec::Loss { percent: p } => {
            let p = percent("action.percent", *p)?;
            Action::Loss {
                ppm: (p * share * 100.0).round() as u32,
            }
        }
        ActionSpec::Latency { .. } | ActionSpec::Bandwidth { .. }
            if direction == Direction::Ingress =>
        {
            return Err(ApiError::unprocessable(
                "direction",
                format!("{} faults work on egress only", spec.action.kind()),
            ));
        }
        other => {
            return Err(ApiError::unprocessable(
                "action.kind",
                format!(
                    "{} faults are not supported by this version yet (supported: blackhole, loss)",
                    other.kind()
                ),
            ));
        }
    };
    let action = match action {
        Action::Blackhole if share < 100.0 => Action::Loss {
            ppm: (share * 10_000.0).round() as u32,
        },
        a => a,
    };

    let m = spec.matches.clone();
    if m.cgroup.is_some() {
        return Err(ApiError::unprocessable(
            "match.cgroup",
            "cgroup scoping is not supported by this version yet",
        ));
    }
    let cidr = m
        .cidr
        .as_deref()
        .ok_or_else(|| ApiError::unprocessable("match.cidr", "match.cidr is required"))?;
    let net = parse_net(cidr).map_err(|e| ApiError::unprocessable("match.cidr", e))?;
    let protocol = match m.protocol.unwrap_or(ProtocolSpec::Any) {
        ProtocolSpec::Any => Protocol::Any,
        ProtocolSpec::Tcp => Protocol::Tcp,
        ProtocolSpec::Udp => Protocol::Udp,
        ProtocolSpec::Icmp => Protocol::Icmp,
    };
    spec.matches.protocol = Some(m.protocol.unwrap_or(ProtocolSpec::Any));
    let port = match m.port {
        None => None,
        Some(p) if !(1..=65535).contains(&p) => {
            return Err(ApiError::unprocessable(
                "match.port",
                format!("port must be 1-65535, got {p}"),
            ));
        }
        Some(_) if protocol == Protocol::Icmp => {
            return Err(ApiError::unprocessable(
                "match.port",
                "ICMP has no ports: drop match.port or pick tcp/udp",
            ));
        }
        Some(p) => Some(p as u16),
    };

    if spec.ttl.is_zero() {
        return Err(ApiError::unprocessable("ttl", "ttl must be positive"));
    }
    if spec.ttl > env.max_ttl {
        return Err(ApiError::unprocessable(
            "ttl",
            format!(
                "ttl {} exceeds max_ttl {}",
                humantime::format_duration(spec.ttl),
                humantime::format_duration(env.max_ttl)
            ),
        ));
    }

    let rule = Rule {
        direction,
        net,
        protocol,
        port,
        action,
        expires_at_ns: None,
    };
    if !spec.force
        && let Some(why) = hits_protected(&rule, env.protected)
    {
        return Err(ApiError {
            status: 409,
            error: format!(
                "fault would hit a protected path ({why}); add \"force\": true to do it anyway"
            ),
            field: Some("match".into()),
        });
    }
    Ok(Validated { spec, iface, rule })
}

/// The reason if `rule` would drop traffic on a protected path.
pub fn hits_protected(rule: &Rule, protected: &[Protected]) -> Option<String> {
    protected.iter().find_map(|p| match p {
        Protected::Net { net, why } => overlaps(&rule.net, net).then(|| format!("{why}: {net}")),
        Protected::TcpPort { port, why } => {
            (matches!(rule.protocol, Protocol::Tcp | Protocol::Any) && rule.port == Some(*port))
                .then(|| format!("{why}: TCP port {port}"))
        }
    })
}

/// True if the two networks share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(b) || b.contains(a)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MatchSpec;

    fn env(protected: &[Protected]) -> Env<'_> {
        Env {
            max_ttl: Duration::from_secs(3600),
            default_iface: Some("eth0".into()),
            iface_exists: &|i| i == "eth0" || i == "veth1",
            protected,
        }
    }

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn err_field(json: &str) -> (u16, Option<String>) {
        let e = validate(&spec(json), &env(&[])).unwrap_err();
        (e.status, e.field)
    }

    #[test]
    fn minimal_blackhole_fills_defaults() {
        let v = validate(
            &spec(r#"{"match":{"cidr":"10.0.3.0/24"},"action":{"kind":"blackhole"},"ttl":"5m"}"#),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(v.iface, "eth0");
        assert_eq!(v.spec.interface.as_deref(), Some("eth0"));
        assert_eq!(v.rule.action, Action::Blackhole);
        assert_eq!(v.rule.direction, Direction::Egress);
        assert_eq!(v.rule.net, "10.0.3.0/24".parse::<IpNet>().unwrap());
    }

    #[test]
    fn loss_percent_times_share_becomes_ppm() {
        let v = validate(&spec(r#"{"match":{"cidr":"fd00::1"},"action":{"kind":"loss","percent":30},"percent":50,"ttl":"1m"}"#), &env(&[])).unwrap();
        assert_eq!(v.rule.action, Action::Loss { ppm: 150_000 });
        assert_eq!(v.rule.net, "fd00::1/128".parse::<IpNet>().unwrap());
        let v = validate(&spec(r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"percent":25,"ttl":"1m"}"#), &env(&[])).unwrap();
        assert_eq!(v.rule.action, Action::Loss { ppm: 250_000 });
    }

    #[test]
    fn each_bad_field_is_named() {
        let bh = r#"{"kind":"blackhole"}"#;
        let latency = r#"{"kind":"latency","delay":"1ms"}"#;
        // (match, action, extra top-level fields, ttl, field named in the 422)
        let cases = [
            (r#"{"cidr":"10.0.0.0/33"}"#, bh, "", "1m", "match.cidr"),
            (r#"{"cidr":"10.0.0.1/24"}"#, bh, "", "1m", "match.cidr"),
            (r#"{}"#, bh, "", "1m", "match.cidr"),
            (
                r#"{"cidr":"10.0.0.1","port":0}"#,
                bh,
                "",
                "1m",
                "match.port",
            ),
            (
                r#"{"cidr":"10.0.0.1","port":70000}"#,
                bh,
                "",
                "1m",
                "match.port",
            ),
            (
                r#"{"cidr":"10.0.0.1","protocol":"icmp","port":7}"#,
                bh,
                "",
                "1m",
                "match.port",
            ),
            (
                r#"{"cidr":"10.0.0.1","cgroup":"/x"}"#,
                bh,
                "",
                "1m",
                "match.cgroup",
            ),
            (
                r#"{"cidr":"10.0.0.1"}"#,
                r#"{"kind":"loss","percent":101}"#,
                "",
                "1m",
                "action.percent",
            ),
            (
                r#"{"cidr":"10.0.0.1"}"#,
                r#"{"kind":"loss","percent":0}"#,
                "",
                "1m",
                "action.percent",
            ),
            (
                r#"{"cidr":"10.0.0.1"}"#,
                bh,
                r#","percent":0"#,
                "1m",
                "percent",
            ),
            (
                r#"{"cidr":"10.0.0.1"}"#,
                bh,
                r#","interface":"nope0""#,
                "1m",
                "interface",
            ),
            (
                r#"{"cidr":"10.0.0.1"}"#,
                latency,
                r#","direction":"ingress""#,
                "1m",
                "direction",
            ),
            (r#"{"cidr":"10.0.0.1"}"#, latency, "", "1m", "action.kind"),
            (r#"{"cidr":"10.0.0.1"}"#, bh, "", "0s", "ttl"),
            (r#"{"cidr":"10.0.0.1"}"#, bh, "", "2h", "ttl"),
        ];
        for (m, a, extra, ttl, field) in cases {
            let json = format!(r#"{{"match":{m},"action":{a},"ttl":"{ttl}"{extra}}}"#);
            assert_eq!(err_field(&json), (422, Some(field.to_string())), "{json}");
        }
    }

    #[test]
    fn protected_paths_need_force() {
        let protected = [
            Protected::Net {
                net: "10.9.0.7/32".parse().unwrap(),
                why: "SSH session peer".into(),
            },
            Protected::TcpPort {
                port: 22,
                why: "protected port".into(),
            },
        ];
        let hit = r#"{"match":{"cidr":"10.9.0.0/16"},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        let e = validate(&spec(hit), &env(&protected)).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(e.error.contains("SSH session peer"), "{}", e.error);
        let forced = hit.replace("\"ttl\"", "\"force\":true,\"ttl\"");
        assert!(validate(&spec(&forced), &env(&protected)).is_ok());
        let port22 = r#"{"match":{"cidr":"192.0.2.0/24","port":22},"action":{"kind":"loss","percent":5},"ttl":"1m"}"#;
        assert_eq!(
            validate(&spec(port22), &env(&protected))
                .unwrap_err()
                .status,
            409
        );
        let udp22 = r#"{"match":{"cidr":"192.0.2.0/24","port":22,"protocol":"udp"},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        assert!(validate(&spec(udp22), &env(&protected)).is_ok());
        let elsewhere =
            r#"{"match":{"cidr":"10.8.0.0/16"},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        assert!(validate(&spec(elsewhere), &env(&protected)).is_ok());
    }

    #[test]
    fn overlap_is_symmetric_and_family_aware() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(overlaps(&n("10.0.0.0/8"), &n("10.1.2.3/32")));
        assert!(overlaps(&n("10.1.2.3/32"), &n("10.0.0.0/8")));
        assert!(!overlaps(&n("10.0.0.0/8"), &n("11.0.0.0/8")));
        assert!(!overlaps(&n("0.0.0.0/0"), &n("::/0")));
    }

    #[test]
    fn unsupported_match_defaults_are_echoed() {
        let v = validate(
            &FaultSpec {
                name: None,
                interface: Some("veth1".into()),
                direction: DirectionSpec::Ingress,
                matches: MatchSpec {
                    cidr: Some("10.0.0.0/8".into()),
                    ..Default::default()
                },
                action: ActionSpec::Blackhole {},
                percent: 100.0,
                ttl: Duration::from_secs(1),
                force: false,
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(v.spec.matches.protocol, Some(ProtocolSpec::Any));
        assert_eq!(v.rule.direction, Direction::Ingress);
    }
}
