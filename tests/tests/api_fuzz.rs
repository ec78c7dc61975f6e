//! Property test: ≥ 10,000 generated and mutated bodies thrown at `POST /v1/faults` of a real
//! daemon. Never a 5xx, the daemon stays healthy, and no rejected request changes the rule set.

use chaos_tests::{daemon::Daemon, netns::NsPair};
use hyper::Method;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{Map, Value, json};

/// Any JSON value of the kinds a client might get wrong.
fn weird() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// `valid` values most of the time, well-typed invalid ones sometimes, weird ones rarely.
fn pick(valid: Vec<Value>, invalid: Vec<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => proptest::sample::select(valid),
        3 => proptest::sample::select(invalid),
        1 => weird(),
    ]
}

fn strs(v: &[&str]) -> Vec<Value> {
    v.iter().map(|s| Value::from(*s)).collect()
}

fn spec() -> impl Strategy<Value = Value> {
    let cidr = pick(
        strs(&[
            "10.200.0.2",
            "10.200.0.3/32",
            "10.9.0.0/16",
            "fd00:c4a0::2/128",
            "0.0.0.0/0",
            "10.77.0.0/24",
        ]),
        strs(&[
            "10.0.0.1/24",
            "999.1.1.1",
            "",
            "fd00::/129",
            "10.0.0.0/33",
            "localhost",
        ]),
    );
    let protocol = pick(strs(&["tcp", "udp", "icmp", "any"]), strs(&["sctp", "TCP"]));
    let port = pick(
        [1, 53, 6379, 65535, 8080].map(Value::from).to_vec(),
        [0, -1, 65536, 70000, 22].map(Value::from).to_vec(),
    );
    let action = prop_oneof![
        6 => Just(json!({"kind": "blackhole"})),
        6 => (-10.0f64..120.0).prop_map(|p| json!({"kind": "loss", "percent": p})),
        1 => Just(json!({"kind": "loss"})),
        1 => Just(json!({"kind": "latency", "delay": "300ms", "jitter": "20ms"})),
        1 => Just(json!({"kind": "dns", "domain": "*.example.com", "response": "servfail"})),
        1 => Just(json!({"kind": "blackhole", "extra": 1})),
        1 => Just(json!({"kind": "teleport"})),
        1 => weird(),
    ];
    let ttl = pick(
        strs(&["1m", "90s", "5m", "1h"]),
        strs(&["0s", "2h", "abc", "", "1ms", "-5s"]),
    );
    let iface = pick(
        strs(&["va"]),
        strs(&["vb", "lo", "nope0", "", "a/b", "interface-name-too-long"]),
    );
    let direction = pick(strs(&["egress", "ingress"]), strs(&["sideways", "EGRESS"]));
    let percent = pick(
        [100.0, 50.0, 0.5].map(Value::from).to_vec(),
        [0.0, 100.5, -3.0].map(Value::from).to_vec(),
    );
    (
        (
            proptest::option::weighted(0.95, cidr),
            proptest::option::of(protocol),
            proptest::option::weighted(0.3, port),
        ),
        proptest::option::weighted(0.97, action),
        proptest::option::weighted(0.97, ttl),
        (
            proptest::option::of(iface),
            proptest::option::weighted(0.3, direction),
            proptest::option::weighted(0.2, percent),
        ),
        proptest::option::weighted(0.1, any::<bool>()),
    )
        .prop_map(
            |((cidr, protocol, port), action, ttl, (iface, direction, percent), force)| {
                let mut m = Map::new();
                for (k, v) in [("cidr", cidr), ("protocol", protocol), ("port", port)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                let mut spec = Map::new();
                spec.insert("match".into(), Value::Object(m));
                for (k, v) in [
                    ("action", action),
                    ("ttl", ttl),
                    ("interface", iface),
                    ("direction", direction),
                    ("percent", percent),
                    ("force", force.map(Value::from)),
                ] {
                    if let Some(v) = v {
                        spec.insert(k.into(), v);
                    }
                }
                Value::Object(spec)
            },
        )
}

/// A body: a spec, a batch, or a mutation of one (dropped/extra keys, truncation, garbage).
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => spec().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(spec(), 1..4).prop_map(|v| Value::Array(v).to_string().into_bytes()),
        1 => (spec(), any::<proptest::sample::Index>()).prop_map(|(v, i)| {
            let mut v = v;
            let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            v.as_object_mut().unwrap().remove(&keys[i.index(keys.len())]);
            v.to_string().into_bytes()
        }),
        1 => (spec(), "[a-z_]{1,10}", weird()).prop_map(|(mut v, k, w)| {
            v.as_object_mut().unwrap().insert(k, w);
            v.to_string().into_bytes()
        }),
        1 => (spec(), any::<proptest::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            s[..i.index(s.len())].to_vec()
        }),
        1 => weird().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn ten_thousand_generated_bodies_never_break_the_daemon() {
    // Deeply nested strategies need more than the test thread's 2 MiB stack in debug builds.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(fuzz)
        .unwrap()
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

fn fuzz() {
    let p = NsPair::new("fuzz");
    let d = Daemon::start(&p.a, "");
    // An anchor fault that must survive everything.
    let anchor =
        json!({"match": {"cidr": "10.200.0.2"}, "action": {"kind": "blackhole"}, "ttl": "10m"});
    assert_eq!(
        d.call(Method::POST, "/v1/faults", Some(&anchor.to_string()))
            .0,
        201
    );
    let before = d.fault_ids();
    let mut runner = TestRunner::new(Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&body(), |body| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        let (status, resp) = d.raw(Method::POST, "/v1/faults", Some(body));
        *statuses.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(
            status < 500,
            "{status} for {shown}: {}",
            String::from_utf8_lossy(&resp)
        );
        if status == 201 {
            // Accepted: remove what it created so the set is back to the anchor.
            let created: Value =
                serde_json::from_slice(&resp).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let list = if created.is_array() {
                created.as_array().unwrap().clone()
            } else {
                vec![created]
            };
            for f in list {
                // 404: a short TTL (e.g. "1ms") already lifted it.
                let (s, _) = d.call(
                    Method::DELETE,
                    &format!("/v1/faults/{}", f["id"].as_str().unwrap()),
                    None,
                );
                prop_assert!(s == 204 || s == 404, "DELETE answered {}", s);
            }
        } else {
            let err: Value = serde_json::from_slice(&resp)
                .map_err(|e| TestCaseError::fail(format!("{status} body not JSON: {e}")))?;
            prop_assert!(
                err["error"].is_string(),
                "{status} without an error message for {shown}"
            );
        }
        prop_assert_eq!(
            d.fault_ids(),
            before.clone(),
            "rule set changed by {}",
            shown
        );
        Ok(())
    });
    let statuses = statuses.into_inner();
    eprintln!("status counts over 10,000 bodies: {statuses:?}");
    if let Err(e) = result {
        panic!("{e}\ndaemon log:\n{}", d.log_text());
    }
    let (s, health) = d.call(Method::GET, "/v1/health", None);
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    assert!(
        statuses.get(&201).copied().unwrap_or(0) > 0,
        "the generator never produced a valid body: {statuses:?}"
    );
    assert!(
        statuses.keys().any(|s| *s == 400) && statuses.keys().any(|s| *s == 422),
        "{statuses:?}"
    );
}
