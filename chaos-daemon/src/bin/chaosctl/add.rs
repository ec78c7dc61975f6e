//! `chaosctl add KIND …`: builds a FaultSpec and posts it.

use hyper::Method;
use serde_json::{Value, json};

use crate::{
    args::{AddKind, Common, Tags},
    output::{Ctx, EXIT_USAGE, send_fault},
};

/// The FaultSpec JSON for `kind`.
pub fn spec_json(kind: &AddKind) -> Value {
    let (action, percent) = match kind {
        AddKind::Blackhole { percent, .. } => (json!({"kind": "blackhole"}), *percent),
        AddKind::Loss { percent, .. } => (json!({"kind": "loss", "percent": percent}), None),
        AddKind::Latency {
            delay,
            jitter,
            distribution,
            correlation,
            reorder,
            percent,
            ..
        } => {
            let mut a = json!({"kind": "latency", "delay": delay});
            if let Some(j) = jitter {
                a["jitter"] = json!(j);
            }
            if let Some(d) = distribution {
                a["distribution"] = json!(d);
            }
            if let Some(c) = correlation {
                a["correlation"] = json!(c);
            }
            if *reorder {
                a["reorder"] = json!(true);
            }
            (a, *percent)
        }
        AddKind::Bandwidth { rate, .. } => (json!({"kind": "bandwidth", "rate": rate}), None),
        AddKind::Dns {
            domain,
            response,
            percent,
            ..
        } => (
            json!({"kind": "dns", "domain": domain, "response": response}),
            *percent,
        ),
    };
    let mut spec = match kind {
        AddKind::Blackhole { common, .. }
        | AddKind::Loss { common, .. }
        | AddKind::Latency { common, .. }
        | AddKind::Bandwidth { common, .. } => ip_fault(common),
        AddKind::Dns { common, .. } => {
            let mut m = serde_json::Map::new();
            if let Some(r) = &common.resolver {
                m.insert("cidr".into(), json!(r));
            }
            if let Some(p) = common.port {
                m.insert("port".into(), json!(p));
            }
            tagged(json!({"match": m, "ttl": common.ttl}), &common.tags)
        }
    };
    spec["action"] = action;
    if let Some(p) = percent {
        spec["percent"] = json!(p);
    }
    spec
}

/// Direction, match, TTL and tags of an IP fault.
fn ip_fault(common: &Common) -> Value {
    let mut m = serde_json::Map::new();
    let ingress = !common.from.is_empty();
    match if ingress { &common.from } else { &common.to }.as_slice() {
        [] => {}
        [one] => {
            m.insert("cidr".into(), json!(one));
        }
        list => {
            m.insert("cidrs".into(), json!(list));
        }
    }
    if let Some(p) = common.opts.port {
        m.insert("port".into(), json!(p));
    }
    if let Some(p) = &common.opts.proto {
        m.insert("protocol".into(), json!(p));
    }
    if let Some(c) = &common.cgroup {
        m.insert("cgroup".into(), json!(c));
    }
    let spec = json!({
        "direction": if ingress { "ingress" } else { "egress" },
        "match": m,
        "ttl": common.ttl,
    });
    tagged(spec, &common.opts.tags)
}

/// `spec` with the interface, name, labels and force `tags` give.
fn tagged(mut spec: Value, tags: &Tags) -> Value {
    let labels: serde_json::Map<String, serde_json::Value> = tags
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    for (key, value) in [
        (
            "labels",
            (!labels.is_empty()).then_some(serde_json::Value::Object(labels)),
        ),
        ("interface", tags.iface.as_ref().map(|v| json!(v))),
        ("name", tags.name.as_ref().map(|v| json!(v))),
        ("force", tags.force.then_some(json!(true))),
    ] {
        if let Some(v) = value {
            spec[key] = v;
        }
    }
    spec
}

/// Runs `add`.
pub async fn run(kind: &AddKind, ctx: &Ctx) -> i32 {
    let ip = match kind {
        AddKind::Blackhole { common, .. }
        | AddKind::Loss { common, .. }
        | AddKind::Latency { common, .. }
        | AddKind::Bandwidth { common, .. } => Some(common),
        AddKind::Dns { .. } => None,
    };
    if let Some(c) = ip
        && c.to.is_empty()
        && c.from.is_empty()
    {
        eprintln!(
            "chaosctl add: give --to CIDR (egress) or --from CIDR (ingress)\n\nFor more information, try '--help'."
        );
        return EXIT_USAGE;
    }
    let body = spec_json(kind).to_string().into_bytes();
    send_fault(ctx, Method::POST, "/v1/faults", body, "created").await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Cmd};

    fn kind(args: &[&str]) -> AddKind {
        let cli = Cli::try_parse_from(args).unwrap();
        let Cmd::Add { kind } = cli.cmd else {
            panic!("add expected")
        };
        *kind
    }

    #[test]
    fn add_builds_the_api_spec() {
        let k = kind(&[
            "chaosctl",
            "add",
            "loss",
            "--to",
            "10.0.3.0/24",
            "--port",
            "6379",
            "--proto",
            "tcp",
            "--percent",
            "30",
            "--ttl",
            "5m",
            "--iface",
            "eth0",
        ]);
        assert_eq!(
            spec_json(&k),
            json!({"direction":"egress","match":{"cidr":"10.0.3.0/24","port":6379,"protocol":"tcp"},
                   "action":{"kind":"loss","percent":30.0},"ttl":"5m","interface":"eth0"})
        );
        let k = kind(&[
            "chaosctl",
            "add",
            "blackhole",
            "--from",
            "fd00::/64",
            "--ttl",
            "1m",
            "--force",
        ]);
        let spec = spec_json(&k);
        assert_eq!(spec["direction"], "ingress");
        assert_eq!(spec["force"], true);
        let k = kind(&blackhole_to(&["-l", "team=pay", "--label", "env=prod"]));
        assert_eq!(
            spec_json(&k)["labels"],
            json!({"team": "pay", "env": "prod"})
        );
        let k = kind(&blackhole_to(&["--cgroup", "systemd:api.service"]));
        assert_eq!(spec_json(&k)["match"]["cgroup"], "systemd:api.service");
        let bad = crate::args::Cli::try_parse_from(blackhole_to(&["-l", "team"]));
        assert!(bad.is_err(), "a label without = is a usage error");
        // Several networks, repeated or comma-separated, make one fault over a list.
        let k = kind(&blackhole_to(&["--to", "10.0.0.2,10.0.1.0/24"]));
        assert_eq!(
            spec_json(&k)["match"],
            json!({"cidrs": ["10.0.0.1", "10.0.0.2", "10.0.1.0/24"]})
        );
        let both = crate::args::Cli::try_parse_from(blackhole_to(&["--from", "10.0.0.2"]));
        assert!(both.is_err(), "--to and --from together are a usage error");
    }

    /// `chaosctl add` with `kind_args`, then `extra`.
    fn add_args<'a>(kind_args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["chaosctl", "add"];
        args.extend(kind_args);
        args.extend(extra);
        args
    }

    /// `chaosctl add blackhole --to 10.0.0.1 --ttl 1m` and `extra`.
    fn blackhole_to<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        add_args(&["blackhole", "--to", "10.0.0.1", "--ttl", "1m"], extra)
    }

    /// `chaosctl add latency --to 10.0.0.1 --delay 50ms --ttl 1m` and `extra`.
    fn latency_to<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        add_args(
            &[
                "latency", "--to", "10.0.0.1", "--delay", "50ms", "--ttl", "1m",
            ],
            extra,
        )
    }

    #[test]
    fn latency_and_bandwidth_options_reach_the_spec() {
        let k = kind(&latency_to(&["--jitter", "10ms", "--reorder"]));
        assert_eq!(
            spec_json(&k)["action"],
            json!({"kind": "latency", "delay": "50ms", "jitter": "10ms", "reorder": true})
        );
        let k = kind(&[
            "chaosctl",
            "add",
            "bandwidth",
            "--from",
            "10.0.0.1",
            "--rate",
            "10mbit",
            "--ttl",
            "1m",
        ]);
        let spec = spec_json(&k);
        assert_eq!(
            spec["action"],
            json!({"kind": "bandwidth", "rate": "10mbit"})
        );
        assert_eq!(spec["direction"], "ingress");
    }

    #[test]
    fn dns_offers_what_a_dns_fault_takes_and_latency_and_dns_take_a_percent() {
        fn dns<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            let kind = ["dns", "--domain", "db.example", "--response", "servfail"];
            add_args(&[&kind[..], &["--ttl", "1m"]].concat(), extra)
        }
        let spec = spec_json(&kind(&dns(&[
            "--to",
            "10.0.0.53",
            "--port",
            "5353",
            "--percent",
            "30",
        ])));
        assert_eq!(spec["match"], json!({"cidr": "10.0.0.53", "port": 5353}));
        assert_eq!(spec["percent"], 30.0);
        assert_eq!(spec["action"]["response"], "servfail");
        // What a DNS fault cannot take is not offered (it was, then always refused).
        for refused in [
            &["--from", "10.0.0.1"][..],
            &["--cgroup", "x"],
            &["--proto", "udp"],
            &["--to", "10.0.0.1,10.0.0.2"],
        ] {
            assert!(
                crate::args::Cli::try_parse_from(dns(refused)).is_err(),
                "{refused:?}"
            );
        }
        let help = crate::args::Cli::try_parse_from(["chaosctl", "add", "dns", "--help"])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        for absent in ["--from", "--cgroup", "--proto"] {
            assert!(!help.contains(absent), "{absent} offered:\n{help}");
        }
        let k = kind(&latency_to(&["--percent", "50"]));
        assert_eq!(spec_json(&k)["percent"], 50.0);
    }

    #[test]
    fn blackhole_percent_is_the_share_of_packets() {
        for flag in ["--percent", "--share"] {
            let k = kind(&blackhole_to(&[flag, "25"]));
            assert_eq!(spec_json(&k)["percent"], 25.0, "{flag}");
        }
    }
}
