//! Talking to the daemon and reporting the outcome: exit codes and error messages.

use chaos_daemon::{
    client::{Client, ClientError},
    spec::ErrorBody,
};
use hyper::Method;

/// Exit code: the daemon refused the request.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the daemon could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;

/// What every verb needs.
pub struct Ctx {
    /// Client of the daemon's socket.
    pub client: Client,
    /// `--json`: print the API's JSON.
    pub json: bool,
}

impl Ctx {
    /// Sends a request; a 2xx answer's body, or the exit code after reporting why not.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, bytes::Bytes), i32> {
        match self.client.request(method, path, body).await {
            Ok((status, body)) if (200..300).contains(&status) => Ok((status, body)),
            Ok((_, body)) => {
                refused(&body);
                Err(EXIT_REFUSED)
            }
            Err(e) => Err(unreachable(&e)),
        }
    }
}

impl Ctx {
    /// Sends a request and decodes its answer; with `--json` prints the answer as it came and
    /// yields `None`. `Err` is the exit code, the reason already reported.
    pub async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Option<T>, i32> {
        let (_, answer) = self.call(method, path, body).await?;
        if self.json {
            println!("{}", String::from_utf8_lossy(&answer));
            return Ok(None);
        }
        serde_json::from_slice(&answer).map(Some).map_err(|e| {
            eprintln!("chaosctl: unexpected answer from the daemon: {e}");
            EXIT_REFUSED
        })
    }
}

/// Percent-encodes one path segment (an id may hold anything a user typed).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reports the daemon's refusal.
pub fn refused(body: &[u8]) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => match e.field {
            Some(f) => eprintln!("chaosctl: refused ({f}): {}", e.error),
            None => eprintln!("chaosctl: refused: {}", e.error),
        },
        Err(_) => eprintln!(
            "chaosctl: refused: {}",
            String::from_utf8_lossy(body).escape_debug()
        ),
    }
}

/// Reports why the daemon could not be reached, with what to do about it.
pub fn unreachable(e: &ClientError) -> i32 {
    let hint = match e {
        ClientError::Unreachable { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            "Run chaosctl with sudo, or join the group that owns the socket (the daemon's socket_group)."
        }
        ClientError::Unreachable { .. } => {
            "Start the daemon with `sudo chaos-daemon` (or `systemctl start chaos-daemon`), \
             or point --socket / CHAOS_SOCKET at its socket."
        }
        ClientError::Protocol(_) => "The daemon closed the connection; see its log.",
    };
    eprintln!("chaosctl: {e}\n{hint}");
    EXIT_UNREACHABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(segment("3f9c2a1b7d04"), "3f9c2a1b7d04");
        assert_eq!(segment("a b/?%"), "a%20b%2F%3F%25");
    }
}
