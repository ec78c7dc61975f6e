//! `chaosctl status`: the daemon's health.

use chaos_daemon::spec::Health;
use hyper::Method;

use crate::output::{Ctx, EXIT_REFUSED};

/// Runs `status`.
pub async fn run(ctx: &Ctx) -> i32 {
    let (_, body) = match ctx.call(Method::GET, "/v1/health", None).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    if ctx.json {
        println!("{}", String::from_utf8_lossy(&body));
        return 0;
    }
    match serde_json::from_slice::<Health>(&body) {
        Ok(h) => {
            println!(
                "chaos-daemon {} {} — kernel {}, {} fault(s), attached to [{}], tcx: {}, fq: {}",
                h.version,
                h.status,
                h.kernel,
                h.faults,
                h.interfaces.join(", "),
                h.features.tcx,
                h.features.fq
            );
            0
        }
        Err(e) => {
            eprintln!("chaosctl: unexpected answer from the daemon: {e}");
            EXIT_REFUSED
        }
    }
}
