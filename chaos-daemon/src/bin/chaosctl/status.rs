//! `chaosctl status`: the daemon's health in plain words.

use std::time::Duration;

use chaos_daemon::spec::Health;
use hyper::Method;

use crate::output::Ctx;

/// The lines `status` prints for `h`, reached at `socket`.
pub fn describe(h: &Health, socket: &std::path::Path) -> String {
    let uptime = Duration::from_secs(h.uptime_ms / 1000);
    let attached = if h.interfaces.is_empty() {
        "none (programs are attached with the first fault on an interface)".to_string()
    } else {
        h.interfaces.join(", ")
    };
    let mut out = format!(
        "chaos-daemon {} is {}, up {}, on kernel {}\n\
         socket:             {}\n\
         faults:             {}\n\
         default interface:  {}\n\
         attached to:        {attached}\n\
         limits:             max_ttl {}, max_rules {}\n\
         kernel features:    tcx {}, fq {}\n",
        h.version,
        h.status,
        humantime::format_duration(uptime),
        h.kernel,
        socket.display(),
        h.faults,
        h.default_interface
            .as_deref()
            .unwrap_or("none (no default route: faults must name --iface)"),
        humantime::format_duration(h.limits.max_ttl),
        h.limits.max_rules,
        if h.features.tcx {
            "yes"
        } else {
            "no (clsact filters)"
        },
        if h.features.fq {
            "yes"
        } else {
            "no (latency and egress bandwidth are refused; ingress bandwidth works)"
        },
    );
    if let Some(d) = &h.deadman {
        out.push_str(&format!(
            "dead-man switch:    {} interval, heartbeat {} old, {}\n",
            humantime::format_duration(Duration::from_millis(d.interval_ms)),
            d.heartbeat_age_ms.map_or_else(
                || "not yet".to_string(),
                |a| humantime::format_duration(Duration::from_millis(a)).to_string()
            ),
            match (d.tripped, d.trips) {
                (true, _) => "TRIPPED now".to_string(),
                (false, 0) => "never tripped".to_string(),
                (false, n) => format!("tripped {n} time(s)"),
            }
        ));
    }
    out
}

/// Runs `status`.
pub async fn run(socket: &std::path::Path, ctx: &Ctx) -> i32 {
    match ctx.fetch::<Health>(Method::GET, "/v1/health", None).await {
        Ok(Some(h)) => {
            print!("{}", describe(&h, socket));
            0
        }
        Ok(None) => 0,
        Err(code) => code,
    }
}
