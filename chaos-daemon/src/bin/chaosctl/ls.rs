//! `chaosctl ls [--name N] [-l KEY=VALUE…] [--sort-by …] [-q | -o wide|json|yaml] [--watch]`:
//! faults with their TTL left and live counters, oldest first unless asked otherwise, or just
//! their ids; again and again with `--watch`.

use chaos_daemon::spec::{Fault, Selector};
use hyper::Method;

use crate::{
    args::{Output, SortBy},
    output::{Ctx, EXIT_USAGE, print_yaml},
    table,
};

/// `/v1/faults` with `sel`'s query.
pub fn faults_path(sel: &Selector) -> String {
    match sel.to_query() {
        q if q.is_empty() => "/v1/faults".into(),
        q => format!("/v1/faults?{q}"),
    }
}

/// Puts `faults` in `order`; ties (and equal keys) stay oldest first.
pub fn sort(faults: &mut [Fault], order: SortBy) {
    // RFC 3339 UTC timestamps of one format sort as strings; a stable sort keeps the daemon's
    // creation order among faults of the same millisecond (a batch).
    faults.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    match order {
        SortBy::Created => {}
        SortBy::Name => faults.sort_by(|a, b| match (&a.spec.name, &b.spec.name) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }),
        SortBy::Ttl => faults.sort_by_key(|f| f.remaining_ms),
        SortBy::Affected => faults.sort_by_key(|f| std::cmp::Reverse(f.counters.affected)),
    }
}

/// How `ls` prints and repeats.
pub struct View {
    /// Row order.
    pub order: SortBy,
    /// Ids only.
    pub quiet: bool,
    /// Format.
    pub output: Output,
    /// Repeat every this often (`--watch`).
    pub every: Option<std::time::Duration>,
}

/// Runs `ls`.
pub async fn run(sel: &Selector, view: &View, ctx: &Ctx) -> i32 {
    if (view.quiet || view.output != Output::Table) && ctx.json {
        eprintln!(
            "chaosctl ls: --json prints the API's JSON; it cannot be combined with -q or -o (use -o json)\n\nFor more information, try '--help'."
        );
        return EXIT_USAGE;
    }
    let Some(every) = view.every else {
        return once(sel, view, ctx).await;
    };
    let clear = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        if clear {
            // Home and clear: each refresh replaces the last, as watch(1) does.
            print!("\x1b[H\x1b[2J");
        }
        let code = once(sel, view, ctx).await;
        if code != 0 {
            return code;
        }
        println!();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return 0,
        }
    }
}

async fn once(sel: &Selector, view: &View, ctx: &Ctx) -> i32 {
    match ctx
        .fetch::<Vec<Fault>>(Method::GET, &faults_path(sel), None)
        .await
    {
        Ok(Some(mut faults)) => {
            sort(&mut faults, view.order);
            match view.output {
                _ if view.quiet => {
                    for f in &faults {
                        println!("{}", f.id);
                    }
                }
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&faults).expect("faults serialise")
                ),
                Output::Yaml => return print_yaml(&faults),
                _ if faults.is_empty() => println!("no faults"),
                Output::Table => println!("{}", table::render(&faults, false).trim_end()),
                Output::Wide => println!("{}", table::render(&faults, true).trim_end()),
            }
            0
        }
        Ok(None) => 0,
        Err(code) => code,
    }
}
