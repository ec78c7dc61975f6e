//! `chaosctl ls`: every fault with its TTL left and live counters.

use chaos_daemon::spec::Fault;
use hyper::Method;

use crate::{
    output::{Ctx, EXIT_REFUSED},
    table,
};

/// Runs `ls`.
pub async fn run(ctx: &Ctx) -> i32 {
    let (_, body) = match ctx.call(Method::GET, "/v1/faults", None).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    if ctx.json {
        println!("{}", String::from_utf8_lossy(&body));
        return 0;
    }
    match serde_json::from_slice::<Vec<Fault>>(&body) {
        Ok(faults) if faults.is_empty() => {
            println!("no faults");
            0
        }
        Ok(faults) => {
            println!("{}", table::render(&faults).trim_end());
            0
        }
        Err(e) => {
            eprintln!("chaosctl: unexpected answer from the daemon: {e}");
            EXIT_REFUSED
        }
    }
}
