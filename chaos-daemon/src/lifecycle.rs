//! The daemon's life outside the API: offline cleanup, the open-file limit, and the signals
//! and events that make it stop.

use std::path::Path;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    audit::{Caller, Event},
    faults::FaultTable,
    instance::InstanceLock,
    socket::{self, ApiSocket},
};

/// `chaos-daemon cleanup`: removes a stale socket, clsact filters a daemon on a pre-6.6
/// kernel left behind and the fq it installed; refuses while a daemon runs in this namespace.
pub fn cleanup(socket_path: &Path) -> Result<()> {
    let _lock = InstanceLock::acquire(socket_path)
        .context("a chaos-daemon is running: stop it instead (its faults go with it)")?;
    if socket::remove_stale(socket_path)? {
        println!("removed stale socket {}", socket_path.display());
    }
    let restored = restore_qdiscs(&state_file(socket_path));
    if !restored.is_empty() {
        println!(
            "restored the default root qdisc of: {}",
            restored.join(", ")
        );
    }
    let cleaned = remove_stale_filters();
    if cleaned.is_empty() {
        println!("no stale filters (TCX/XDP links never outlive the daemon)");
    } else {
        println!(
            "removed stale chaos_egress filters from: {}",
            cleaned.join(", ")
        );
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one: every map, link and connection is an fd.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Why the daemon stops.
pub enum Stop {
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// The socket file was deleted or replaced: nobody can reach this daemon.
    SocketGone,
}

/// Resolves when the daemon must stop: SIGTERM/SIGINT, or the socket file stopped being ours.
/// SIGUSR1 (the panic button) and SIGHUP are handled on the way.
pub async fn stop_reason(
    table: FaultTable,
    api_socket: &ApiSocket,
    deadman: &crate::loader::deadman::Switch,
) -> Result<Stop> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(Stop::Signal("SIGTERM")),
            _ = int.recv() => return Ok(Stop::Signal("SIGINT")),
            _ = usr1.recv() => {
                let n = table.remove_all(Event::DeleteAll, Caller::Daemon).await.unwrap_or(0);
                tracing::warn!(removed = n, "SIGUSR1: every fault removed (panic button)");
            }
            _ = hup.recv() => tracing::info!("SIGHUP ignored: restart the daemon to re-read its config"),
            gap = deadman.tripped() => match table.remove_all(Event::Deadman, Caller::Daemon).await {
                Ok(n) => {
                    tracing::warn!(
                        gap_ms = gap.as_millis() as u64,
                        removed = n,
                        "dead-man switch tripped: the daemon did not beat for longer than its deadman interval, so the kernel had lifted every fault; they are ended, not re-armed"
                    );
                    deadman.rearm();
                }
                // Beating again would bring back faults that could not be ended: they stay
                // inert, and new faults get 503.
                Err(e) => tracing::error!(error = %e, "dead-man switch tripped and the faults could not be ended; the switch stays tripped"),
            },
            _ = check.tick() => if !api_socket.still_ours() {
                return Ok(Stop::SocketGone);
            },
        }
    }
}

/// Removes clsact filters a crashed daemon left on any interface of this namespace (netlink
/// attach path only; TCX and XDP links never outlive their owner); returns the interfaces
/// cleaned.
pub fn remove_stale_filters() -> Vec<String> {
    let mut cleaned = Vec::new();
    for iface in crate::host::interfaces() {
        match crate::loader::attach::remove_stale_filters(&iface) {
            Ok(true) => {
                tracing::warn!(
                    iface,
                    "removed a chaos_egress filter left by an earlier daemon"
                );
                cleaned.push(iface);
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(iface, error = %e, "cannot check for stale filters"),
        }
    }
    cleaned
}

/// The state file of this network namespace, beside the socket
/// (`/run/chaos-daemon/state-net4026531840.json`): daemons of other namespaces whose sockets
/// share the directory have files of their own, and `cleanup` run in another namespace finds
/// none to act on.
pub fn state_file(socket: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    socket.with_file_name(format!("state-net{netns}.json"))
}

/// Removes the trees a crashed daemon of this namespace installed on the interfaces its state
/// file names (the same interface, by index, and only a tree by its handles: an operator's
/// qdisc put there since stays), then clears the file; returns the interfaces restored.
pub fn restore_qdiscs(state: &Path) -> Vec<String> {
    let mut restored = Vec::new();
    for crate::faults::Installed {
        iface,
        ifindex,
        replaced,
    } in crate::faults::StateFile::read(state)
    {
        if nix::net::if_::if_nametoindex(iface.as_str()).ok() != Some(ifindex) {
            tracing::info!(
                iface,
                "interface gone or re-created since the tree went on: left as it is"
            );
            continue;
        }
        match crate::loader::qdisc::remove_fq(ifindex, replaced.as_deref()) {
            Ok(true) => {
                tracing::warn!(iface, "removed the fq an earlier daemon installed");
                restored.push(iface);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(iface, error = %e, "cannot remove a leftover fq"),
        }
    }
    let _ = std::fs::remove_file(state);
    restored
}
