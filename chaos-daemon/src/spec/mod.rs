//! The API's JSON types (**contract**, see the README): what clients send and get back.
//! Syntax only; meaning is checked by [`crate::validate`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod action;
mod experiment;
mod matches;
mod selector;

pub use action::{ActionSpec, DistributionSpec};
pub use experiment::{
    Abort, CommandProbe, Expect, Experiment, ExperimentFault, ExperimentSpec, ExperimentState,
    HttpProbe, ProbeResult, ProbeSpec, PrometheusProbe, StatusExpect, SteadyState, StopCondition,
};
pub use matches::{MatchSpec, ProtocolSpec};
pub use selector::{Selector, SelectorError, check_label};

/// A fault as a client describes it (`POST /v1/faults`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Free-form label shown in listings and metrics (≤ 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels to select faults by (`GET`/`DELETE /v1/faults?label=KEY=VALUE`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Interface to inject on; defaults to the one holding the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `egress` (default, matches destinations) or `ingress` (matches sources).
    #[serde(default)]
    pub direction: DirectionSpec,
    /// What traffic the fault applies to.
    #[serde(rename = "match", default)]
    pub matches: MatchSpec,
    /// What happens to that traffic.
    pub action: ActionSpec,
    /// Share of matching packets affected, 0 < percent ≤ 100 (default 100).
    #[serde(default = "hundred")]
    pub percent: f64,
    /// How long the fault lives (humantime, e.g. "90s", "5m"); required, capped by `max_ttl`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Allow a fault that touches a protected path (SSH sessions, protected CIDRs/ports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// With `match.cgroup`: the fault also ends once processes were seen in the cgroup and
    /// none are left (what `chaosctl exec` asks for: the command is over, even if chaosctl
    /// was killed). Without it only the cgroup's removal ends the fault early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_cgroup_empty: bool,
}

fn hundred() -> f64 {
    100.0
}

/// Traffic direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionSpec {
    /// Leaving the host; matches the destination.
    #[default]
    Egress,
    /// Arriving at the host; matches the source.
    Ingress,
}

impl FaultSpec {
    /// The percent of matching packets the action is applied to: `percent` (the share), times
    /// loss's own percent for a loss.
    pub fn effective_percent(&self) -> f64 {
        action::effective_percent(&self.action, self.percent)
    }

    /// The one-line description of a fault used everywhere a fault is named in one line: the
    /// audit log, `chaosctl`, error messages. "loss: drop 30% to 10.0.3.0/24 tcp port 6379 on
    /// eth0, ttl 5m"; names and interfaces are escaped, so a hostile name cannot forge a line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} {} on {}, ttl {}",
            self.action.kind(),
            self.action.describe(self.percent),
            self.matches.describe(self.direction),
            self.interface
                .as_deref()
                .unwrap_or("(default)")
                .escape_default(),
            humantime::format_duration(self.ttl),
        );
        if let Some(name) = &self.name {
            s.push_str(&format!(", name \"{}\"", name.escape_default()));
        }
        s
    }
}

impl DirectionSpec {
    /// The JSON spelling: `egress`, `ingress`.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectionSpec::Egress => "egress",
            DirectionSpec::Ingress => "ingress",
        }
    }
}

impl std::fmt::Display for DirectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Packet counters of a fault, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersView {
    /// Packets that matched.
    pub matched: u64,
    /// Bytes of those packets.
    pub matched_bytes: u64,
    /// Packets the action was applied to.
    pub affected: u64,
}

/// An installed fault as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Fault id (use it with `DELETE /v1/faults/{id}`).
    pub id: String,
    /// The spec, with defaults filled in (interface, protocol).
    pub spec: FaultSpec,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Expiry time, RFC 3339 UTC.
    pub expires_at: String,
    /// Milliseconds left before the fault lifts.
    pub remaining_ms: u64,
    /// Packet counters.
    pub counters: CountersView,
    /// The percent of matching packets the action is applied to: `percent` times loss's own
    /// percent (a loss of 20 % on half the packets is 10 %), the figure netem users think in.
    #[serde(default)]
    pub effective_percent: f64,
    /// Who installed it (absent for faults the daemon made itself, or from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<CreatedBy>,
}

/// The client that installed a fault, as SO_PEERCRED saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedBy {
    /// User id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Process name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// `PATCH /v1/faults/{id}`: what to change in a running fault, atomically (each field given
/// replaces the fault's; what it matches never changes: remove it and add another).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    /// The time left from now (humantime): extends or shortens the fault; ≤ `max_ttl`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// The action's parameters; its `kind` must stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionSpec>,
    /// Share of matching packets affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Error body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong and, where possible, what to do.
    pub error: String,
    /// JSON path of the offending field (`ttl`, `match.port`, `[3].action.percent`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /v1/health` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always "ok" when the daemon answers.
    pub status: String,
    /// Daemon version.
    pub version: String,
    /// Kernel release.
    pub kernel: String,
    /// Interfaces with programs attached.
    pub interfaces: Vec<String>,
    /// The interface faults go to when they name none (the default route's), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_interface: Option<String>,
    /// Milliseconds since the daemon started serving.
    #[serde(default)]
    pub uptime_ms: u64,
    /// Kernel features.
    pub features: Features,
    /// Active faults.
    pub faults: usize,
    /// What the daemon accepts.
    pub limits: Limits,
    /// The dead-man switch (absent in a process that did not start one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadman: Option<DeadmanHealth>,
}

/// The daemon's limits as `GET /v1/health` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest TTL a fault may ask for (humantime, e.g. "1h").
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Faults across all interfaces.
    pub max_rules: u32,
}

/// The dead-man switch as `GET /v1/health` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadmanHealth {
    /// Rules are ignored by the kernel once the heartbeat is this old.
    pub interval_ms: u64,
    /// Age of the heartbeat the kernel sees now (`None` before the first program loads).
    pub heartbeat_age_ms: Option<u64>,
    /// Tripped and not yet re-armed (new faults get 503 meanwhile).
    pub tripped: bool,
    /// Times it tripped since the daemon started.
    pub trips: u64,
}

/// Kernel features relevant to the fault kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// `sch_fq` is available (needed for latency/bandwidth).
    pub fq: bool,
    /// TCX links are available (kernel ≥ 6.6).
    pub tcx: bool,
}

/// `DELETE /v1/faults` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// How many faults were removed.
    pub removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_json_spelling() {
        for d in [DirectionSpec::Egress, DirectionSpec::Ingress] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.to_string());
        }
        for p in [
            ProtocolSpec::Any,
            ProtocolSpec::Tcp,
            ProtocolSpec::Udp,
            ProtocolSpec::Icmp,
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.to_string());
        }
    }
}
