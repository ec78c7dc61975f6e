//! `chaosctl ls`: every fault with its TTL left and live counters.

use chaos_daemon::spec::Fault;
use hyper::Method;

use crate::{output::Ctx, table};

/// Runs `ls`.
pub async fn run(ctx: &Ctx) -> i32 {
    match ctx
        .fetch::<Vec<Fault>>(Method::GET, "/v1/faults", None)
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
