//! `chaosctl ls [--name N] [-l KEY=VALUE…] [--sort-by …] [-q]`: faults with their TTL left and
//! live counters, oldest first unless asked otherwise, or just their ids.

use chaos_daemon::spec::{Fault, Selector};
use hyper::Method;

use crate::{
    args::SortBy,
    output::{Ctx, EXIT_USAGE},
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
    // RFC 3339 UTC timestamps of one format sort as strings; the id breaks ties.
    faults.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
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

/// Runs `ls`.
pub async fn run(sel: &Selector, order: SortBy, quiet: bool, ctx: &Ctx) -> i32 {
    if quiet && ctx.json {
        eprintln!(
            "chaosctl ls: -q (ids only) and --json (the API's JSON) cannot both be printed; pick one\n\nFor more information, try '--help'."
        );
        return EXIT_USAGE;
    }
    match ctx
        .fetch::<Vec<Fault>>(Method::GET, &faults_path(sel), None)
        .await
    {
        Ok(Some(mut faults)) => {
            sort(&mut faults, order);
            if quiet {
                for f in &faults {
                    println!("{}", f.id);
                }
            } else if faults.is_empty() {
                println!("no faults");
            } else {
                println!("{}", table::render(&faults).trim_end());
            }
            0
        }
        Ok(None) => 0,
        Err(code) => code,
    }
}
