//! What the handlers share: the fault table, the config, metrics and the protected paths.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    config::Config,
    faults::FaultTable,
    host,
    metrics::Metrics,
    validate::{Protected, parse_net},
};

/// How long a reading of the SSH session peers is reused. Listing sockets walks the kernel's
/// whole TCP hash (≈ 0.15 ms per family here), too slow to repeat for every request of a burst.
const SSH_PEERS_MAX_AGE: Duration = Duration::from_secs(1);

/// Reads the peers of established SSH sessions (replaced in tests to inject failures).
pub type PeerReader = fn() -> std::io::Result<Vec<IpAddr>>;

fn ssh_peers_from_kernel() -> std::io::Result<Vec<IpAddr>> {
    host::tcp_peers_of_local_port(22)
}

/// State shared by the handlers.
pub struct AppState {
    /// Installed faults.
    pub table: FaultTable,
    /// Configuration.
    pub config: Config,
    /// Metrics.
    pub metrics: Metrics,
    /// Experiments, running and finished.
    pub experiments: crate::experiments::Experiments,
    /// Protected paths from the config, parsed once.
    configured_protected: Vec<Protected>,
    /// The last successful reading of the SSH peers. A failed one is never cached.
    ssh_peers: Mutex<Option<(Instant, Vec<IpAddr>)>>,
    read_ssh_peers: PeerReader,
    /// When the state was made (the daemon's uptime counts from it).
    pub started: Instant,
    /// Bounds how many fault listings are held in memory at once.
    pub(super) list_permits: Arc<tokio::sync::Semaphore>,
}

/// Fault listings serialised and in flight at once (each holds every fault in memory).
const LISTINGS_IN_FLIGHT: usize = 4;

impl AppState {
    /// New state for `config` over `table`.
    pub fn new(config: Config, table: FaultTable) -> Arc<Self> {
        Self::with_peer_reader(config, table, ssh_peers_from_kernel)
    }

    /// As [`AppState::new`], with another way to read SSH peers.
    pub fn with_peer_reader(config: Config, table: FaultTable, reader: PeerReader) -> Arc<Self> {
        // Config::load checked every CIDR already.
        let mut configured_protected: Vec<Protected> = config
            .protected_cidrs
            .iter()
            .filter_map(|c| parse_net(c).ok())
            .map(|net| Protected::Net {
                net,
                why: "protected CIDR from config".into(),
            })
            .collect();
        configured_protected.extend(config.protected_tcp_ports.iter().map(|&port| {
            Protected::TcpPort {
                port,
                why: "protected port".into(),
            }
        }));
        Arc::new(AppState {
            table,
            metrics: Metrics::new(config.metrics_per_fault),
            config,
            experiments: Default::default(),
            configured_protected,
            ssh_peers: Mutex::new(None),
            read_ssh_peers: reader,
            started: Instant::now(),
            list_permits: Arc::new(tokio::sync::Semaphore::new(LISTINGS_IN_FLIGHT)),
        })
    }

    /// Peers of established SSH sessions, at most [`SSH_PEERS_MAX_AGE`] old.
    fn ssh_peers(&self) -> std::io::Result<Vec<IpAddr>> {
        let mut cached = self.ssh_peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, peers)) = &*cached
            && at.elapsed() < SSH_PEERS_MAX_AGE
        {
            return Ok(peers.clone());
        }
        let peers = (self.read_ssh_peers)()?;
        *cached = Some((Instant::now(), peers.clone()));
        Ok(peers)
    }

    /// Protected paths right now: configured CIDRs and ports, plus live SSH peers; or why the
    /// SSH peers could not be read.
    pub fn protected(&self) -> Result<Vec<Protected>, String> {
        let mut p = self.configured_protected.clone();
        if self.config.protect_ssh_peers {
            let peers = self
                .ssh_peers()
                .map_err(|e| format!("listing SSH sessions failed: {e}"))?;
            p.extend(peers.into_iter().map(|ip| Protected::Net {
                net: ip.into(),
                why: "peer of an established SSH session".into(),
            }));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{faults::Faults, loader::attach::AttachOptions};

    static READS: AtomicUsize = AtomicUsize::new(0);

    /// Fails on the first read (fd exhaustion), succeeds after.
    fn flaky() -> std::io::Result<Vec<IpAddr>> {
        if READS.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(std::io::Error::from_raw_os_error(libc::EMFILE))
        } else {
            Ok(vec!["10.9.0.7".parse().unwrap()])
        }
    }

    #[tokio::test]
    async fn a_failed_ssh_peer_read_refuses_and_is_never_cached() {
        let guard = FaultTable::start(Faults::new(10, None, AttachOptions::default()), None);
        let state = AppState::with_peer_reader(Config::default(), guard.table(), flaky);
        let first = state.protected().unwrap_err();
        assert!(first.contains("Too many open files"), "{first}");
        let second = state.protected().unwrap();
        assert!(second.iter().any(|p| matches!(
            p,
            Protected::Net { net, .. } if net.to_string() == "10.9.0.7/32"
        )));
    }
}
