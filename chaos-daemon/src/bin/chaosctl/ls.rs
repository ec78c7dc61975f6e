//! `chaosctl ls [--name N] [-l KEY=VALUE…]`: faults with their TTL left and live counters.

use chaos_daemon::spec::{Fault, Selector};
use hyper::Method;

use crate::{output::Ctx, table};

/// `/v1/faults` with `sel`'s query.
pub fn faults_path(sel: &Selector) -> String {
    match sel.to_query() {
        q if q.is_empty() => "/v1/faults".into(),
        q => format!("/v1/faults?{q}"),
    }
}

/// Runs `ls`.
pub async fn run(sel: &Selector, ctx: &Ctx) -> i32 {
    match ctx
        .fetch::<Vec<Fault>>(Method::GET, &faults_path(sel), None)
        .await
    {
        Ok(Some(faults)) if faults.is_empty() => {
            println!("no faults");
            0
        }
        Ok(Some(faults)) => {
            println!("{}", table::render(&faults).trim_end());
            0
        }
        Ok(None) => 0,
        Err(code) => code,
    }
}
