//! The dead-man switch. A dedicated OS thread — not a runtime worker, and taking no lock the
//! API holds while it works — writes a CLOCK_MONOTONIC heartbeat into the `HEARTBEAT` map of
//! every loaded object several times per interval. The programs ignore every rule once the
//! beat is older than the interval, so the faults of a daemon that died (a clsact filter on a
//! pre-TCX kernel outlives it) or hangs (SIGSTOP, a deadlock, a starved runtime) lift in the
//! kernel within the interval.
//!
//! When the thread itself finds a gap longer than the interval (the process was stopped or
//! starved), the kernel has already lifted the faults; the switch *trips*: it stops beating,
//! so they stay lifted, and [`Switch::tripped`] wakes the daemon, which ends them (audited)
//! and [`Switch::rearm`]s. A fault whose safety net fired never comes back by itself.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use chaos_common::Heartbeat;

use super::Error;
use crate::clock::monotonic_ns;

/// Every loaded object's heartbeat map, by registration id.
static MAPS: Mutex<Vec<(u64, Array<MapData, Heartbeat>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The running switch, if the daemon started one (tests and benchmarks do not).
static SWITCH: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

struct Shared {
    interval_ns: u64,
    /// The thread's last beat (0: none yet, or re-armed).
    last_beat: AtomicU64,
    tripped: AtomicBool,
    /// Length of the gap that tripped the switch, ns.
    gap_ns: AtomicU64,
    trips: AtomicU64,
    wake: tokio::sync::Notify,
}

/// Keeps an object's heartbeat map beating while it lives.
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&MAPS).retain(|(id, _)| *id != self.0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes `ebpf`'s heartbeat map into the switch. If the switch runs, the map gets a beat at
/// once, so rules installed right after are protected from the start.
pub fn register(ebpf: &mut Ebpf) -> Result<Registration, Error> {
    let map = ebpf
        .take_map("HEARTBEAT")
        .ok_or_else(|| Error::Load("map HEARTBEAT missing from the eBPF object".into()))?;
    let mut map: Array<MapData, Heartbeat> = Array::try_from(map).map_err(|source| Error::Map {
        map: "HEARTBEAT",
        source,
    })?;
    if let Some(s) = lock(&SWITCH).clone()
        && !s.tripped.load(Ordering::SeqCst)
    {
        beat(&mut map, monotonic_ns(), s.interval_ns)?;
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&MAPS).push((id, map));
    Ok(Registration(id))
}

fn beat(map: &mut Array<MapData, Heartbeat>, now: u64, interval_ns: u64) -> Result<(), Error> {
    let value = Heartbeat {
        beat_ns: now,
        interval_ns,
    };
    map.set(0, value, 0).map_err(|source| Error::Map {
        map: "HEARTBEAT",
        source,
    })
}

/// What the switch reports (`GET /v1/health`, `/metrics`).
#[derive(Clone, Copy, Debug)]
pub struct Status {
    /// The configured interval.
    pub interval: Duration,
    /// Age of the beat the kernel sees now (read back from a map); `None` with no map loaded.
    pub heartbeat_age: Option<Duration>,
    /// The switch tripped and the daemon has not re-armed it yet.
    pub tripped: bool,
    /// Times it tripped since start.
    pub trips: u64,
}

/// Handle of the running switch.
#[derive(Clone)]
pub struct Switch(Arc<Shared>);

/// Starts the switch with `interval` (the daemon does this once, before loading programs).
pub fn start(interval: Duration) -> Switch {
    let interval_ns = interval.as_nanos().min(u64::MAX as u128) as u64;
    let shared = Arc::new(Shared {
        interval_ns,
        last_beat: AtomicU64::new(0),
        tripped: AtomicBool::new(false),
        gap_ns: AtomicU64::new(0),
        trips: AtomicU64::new(0),
        wake: tokio::sync::Notify::new(),
    });
    *lock(&SWITCH) = Some(shared.clone());
    // Four beats per interval: one late wake-up never trips it.
    let period = (interval / 4).max(Duration::from_millis(10));
    let s = shared.clone();
    std::thread::Builder::new()
        .name("chaos-deadman".into())
        .spawn(move || {
            loop {
                tick(&s);
                std::thread::sleep(period);
            }
        })
        .expect("spawning the dead-man thread");
    Switch(shared)
}

fn tick(s: &Shared) {
    let now = monotonic_ns();
    if s.tripped.load(Ordering::SeqCst) {
        return;
    }
    let last = s.last_beat.load(Ordering::SeqCst);
    if last != 0 && now.saturating_sub(last) > s.interval_ns {
        s.gap_ns.store(now - last, Ordering::SeqCst);
        s.tripped.store(true, Ordering::SeqCst);
        s.trips.fetch_add(1, Ordering::SeqCst);
        s.wake.notify_one();
        return;
    }
    for (_, map) in lock(&MAPS).iter_mut() {
        if let Err(e) = beat(map, now, s.interval_ns) {
            tracing::error!(error = %e, "cannot write the heartbeat");
        }
    }
    s.last_beat.store(now, Ordering::SeqCst);
}

impl Switch {
    /// Resolves when the switch trips, with the gap that tripped it.
    pub async fn tripped(&self) -> Duration {
        loop {
            let notified = self.0.wake.notified();
            if self.0.tripped.load(Ordering::SeqCst) {
                return Duration::from_nanos(self.0.gap_ns.load(Ordering::SeqCst));
            }
            notified.await;
        }
    }

    /// Beats again (after the daemon ended the faults the kernel had lifted).
    pub fn rearm(&self) {
        self.0.last_beat.store(0, Ordering::SeqCst);
        self.0.tripped.store(false, Ordering::SeqCst);
        tick(&self.0);
    }
}

/// Whether the switch has tripped and not been re-armed: new faults would be inert, so they
/// are refused meanwhile.
pub fn is_tripped() -> bool {
    lock(&SWITCH)
        .as_ref()
        .is_some_and(|s| s.tripped.load(Ordering::SeqCst))
}

/// The switch's status, if it runs.
pub fn status() -> Option<Status> {
    let s = lock(&SWITCH).clone()?;
    let now = monotonic_ns();
    let heartbeat_age = lock(&MAPS)
        .first()
        .and_then(|(_, m)| m.get(&0, 0).ok())
        .filter(|h| h.beat_ns != 0)
        .map(|h| Duration::from_nanos(now.saturating_sub(h.beat_ns)));
    Some(Status {
        interval: Duration::from_nanos(s.interval_ns),
        heartbeat_age,
        tripped: s.tripped.load(Ordering::SeqCst),
        trips: s.trips.load(Ordering::SeqCst),
    })
}
