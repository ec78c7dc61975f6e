//! `chaosctl get ID|PREFIX|NAME [-o json|yaml]`: everything about one fault.

use chaos_daemon::spec::Fault;
use hyper::Method;

use crate::{
    args::Output,
    find,
    output::{Ctx, EXIT_REFUSED, print_yaml, segment},
    table,
};

/// The fault `given` names (id, unique prefix or name), with live counters; or the exit code.
pub async fn fetch_one(given: &str, verb: &str, ctx: &Ctx) -> Result<Fault, i32> {
    let plain = Ctx {
        client: ctx.client.clone(),
        json: false,
    };
    let known = plain
        .fetch::<Vec<Fault>>(Method::GET, "/v1/faults", None)
        .await?
        .unwrap_or_default();
    let id = find::id(given, &known).map_err(|msg| {
        eprintln!("chaosctl {verb}: {msg}");
        EXIT_REFUSED
    })?;
    let path = format!("/v1/faults/{}", segment(&id));
    Ok(plain
        .fetch::<Fault>(Method::GET, &path, None)
        .await?
        .expect("not --json"))
}

/// The description `get` prints.
pub fn describe(f: &Fault) -> String {
    let s = &f.spec;
    let left = std::time::Duration::from_secs(f.remaining_ms.div_ceil(1000));
    let mut lines = vec![
        ("id", f.id.escape_default().to_string()),
        (
            "name",
            s.name
                .as_deref()
                .map_or_else(|| "-".into(), |n| n.escape_default().to_string()),
        ),
        ("labels", table::labels(f)),
        ("kind", s.action.kind().to_string()),
        ("match", s.matches.describe(s.direction)),
        ("direction", s.direction.to_string()),
        (
            "interface",
            s.interface
                .as_deref()
                .unwrap_or("-")
                .escape_default()
                .to_string(),
        ),
        ("action", s.action.describe(s.percent)),
        (
            "effective",
            format!("{}% of matching packets", s.effective_percent()),
        ),
        ("created", format!("{} by {}", f.created_at, table::by(f))),
        (
            "expires",
            format!(
                "{} ({} left)",
                f.expires_at,
                humantime::format_duration(left)
            ),
        ),
        (
            "counters",
            format!(
                "matched {} packets ({} bytes), affected {}",
                f.counters.matched, f.counters.matched_bytes, f.counters.affected
            ),
        ),
    ];
    if s.force {
        lines.push(("force", "true (a protection may be overridden)".into()));
    }
    lines.push(("spec", serde_json::to_string(s).expect("a spec serialises")));
    lines
        .iter()
        .map(|(k, v)| format!("{:<10} {v}\n", format!("{k}:")))
        .collect()
}

/// Runs `get`.
pub async fn run(given: &str, output: Output, ctx: &Ctx) -> i32 {
    let f = match fetch_one(given, "get", ctx).await {
        Ok(f) => f,
        Err(code) => return code,
    };
    match output {
        _ if ctx.json => println!("{}", serde_json::to_string(&f).expect("serialises")),
        Output::Json => println!("{}", serde_json::to_string_pretty(&f).expect("serialises")),
        Output::Yaml => return print_yaml(&f),
        Output::Table | Output::Wide => print!("{}", describe(&f)),
    }
    0
}
