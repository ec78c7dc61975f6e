//! One experiment's life: steady state → inject → watch (probes, counters, stop) → lift →
//! steady state again. The faults are lifted on every path out of the injection, before
//! anything else is recorded.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{Notify, mpsc, watch};

use super::{Outcome, Plan, Record, TIMELINE, plan::Stop};
use crate::{
    audit::{self, Caller},
    faults::FaultTable,
    spec::{Abort, ExperimentState, ProbeResult},
};

/// How often fault counters are read for stop conditions (and to notice faults removed by
/// someone else, such as the panic button).
const COUNTER_POLL: Duration = Duration::from_millis(100);
/// How long the `after` probes get to pass again once the faults are lifted.
const RECOVERY: Duration = Duration::from_secs(10);

fn lock(r: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

fn note(record: &Mutex<Record>, probe: &str, phase: &str, o: &Outcome) {
    let mut r = lock(record);
    let at_ms = r.start.elapsed().as_millis() as u64;
    if r.timeline.len() == TIMELINE {
        r.timeline.pop_front();
    }
    r.timeline.push_back(ProbeResult {
        probe: probe.to_string(),
        phase: phase.to_string(),
        at_ms,
        ok: o.ok,
        latency_ms: (o.latency.as_secs_f64() * 1e4).round() / 10.0,
        detail: o.detail.clone(),
    });
}

fn finish(record: &Mutex<Record>, state: ExperimentState, reason: Option<String>, caller: Caller) {
    let mut r = lock(record);
    r.state = state;
    if reason.is_some() {
        r.reason = reason;
    }
    r.ended_ms = Some(r.start.elapsed().as_millis() as u64);
    let state = serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    // An abort is the experiment's own doing: which stop condition, and what it saw.
    let why = match &r.abort {
        Some(a) => Some(format!("stop condition {}: {}", a.by, a.reason)),
        None => r.reason.clone(),
    };
    audit::experiment(&r.id, &r.spec.name, Some((&state, why.as_deref())), caller);
}

/// How the injection ended.
enum Ended {
    Duration,
    Aborted {
        by: String,
        reason: String,
        seen: Instant,
    },
    Stopped(String),
}

/// Runs the experiment to its end; `done` is set once it is over.
pub async fn run(
    plan: Plan,
    record: Arc<Mutex<Record>>,
    stop: Arc<Notify>,
    table: FaultTable,
    caller: Caller,
    done: watch::Sender<bool>,
) {
    // The faults it creates and lifts are audited as the experiment's, for its caller.
    let caller = {
        let r = lock(&record);
        audit::experiment(&r.id, &r.spec.name, None, caller);
        caller.in_experiment(&r.id)
    };
    let (state, reason) = life(&plan, &record, &stop, &table, caller).await;
    finish(&record, state, reason, caller);
    let _ = done.send(true);
}

async fn life(
    plan: &Plan,
    record: &Arc<Mutex<Record>>,
    stop: &Notify,
    table: &FaultTable,
    caller: Caller,
) -> (ExperimentState, Option<String>) {
    for &i in &plan.before {
        let p = &plan.probes[i];
        let o = tokio::select! {
            o = p.run() => o,
            _ = stop.notified() => {
                return (ExperimentState::Stopped, Some("stopped before the injection".into()));
            }
        };
        note(record, &p.id, "before", &o);
        if !o.ok {
            return (
                ExperimentState::NotStarted,
                Some(format!(
                    "steady state does not hold before the start: probe {} {}; nothing injected",
                    p.id, o.detail
                )),
            );
        }
    }
    let (duration, dry_run) = {
        let r = lock(record);
        (r.spec.duration, r.spec.dry_run)
    };
    if dry_run {
        return (
            ExperimentState::Completed,
            Some("dry run: validated, steady state checked, nothing injected".into()),
        );
    }
    let created = match table.create(plan.faults.clone(), caller).await {
        Ok(f) => f,
        Err(e) => {
            return (
                ExperimentState::Failed,
                Some(format!("the faults could not be injected: {e}")),
            );
        }
    };
    let ids: Vec<String> = created.iter().map(|f| f.id.clone()).collect();
    {
        let mut r = lock(record);
        r.injected_at_ms = Some(r.start.elapsed().as_millis() as u64);
        r.state = ExperimentState::Injecting;
        for (view, f) in r.faults.iter_mut().zip(&created) {
            view.id = Some(f.id.clone());
        }
    }
    let ended = watch_injection(plan, record, stop, table, &ids, duration).await;
    if matches!(ended, Ended::Duration) {
        // The counters as the faults end, not as of the last poll: whether they affected
        // anything decides if the hypothesis was tested at all.
        if let Ok(now) = table.get_many(ids.clone()).await {
            store_counters(record, &now);
        }
    }
    // Lift first, record after.
    let lifted = table.remove_many(ids.clone(), caller).await;
    let lifted_at = Instant::now();
    {
        let mut r = lock(record);
        r.lifted_at_ms = Some(r.start.elapsed().as_millis() as u64);
        for view in &mut r.faults {
            view.id = None;
        }
        r.state = ExperimentState::Recovering;
    }
    if let Err(e) = lifted {
        return (
            ExperimentState::Failed,
            Some(format!(
                "lifting the faults failed: {e}; their kernel TTL ends them"
            )),
        );
    }
    match ended {
        Ended::Duration => {}
        Ended::Stopped(why) => return (ExperimentState::Stopped, Some(why)),
        Ended::Aborted { by, reason, seen } => {
            let mut r = lock(record);
            r.abort = Some(Abort {
                at_ms: (seen - r.start).as_millis() as u64,
                breach_to_lifted_ms: ((lifted_at - seen).as_secs_f64() * 1e4).round() / 10.0,
                by,
                reason,
            });
            return (ExperimentState::Aborted, None);
        }
    }
    let recovered = recover(plan, record).await;
    let untested = {
        let mut r = lock(record);
        r.untested = r.faults.iter().all(|f| f.counters.affected == 0);
        r.untested
    };
    let untested = untested.then(|| {
        "no fault affected a packet during the injection: the hypothesis was not tested".to_string()
    });
    match recovered {
        None => (ExperimentState::Completed, untested),
        Some(why) => (ExperimentState::Deviated, Some(why)),
    }
}

/// Copies the faults' counters (as `get_many` returned them) into the record.
fn store_counters(record: &Mutex<Record>, now: &[Option<crate::spec::Fault>]) {
    let mut r = lock(record);
    for (view, f) in r.faults.iter_mut().zip(now) {
        if let Some(f) = f {
            view.counters = f.counters;
        }
    }
}

/// Runs the probes and reads the counters until the duration is over, a stop condition
/// fires, or the experiment is stopped.
async fn watch_injection(
    plan: &Plan,
    record: &Mutex<Record>,
    stop: &Notify,
    table: &FaultTable,
    ids: &[String],
    duration: Duration,
) -> Ended {
    let end = tokio::time::Instant::now() + duration;
    let (tx, mut rx) = mpsc::channel::<(usize, Outcome)>(64);
    let mut probes = tokio::task::JoinSet::new();
    for (i, p) in plan.probes.iter().enumerate() {
        let (p, tx) = (p.clone(), tx.clone());
        probes.spawn(async move {
            let mut tick = tokio::time::interval(p.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.send((i, p.run().await)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut failures = vec![0u32; plan.probes.len()];
    let mut counters = tokio::time::interval(COUNTER_POLL);
    let ended = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break Ended::Duration,
            _ = stop.notified() => break Ended::Stopped("stopped by request".into()),
            Some((i, o)) = rx.recv() => {
                let seen = Instant::now();
                let p = &plan.probes[i];
                note(record, &p.id, "during", &o);
                failures[i] = if o.ok { 0 } else { failures[i] + 1 };
                let fired = plan.stops.iter().any(|s| matches!(s,
                    Stop::Probe { probe, failures: n } if *probe == i && failures[i] >= *n));
                if fired {
                    break Ended::Aborted {
                        by: format!("probe {}", p.id),
                        reason: format!("{} failed {} time(s) in a row: {}", p.id, failures[i], o.detail),
                        seen,
                    };
                }
            }
            _ = counters.tick() => {
                let Ok(now) = table.get_many(ids.to_vec()).await else { continue };
                let seen = Instant::now();
                if now.iter().any(Option::is_none) {
                    break Ended::Stopped(
                        "a fault was removed outside the experiment (DELETE, the panic button or its cgroup or interface went away)".into(),
                    );
                }
                store_counters(record, &now);
                let r = lock(record);
                let breach = plan.stops.iter().find_map(|s| match s {
                    Stop::Counter { fault, affected, above } => {
                        let c = r.faults[*fault].counters;
                        let v = if *affected { c.affected } else { c.matched };
                        (v > *above).then(|| {
                            let name = r.faults[*fault].name.clone().unwrap_or_default();
                            let counter = if *affected { "affected" } else { "matched" };
                            (format!("fault {name} {counter}"), format!("{counter} = {v} > {above}"))
                        })
                    }
                    Stop::Probe { .. } => None,
                });
                if let Some((by, reason)) = breach {
                    break Ended::Aborted { by, reason, seen };
                }
            }
        }
    };
    probes.abort_all();
    ended
}

/// Runs the `after` probes until each passes or [`RECOVERY`] is over; why not, if not.
async fn recover(plan: &Plan, record: &Mutex<Record>) -> Option<String> {
    let deadline = Instant::now() + RECOVERY;
    for &i in &plan.after {
        let p = &plan.probes[i];
        loop {
            let o = p.run().await;
            note(record, &p.id, "after", &o);
            if o.ok {
                break;
            }
            if Instant::now() + p.interval > deadline {
                return Some(format!(
                    "steady state not back {}s after the faults were lifted: probe {} {}",
                    RECOVERY.as_secs(),
                    p.id,
                    o.detail
                ));
            }
            tokio::time::sleep(p.interval).await;
        }
    }
    None
}
