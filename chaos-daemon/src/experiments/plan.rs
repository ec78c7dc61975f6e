//! Checks an [`ExperimentSpec`] into a [`Plan`]: validated faults with the experiment's TTL,
//! runnable probes, resolved stop conditions. Every defect is a [`ValidationError`] naming the
//! field (`faults[1].match.cidr`, `probes[0].http.url`, `stop_when[0].probe`).

use std::{collections::BTreeSet, time::Duration};

use super::probe::Probe;
use crate::{
    spec::{ExperimentSpec, FaultSpec},
    validate::{Validated, ValidationError},
};

/// How much longer than the experiment a fault's kernel TTL is: if the daemon dies mid-run,
/// the kernel still ends the faults shortly after the experiment would have.
pub const TTL_MARGIN: Duration = Duration::from_secs(5);
/// Faults one experiment may inject.
pub const MAX_FAULTS: usize = 100;
/// Probes one experiment may have.
pub const MAX_PROBES: usize = 32;
/// Longest hypothesis (every listing carries it).
pub const MAX_HYPOTHESIS: usize = 2000;

/// What ends the injection early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The probe at this index failed this many times in a row.
    Probe {
        /// Index into [`Plan::probes`].
        probe: usize,
        /// Failures in a row.
        failures: u32,
    },
    /// The fault at this index counted more than `above`.
    Counter {
        /// Index into [`Plan::faults`].
        fault: usize,
        /// `affected` (true) or `matched`.
        affected: bool,
        /// Threshold.
        above: u64,
    },
}

/// A checked experiment.
pub struct Plan {
    /// The faults, TTL set, labelled with the experiment id.
    pub faults: Vec<Validated>,
    /// The probes, in spec order.
    pub probes: Vec<Probe>,
    /// Indexes of the `before` probes.
    pub before: Vec<usize>,
    /// Indexes of the `after` probes.
    pub after: Vec<usize>,
    /// The stop conditions.
    pub stops: Vec<Stop>,
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> ValidationError {
    ValidationError::invalid(field, msg)
}

/// Checks `spec`. `validate` checks one fault as `POST /v1/faults` would; `caller` is the
/// (uid, gid) command probes run as; `max_ttl` bounds the duration plus [`TTL_MARGIN`].
pub fn plan(
    spec: &ExperimentSpec,
    id: &str,
    max_ttl: Duration,
    caller: Option<(u32, u32)>,
    validate: &dyn Fn(&FaultSpec) -> Result<Validated, ValidationError>,
) -> Result<Plan, ValidationError> {
    let name = spec.name.trim();
    if name.is_empty() || spec.name.chars().count() > 64 || spec.name.chars().any(char::is_control)
    {
        return Err(invalid("name", "name must be 1-64 printable characters"));
    }
    if spec.hypothesis.chars().count() > MAX_HYPOTHESIS {
        return Err(invalid(
            "hypothesis",
            format!("a hypothesis of at most {MAX_HYPOTHESIS} characters"),
        ));
    }
    if spec.duration.is_zero() {
        return Err(invalid("duration", "duration must be positive"));
    }
    if spec.duration + TTL_MARGIN > max_ttl {
        return Err(invalid(
            "duration",
            format!(
                "duration {} plus the {}s margin exceeds max_ttl {}",
                humantime::format_duration(spec.duration),
                TTL_MARGIN.as_secs(),
                humantime::format_duration(max_ttl)
            ),
        ));
    }
    if spec.faults.is_empty() || spec.faults.len() > MAX_FAULTS {
        return Err(invalid(
            "faults",
            format!("an experiment injects 1-{MAX_FAULTS} faults"),
        ));
    }
    let ttl = humantime::format_duration(spec.duration + TTL_MARGIN).to_string();
    let mut faults = Vec::with_capacity(spec.faults.len());
    let mut names = Vec::with_capacity(spec.faults.len());
    for (i, raw) in spec.faults.iter().enumerate() {
        let at = format!("faults[{i}]");
        let serde_json::Value::Object(map) = raw else {
            return Err(invalid(
                at,
                "a fault is an object, as POST /v1/faults takes",
            ));
        };
        if map.contains_key("ttl") {
            return Err(invalid(
                format!("{at}.ttl"),
                "the experiment's duration sets the faults' TTL: drop ttl",
            ));
        }
        let mut map = map.clone();
        map.insert("ttl".into(), ttl.clone().into());
        let fault: FaultSpec = serde_path_to_error::deserialize(serde_json::Value::Object(map))
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    at.clone()
                } else {
                    format!("{at}.{path}")
                };
                invalid(field, e.into_inner().to_string())
            })?;
        let mut fault = fault;
        fault.labels.insert("experiment".into(), id.to_string());
        if let Some(n) = &fault.name
            && names.contains(&Some(n.clone()))
        {
            return Err(invalid(
                format!("{at}.name"),
                format!("two faults are named {n:?}: stop conditions could not tell them apart"),
            ));
        }
        names.push(fault.name.clone());
        faults.push(validate(&fault).map_err(|e| e.at(&at))?);
    }
    if spec.probes.len() > MAX_PROBES {
        return Err(invalid("probes", format!("at most {MAX_PROBES} probes")));
    }
    let mut probes: Vec<Probe> = Vec::with_capacity(spec.probes.len());
    let mut ids = BTreeSet::new();
    for (i, p) in spec.probes.iter().enumerate() {
        let at = format!("probes[{i}]");
        if p.id.is_empty() || p.id.len() > 64 || !ids.insert(p.id.as_str()) {
            return Err(invalid(
                format!("{at}.id"),
                format!(
                    "probe ids are 1-64 characters and unique; {:?} is not",
                    p.id
                ),
            ));
        }
        probes.push(Probe::check(p, caller).map_err(|(f, m)| {
            invalid(
                if f.is_empty() {
                    at.clone()
                } else {
                    format!("{at}.{f}")
                },
                m,
            )
        })?);
    }
    let index_of = |field: String, id: &str| {
        probes
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| invalid(field, format!("no probe has the id {id:?}")))
    };
    let mut before = Vec::new();
    for (i, id) in spec.steady_state.before.iter().enumerate() {
        before.push(index_of(format!("steady_state.before[{i}]"), id)?);
    }
    let mut after = Vec::new();
    for (i, id) in spec.steady_state.after.iter().enumerate() {
        after.push(index_of(format!("steady_state.after[{i}]"), id)?);
    }
    let mut stops = Vec::new();
    for (i, s) in spec.stop_when.iter().enumerate() {
        let at = format!("stop_when[{i}]");
        stops.push(match (&s.probe, &s.fault) {
            (Some(id), None) => {
                if s.counter.is_some() || s.above.is_some() {
                    return Err(invalid(
                        at,
                        "counter and above go with \"fault\", not \"probe\"",
                    ));
                }
                let failures = s.consecutive_failures.unwrap_or(1);
                if failures == 0 {
                    return Err(invalid(
                        format!("{at}.consecutive_failures"),
                        "consecutive_failures must be at least 1",
                    ));
                }
                Stop::Probe {
                    probe: index_of(format!("{at}.probe"), id)?,
                    failures,
                }
            }
            (None, Some(name)) => {
                if s.consecutive_failures.is_some() {
                    return Err(invalid(
                        at,
                        "consecutive_failures goes with \"probe\", not \"fault\"",
                    ));
                }
                let fault = names
                    .iter()
                    .position(|n| n.as_deref() == Some(name))
                    .ok_or_else(|| {
                        invalid(
                            format!("{at}.fault"),
                            format!("no fault is named {name:?} (give the fault a \"name\")"),
                        )
                    })?;
                let affected = match s.counter.as_deref().unwrap_or("affected") {
                    "affected" => true,
                    "matched" => false,
                    c => {
                        return Err(invalid(
                            format!("{at}.counter"),
                            format!("{c:?}: the counters are \"affected\" and \"matched\""),
                        ));
                    }
                };
                let above = s.above.ok_or_else(|| {
                    invalid(format!("{at}.above"), "give the threshold: \"above\": N")
                })?;
                Stop::Counter {
                    fault,
                    affected,
                    above,
                }
            }
            _ => {
                return Err(invalid(
                    at,
                    "a stop condition names either a \"probe\" or a \"fault\"",
                ));
            }
        });
    }
    Ok(Plan {
        faults,
        probes,
        before,
        after,
        stops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> ExperimentSpec {
        serde_json::from_value(json).unwrap()
    }

    /// Accepts every fault as is (the real checks are `validate`'s, tested there).
    fn accept(f: &FaultSpec) -> Result<Validated, ValidationError> {
        Ok(Validated {
            spec: f.clone(),
            iface: "eth0".into(),
            rules: vec![],
            cgroup: None,
            overrode: None,
        })
    }

    #[test]
    fn faults_get_the_duration_plus_margin_and_the_experiment_label() {
        let s = spec(serde_json::json!({"name": "e", "duration": "30s",
            "faults": [{"name": "f", "match": {"cidr": "10.0.0.1"}, "action": {"kind": "blackhole"}}],
            "probes": [{"id": "p", "command": {"argv": ["true"]}}],
            "stop_when": [{"fault": "f", "above": 10}, {"probe": "p", "consecutive_failures": 3}]}));
        let p = plan(&s, "abc", Duration::from_secs(3600), Some((0, 0)), &accept).unwrap();
        assert_eq!(p.faults[0].spec.ttl, Duration::from_secs(35));
        assert_eq!(p.faults[0].spec.labels["experiment"], "abc");
        assert_eq!(
            p.stops,
            [
                Stop::Counter {
                    fault: 0,
                    affected: true,
                    above: 10
                },
                Stop::Probe {
                    probe: 0,
                    failures: 3
                }
            ]
        );
    }

    #[test]
    fn stop_conditions_and_names_are_checked() {
        let base = serde_json::json!({"name": "e", "duration": "30s",
            "faults": [{"name": "f", "match": {"cidr": "10.0.0.1"}, "action": {"kind": "blackhole"}}]});
        let field = |patch: serde_json::Value| {
            let mut s = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                s[k] = v.clone();
            }
            plan(&spec(s), "x", Duration::from_secs(3600), None, &accept)
                .err()
                .and_then(|e| e.field)
        };
        for (patch, f) in [
            (serde_json::json!({"name": ""}), "name"),
            (serde_json::json!({"duration": "0s"}), "duration"),
            (serde_json::json!({"duration": "3599s"}), "duration"),
            (serde_json::json!({"stop_when": [{}]}), "stop_when[0]"),
            (
                serde_json::json!({"stop_when": [{"fault": "f"}]}),
                "stop_when[0].above",
            ),
            (
                serde_json::json!({"stop_when": [{"fault": "g", "above": 1}]}),
                "stop_when[0].fault",
            ),
            (
                serde_json::json!({"stop_when": [{"fault": "f", "above": 1, "consecutive_failures": 2}]}),
                "stop_when[0]",
            ),
            (
                serde_json::json!({"faults": [{"name": "f", "match": {"cidr": "10.0.0.1"}, "action": {"kind": "blackhole"}}, {"name": "f", "match": {"cidr": "10.0.0.2"}, "action": {"kind": "blackhole"}}]}),
                "faults[1].name",
            ),
            (serde_json::json!({"faults": ["x"]}), "faults[0]"),
            (
                serde_json::json!({"faults": [{"match": {"cidr": "10.0.0.1"}, "action": {"kind": "nope"}}]}),
                "faults[0].action.kind",
            ),
            (
                serde_json::json!({"probes": [{"id": "p", "command": {"argv": ["true"]}}]}),
                "probes[0].command",
            ),
        ] {
            assert_eq!(field(patch.clone()), Some(f.to_string()), "{patch}");
        }
    }
}
