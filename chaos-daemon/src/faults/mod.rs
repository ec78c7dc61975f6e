//! The fault table and its timer. [`FaultTable`] is the shared handle the server uses: every
//! change runs on a blocking thread (a 100,000-rule batch writes maps for a second or more, and
//! must not hold an async worker), health reads a summary that needs no lock, and the table's
//! own task ends faults at their deadline, as tokio's mini-redis `Db` purges expired keys. The
//! task stops when the [`TableGuard`] is dropped.

mod error;
mod ids;
mod table;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

pub use error::FaultError;
pub use table::{Faults, Summary, rfc3339};
use tokio::sync::{Notify, watch};

use crate::{
    audit::{Caller, Event},
    spec::Fault,
    validate::Validated,
};

/// How often interfaces with faults are checked for having vanished or been re-created.
const INTERFACE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Shared handle to the fault table.
#[derive(Clone)]
pub struct FaultTable {
    shared: Arc<Shared>,
}

struct Shared {
    faults: Mutex<Faults>,
    /// Where the interfaces with our fq are recorded, for the next start after a crash.
    state_file: Option<PathBuf>,
    /// Wakes the timer task: a deadline may have moved, or the guard was dropped.
    wake: Notify,
    summary: watch::Sender<Summary>,
    stopped: AtomicBool,
}

/// Owns the table's timer task; dropping it stops the task.
pub struct TableGuard {
    table: FaultTable,
}

impl TableGuard {
    /// The table.
    pub fn table(&self) -> FaultTable {
        self.table.clone()
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        self.table.shared.stopped.store(true, Ordering::SeqCst);
        self.table.shared.wake.notify_one();
    }
}

impl FaultTable {
    /// Wraps `faults` and starts its timer task on the current tokio runtime. The interfaces
    /// whose root qdisc the table replaced are kept in `state_file` (see [`StateFile`]).
    pub fn start(faults: Faults, state_file: Option<PathBuf>) -> TableGuard {
        let (summary, _) = watch::channel(faults.summary());
        let table = FaultTable {
            shared: Arc::new(Shared {
                state_file,
                faults: Mutex::new(faults),
                wake: Notify::new(),
                summary,
                stopped: AtomicBool::new(false),
            }),
        };
        tokio::spawn(timer(table.clone()));
        TableGuard { table }
    }

    /// Runs `f` on the table on a blocking thread, after ending the faults already past their
    /// deadline, then publishes the new summary and wakes the timer. A panic in `f` becomes
    /// [`FaultError::Internal`]; the table's own code undoes its map writes before such a panic
    /// leaves it.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Faults) -> T + Send + 'static,
    ) -> Result<T, FaultError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
            // The kernel already ignores a fault past its deadline: the timer may not have run
            // yet (a daemon just resumed, a long batch held the lock), but no request may see
            // such a fault, list it or be refused because of it.
            faults.expire();
            let before = shared.summary.borrow().faults;
            let out = f(&mut faults);
            let summary = faults.summary();
            if before.saturating_sub(summary.faults) > 100 {
                // Thousands of removed entries (panic button, expiry of a batch) leave their
                // memory with glibc otherwise, and RSS would stay at the table's high-water mark.
                crate::release_freed_memory();
            }
            if summary.fq_interfaces != shared.summary.borrow().fq_interfaces
                && let Some(path) = &shared.state_file
                && let Err(e) = StateFile::write(path, &summary.fq_interfaces)
            {
                tracing::error!(path = %path.display(), error = %e, "cannot record the qdiscs to restore");
            }
            shared.summary.send_replace(summary);
            drop(faults);
            shared.wake.notify_one();
            out
        })
        .await
        .map_err(|e| FaultError::Internal(e.to_string()))
    }

    /// Installs all faults or none.
    pub async fn create(
        &self,
        items: Vec<Validated>,
        caller: Caller,
    ) -> Result<Vec<Fault>, FaultError> {
        self.with(move |f| f.create(items, caller)).await?
    }

    /// Whether `items` would install now without a conflict ([`Faults::check_conflicts`]).
    pub async fn check_conflicts(&self, items: Vec<Validated>) -> Result<(), FaultError> {
        self.with(move |f| f.check_conflicts(&items)).await?
    }

    /// Removes one fault.
    pub async fn remove(&self, id: String, caller: Caller) -> Result<Fault, FaultError> {
        self.with(move |f| f.remove(&id, Event::Delete, caller))
            .await?
    }

    /// Changes a running fault's action and share to `v`'s and, with `remaining`, its deadline.
    pub async fn update(
        &self,
        id: String,
        v: Validated,
        remaining: Option<std::time::Duration>,
        caller: Caller,
    ) -> Result<Fault, FaultError> {
        self.with(move |f| f.update(&id, v, remaining, caller))
            .await?
    }

    /// Removes every fault, audited as `event`; returns how many.
    pub async fn remove_all(&self, event: Event, caller: Caller) -> Result<usize, FaultError> {
        self.with(move |f| f.remove_all(event, caller)).await
    }

    /// Removes the faults `selector` selects, each audited as a delete; returns how many.
    pub async fn remove_selected(
        &self,
        selector: crate::spec::Selector,
        caller: Caller,
    ) -> Result<usize, FaultError> {
        self.with(move |f| f.remove_selected(&selector, caller))
            .await
    }

    /// Refuses new faults from now on and removes every fault (shutdown); returns how many.
    pub async fn close(&self) -> Result<usize, FaultError> {
        self.with(|f| {
            f.close();
            f.remove_all(Event::Shutdown, Caller::Daemon)
        })
        .await
    }

    /// Every fault with live counters.
    pub async fn list(&self) -> Result<Vec<Fault>, FaultError> {
        self.with(|f| f.list()).await
    }

    /// The faults and the last counts of removed ones, for `GET /metrics`.
    pub async fn scrape(&self) -> Result<crate::metrics::Scrape, FaultError> {
        self.with(|f| f.scrape()).await
    }

    /// One fault with live counters.
    pub async fn get(&self, id: String) -> Result<Option<Fault>, FaultError> {
        self.with(move |f| f.get(&id)).await
    }

    /// Several faults with live counters, in the order asked (`None`: no longer installed).
    pub async fn get_many(&self, ids: Vec<String>) -> Result<Vec<Option<Fault>>, FaultError> {
        self.with(move |f| ids.iter().map(|id| f.get(id)).collect())
            .await
    }

    /// Removes these faults in one change (those already gone are skipped); how many went.
    pub async fn remove_many(&self, ids: Vec<String>, caller: Caller) -> Result<usize, FaultError> {
        self.with(move |f| {
            ids.iter()
                .filter(|id| f.remove(id, Event::Delete, caller).is_ok())
                .count()
        })
        .await
    }

    /// Faults and attached interfaces as of the last change; never waits for a change in
    /// progress.
    pub fn summary(&self) -> Summary {
        self.shared.summary.borrow().clone()
    }
}

/// Ends faults at their deadline and follows their interfaces, until the guard is dropped.
async fn timer(table: FaultTable) {
    let mut interface_check = tokio::time::interval(INTERFACE_CHECK);
    interface_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !table.shared.stopped.load(Ordering::SeqCst) {
        // From the summary, not the table: the lock may be held by a long batch.
        let next = table.summary().next_deadline_ns;
        let sleep = next.map_or(std::time::Duration::from_secs(3600), |at| {
            std::time::Duration::from_nanos(at.saturating_sub(crate::clock::monotonic_ns()))
        });
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {
                // `with` ends the faults that are due before it runs its closure.
                let _ = table.with(|_| ()).await;
            }
            _ = table.shared.wake.notified() => {}
            _ = interface_check.tick() => {
                let _ = table.with(|f| {
                    f.follow_interfaces();
                    f.follow_cgroups();
                }).await;
                for c in crate::host::cgroup::sweep_exec_leftovers() {
                    tracing::info!(cgroup = %c.display(), "removed an empty cgroup chaosctl exec left behind");
                }
            }
        }
    }
}

/// What this daemon installed that must not outlive it: the interfaces it put its qdisc tree
/// on, each with its index (so a same-named interface created since is left alone). One file
/// per network namespace ([`crate::lifecycle::state_file`]), so two daemons never share one,
/// and only the trees (whose handles are the daemon's own) are ever removed from it.
pub struct StateFile;

/// One interface of the state file.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    /// Its name.
    pub iface: String,
    /// Its index when the tree went on.
    pub ifindex: u32,
    /// The root qdisc kind the tree took the place of.
    #[serde(default)]
    pub replaced: Option<String>,
}

impl StateFile {
    /// Records the trees on `fq_interfaces` (atomically: a crash mid-write leaves the old file).
    pub fn write(path: &Path, fq_interfaces: &[(String, Option<String>)]) -> std::io::Result<()> {
        let installed: Vec<Installed> = fq_interfaces
            .iter()
            .filter_map(|(i, replaced)| {
                let ifindex = nix::net::if_::if_nametoindex(i.as_str()).ok()?;
                Some(Installed {
                    iface: i.clone(),
                    ifindex,
                    replaced: replaced.clone(),
                })
            })
            .collect();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::json!({ "installed": installed }).to_string(),
        )?;
        std::fs::rename(tmp, path)
    }

    /// The interfaces recorded at `path` (none if there is no file, or it is not ours).
    pub fn read(path: &Path) -> Vec<Installed> {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v["installed"].clone()).ok())
            .unwrap_or_default()
    }
}
