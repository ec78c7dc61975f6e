//! One daemon per network namespace. A second daemon would hold faults the first cannot see
//! and its panic button cannot lift. An abstract Unix socket name is unique per network
//! namespace and vanishes with its process, however it dies, so it serves as the lock; a
//! would-be second daemon connects to it and learns who holds it.

use std::{
    io::{Read, Write},
    os::{linux::net::SocketAddrExt, unix::net::SocketAddr},
    path::Path,
};

use anyhow::{Result, bail};

const NAME: &[u8] = b"chaos-daemon";

/// Holds the namespace lock while alive.
pub struct InstanceLock {
    _listener: std::os::unix::net::UnixListener,
}

impl InstanceLock {
    /// Takes the lock, or fails naming the daemon that holds it. Each connection to the lock
    /// is answered with `socket`, the path of this daemon's API socket.
    pub fn acquire(socket: &Path) -> Result<InstanceLock> {
        let addr = SocketAddr::from_abstract_name(NAME)?;
        match std::os::unix::net::UnixListener::bind_addr(&addr) {
            Ok(listener) => {
                let answer = listener.try_clone()?;
                let path = socket.display().to_string();
                std::thread::Builder::new()
                    .name("instance-lock".into())
                    .spawn(move || {
                        for mut conn in answer.incoming().flatten() {
                            let _ = conn.write_all(path.as_bytes());
                        }
                    })?;
                Ok(InstanceLock {
                    _listener: listener,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let (pid, path) = holder(&addr);
                bail!(
                    "another chaos-daemon (pid {pid}) already runs in this network namespace, on socket {path}: \
                     use it (chaosctl --socket {path}) or stop it first"
                )
            }
            Err(e) => bail!("cannot take the per-namespace daemon lock: {e}"),
        }
    }
}

/// Pid and socket path of the daemon holding the lock, as far as they can be learnt.
fn holder(addr: &SocketAddr) -> (String, String) {
    let Ok(mut conn) = std::os::unix::net::UnixStream::connect_addr(addr) else {
        return ("?".into(), "?".into());
    };
    let pid = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
        .map(|c| c.pid().to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let mut path = String::new();
    let _ = conn.read_to_string(&mut path);
    (pid, if path.is_empty() { "?".into() } else { path })
}
