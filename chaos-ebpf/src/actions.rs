//! Actions: count the match, roll the dice, decide the verdict.

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_redirect};
use chaos_common::{ACTION_BLACKHOLE, ACTION_LATENCY, ACTION_LOSS, PPM_ALL};

use crate::{maps::COUNTERS, rules::Hit};

/// What the program does with a matched packet. Each entry point maps it to its own return
/// codes, so a new action (a departure time, a redirect) is a new variant here and one arm in
/// each entry point, never a change to the lookup.
pub enum Verdict {
    /// Let it through.
    Pass,
    /// Drop it, silently.
    Drop,
    /// Let it leave this many ns later than it would have (egress only).
    Delay(u64),
}

/// True for a random `ppm` share of calls; exact at 0 and 1,000,000.
#[inline(always)]
fn roll(ppm: u32) -> bool {
    if ppm >= PPM_ALL {
        return true;
    }
    // SAFETY: plain helper call.
    let r = unsafe { bpf_get_prandom_u32() } as u64;
    ((r * PPM_ALL as u64) >> 32) < ppm as u64
}

/// `delay ± jitter`, uniform, never below zero.
#[inline(always)]
fn sample_delay(delay: u64, jitter: u64) -> u64 {
    if jitter == 0 {
        return delay;
    }
    // SAFETY: plain helper call.
    let r = unsafe { bpf_get_prandom_u32() } as u64;
    // r * (2j + 1) >> 32 is uniform over 0..=2j without a division.
    let offset = (r * (2 * jitter + 1)) >> 32;
    (delay + offset).saturating_sub(jitter)
}

/// Counts the match, applies the rule's action and returns the verdict.
#[inline(always)]
pub fn apply(hit: &Hit, len: u32) -> Verdict {
    let affected = match hit.slot.action {
        ACTION_BLACKHOLE | ACTION_LOSS | ACTION_LATENCY => roll(hit.slot.ppm),
        _ => false,
    };
    if let Some(c) = COUNTERS.get_ptr_mut(hit.index) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe {
            (*c).matched_packets += 1;
            (*c).matched_bytes += len as u64;
            if affected {
                (*c).affected_packets += 1;
            }
        }
    }
    match (affected, hit.slot.action) {
        (false, _) => Verdict::Pass,
        (true, ACTION_LATENCY) => {
            Verdict::Delay(sample_delay(hit.slot.delay_ns, hit.slot.jitter_ns))
        }
        (true, _) => Verdict::Drop,
    }
}

/// Drops an egress packet so that it looks like network loss: redirect to an ifindex that cannot
/// exist. The sender sees NET_XMIT_SUCCESS and the kernel frees the skb. (TC_ACT_SHOT would
/// surface as ENOBUFS to the sender — a local error, not loss.)
#[inline(always)]
pub fn silent_egress_drop() -> i32 {
    // SAFETY: plain helper call; returns TC_ACT_REDIRECT.
    unsafe { bpf_redirect(u32::MAX, 0) as i32 }
}
