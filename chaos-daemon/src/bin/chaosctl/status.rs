//! `chaosctl status`: the daemon's health.

use chaos_daemon::spec::Health;
use hyper::Method;

use crate::output::Ctx;

/// Runs `status`.
pub async fn run(ctx: &Ctx) -> i32 {
    match ctx.fetch::<Health>(Method::GET, "/v1/health", None).await {
        Ok(Some(h)) => {
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
            println!(
                "limits: max_ttl {}, max_rules {}",
                humantime::format_duration(h.limits.max_ttl),
                h.limits.max_rules
            );
            0
        }
        Ok(None) => 0,
        Err(code) => code,
    }
}
