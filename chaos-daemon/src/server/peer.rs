//! The caller of a connection, from SO_PEERCRED on the Unix socket.

use tokio::net::UnixStream;

use crate::audit::Caller;

/// The credentials of the process at the other end of `stream`.
pub fn caller_of(stream: &UnixStream) -> Caller {
    match stream.peer_cred() {
        Ok(c) => Caller::Client {
            uid: Some(c.uid()),
            pid: c.pid(),
        },
        Err(_) => Caller::Client {
            uid: None,
            pid: None,
        },
    }
}
