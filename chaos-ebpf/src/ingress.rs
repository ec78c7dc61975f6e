//! XDP ingress (`chaos_ingress`): matches the source.

use aya_ebpf::{macros::xdp, programs::XdpContext};
use chaos_common::{Direction, XDP_DROP, XDP_PASS};

use crate::{
    actions::{self, Verdict},
    log, parse, rate, rules,
};

/// Matches source address, protocol and source port.
#[xdp]
pub fn chaos_ingress(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let pkt = match parse::parse(data, data_end, Direction::Ingress) {
        Ok(pkt) => pkt,
        Err(anomaly) => {
            log::report(&ctx, anomaly);
            return XDP_PASS;
        }
    };
    log::report(&ctx, pkt.anomaly);
    let Some(hit) = rules::lookup_ingress(&pkt) else {
        return XDP_PASS;
    };
    let len = (data_end - data) as u32;
    match actions::apply(&hit, len) {
        // Received packets cannot be held back; the daemon refuses latency on ingress.
        Verdict::Pass | Verdict::Delay(_) | Verdict::Answer => XDP_PASS,
        Verdict::Drop => XDP_DROP,
        Verdict::Limit if rate::police(&hit, len) => XDP_PASS,
        Verdict::Limit => {
            actions::count_affected(hit.index);
            XDP_DROP
        }
    }
}
