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
                refused(&body, self.json);
                Err(EXIT_REFUSED)
            }
            Err(e) => Err(unreachable(&e, self.json)),
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

/// Sends a fault `body` (`add`, `update`) and prints "`done` ID: SUMMARY; lifts at T", or with
/// `--json` the daemon's answer; the exit code.
pub async fn send_fault(ctx: &Ctx, method: Method, path: &str, body: Vec<u8>, done: &str) -> i32 {
    let patch = method == Method::PATCH;
    match ctx
        .fetch::<chaos_daemon::spec::Fault>(method, path, Some(body))
        .await
    {
        Ok(Some(mut f)) => {
            if patch {
                // The spec's ttl is the whole lifetime since creation; the user gave the time
                // left from now, so that is what the echo says ("ttl 10m", not "ttl 14m 3s").
                f.spec.ttl = std::time::Duration::from_secs(f.remaining_ms.div_ceil(1000));
            }
            println!(
                "{done} {}: {}; lifts at {}",
                f.id,
                f.spec.summary(),
                f.expires_at
            );
            0
        }
        Ok(None) => 0,
        Err(code) => code,
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

/// An error's API field without positions: a batch item's ("[2].ttl") and a list entry's
/// ("match.cidrs[3]") do not change which flag set it.
pub fn bare(field: &str) -> &str {
    let field = field.split_once("].").map_or(field, |(_, f)| f);
    field.split_once('[').map_or(field, |(f, _)| f)
}

/// The `add`/`update` flag that sets an API field (`match.port` → `--port`), for errors in the
/// words the user typed.
pub fn flag_of(field: &str) -> Option<&'static str> {
    let field = bare(field);
    // A label's key ("labels.team") does not matter either.
    Some(match field.split('.').next().unwrap_or(field) {
        "labels" => "--label",
        _ => match field {
            "force" => "--force",
            "interface" => "--iface",
            "ttl" => "--ttl",
            "name" => "--name",
            "percent" | "action.percent" => "--percent",
            "match.cidr" | "match.cidrs" => "--to/--from",
            "match.port" => "--port",
            "match.protocol" => "--proto",
            "match.cgroup" => "--cgroup",
            "match" => "--to/--from, --port, --proto",
            "direction" => "--to/--from",
            "action.delay" => "--delay",
            "action.jitter" => "--jitter",
            "action.distribution" => "--distribution",
            "action.correlation" => "--correlation",
            "action.rate" => "--rate",
            "action.domain" => "--domain",
            "action.response" => "--response",
            _ => return None,
        },
    })
}

/// The daemon's advice in flag words: 'add "force": true' → 'add --force'.
fn in_flag_words(message: &str) -> String {
    message
        .replace("\"force\": true", "--force")
        .replace("\"interface\"", "--iface")
        .replace("\"ttl\"", "--ttl")
}

/// How a verb's user named what the daemon refused: `add`'s flags, the verb's own flags (`exec
/// --loss` sets `action.percent`), or the API's own fields (`run`'s file).
pub type Words = Option<fn(&str) -> Option<&'static str>>;

/// Reports the daemon's refusal of what `add`'s flags built: the flag it is about first, then
/// the daemon's words (the API field in brackets, for scripts and the README). With `--json`,
/// one JSON object on stderr.
pub fn refused(body: &[u8], json: bool) {
    refused_as(body, json, Some(flag_of))
}

/// [`refused`] in `words`.
pub fn refused_as(body: &[u8], json: bool, words: Words) {
    let (error, field) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error, e.field),
        Err(_) => (
            String::from_utf8_lossy(body).escape_debug().to_string(),
            None,
        ),
    };
    let flag = words.and_then(|flag| field.as_deref().and_then(flag));
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": error, "field": field, "flag": flag, "exit_code": EXIT_REFUSED})
        );
        return;
    }
    eprintln!(
        "{}",
        refusal(&error, field.as_deref(), flag, words.is_some())
    );
}

/// The line [`refused_as`] prints; the daemon's advice is put in flag words only for a user
/// who typed flags.
fn refusal(error: &str, field: Option<&str>, flag: Option<&str>, flags: bool) -> String {
    let error = if flags {
        in_flag_words(error)
    } else {
        error.to_string()
    };
    match (flag, field) {
        (Some(flag), Some(f)) => format!("chaosctl: {flag}: {error} (API field {f})"),
        (None, Some(f)) => format!("chaosctl: refused ({f}): {error}"),
        _ => format!("chaosctl: refused: {error}"),
    }
}

/// Reports why the daemon could not be reached, with what to do about it.
pub fn unreachable(e: &ClientError, json: bool) -> i32 {
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
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": e.to_string(), "hint": hint, "exit_code": EXIT_UNREACHABLE})
        );
    } else {
        eprintln!("chaosctl: {e}\n{hint}");
    }
    EXIT_UNREACHABLE
}

/// Prints `value` as YAML.
pub fn print_yaml<T: serde::Serialize>(value: &T) -> i32 {
    match serde_norway::to_string(value) {
        Ok(y) => {
            print!("{y}");
            0
        }
        Err(e) => {
            eprintln!("chaosctl: cannot write YAML: {e}");
            EXIT_REFUSED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_are_named_by_their_flags() {
        assert_eq!(flag_of("match.port"), Some("--port"));
        assert_eq!(flag_of("match.cidrs[2]"), Some("--to/--from"));
        assert_eq!(flag_of("[3].action.percent"), Some("--percent"));
        assert_eq!(flag_of("labels.team"), Some("--label"));
        assert_eq!(flag_of("interface"), Some("--iface"));
        assert_eq!(flag_of("steady_state"), None);
        assert_eq!(
            in_flag_words(
                "fault would hit a protected path (ssh); add \"force\": true to do it anyway"
            ),
            "fault would hit a protected path (ssh); add --force to do it anyway"
        );
        assert_eq!(
            in_flag_words("no default route to pick an interface from: give \"interface\""),
            "no default route to pick an interface from: give --iface"
        );
    }

    #[test]
    fn a_refusal_is_told_in_the_words_the_user_used() {
        let advice = "fault would hit a protected path (ssh); add \"force\": true to do it anyway";
        assert_eq!(
            refusal(advice, Some("match.cidr"), Some("--to/--from"), true),
            "chaosctl: --to/--from: fault would hit a protected path (ssh); add --force to do it \
             anyway (API field match.cidr)"
        );
        // A file's author wrote API fields: no flag, and the advice as the daemon gave it.
        assert_eq!(
            refusal(advice, Some("faults[0].match.cidr"), None, false),
            format!("chaosctl: refused (faults[0].match.cidr): {advice}")
        );
    }

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(segment("3f9c2a1b7d04"), "3f9c2a1b7d04");
        assert_eq!(segment("a b/?%"), "a%20b%2F%3F%25");
    }
}
