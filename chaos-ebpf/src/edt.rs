//! Earliest Departure Time: delaying an egress packet by stamping when it may leave; an `fq`
//! of the qdisc tree the daemon installs holds it until then. Packets no rule delays are never
//! touched, so they pay nothing.

use aya_ebpf::{
    helpers::{bpf_get_hash_recalc, bpf_ktime_get_ns, bpf_skb_set_tstamp},
    programs::TcContext,
};

use chaos_common::PRIORITY_DELAYED;

use crate::maps::FLOW_DEPARTURES;

/// `BPF_SKB_TSTAMP_DELIVERY_MONO` (5.18; `BPF_SKB_CLOCK_MONOTONIC` since 6.11, same value): the
/// stamp is a CLOCK_MONOTONIC departure time, kept across a veth/netns crossing.
const TSTAMP_MONO: u32 = 1;

/// A departure time already on the packet is honoured only if it is at most this far ahead:
/// TCP writes its own pacing time (CLOCK_MONOTONIC) there, but a forwarded packet may carry
/// a receive time of another clock.
const PLAUSIBLE_AHEAD_NS: u64 = 10_000_000_000;

/// (now, when the packet would leave without us): its own departure time if it has a
/// plausible one, else now.
#[inline(always)]
pub fn departure(ctx: &TcContext) -> (u64, u64) {
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `ctx.skb.skb` is the context pointer the kernel handed this program.
    let stamped = unsafe { (*ctx.skb.skb).tstamp };
    if stamped > now && stamped - now <= PLAUSIBLE_AHEAD_NS {
        (now, stamped)
    } else {
        (now, now)
    }
}

/// Makes the packet leave `delay_ns` later than it would have; unless `reorder`, never before
/// the last delayed packet of its flow (jitter must not reorder a flow).
#[inline(always)]
pub fn delay(ctx: &TcContext, delay_ns: u64, reorder: bool) {
    let mut departure = departure(ctx).1 + delay_ns;
    if !reorder {
        departure = after_flow(ctx, departure);
    }
    stamp(ctx, departure);
    // SAFETY: `ctx.skb.skb` is the context pointer; TC programs may write `priority`.
    unsafe { (*ctx.skb.skb).priority = PRIORITY_DELAYED };
}

/// `departure`, or the flow's last departure if that is later; remembered for the next packet.
#[inline(always)]
fn after_flow(ctx: &TcContext, mut departure: u64) -> u64 {
    // SAFETY: plain helper call on the context pointer.
    let flow = unsafe { bpf_get_hash_recalc(ctx.skb.skb) };
    if let Some(last) = FLOW_DEPARTURES.get_ptr_mut(flow) {
        // SAFETY: a map value pointer, valid for this program run.
        unsafe {
            if *last > departure {
                departure = *last;
            }
            *last = departure;
        }
    } else {
        let _ = FLOW_DEPARTURES.insert(flow, departure, 0);
    }
    departure
}

/// Sets the packet's departure time (CLOCK_MONOTONIC ns).
#[inline(always)]
pub fn stamp(ctx: &TcContext, departure: u64) {
    // SAFETY: plain helper call on the context pointer; MONO: fq and veth read it as
    // CLOCK_MONOTONIC across the namespace crossing.
    unsafe {
        bpf_skb_set_tstamp(ctx.skb.skb, departure, TSTAMP_MONO);
    }
}
