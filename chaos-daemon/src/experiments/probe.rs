//! Probes: one checked source each (HTTP, a command, a Prometheus query), run with a timeout.
//! [`Probe::check`] turns a [`ProbeSpec`] into a runnable probe or says which field is wrong.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

use crate::spec::{Expect, ProbeSpec, StatusExpect};

/// The body an HTTP probe reads at most.
const MAX_BODY: usize = 64 * 1024;
/// Shortest interval between two runs of a probe.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// A probe ready to run.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Its id.
    pub id: String,
    /// Time between runs.
    pub interval: Duration,
    timeout: Duration,
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Http {
        method: Method,
        uri: Uri,
        statuses: Statuses,
        max_latency: Option<Duration>,
        body: Option<regex_lite::Regex>,
    },
    Command {
        argv: Vec<String>,
        /// Run as this user and group (the API caller's), never as the daemon's root.
        uid: u32,
        gid: u32,
        exit: i32,
    },
    Prometheus {
        uri: Uri,
        range: [f64; 2],
    },
}

/// Accepted statuses, as inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Statuses(Vec<(u16, u16)>);

impl Statuses {
    fn parse(e: Option<&StatusExpect>) -> Result<Self, String> {
        let one = |s: u16| {
            if (100..=599).contains(&s) {
                Ok((s, s))
            } else {
                Err(format!("{s} is not an HTTP status (100-599)"))
            }
        };
        Ok(Statuses(match e {
            None => vec![(200, 299)],
            Some(StatusExpect::One(s)) => vec![one(*s)?],
            Some(StatusExpect::List(l)) if l.is_empty() => {
                return Err("an empty list of statuses accepts nothing".into());
            }
            Some(StatusExpect::List(l)) => l.iter().map(|s| one(*s)).collect::<Result<_, _>>()?,
            Some(StatusExpect::Range(r)) => {
                let parse = |s: &str| {
                    s.trim()
                        .parse::<u16>()
                        .map_err(|_| format!("{r:?} is not a status or a range like \"200-299\""))
                };
                let (lo, hi) = match r.split_once('-') {
                    Some((lo, hi)) => (parse(lo)?, parse(hi)?),
                    None => (parse(r)?, parse(r)?),
                };
                if lo > hi || one(lo).is_err() || one(hi).is_err() {
                    return Err(format!("{r:?} is not a range of HTTP statuses"));
                }
                vec![(lo, hi)]
            }
        }))
    }

    fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// It met the expectation.
    pub ok: bool,
    /// How long it took.
    pub latency: Duration,
    /// What was seen.
    pub detail: String,
}

/// The first field of `e` that is set although a probe reading only `reads` ignores it.
fn stray_expectation(e: &Expect, reads: &[&str]) -> Option<&'static str> {
    [
        ("status", e.status.is_some()),
        ("max_latency", e.max_latency.is_some()),
        ("body_regex", e.body_regex.is_some()),
        ("exit", e.exit.is_some()),
        ("range", e.range.is_some()),
    ]
    .into_iter()
    .find(|(f, set)| *set && !reads.contains(f))
    .map(|(f, _)| f)
}

/// A plain-HTTP URL: `http://host:port/path`.
fn http_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https is not supported: probe a plain-HTTP endpoint".into()),
        _ => return Err(format!("{url:?}: give an http:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

impl Probe {
    /// Checks `spec`; `Err((field, message))`, the field relative to the probe. `caller` is
    /// the (uid, gid) command probes run as, if known.
    pub fn check(spec: &ProbeSpec, caller: Option<(u32, u32)>) -> Result<Probe, (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if spec.interval < MIN_INTERVAL || spec.interval > Duration::from_secs(3600) {
            return bad("interval", "interval must be 50ms-1h".into());
        }
        if spec.timeout < Duration::from_millis(10) || spec.timeout > Duration::from_secs(60) {
            return bad("timeout", "timeout must be 10ms-60s".into());
        }
        let e = &spec.expect;
        let sources = [
            spec.http.is_some(),
            spec.command.is_some(),
            spec.prometheus.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return bad(
                "",
                "give exactly one of \"http\", \"command\", \"prometheus\"".into(),
            );
        }
        let (kind, reads): (&str, &[&str]) = if spec.http.is_some() {
            ("http", &["status", "max_latency", "body_regex"])
        } else if spec.command.is_some() {
            ("command", &["exit"])
        } else {
            ("prometheus", &["range"])
        };
        if let Some(f) = stray_expectation(e, reads) {
            return bad(
                &format!("expect.{f}"),
                format!("expect.{f} does not apply to a {kind} probe"),
            );
        }
        let source = if let Some(h) = &spec.http {
            let method = match h.method.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "HEAD" => Method::HEAD,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                "DELETE" => Method::DELETE,
                m => {
                    return bad(
                        "http.method",
                        format!("{m:?}: GET, HEAD, POST, PUT or DELETE"),
                    );
                }
            };
            Source::Http {
                method,
                uri: http_uri(&h.url).map_err(|m| ("http.url".to_string(), m))?,
                statuses: Statuses::parse(e.status.as_ref())
                    .map_err(|m| ("expect.status".to_string(), m))?,
                max_latency: e.max_latency,
                body: e
                    .body_regex
                    .as_deref()
                    .map(regex_lite::Regex::new)
                    .transpose()
                    .map_err(|err| ("expect.body_regex".to_string(), err.to_string()))?,
            }
        } else if let Some(c) = &spec.command {
            if c.argv.is_empty() || c.argv[0].is_empty() {
                return bad("command.argv", "argv needs at least the program".into());
            }
            let Some((uid, gid)) = caller else {
                return bad(
                    "command",
                    "the caller's user is unknown, and a command probe runs as the caller".into(),
                );
            };
            Source::Command {
                argv: c.argv.clone(),
                uid,
                gid,
                exit: e.exit.unwrap_or(0),
            }
        } else {
            let p = spec.prometheus.as_ref().expect("one source");
            let Some(range) = e.range else {
                return bad(
                    "expect.range",
                    "a prometheus probe needs expect.range [low, high]".into(),
                );
            };
            if range[0].is_nan() || range[1].is_nan() || range[0] > range[1] {
                return bad("expect.range", "give [low, high] with low ≤ high".into());
            }
            if p.query.trim().is_empty() {
                return bad("prometheus.query", "the query is empty".into());
            }
            let base = http_uri(&p.url).map_err(|m| ("prometheus.url".to_string(), m))?;
            let query: String =
                percent_encoding::utf8_percent_encode(&p.query, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            let uri = format!(
                "http://{}{}/api/v1/query?query={query}",
                base.authority().expect("checked").as_str(),
                base.path().trim_end_matches('/')
            )
            .parse()
            .map_err(|e| ("prometheus.url".to_string(), format!("{e}")))?;
            Source::Prometheus { uri, range }
        };
        Ok(Probe {
            id: spec.id.clone(),
            interval: spec.interval,
            timeout: spec.timeout,
            source,
        })
    }

    /// Runs the probe once.
    pub async fn run(&self) -> Outcome {
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.attempt()).await;
        let latency = start.elapsed();
        let (ok, detail) = match result {
            Err(_) => (
                false,
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                ),
            ),
            Ok(Err(e)) => (false, e),
            Ok(Ok((ok, detail))) => match &self.source {
                Source::Http {
                    max_latency: Some(max),
                    ..
                } if ok && latency > *max => (
                    false,
                    format!(
                        "{detail}, {:.1} ms > max_latency",
                        latency.as_secs_f64() * 1e3
                    ),
                ),
                _ => (ok, detail),
            },
        };
        Outcome {
            ok,
            latency,
            detail,
        }
    }

    async fn attempt(&self) -> Result<(bool, String), String> {
        match &self.source {
            Source::Http {
                method,
                uri,
                statuses,
                body,
                ..
            } => {
                let (status, text) = http(method.clone(), uri).await?;
                let mut ok = statuses.accepts(status);
                let mut detail = format!("status {status}");
                if let Some(re) = body
                    && !re.is_match(&text)
                {
                    ok = false;
                    detail.push_str(", body does not match");
                }
                Ok((ok, detail))
            }
            Source::Command {
                argv,
                uid,
                gid,
                exit,
            } => command(argv, *uid, *gid, *exit).await,
            Source::Prometheus { uri, range } => {
                let (status, text) = http(Method::GET, uri).await?;
                if status != 200 {
                    return Err(format!("Prometheus answered {status}"));
                }
                let v = prometheus_value(&text)?;
                Ok((range[0] <= v && v <= range[1], format!("value {v}")))
            }
        }
    }
}

/// One request over a fresh connection; (status, body as text).
async fn http(method: Method, uri: &Uri) -> Result<(u16, String), String> {
    let host = uri.host().expect("checked").trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(80);
    let addr: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let stream = tokio::net::TcpStream::connect(&addr[..])
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", uri.authority().expect("checked").as_str())
        .header("user-agent", "chaos-daemon-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The single value of an instant query's answer (vector of one sample, or a scalar).
fn prometheus_value(text: &str) -> Result<f64, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a Prometheus answer: {e}"))?;
    let data = &v["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => &one["value"],
            Some(r) => return Err(format!("the query returned {} series, not 1", r.len())),
            None => return Err("no result".into()),
        },
        other => return Err(format!("result type {other:?}, not a vector or scalar")),
    };
    sample[1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no numeric value in {sample}"))
}

/// Runs `argv` as `uid`:`gid`; whether it exited with `exit`. Killed when the timeout drops it.
async fn command(argv: &[String], uid: u32, gid: u32, exit: i32) -> Result<(bool, String), String> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if uid != 0 {
        // SAFETY: only setgroups/setgid/setuid between fork and exec (plain syscalls).
        unsafe {
            cmd.pre_exec(move || {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let status = cmd
        .status()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    match status.code() {
        Some(c) => Ok((c == exit, format!("exit {c}"))),
        None => Ok((false, "killed by a signal".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ProbeSpec;

    fn spec(json: &str) -> ProbeSpec {
        serde_json::from_str(json).unwrap()
    }

    fn field(json: &str) -> String {
        Probe::check(&spec(json), Some((1000, 1000))).unwrap_err().0
    }

    #[test]
    fn each_wrong_probe_field_is_named() {
        for (json, f) in [
            (r#"{"id":"a"}"#, ""),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"command":{"argv":["true"]}}"#,
                "",
            ),
            (r#"{"id":"a","http":{"url":"https://x/"}}"#, "http.url"),
            (r#"{"id":"a","http":{"url":"x"}}"#, "http.url"),
            (
                r#"{"id":"a","http":{"url":"http://x/","method":"BREW"}}"#,
                "http.method",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"expect":{"status":"299-200"}}"#,
                "expect.status",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"expect":{"status":[]}}"#,
                "expect.status",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"expect":{"body_regex":"("}}"#,
                "expect.body_regex",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"expect":{"exit":0}}"#,
                "expect.exit",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"interval":"1ms"}"#,
                "interval",
            ),
            (
                r#"{"id":"a","http":{"url":"http://x/"},"timeout":"2m"}"#,
                "timeout",
            ),
            (r#"{"id":"a","command":{"argv":[]}}"#, "command.argv"),
            (
                r#"{"id":"a","command":{"argv":["x"]},"expect":{"status":200}}"#,
                "expect.status",
            ),
            (
                r#"{"id":"a","prometheus":{"url":"http://p:9090","query":"up"}}"#,
                "expect.range",
            ),
            (
                r#"{"id":"a","prometheus":{"url":"http://p:9090","query":"up"},"expect":{"range":[2,1]}}"#,
                "expect.range",
            ),
            (
                r#"{"id":"a","prometheus":{"url":"http://p:9090","query":" "},"expect":{"range":[0,1]}}"#,
                "prometheus.query",
            ),
        ] {
            assert_eq!(field(json), f, "{json}");
        }
        let unknown_caller = spec(r#"{"id":"a","command":{"argv":["true"]}}"#);
        assert_eq!(
            Probe::check(&unknown_caller, None).unwrap_err().0,
            "command"
        );
    }

    #[test]
    fn statuses_take_a_number_a_list_or_a_range() {
        let s = |j: &str| Statuses::parse(Some(&serde_json::from_str(j).unwrap())).unwrap();
        assert!(s("204").accepts(204) && !s("204").accepts(200));
        assert!(s("[200, 204]").accepts(204) && !s("[200, 204]").accepts(201));
        assert!(s(r#""200-299""#).accepts(250) && !s(r#""200-299""#).accepts(300));
        assert!(Statuses::parse(None).unwrap().accepts(200));
    }

    #[test]
    fn prometheus_answers_give_one_value() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}}"#;
        assert_eq!(prometheus_value(vector), Ok(0.25));
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"3"]}}"#;
        assert_eq!(prometheus_value(scalar), Ok(3.0));
        let two =
            r#"{"data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(prometheus_value(two).unwrap_err().contains("2 series"));
    }

    #[tokio::test]
    async fn a_command_probe_checks_the_exit_code_and_its_timeout() {
        let p = Probe::check(
            &spec(r#"{"id":"a","command":{"argv":["sh","-c","exit 3"]},"expect":{"exit":3}}"#),
            Some((0, 0)),
        )
        .unwrap();
        let o = p.run().await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.detail, "exit 3");
        let slow = Probe::check(
            &spec(r#"{"id":"a","command":{"argv":["sleep","5"]},"timeout":"100ms"}"#),
            Some((0, 0)),
        )
        .unwrap();
        let o = slow.run().await;
        assert!(!o.ok && o.detail.contains("timed out"), "{o:?}");
        assert!(o.latency < Duration::from_secs(2));
    }
}
