//! The open API connections, so that a new one can take the place of one that holds a slot
//! without using it: at the cap, the oldest connection that is idle (waiting for a request's
//! headers, or between requests) or whose request has run for over [`PROTECTED`] (a body or a
//! reader that trickles) is closed for the newcomer. Idle and slow connections therefore
//! cannot keep `DELETE /v1/faults` out, however many a client opens or reopens; requests
//! in progress are never cut short in their first second.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::{AbortHandle, JoinHandle};

/// A request younger than this is never interrupted (requests take milliseconds).
pub const PROTECTED: Duration = Duration::from_secs(1);

/// The registry.
pub struct Connections {
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
    epoch: Instant,
}

struct Open {
    opened: Instant,
    /// Milliseconds since `epoch`, plus one, when its current request reached the router; 0
    /// when it has none.
    busy_since: Arc<AtomicU64>,
    abort: AbortHandle,
}

/// Marks its connection busy while it lives (one request's handling).
pub struct Busy {
    mark: Arc<AtomicU64>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.mark.store(0, Ordering::Relaxed);
    }
}

/// Removes its connection from the registry when the connection's task ends (or is aborted).
struct Registered {
    id: u64,
    registry: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Spawns the task serving one connection; `serve` gets the connection's busy marker, to
    /// hand to [`Connections::busy`] for each request.
    pub fn spawn<F>(self: &Arc<Self>, serve: impl FnOnce(Arc<AtomicU64>) -> F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy_since = Arc::new(AtomicU64::new(0));
        let fut = serve(busy_since.clone());
        let registered = Registered {
            id,
            registry: self.clone(),
        };
        // Under the lock: a task that ends at once removes its entry only after it is in.
        let mut open = self.lock();
        let task = tokio::spawn(async move {
            let _registered = registered;
            fut.await
        });
        open.insert(
            id,
            Open {
                opened: Instant::now(),
                busy_since,
                abort: task.abort_handle(),
            },
        );
        task
    }

    /// Marks the connection of `mark` busy until the guard drops.
    pub fn busy(&self, mark: &Arc<AtomicU64>) -> Busy {
        mark.store(self.now_ms() + 1, Ordering::Relaxed);
        Busy { mark: mark.clone() }
    }

    /// Closes the oldest connection that is idle or whose request has run past [`PROTECTED`];
    /// whether there was one.
    pub fn evict_one(&self) -> bool {
        let now = self.now_ms();
        let protected = u64::try_from(PROTECTED.as_millis()).unwrap_or(u64::MAX);
        let mut open = self.lock();
        let victim = open
            .iter()
            .filter(|(_, c)| {
                let since = c.busy_since.load(Ordering::Relaxed);
                since == 0 || now.saturating_sub(since - 1) > protected
            })
            .min_by_key(|(_, c)| c.opened)
            .map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.abort.abort();
                true
            }
            None => false,
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_idle_or_overdue_connection_goes_and_fresh_requests_stay() {
        let conns = Connections::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut marks = Vec::new();
        for i in 0..3 {
            let tx = tx.clone();
            conns.spawn(|mark| {
                marks.push(mark);
                async move {
                    struct Ended(u32, std::sync::mpsc::Sender<u32>);
                    impl Drop for Ended {
                        fn drop(&mut self) {
                            let _ = self.1.send(self.0);
                        }
                    }
                    let _ended = Ended(i, tx);
                    std::future::pending::<()>().await
                }
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 0 and 1 are in a request that just began; 2 is idle: it goes, though it is newest.
        let _b0 = conns.busy(&marks[0]);
        let _b1 = conns.busy(&marks[1]);
        assert!(conns.evict_one());
        let ended = tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(ended, 2);
        assert_eq!(conns.len(), 2);
        // Nobody else may go until a request is older than PROTECTED.
        assert!(!conns.evict_one());
        // Connection 0's request started PROTECTED ago and more: now it goes first.
        marks[0].store(1, Ordering::Relaxed);
        tokio::time::sleep(PROTECTED + Duration::from_millis(50)).await;
        marks[1].store(conns.now_ms() + 1, Ordering::Relaxed);
        assert!(conns.evict_one());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(conns.len(), 1);
        assert!(!conns.evict_one());
    }
}
