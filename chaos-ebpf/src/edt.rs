//! Earliest Departure Time: delaying an egress packet by stamping when it may leave; `fq` (the
//! root qdisc the daemon installs) holds it until then. Packets no rule delays are never
//! touched, so they pay nothing.

use aya_ebpf::{
    helpers::{bpf_get_hash_recalc, bpf_ktime_get_ns, bpf_skb_set_tstamp},
    programs::TcContext,
};

use crate::maps::FLOW_DEPARTURES;

/// `BPF_SKB_TSTAMP_DELIVERY_MONO` (5.18; `BPF_SKB_CLOCK_MONOTONIC` since 6.11, same value): the
/// stamp is a CLOCK_MONOTONIC departure time, kept across a veth/netns crossing.
const TSTAMP_MONO: u32 = 1;

/// A departure time already on the packet is honoured only if it is at most this far ahead:
/// TCP writes its own pacing time (CLOCK_MONOTONIC) there, but a forwarded packet may carry
/// a receive time of another clock.
const PLAUSIBLE_AHEAD_NS: u64 = 10_000_000_000;

/// Makes the packet leave `delay_ns` later than it would have, and never before the last
/// delayed packet of its flow (jitter must not reorder a flow).
#[inline(always)]
pub fn delay(ctx: &TcContext, delay_ns: u64) {
    let skb = ctx.skb.skb;
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `skb` is the context pointer the kernel handed this program.
    let stamped = unsafe { (*skb).tstamp };
    let base = if stamped > now && stamped - now <= PLAUSIBLE_AHEAD_NS {
        stamped
    } else {
        now
    };
    let mut departure = base + delay_ns;
    // SAFETY: plain helper call on the context pointer.
    let flow = unsafe { bpf_get_hash_recalc(skb) };
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
    // SAFETY: plain helper call on the context pointer; MONO: fq and veth read it as
    // CLOCK_MONOTONIC across the namespace crossing.
    unsafe {
        bpf_skb_set_tstamp(skb, departure, TSTAMP_MONO);
    }
}
