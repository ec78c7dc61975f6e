//! Experiments: the daemon runs them itself, so a stop condition lifts the faults in
//! milliseconds and no client has to stay connected. [`Experiments`] is the registry the server
//! uses; each experiment is one task ([`run`]) that owns its faults from injection to lifting,
//! and the faults' kernel TTL (duration + [`plan::TTL_MARGIN`]) ends them if the daemon dies.

mod plan;
mod probe;
mod run;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

pub use plan::{Plan, TTL_MARGIN, plan};
pub use probe::{Outcome, Probe};
use tokio::sync::{Notify, watch};

use crate::{
    audit::Caller,
    faults::{FaultTable, rfc3339},
    spec::{Abort, Experiment, ExperimentFault, ExperimentSpec, ExperimentState, ProbeResult},
};

/// Probe runs an experiment keeps (the most recent).
const TIMELINE: usize = 1000;
/// Finished experiments kept for `GET` (the oldest are forgotten first).
const KEEP_FINISHED: usize = 100;
/// Experiments running at once: each probes on its own, so a careless client cannot start
/// an unbounded number of probe loops.
pub const MAX_RUNNING: usize = 16;

/// What an experiment's task writes and the API reads.
struct Record {
    id: String,
    spec: ExperimentSpec,
    state: ExperimentState,
    created: SystemTime,
    start: Instant,
    injected_at_ms: Option<u64>,
    lifted_at_ms: Option<u64>,
    ended_ms: Option<u64>,
    faults: Vec<ExperimentFault>,
    timeline: VecDeque<ProbeResult>,
    abort: Option<Abort>,
    reason: Option<String>,
    /// No fault affected a packet during a full injection.
    untested: bool,
    /// (interface, direction, match) of each fault: what no other running experiment may touch.
    touches: Vec<String>,
}

impl Record {
    fn view(&self) -> Experiment {
        Experiment {
            id: self.id.clone(),
            spec: self.spec.clone(),
            state: self.state,
            created_at: rfc3339(self.created),
            injected_at_ms: self.injected_at_ms,
            lifted_at_ms: self.lifted_at_ms,
            elapsed_ms: self
                .ended_ms
                .unwrap_or_else(|| self.start.elapsed().as_millis() as u64),
            faults: self.faults.clone(),
            timeline: self.timeline.iter().cloned().collect(),
            abort: self.abort.clone(),
            reason: self.reason.clone(),
            untested: self.untested,
        }
    }
}

/// One experiment: its record and the handle that stops it.
struct Entry {
    record: Arc<Mutex<Record>>,
    stop: Arc<Notify>,
    done: watch::Receiver<bool>,
}

/// Why an experiment could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A running experiment already touches the same interface and match.
    #[error(
        "experiment {0} is already running with a fault on {1}: one experiment per interface and match"
    )]
    Busy(String, String),
    /// [`MAX_RUNNING`] experiments are running.
    #[error("{MAX_RUNNING} experiments are running already: wait for one to end or stop one")]
    TooMany,
}

/// The experiments of this daemon.
#[derive(Clone, Default)]
pub struct Experiments {
    inner: Arc<Mutex<BTreeMap<String, Entry>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// What a fault touches, for the one-experiment-per-match rule.
fn touch(v: &crate::validate::Validated) -> String {
    format!(
        "{} {}",
        v.iface.escape_default(),
        v.spec.matches.describe(v.spec.direction)
    )
}

impl Experiments {
    /// A fresh id: 12 hex digits, never reused in this daemon.
    pub fn fresh_id(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        format!("{:012x}", h.finish() >> 16)
    }

    /// Whether an experiment touching `touches` may start beside the running ones (what
    /// [`Experiments::start`] checks again, atomically, when it starts it).
    pub fn check(&self, spec: &ExperimentSpec, plan: &Plan) -> Result<(), StartError> {
        let touches: Vec<String> = plan.faults.iter().map(touch).collect();
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::admit(&all, spec, &touches)
    }

    fn admit(
        all: &BTreeMap<String, Entry>,
        spec: &ExperimentSpec,
        touches: &[String],
    ) -> Result<(), StartError> {
        let running = all
            .values()
            .filter(|e| {
                !e.record
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .state
                    .is_final()
            })
            .count();
        if running >= MAX_RUNNING {
            return Err(StartError::TooMany);
        }
        for (other, e) in all.iter() {
            let r = e.record.lock().unwrap_or_else(|p| p.into_inner());
            if r.state.is_final() || spec.dry_run || r.spec.dry_run {
                continue;
            }
            if let Some(t) = touches.iter().find(|t| r.touches.contains(t)) {
                return Err(StartError::Busy(other.clone(), t.clone()));
            }
        }
        Ok(())
    }

    /// Starts an experiment whose plan was checked; answers at once with its first view.
    pub fn start(
        &self,
        id: String,
        spec: ExperimentSpec,
        plan: Plan,
        table: FaultTable,
        caller: Caller,
    ) -> Result<Experiment, StartError> {
        let touches: Vec<String> = plan.faults.iter().map(touch).collect();
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::admit(&all, &spec, &touches)?;
        let record = Arc::new(Mutex::new(Record {
            id: id.clone(),
            faults: plan
                .faults
                .iter()
                .map(|v| ExperimentFault {
                    name: v.spec.name.clone(),
                    id: None,
                    summary: v.spec.summary(),
                    counters: Default::default(),
                })
                .collect(),
            spec,
            state: ExperimentState::CheckingSteadyState,
            created: SystemTime::now(),
            start: Instant::now(),
            injected_at_ms: None,
            lifted_at_ms: None,
            ended_ms: None,
            timeline: VecDeque::new(),
            abort: None,
            reason: None,
            untested: false,
            touches,
        }));
        let view = record.lock().unwrap_or_else(|p| p.into_inner()).view();
        let stop = Arc::new(Notify::new());
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(run::run(
            plan,
            record.clone(),
            stop.clone(),
            table,
            caller,
            done_tx,
        ));
        all.insert(id, Entry { record, stop, done });
        forget_old(&mut all);
        Ok(view)
    }

    /// Every experiment, oldest first.
    pub fn list(&self) -> Vec<Experiment> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Experiment> = all
            .values()
            .map(|e| e.record.lock().unwrap_or_else(|p| p.into_inner()).view())
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// One experiment.
    pub fn get(&self, id: &str) -> Option<Experiment> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.get(id)
            .map(|e| e.record.lock().unwrap_or_else(|p| p.into_inner()).view())
    }

    /// Stops an experiment (its faults lifted) and waits for it to be over; `None` if unknown.
    pub async fn stop(&self, id: &str) -> Option<Experiment> {
        let (stop, mut done) = {
            let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let e = all.get(id)?;
            (e.stop.clone(), e.done.clone())
        };
        stop.notify_one();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), done.wait_for(|d| *d)).await;
        self.get(id)
    }

    /// Stops every running experiment (the panic button, shutdown).
    pub fn stop_all(&self) {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for e in all.values() {
            e.stop.notify_one();
        }
    }
}

/// Forgets the oldest finished experiments beyond [`KEEP_FINISHED`].
fn forget_old(all: &mut BTreeMap<String, Entry>) {
    let mut finished: Vec<(SystemTime, String)> = all
        .iter()
        .filter_map(|(id, e)| {
            let r = e.record.lock().unwrap_or_else(|p| p.into_inner());
            r.state.is_final().then(|| (r.created, id.clone()))
        })
        .collect();
    if finished.len() <= KEEP_FINISHED {
        return;
    }
    finished.sort();
    for (_, id) in &finished[..finished.len() - KEEP_FINISHED] {
        all.remove(id);
    }
}
