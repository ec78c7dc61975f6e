//! The caller of a connection, from SO_PEERCRED on the Unix socket.

use tokio::net::UnixStream;

use crate::audit::{Caller, Comm};

/// The credentials of the process at the other end of `stream`, and its name (read now: the
/// process may be gone by the time a request is audited).
pub fn caller_of(stream: &UnixStream) -> Caller {
    match stream.peer_cred() {
        Ok(c) => Caller::Client {
            uid: Some(c.uid()),
            gid: Some(c.gid()),
            pid: c.pid(),
            process: c.pid().and_then(Comm::of),
            experiment: None,
        },
        Err(_) => Caller::Client {
            uid: None,
            gid: None,
            pid: None,
            process: None,
            experiment: None,
        },
    }
}
