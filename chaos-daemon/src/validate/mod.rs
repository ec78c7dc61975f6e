//! Meaning checks: turns a [`FaultSpec`] into loader [`Rule`]s or a [`ValidationError`] that
//! names the field. Pure: the environment (interfaces, limits, protected paths) comes in as
//! [`Env`]. One module per part of the spec: [`matches`], [`action`], [`protect`].

use std::time::Duration;

use crate::{
    host::cgroup::Cgroup,
    loader::{Direction, Rule},
    spec::{DirectionSpec, FaultSpec},
};

mod action;
mod domain;
mod error;
mod matches;
mod protect;
mod rate;

pub use domain::{Domain, parse_domain};
pub use error::{Refusal, ValidationError};
pub use matches::parse_net;
pub use protect::{Protected, hits_protected, overlaps};
pub use rate::parse_rate;

/// Longest name a fault may carry.
pub const MAX_NAME_CHARS: usize = 64;

/// What validation needs to know about the host.
pub struct Env<'a> {
    /// Longest TTL accepted.
    pub max_ttl: Duration,
    /// Interface holding the default route, if any.
    pub default_iface: Option<String>,
    /// Whether an interface exists, or why that cannot be told.
    pub iface_exists: &'a dyn Fn(&str) -> Result<bool, String>,
    /// The interfaces there are (named when one given does not exist).
    pub interfaces: &'a dyn Fn() -> Vec<String>,
    /// Protected paths, or why they could not be read (then every fault that could hit one
    /// without `force` is refused).
    pub protected: Result<&'a [Protected], String>,
    /// Whether the kernel has `sch_fq` (latency needs it).
    pub fq: bool,
    /// Resolves a `match.cgroup` ([`crate::host::cgroup::resolve`]).
    pub cgroup: &'a dyn Fn(&str) -> Result<Cgroup, String>,
}

/// A spec that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// The spec with defaults filled in.
    pub spec: FaultSpec,
    /// Interface to install on.
    pub iface: String,
    /// The rules for the loader (`expires_at_ns` is set when they are installed).
    pub rules: Vec<Rule>,
    /// The cgroup the rules are scoped to: the fault ends when it disappears.
    pub cgroup: Option<Cgroup>,
    /// With `force`: the protection it overrides, if it hits one (for the audit line).
    pub overrode: Option<String>,
}

/// True for characters that would let a name rewrite what a terminal or log shows: controls,
/// line/paragraph separators, bidi overrides and zero-width characters.
fn deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn check_name(spec: &FaultSpec) -> Result<(), ValidationError> {
    match &spec.name {
        Some(name) if name.chars().count() > MAX_NAME_CHARS || name.chars().any(deceptive) => {
            Err(ValidationError::invalid(
                "name",
                format!(
                    "name must be at most {MAX_NAME_CHARS} printable characters (no control, bidi or zero-width characters)"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Most labels on one fault.
const MAX_LABELS: usize = 16;

/// At most [`MAX_LABELS`], and every one passes [`crate::spec::check_label`].
fn check_labels(spec: &FaultSpec) -> Result<(), ValidationError> {
    if spec.labels.len() > MAX_LABELS {
        return Err(ValidationError::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels, got {}", spec.labels.len()),
        ));
    }
    for (k, v) in &spec.labels {
        crate::spec::check_label(k, v)
            .map_err(|m| ValidationError::invalid(format!("labels.{}", k.escape_default()), m))?;
    }
    Ok(())
}

fn check_interface(spec: &FaultSpec, env: &Env) -> Result<String, ValidationError> {
    match &spec.interface {
        Some(i) if i.is_empty() || i.len() > 15 || i.contains('/') || i.chars().any(deceptive) => {
            Err(ValidationError::invalid(
                "interface",
                format!(
                    "{:?} is not a valid interface name",
                    i.escape_default().to_string()
                ),
            ))
        }
        Some(i) => match (env.iface_exists)(i) {
            Ok(true) => Ok(i.clone()),
            Ok(false) => Err(ValidationError::invalid(
                "interface",
                format!(
                    "interface {} not found; this network namespace has: {}",
                    i.escape_default(),
                    (env.interfaces)().join(", ")
                ),
            )),
            Err(e) => Err(ValidationError {
                kind: Refusal::Unavailable,
                field: Some("interface".into()),
                message: format!("cannot look up interface {i}: {e}"),
            }),
        },
        None => env.default_iface.clone().ok_or_else(|| {
            ValidationError::invalid(
                "interface",
                "no default route to pick an interface from: give \"interface\"",
            )
        }),
    }
}

fn check_ttl(spec: &FaultSpec, env: &Env) -> Result<(), ValidationError> {
    if spec.ttl.is_zero() {
        return Err(ValidationError::invalid("ttl", "ttl must be positive"));
    }
    if spec.ttl > env.max_ttl {
        return Err(ValidationError::invalid(
            "ttl",
            format!(
                "ttl {} exceeds max_ttl {}",
                humantime::format_duration(spec.ttl),
                humantime::format_duration(env.max_ttl)
            ),
        ));
    }
    Ok(())
}

/// Validates one spec.
pub fn validate(spec: &FaultSpec, env: &Env) -> Result<Validated, ValidationError> {
    let mut spec = spec.clone();
    check_name(&spec)?;
    check_labels(&spec)?;
    let iface = check_interface(&spec, env)?;
    spec.interface = Some(iface.clone());
    let direction = match spec.direction {
        DirectionSpec::Egress => Direction::Egress,
        DirectionSpec::Ingress => Direction::Ingress,
    };
    let action = action::check(&spec, direction, env.fq)?;
    let matches = matches::check(&mut spec)?;
    check_ttl(&spec, env)?;
    let cgroup = matches::check_cgroup(&mut spec, env.cgroup)?;
    let rules: Vec<Rule> = matches
        .into_iter()
        .map(|matches| Rule {
            direction,
            matches,
            cgroup: cgroup.as_ref().map(|c| c.scope),
            action,
            expires_at_ns: None,
        })
        .collect();
    // The first rule that hits a protected path, and the field that asked for it.
    let hit = |protected: &[Protected]| {
        rules.iter().enumerate().find_map(|(i, rule)| {
            hits_protected(rule, protected).map(|why| {
                let field = match spec.matches.cidrs {
                    Some(_) => format!("match.cidrs[{i}]"),
                    None => "match".into(),
                };
                (field, why)
            })
        })
    };
    let overrode = match &env.protected {
        _ if !spec.force => None,
        Ok(protected) => hit(protected),
        Err(_) => hit(&[]),
    }
    .map(|(_, why)| why);
    if !spec.force {
        let why = match &env.protected {
            Ok(protected) => hit(protected).map(|hit| (Refusal::Protected, hit)),
            // Only a rule that could hit a protected path needs the list; a /0 needs force
            // whatever the list says.
            Err(e) => Some(match hit(&[]) {
                Some(hit) => (Refusal::Protected, hit),
                None => (Refusal::Unavailable, (String::new(), e.clone())),
            }),
        };
        match why {
            Some((Refusal::Unavailable, (_, e))) => {
                return Err(ValidationError {
                    kind: Refusal::Unavailable,
                    field: None,
                    message: format!(
                        "cannot check the protected paths ({e}); refusing rather than risk cutting them; retry, or add \"force\": true"
                    ),
                });
            }
            Some((_, (field, why))) => {
                return Err(ValidationError {
                    kind: Refusal::Protected,
                    field: Some(field),
                    message: format!(
                        "fault would hit a protected path ({why}); add \"force\": true to do it anyway"
                    ),
                });
            }
            None => {}
        }
    }
    Ok(Validated {
        spec,
        iface,
        rules,
        cgroup,
        overrode,
    })
}

#[cfg(test)]
mod tests {
    use ipnet::IpNet;

    use super::*;
    use crate::{
        loader::{Action, IpMatch, Match, Protocol},
        spec::{ActionSpec, MatchSpec, ProtocolSpec},
    };

    fn env(protected: &[Protected]) -> Env<'_> {
        Env {
            max_ttl: Duration::from_secs(3600),
            default_iface: Some("eth0".into()),
            iface_exists: &|i| Ok(i == "eth0" || i == "veth1"),
            interfaces: &|| vec!["eth0".into(), "veth1".into()],
            protected: Ok(protected),
            fq: false,
            cgroup: &fake_cgroup,
        }
    }

    /// `/app` and `/app/web` exist (levels 1 and 2); nothing else does.
    fn fake_cgroup(spec: &str) -> Result<Cgroup, String> {
        let rel = spec.trim_start_matches('/');
        let level = match rel {
            "app" => 1,
            "app/web" => 2,
            _ => return Err(format!("no cgroup {spec}")),
        };
        Ok(Cgroup {
            path: format!("/sys/fs/cgroup/{rel}").into(),
            scope: crate::loader::Scope {
                id: 1000 + level as u64,
                level,
            },
        })
    }

    fn ip_match(v: &Validated) -> IpMatch {
        let Match::Ip(m) = v.rules[0].matches.clone() else {
            panic!("an IP match expected")
        };
        m
    }

    /// The status the server answers with, so the cases read as the API does.
    fn status(e: &ValidationError) -> u16 {
        match e.kind {
            Refusal::Invalid => 422,
            Refusal::Protected => 409,
            Refusal::Unavailable => 503,
        }
    }

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn err_field(json: &str) -> (u16, Option<String>) {
        let e = validate(&spec(json), &env(&[])).unwrap_err();
        (status(&e), e.field)
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
        assert_eq!(v.rules[0].action, Action::Blackhole);
        assert_eq!(v.rules[0].direction, Direction::Egress);
        assert_eq!(ip_match(&v).net, "10.0.3.0/24".parse::<IpNet>().unwrap());
    }

    #[test]
    fn dns_faults_take_a_domain_and_default_to_any_resolver_on_port_53() {
        let v = validate(
            &spec(r#"{"action":{"kind":"dns","domain":"*.DynamoDB.example.","response":"servfail"},"percent":50,"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap();
        let Match::Dns(m) = &v.rules[0].matches else {
            panic!("a DNS match expected")
        };
        assert_eq!(
            (m.name.as_str(), m.wildcard, m.port, m.resolver),
            ("dynamodb.example", true, 53, None)
        );
        assert_eq!(
            v.rules[0].action,
            Action::Dns {
                response: crate::loader::DnsResponse::ServFail,
                ppm: 500_000
            }
        );
        assert_eq!(v.spec.matches.port, Some(53), "the default port is echoed");
        let ActionSpec::Dns { domain, .. } = &v.spec.action else {
            panic!("a DNS action expected")
        };
        assert_eq!(
            domain, "*.dynamodb.example",
            "the domain is echoed as it is matched"
        );
        let v = validate(
            &spec(r#"{"match":{"cidr":"10.0.0.53","port":5353},"action":{"kind":"dns","domain":"a.example","response":"drop"},"ttl":"1m","interface":"veth1"}"#),
            &env(&[]),
        )
        .unwrap();
        let Match::Dns(m) = &v.rules[0].matches else {
            panic!("a DNS match expected")
        };
        assert_eq!(
            (m.port, m.resolver),
            (5353, Some("10.0.0.53/32".parse().unwrap()))
        );
        let dns = |domain: &str, response: &str| {
            format!(r#"{{"kind":"dns","domain":"{domain}","response":"{response}"}}"#)
        };
        for (m, action, extra, field) in [
            ("{}", dns("a..example", "nxdomain"), "", "action.domain"),
            ("{}", dns("*", "nxdomain"), "", "action.domain"),
            ("{}", dns("a.example", "NXDOMAIN!"), "", "action.response"),
            ("{}", dns("a.example", "timeout"), "", "action.response"),
            (
                "{}",
                dns("a.example", "nxdomain"),
                r#","direction":"ingress""#,
                "direction",
            ),
            (
                r#"{"protocol":"tcp"}"#,
                dns("a.example", "nxdomain"),
                "",
                "match.protocol",
            ),
            (
                r#"{"cidr":"10.0.0.0/33"}"#,
                dns("a.example", "nxdomain"),
                "",
                "match.cidr",
            ),
            (
                r#"{"port":0}"#,
                dns("a.example", "nxdomain"),
                "",
                "match.port",
            ),
        ] {
            let json = format!(r#"{{"match":{m},"action":{action},"ttl":"1m"{extra}}}"#);
            assert_eq!(err_field(&json), (422, Some(field.to_string())), "{json}");
        }
    }

    #[test]
    fn loss_percent_times_share_becomes_ppm() {
        let v = validate(&spec(r#"{"match":{"cidr":"fd00::1"},"action":{"kind":"loss","percent":30},"percent":50,"ttl":"1m"}"#), &env(&[])).unwrap();
        assert_eq!(v.rules[0].action, Action::Loss { ppm: 150_000 });
        assert_eq!(ip_match(&v).net, "fd00::1/128".parse::<IpNet>().unwrap());
        let v = validate(&spec(r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"percent":25,"ttl":"1m"}"#), &env(&[])).unwrap();
        assert_eq!(v.rules[0].action, Action::Loss { ppm: 250_000 });
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
                bh,
                r#","until_cgroup_empty":true"#,
                "1m",
                "until_cgroup_empty",
            ),
            (
                r#"{"cidr":"10.0.0.1","cgroup":"/app"}"#,
                bh,
                r#","direction":"ingress""#,
                "1m",
                "match.cgroup",
            ),
            (
                r#"{"cgroup":"/app"}"#,
                r#"{"kind":"dns","domain":"a.example","response":"nxdomain"}"#,
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
    fn a_cgroup_scopes_the_rule_and_is_echoed_as_resolved() {
        let v = validate(
            &spec(r#"{"match":{"cidr":"10.0.0.1","cgroup":"app/web"},"action":{"kind":"blackhole"},"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap();
        let scope = crate::loader::Scope { id: 1002, level: 2 };
        assert_eq!(v.rules[0].cgroup, Some(scope));
        assert_eq!(v.cgroup.as_ref().map(|c| c.scope), Some(scope));
        assert_eq!(
            v.spec.matches.cgroup.as_deref(),
            Some("/sys/fs/cgroup/app/web")
        );
        let unscoped = validate(
            &spec(r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap();
        assert_eq!((unscoped.rules[0].cgroup, unscoped.cgroup), (None, None));
    }

    #[test]
    fn a_list_of_networks_is_one_fault_of_one_rule_each() {
        let v = validate(
            &spec(r#"{"match":{"cidrs":["10.0.0.1","::ffff:10.0.0.2","fd00::/64"],"protocol":"tcp","port":443},"action":{"kind":"blackhole"},"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap();
        let nets: Vec<String> = v
            .rules
            .iter()
            .map(|r| match &r.matches {
                Match::Ip(m) => {
                    assert_eq!((m.protocol, m.port), (Protocol::Tcp, Some(443)));
                    m.net.to_string()
                }
                m => panic!("an IP match expected, got {m:?}"),
            })
            .collect();
        assert_eq!(nets, ["10.0.0.1/32", "10.0.0.2/32", "fd00::/64"]);
        // Echoed as matched: the mapped address in its IPv4 form.
        assert_eq!(
            v.spec.matches.cidrs.as_deref(),
            Some(
                &[
                    "10.0.0.1".to_string(),
                    "10.0.0.2".into(),
                    "fd00::/64".into()
                ][..]
            )
        );
        assert_eq!(
            v.spec.matches.describe(v.spec.direction),
            "to 10.0.0.1, 10.0.0.2, fd00::/64 tcp port 443"
        );
        let many: Vec<String> = (1..=5).map(|i| format!("10.0.0.{i}")).collect();
        let mut m = v.spec.matches.clone();
        m.cidrs = Some(many);
        assert_eq!(
            m.describe(DirectionSpec::Egress),
            "to 10.0.0.1, 10.0.0.2, 10.0.0.3 and 2 more tcp port 443"
        );
        let bh = r#""action":{"kind":"blackhole"},"ttl":"1m""#;
        for (m, field) in [
            (r#"{"cidrs":[]}"#, "match.cidrs"),
            (r#"{"cidr":"10.0.0.1","cidrs":["10.0.0.2"]}"#, "match.cidrs"),
            (r#"{"cidrs":["10.0.0.1","10.0.0.0/8x"]}"#, "match.cidrs[1]"),
            (r#"{"cidrs":["10.0.0.1","10.0.0.7/24"]}"#, "match.cidrs[1]"),
            // The same key twice, spelled two ways.
            (
                r#"{"cidrs":["10.0.0.1","10.0.0.3","::ffff:10.0.0.1"]}"#,
                "match.cidrs[2]",
            ),
        ] {
            let json = format!(r#"{{"match":{m},{bh}}}"#);
            assert_eq!(err_field(&json), (422, Some(field.to_string())), "{json}");
        }
        let dns = r#"{"match":{"cidrs":["10.0.0.53"]},"action":{"kind":"dns","domain":"a.example","response":"nxdomain"},"ttl":"1m"}"#;
        assert_eq!(err_field(dns), (422, Some("match.cidrs".into())));
        // A protected path anywhere in the list refuses the fault, naming the entry; with
        // force the audit names what was overridden.
        let protected = [Protected::Net {
            net: "10.9.0.7/32".parse().unwrap(),
            why: "SSH session peer".into(),
        }];
        let hit = r#"{"match":{"cidrs":["10.8.0.1","10.9.0.0/16"]},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        let e = validate(&spec(hit), &env(&protected)).unwrap_err();
        assert_eq!(
            (status(&e), e.field.as_deref()),
            (409, Some("match.cidrs[1]"))
        );
        let forced = validate(
            &spec(&hit.replace("\"ttl\"", "\"force\":true,\"ttl\"")),
            &env(&protected),
        )
        .unwrap();
        assert_eq!(forced.rules.len(), 2);
        assert!(
            forced
                .overrode
                .is_some_and(|w| w.contains("SSH session peer"))
        );
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
        assert_eq!(status(&e), 409);
        assert!(e.message.contains("SSH session peer"), "{}", e.message);
        let forced = hit.replace("\"ttl\"", "\"force\":true,\"ttl\"");
        assert!(validate(&spec(&forced), &env(&protected)).is_ok());
        let port22 = r#"{"match":{"cidr":"192.0.2.0/24","port":22},"action":{"kind":"loss","percent":5},"ttl":"1m"}"#;
        assert_eq!(
            status(&validate(&spec(port22), &env(&protected)).unwrap_err()),
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
                labels: Default::default(),
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
                until_cgroup_empty: false,
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(v.spec.matches.protocol, Some(ProtocolSpec::Any));
        assert_eq!(v.rules[0].direction, Direction::Ingress);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_matched_and_protected_as_ipv4() {
        let v = validate(
            &spec(
                r#"{"match":{"cidr":"::ffff:10.88.0.2"},"action":{"kind":"blackhole"},"ttl":"1m"}"#,
            ),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(ip_match(&v).net, "10.88.0.2/32".parse::<IpNet>().unwrap());
        assert_eq!(v.spec.matches.cidr.as_deref(), Some("10.88.0.2"));
        let ssh = [Protected::Net {
            net: "10.88.0.2/32".parse().unwrap(),
            why: "peer of an established SSH session".into(),
        }];
        let e = validate(
            &spec(r#"{"match":{"cidr":"::ffff:10.88.0.0/120"},"action":{"kind":"blackhole"},"ttl":"1m"}"#),
            &env(&ssh),
        )
        .unwrap_err();
        assert_eq!(status(&e), 409, "{e}");
    }

    #[test]
    fn a_rule_for_every_address_needs_force_even_with_nothing_protected() {
        for cidr in ["0.0.0.0/0", "::/0"] {
            let json = format!(
                r#"{{"match":{{"cidr":"{cidr}"}},"action":{{"kind":"blackhole"}},"ttl":"1m"}}"#
            );
            let e = validate(&spec(&json), &env(&[])).unwrap_err();
            assert_eq!(status(&e), 409, "{cidr}: {e}");
            let forced = json.replace("\"ttl\"", "\"force\":true,\"ttl\"");
            assert!(validate(&spec(&forced), &env(&[])).is_ok());
        }
    }

    #[test]
    fn probabilities_that_round_to_zero_are_refused() {
        let (code, field) = err_field(
            r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"loss","percent":0.00001},"ttl":"1m"}"#,
        );
        assert_eq!((code, field.as_deref()), (422, Some("action.percent")));
        let (code, field) = err_field(
            r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"percent":0.00004,"ttl":"1m"}"#,
        );
        assert_eq!((code, field.as_deref()), (422, Some("percent")));
        let v = validate(
            &spec(r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"loss","percent":0.0001},"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(v.rules[0].action, Action::Loss { ppm: 1 });
    }

    #[test]
    fn an_unreadable_protected_list_refuses_unless_forced() {
        let e = Env {
            protected: Err("Too many open files".into()),
            ..env(&[])
        };
        let hit = r#"{"match":{"cidr":"10.9.0.7"},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        let err = validate(&spec(hit), &e).unwrap_err();
        assert_eq!(status(&err), 503);
        assert!(err.message.contains("Too many open files"), "{err}");
        let forced = hit.replace("\"ttl\"", "\"force\":true,\"ttl\"");
        assert!(validate(&spec(&forced), &e).is_ok());
    }

    #[test]
    fn names_that_could_forge_output_are_refused() {
        for name in ["a\u{202e}b", "a\u{2028}b", "a\u{200b}b", "tab\\there"] {
            let json = format!(
                r#"{{"name":"{name}","match":{{"cidr":"10.0.0.1"}},"action":{{"kind":"blackhole"}},"ttl":"1m"}}"#
            );
            assert_eq!(err_field(&json), (422, Some("name".into())), "{name}");
        }
    }

    #[test]
    fn labels_are_checked_key_by_key() {
        let with = |labels: &str| {
            format!(
                r#"{{"labels":{labels},"match":{{"cidr":"10.0.0.1"}},"action":{{"kind":"blackhole"}},"ttl":"1m"}}"#
            )
        };
        let ok = validate(
            &spec(&with(
                r#"{"team":"payments","app.kubernetes.io/name":"redis-1","empty":""}"#,
            )),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(ok.spec.labels["team"], "payments");
        for (labels, field) in [
            (r#"{"":"x"}"#, "labels."),
            (r#"{"team":"pay ments"}"#, "labels.team"),
            (r#"{"te=am":"x"}"#, "labels.te=am"),
            (r#"{"t":"a/b"}"#, "labels.t"),
        ] {
            assert_eq!(
                err_field(&with(labels)),
                (422, Some(field.into())),
                "{labels}"
            );
        }
        let long = format!(r#"{{"k":"{}"}}"#, "v".repeat(64));
        assert_eq!(err_field(&with(&long)), (422, Some("labels.k".into())));
        let many: Vec<String> = (0..17).map(|i| format!(r#""k{i}":"v""#)).collect();
        assert_eq!(
            err_field(&with(&format!("{{{}}}", many.join(",")))),
            (422, Some("labels".into()))
        );
    }

    #[test]
    fn latency_values_are_bounded_where_fq_exists() {
        let with_fq = Env {
            fq: true,
            ..env(&[])
        };
        let check = |action: &str| {
            let json = format!(r#"{{"match":{{"cidr":"10.0.0.1"}},"action":{action},"ttl":"1m"}}"#);
            validate(&spec(&json), &with_fq).map_err(|e| (status(&e), e.field))
        };
        let ok = check(r#"{"kind":"latency","delay":"300ms","jitter":"20ms","distribution":"pareto","correlation":25}"#)
            .unwrap();
        let Action::Latency {
            delay_ns,
            jitter_ns,
            correlation,
            ..
        } = ok.rules[0].action
        else {
            panic!("latency expected")
        };
        assert_eq!((delay_ns, jitter_ns), (300_000_000, 20_000_000));
        assert_eq!(correlation, 1 << 30);
        // At the bound: 50 s ± 10 s uniform holds for 60 s at most, 40 s ± 5 s normal for 58.3 s.
        for at_bound in [
            r#"{"kind":"latency","delay":"50s","jitter":"10s"}"#,
            r#"{"kind":"latency","delay":"40s","jitter":"5s","distribution":"normal"}"#,
        ] {
            assert!(check(at_bound).is_ok(), "{at_bound}");
        }
        for (action, field) in [
            (r#"{"kind":"latency","delay":"0s"}"#, "action.delay"),
            (r#"{"kind":"latency","delay":"100y"}"#, "action.delay"),
            (
                r#"{"kind":"latency","delay":"500000000000y","jitter":"500000000000y"}"#,
                "action.delay",
            ),
            (
                r#"{"kind":"latency","delay":"50s","jitter":"20s"}"#,
                "action.jitter",
            ),
            // The largest sample of a normal table is 3.66 σ: 30 s ± 30 s would hold packets
            // for 140 s, past fq's horizon (13 of 20 pings were lost), and 40 s ± 6 s for 62 s.
            (
                r#"{"kind":"latency","delay":"30s","jitter":"30s","distribution":"normal"}"#,
                "action.jitter",
            ),
            (
                r#"{"kind":"latency","delay":"40s","jitter":"6s","distribution":"normal"}"#,
                "action.jitter",
            ),
            (
                r#"{"kind":"latency","delay":"41s","jitter":"5s","distribution":"pareto"}"#,
                "action.jitter",
            ),
            (
                r#"{"kind":"latency","delay":"10ms","jitter":"20ms"}"#,
                "action.jitter",
            ),
            (
                r#"{"kind":"latency","delay":"10ms","correlation":1e9}"#,
                "action.correlation",
            ),
            (
                r#"{"kind":"latency","delay":"10ms","correlation":-1}"#,
                "action.correlation",
            ),
        ] {
            assert_eq!(
                check(action).unwrap_err(),
                (422, Some(field.into())),
                "{action}"
            );
        }
        // Without fq the same valid spec is refused, naming the qdisc.
        let e = validate(
            &spec(r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"latency","delay":"1ms"},"ttl":"1m"}"#),
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.message.contains("sch_fq"), "{e}");
    }
}
