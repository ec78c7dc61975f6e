//! Experiments (`/v1/experiments`): a hypothesis, faults injected for a bounded time, probes
//! that check the steady state before and after, and stop conditions that end the injection at
//! once. What clients send ([`ExperimentSpec`]) and get back ([`Experiment`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An experiment as a client describes it (`POST /v1/experiments`; `chaosctl run FILE.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Short name (≤ 64 characters), shown in listings and given to the faults as a label.
    pub name: String,
    /// What is expected to hold while the faults are in.
    #[serde(default)]
    pub hypothesis: String,
    /// The faults, injected together (all or none), without `ttl`: the experiment's duration
    /// sets it.
    pub faults: Vec<serde_json::Value>,
    /// How long the faults stay in (humantime).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Checks run before, during and after the injection.
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    /// Which probes must pass before the injection starts and after it ends.
    #[serde(default)]
    pub steady_state: SteadyState,
    /// Conditions that end the injection at once.
    #[serde(default)]
    pub stop_when: Vec<StopCondition>,
    /// Validate, resolve and run the `before` probes; inject nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The steady-state probes (by id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Must pass before anything is injected.
    #[serde(default)]
    pub before: Vec<String>,
    /// Must pass again after the faults are lifted, or the experiment `deviated`.
    #[serde(default)]
    pub after: Vec<String>,
}

/// One probe: an id, exactly one source, how often, and what to expect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Name stop conditions and the steady state refer to.
    pub id: String,
    /// An HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// A command (run with the caller's user and group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandProbe>,
    /// A Prometheus instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProbe>,
    /// Time between two runs during the injection (default 1s).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub interval: Duration,
    /// A run taking longer fails (default 1s).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub timeout: Duration,
    /// What a passing run looks like.
    #[serde(default)]
    pub expect: Expect,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// `http`: a plain-HTTP request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `http://host:port/path` (no TLS).
    pub url: String,
    /// GET (default), HEAD, POST, PUT or DELETE.
    #[serde(default = "get")]
    pub method: String,
}

fn get() -> String {
    "GET".into()
}

/// `command`: a program and its arguments (no shell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    /// Program and arguments.
    pub argv: Vec<String>,
}

/// `prometheus`: an instant query whose single value is checked against `expect.range`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProbe {
    /// The server, `http://host:9090`.
    pub url: String,
    /// PromQL.
    pub query: String,
}

/// What a passing probe run looks like; each field applies to some sources only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status: `"200-299"` (default), `200`, or a list `[200, 204]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusExpect>,
    /// HTTP: the answer must come within this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub max_latency: Option<Duration>,
    /// HTTP: the body (first 64 KiB) must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// Command: the exit code (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Prometheus: the value must lie in `[low, high]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

/// Accepted HTTP statuses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusExpect {
    /// One status.
    One(u16),
    /// Any of these.
    List(Vec<u16>),
    /// A range, `"200-299"`, or one status as a string.
    Range(String),
}

/// A condition that aborts the injection: a probe failing `consecutive_failures` times in a
/// row, or a fault's counter going over `above`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCondition {
    /// A probe id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// Failed runs in a row that abort (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// A fault's `name` (from `faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// `matched` or `affected` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Abort once the counter exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<u64>,
}

/// Where an experiment is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentState {
    /// Running the `before` probes; nothing injected.
    CheckingSteadyState,
    /// The faults are in.
    Injecting,
    /// The faults are lifted; running the `after` probes.
    Recovering,
    /// The hypothesis held: steady state before and after, no stop condition fired.
    Completed,
    /// The steady state did not come back after the faults were lifted.
    Deviated,
    /// A stop condition fired; the faults were lifted at once.
    Aborted,
    /// Stopped by `DELETE /v1/experiments/{id}`, the panic button or shutdown.
    Stopped,
    /// The steady state did not hold before the start: nothing was injected.
    NotStarted,
    /// An internal error; any faults were lifted.
    Failed,
}

impl ExperimentState {
    /// True once the experiment is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ExperimentState::CheckingSteadyState
                | ExperimentState::Injecting
                | ExperimentState::Recovering
        )
    }
}

/// One probe run, as the timeline records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probe.
    pub probe: String,
    /// `before`, `during` or `after`.
    pub phase: String,
    /// Milliseconds since the experiment was created.
    pub at_ms: u64,
    /// Whether it met its expectation.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: f64,
    /// What was seen ("status 200", "exit 1", "value 0.02", "timed out after 300ms").
    pub detail: String,
}

/// Why an injection was aborted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    /// `probe <id>` or `fault <name> <counter>`.
    pub by: String,
    /// What was seen.
    pub reason: String,
    /// Milliseconds since the experiment was created when the breach was seen.
    pub at_ms: u64,
    /// From the breach being seen to every fault being gone.
    pub breach_to_lifted_ms: f64,
}

/// One of an experiment's faults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentFault {
    /// Its `name`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fault's id while it is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its one-line summary.
    pub summary: String,
    /// Counters, as last read.
    pub counters: super::CountersView,
}

/// An experiment as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Experiment id.
    pub id: String,
    /// What was asked for.
    pub spec: ExperimentSpec,
    /// Where it is.
    pub state: ExperimentState,
    /// Created, RFC 3339 UTC.
    pub created_at: String,
    /// Milliseconds since creation when the faults went in / came out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_at_ms: Option<u64>,
    /// Milliseconds since creation when the faults were lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at_ms: Option<u64>,
    /// Milliseconds since creation, now or when it ended.
    pub elapsed_ms: u64,
    /// The faults and their counters.
    pub faults: Vec<ExperimentFault>,
    /// Probe runs, oldest first (the most recent 1,000).
    pub timeline: Vec<ProbeResult>,
    /// Set when a stop condition fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    /// Why it failed, was stopped or did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The faults were in force for the whole duration and none affected a packet: the
    /// hypothesis was not tested (set on `completed` and `deviated`; `chaosctl run` exits 6
    /// for a completed one and reports its injection as skipped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untested: bool,
}
