//! `chaosctl run FILE.toml`: posts the experiment a team keeps in git, follows it with a live
//! status line, prints a report (or `--json`), writes `--junit FILE`, and exits with what the
//! experiment showed. Ctrl-C stops it; the daemon lifts the faults.

use std::{io::IsTerminal, path::Path, time::Duration};

use chaos_daemon::spec::{Experiment, ExperimentState};
use hyper::Method;

use crate::output::{Ctx, refused_as, segment, unreachable};

/// Exit codes of `run`.
pub mod exit {
    /// The hypothesis held.
    pub const COMPLETED: i32 = 0;
    /// The steady state did not come back after the faults were lifted.
    pub const DEVIATED: i32 = 1;
    /// A stop condition aborted the injection.
    pub const ABORTED: i32 = 2;
    /// Stopped (Ctrl-C, `DELETE`, the panic button).
    pub const STOPPED: i32 = 3;
    /// Invalid file, refused by the daemon, daemon unreachable, or the steady state did not
    /// hold before the start (nothing injected).
    pub const NOT_RUN: i32 = 4;
    /// The daemon failed while running it (the faults were lifted).
    pub const FAILED: i32 = 5;
    /// Completed, but no fault affected a packet: the hypothesis was not tested.
    pub const UNTESTED: i32 = 6;
    /// The daemon became unreachable while the experiment ran: how it ended is unknown (its
    /// faults end with the daemon's programs, or at their kernel TTL).
    pub const LOST: i32 = 7;
}

/// How often the experiment is read while it runs.
const POLL: Duration = Duration::from_millis(200);

/// The exit code for a final state.
pub fn code(state: ExperimentState) -> i32 {
    match state {
        ExperimentState::Completed => exit::COMPLETED,
        ExperimentState::Deviated => exit::DEVIATED,
        ExperimentState::Aborted => exit::ABORTED,
        ExperimentState::Stopped => exit::STOPPED,
        ExperimentState::NotStarted => exit::NOT_RUN,
        ExperimentState::Failed
        | ExperimentState::CheckingSteadyState
        | ExperimentState::Injecting
        | ExperimentState::Recovering => exit::FAILED,
    }
}

/// The exit code for how the experiment ended: [`code`] of its state, except that a
/// completed experiment whose faults affected nothing did not test its hypothesis.
pub fn code_of(e: &Experiment) -> i32 {
    match e.state {
        ExperimentState::Completed if e.untested => exit::UNTESTED,
        state => code(state),
    }
}

/// The experiment file as the API's JSON.
pub fn load(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `state` as the API spells it.
fn state_name(state: ExperimentState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn fetch(ctx: &Ctx, method: Method, path: &str) -> Result<Experiment, String> {
    match ctx.client.request(method, path, None).await {
        Ok((200, body)) => serde_json::from_slice(&body).map_err(|e| e.to_string()),
        Ok((status, body)) => Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).escape_debug()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `run`.
pub async fn run(file: &Path, junit: Option<&Path>, ctx: &Ctx) -> i32 {
    let spec = match load(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaosctl run: {e}");
            return exit::NOT_RUN;
        }
    };
    // Registered before the experiment exists, so a Ctrl-C at any point stops it.
    let Ok(mut interrupt) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    else {
        eprintln!("chaosctl run: cannot handle Ctrl-C");
        return exit::NOT_RUN;
    };
    let body = spec.to_string().into_bytes();
    let started: Experiment = match ctx
        .client
        .request(Method::POST, "/v1/experiments", Some(body))
        .await
    {
        Ok((201, body)) => match serde_json::from_slice(&body) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("chaosctl run: unexpected answer from the daemon: {e}");
                return exit::NOT_RUN;
            }
        },
        Ok((_, body)) => {
            refused_in_file(file, &body, ctx.json);
            return exit::NOT_RUN;
        }
        Err(e) => {
            unreachable(&e, ctx.json);
            return exit::NOT_RUN;
        }
    };
    let path = format!("/v1/experiments/{}", segment(&started.id));
    let live = std::io::stderr().is_terminal();
    if !ctx.json {
        eprintln!(
            "chaosctl run: experiment {} ({}) started: {}",
            started.spec.name.escape_default(),
            started.id,
            started.spec.hypothesis.escape_default()
        );
    }
    let mut last_state = started.state;
    let mut seen = 0;
    let last = loop {
        let stop = tokio::select! {
            _ = interrupt.recv() => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        let now = if stop {
            eprintln!("\nchaosctl run: stopping: the faults are being lifted");
            fetch(ctx, Method::DELETE, &path).await
        } else {
            fetch(ctx, Method::GET, &path).await
        };
        let now = match now {
            Ok(e) => e,
            Err(e) => {
                eprintln!("chaosctl run: cannot follow experiment {}: {e}", started.id);
                eprintln!(
                    "the daemon lifts its faults at the experiment's end, or the kernel at their TTL"
                );
                return exit::LOST;
            }
        };
        if !ctx.json {
            if live {
                eprint!("\r\x1b[K{}", status_line(&now));
            } else {
                for r in now.timeline.iter().skip(seen).filter(|r| !r.ok) {
                    eprintln!(
                        "{:>7.1}s probe {} failed ({}): {}",
                        r.at_ms as f64 / 1e3,
                        r.probe,
                        r.phase,
                        r.detail
                    );
                }
                if now.state != last_state {
                    eprintln!("{}", status_line(&now));
                }
            }
        }
        seen = now.timeline.len();
        last_state = now.state;
        if now.state.is_final() {
            break now;
        }
    };
    if live && !ctx.json {
        eprintln!();
    }
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&last).unwrap_or_default()
        );
    } else {
        print!("{}", report(&last));
    }
    if let Some(path) = junit
        && let Err(e) = std::fs::write(path, junit_xml(&last))
    {
        eprintln!("chaosctl run: cannot write {}: {e}", path.display());
    }
    code_of(&last)
}

/// The daemon's refusal of the experiment in `file`, at the line that holds the field it
/// names; a position in the JSON chaosctl generated is dropped (it is no line of the file).
fn refused_in_file(file: &Path, body: &[u8], json: bool) {
    let Ok(mut e) = serde_json::from_slice::<chaos_daemon::spec::ErrorBody>(body) else {
        // The file holds the API's own fields: its author typed no flags.
        refused_as(body, json, None);
        return;
    };
    if let Some(at) = e.error.rfind(" at line ")
        && e.error[at..].contains(" column ")
    {
        e.error.truncate(at);
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let line = e
        .field
        .as_deref()
        .and_then(|f| crate::toml_line::line_of(&text, f));
    let place = match line {
        Some(n) => format!("{}:{n}", file.display()),
        None => file.display().to_string(),
    };
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": e.error, "field": e.field, "file": file, "line": line,
                               "exit_code": exit::NOT_RUN})
        );
        return;
    }
    match &e.field {
        Some(f) => eprintln!("chaosctl: {place}: refused ({f}): {}", e.error),
        None => eprintln!("chaosctl: {place}: refused: {}", e.error),
    }
}

/// "injecting 12.3s/30s | health ok 12ms | cache-loss affected 1043".
fn status_line(e: &Experiment) -> String {
    let mut s = format!(
        "{} {:.1}s/{}",
        state_name(e.state),
        e.elapsed_ms as f64 / 1e3,
        humantime::format_duration(e.spec.duration)
    );
    let mut probes: Vec<&str> = e.timeline.iter().map(|r| r.probe.as_str()).collect();
    probes.sort_unstable();
    probes.dedup();
    for p in probes {
        if let Some(r) = e.timeline.iter().rev().find(|r| r.probe == p) {
            s.push_str(&format!(
                " | {p} {} {:.0}ms",
                if r.ok { "ok" } else { "FAIL" },
                r.latency_ms
            ));
        }
    }
    for f in &e.faults {
        s.push_str(&format!(
            " | {} affected {}",
            f.name.as_deref().unwrap_or("fault"),
            f.counters.affected
        ));
    }
    s
}

/// The end-of-run report.
pub fn report(e: &Experiment) -> String {
    let mut s = format!(
        "experiment {} ({}): {}{}\n",
        e.spec.name.escape_default(),
        e.id,
        state_name(e.state),
        if e.untested { ", NOT TESTED" } else { "" }
    );
    if !e.spec.hypothesis.is_empty() {
        s.push_str(&format!(
            "  hypothesis: {}\n",
            e.spec.hypothesis.escape_default()
        ));
    }
    if let (Some(a), Some(b)) = (e.injected_at_ms, e.lifted_at_ms) {
        s.push_str(&format!(
            "  injected for {:.1}s (planned {})\n",
            (b - a) as f64 / 1e3,
            humantime::format_duration(e.spec.duration)
        ));
    }
    let mut probes: Vec<&str> = e.timeline.iter().map(|r| r.probe.as_str()).collect();
    probes.sort_unstable();
    probes.dedup();
    for p in probes {
        let runs: Vec<_> = e.timeline.iter().filter(|r| r.probe == p).collect();
        let failed = runs.iter().filter(|r| !r.ok).count();
        s.push_str(&format!(
            "  probe {p}: {} run(s), {failed} failed\n",
            runs.len()
        ));
    }
    for f in &e.faults {
        s.push_str(&format!(
            "  fault {}: matched {}, affected {}\n",
            // Already escaped by the daemon (FaultSpec::summary).
            f.summary,
            f.counters.matched,
            f.counters.affected
        ));
    }
    if let Some(a) = &e.abort {
        s.push_str(&format!(
            "  aborted by {} at {:.1}s: {}; every fault gone {:.1} ms after the breach was seen\n",
            a.by,
            a.at_ms as f64 / 1e3,
            a.reason,
            a.breach_to_lifted_ms
        ));
    }
    if let Some(r) = &e.reason {
        s.push_str(&format!("  {r}\n"));
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A JUnit report: one test case per step (steady state before, the injection, steady state
/// after), failed or skipped as the experiment went.
pub fn junit_xml(e: &Experiment) -> String {
    use ExperimentState as S;
    let reason = e.reason.clone().unwrap_or_default();
    let abort = e
        .abort
        .as_ref()
        .map(|a| format!("aborted by {}: {}", a.by, a.reason))
        .unwrap_or_default();
    // (name, Some(("failure" | "skipped", message)) or None for a pass)
    let cases: [(&str, Option<(&str, String)>); 3] = match e.state {
        S::NotStarted => [
            ("steady state before", Some(("failure", reason.clone()))),
            ("injection", Some(("skipped", "not started".into()))),
            (
                "steady state after",
                Some(("skipped", "not started".into())),
            ),
        ],
        S::Aborted => [
            ("steady state before", None),
            ("injection", Some(("failure", abort))),
            ("steady state after", Some(("skipped", "aborted".into()))),
        ],
        S::Deviated => [
            ("steady state before", None),
            ("injection", None),
            ("steady state after", Some(("failure", reason.clone()))),
        ],
        S::Stopped => [
            ("steady state before", None),
            ("injection", Some(("skipped", reason.clone()))),
            ("steady state after", Some(("skipped", "stopped".into()))),
        ],
        S::Failed | S::CheckingSteadyState | S::Injecting | S::Recovering => [
            ("steady state before", None),
            ("injection", Some(("failure", format!("failed: {reason}")))),
            ("steady state after", Some(("skipped", "failed".into()))),
        ],
        // Nothing was affected: the injection tested nothing, which CI must not read as a pass.
        S::Completed if e.untested => [
            ("steady state before", None),
            ("injection", Some(("skipped", reason.clone()))),
            ("steady state after", None),
        ],
        S::Completed => [
            ("steady state before", None),
            ("injection", None),
            ("steady state after", None),
        ],
    };
    let failures = cases
        .iter()
        .filter(|(_, r)| matches!(r, Some(("failure", _))))
        .count();
    let skipped = cases
        .iter()
        .filter(|(_, r)| matches!(r, Some(("skipped", _))))
        .count();
    let name = xml_escape(&e.spec.name);
    let secs = e.elapsed_ms as f64 / 1e3;
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"chaos\" tests=\"3\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{secs:.3}\">\n  <testsuite name=\"{name}\" tests=\"3\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{secs:.3}\" timestamp=\"{}\">\n    <properties>\n      <property name=\"experiment_id\" value=\"{}\"/>\n      <property name=\"hypothesis\" value=\"{}\"/>\n      <property name=\"state\" value=\"{}\"/>\n    </properties>\n",
        xml_escape(&e.created_at),
        xml_escape(&e.id),
        xml_escape(&e.spec.hypothesis),
        state_name(e.state)
    );
    for (case, result) in cases {
        x.push_str(&format!(
            "    <testcase classname=\"{name}\" name=\"{case}\""
        ));
        match result {
            None => x.push_str("/>\n"),
            Some((tag, msg)) => x.push_str(&format!(
                ">\n      <{tag} message=\"{}\"/>\n    </testcase>\n",
                xml_escape(&msg)
            )),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(state: ExperimentState) -> Experiment {
        let spec = serde_json::json!({"name": "cache <down>", "hypothesis": "p99 & \"ok\"",
            "faults": [{"match": {"cidr": "10.0.0.1"}, "action": {"kind": "blackhole"}}],
            "duration": "30s"});
        Experiment {
            id: "abc".into(),
            spec: serde_json::from_value(spec).unwrap(),
            state,
            created_at: "2026-12-02T06:00:00Z".into(),
            injected_at_ms: Some(100),
            lifted_at_ms: Some(5100),
            elapsed_ms: 5200,
            faults: vec![],
            timeline: vec![],
            abort: None,
            reason: Some("probe <health> status 500".into()),
            untested: false,
        }
    }

    #[test]
    fn each_end_has_its_exit_code() {
        use ExperimentState as S;
        let codes: Vec<i32> = [
            S::Completed,
            S::Deviated,
            S::Aborted,
            S::Stopped,
            S::NotStarted,
            S::Failed,
        ]
        .map(code)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
        let mut untested = experiment(S::Completed);
        untested.untested = true;
        assert_eq!(code_of(&untested), exit::UNTESTED);
        untested.state = S::Deviated;
        assert_eq!(
            code_of(&untested),
            exit::DEVIATED,
            "a deviation still says so"
        );
    }

    #[test]
    fn junit_skips_an_injection_that_affected_nothing() {
        let mut e = experiment(ExperimentState::Completed);
        e.untested = true;
        e.reason = Some("no fault affected a packet".into());
        let x = junit_xml(&e);
        assert!(x.contains("failures=\"0\" skipped=\"1\""), "{x}");
        assert!(
            x.contains("<skipped message=\"no fault affected a packet\"/>"),
            "{x}"
        );
    }

    #[test]
    fn junit_marks_the_step_that_failed_and_escapes_text() {
        let x = junit_xml(&experiment(ExperimentState::Deviated));
        assert!(x.contains("failures=\"1\""), "{x}");
        assert!(x.contains("name=\"cache &lt;down&gt;\""), "{x}");
        assert!(x.contains("value=\"p99 &amp; &quot;ok&quot;\""), "{x}");
        assert!(
            x.contains("<failure message=\"probe &lt;health&gt; status 500\"/>"),
            "{x}"
        );
        let ok = junit_xml(&experiment(ExperimentState::Completed));
        assert!(ok.contains("failures=\"0\" skipped=\"0\""), "{ok}");
    }
}
