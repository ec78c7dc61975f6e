//! TC egress (`chaos_egress`, a TCX link): matches the destination. Packets to a port some
//! domain rule watches go on to the DNS program by a tail call ([`crate::dns`]), which falls
//! back to [`ip_verdict`] for names no rule covers.

use aya_ebpf::{macros::classifier, programs::TcContext};
use chaos_common::{Direction, FLAG_REORDER, TC_ACT_NEXT};

use crate::{
    actions::{self, Verdict},
    dns, edt, log,
    maps::DNS_PROGRAMS,
    parse::{self, Packet},
    rate::{self, Paced},
    rules,
};

/// Matches destination address, protocol and destination port.
#[classifier]
pub fn chaos_egress(ctx: TcContext) -> i32 {
    let pkt = match parse::parse(ctx.data(), ctx.data_end(), Direction::Egress) {
        Ok(pkt) => pkt,
        Err(anomaly) => {
            log::report(&ctx, anomaly);
            return TC_ACT_NEXT;
        }
    };
    log::report(&ctx, pkt.anomaly);
    if dns::watched(&pkt) {
        // SAFETY: the DNS program takes the same context; on failure (no program loaded in the
        // slot) the call returns and the IP rules decide.
        unsafe { DNS_PROGRAMS.tail_call(&ctx, dns::PROGRAM_INDEX) };
    }
    ip_verdict(&ctx, &pkt)
}

/// What the IP rules (address, protocol, port) do with an egress packet.
#[inline(always)]
pub fn ip_verdict(ctx: &TcContext, pkt: &Packet) -> i32 {
    let Some(hit) = rules::lookup_egress(ctx, pkt) else {
        return TC_ACT_NEXT;
    };
    match actions::apply(&hit, ctx.len()) {
        Verdict::Pass | Verdict::Answer => TC_ACT_NEXT,
        Verdict::Drop => actions::silent_egress_drop(),
        Verdict::Delay(ns) => {
            edt::delay(ctx, ns, hit.slot.flags & FLAG_REORDER != 0);
            TC_ACT_NEXT
        }
        Verdict::Limit => {
            let (now, t) = edt::departure(ctx);
            match rate::pace(&hit, ctx.len(), now, t) {
                Paced::Now => TC_ACT_NEXT,
                Paced::At(departure) => {
                    actions::count_affected(hit.index);
                    edt::stamp(ctx, departure);
                    TC_ACT_NEXT
                }
                Paced::Drop => {
                    actions::count_affected(hit.index);
                    actions::silent_egress_drop()
                }
            }
        }
    }
}
