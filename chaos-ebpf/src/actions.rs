//! Actions: count the match, roll the dice, decide the verdict.

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_redirect};
use chaos_common::{
    ACTION_BANDWIDTH, ACTION_BLACKHOLE, ACTION_DNS, ACTION_LATENCY, ACTION_LOSS, COUNTER_CHUNK,
    Counters, DIST_SCALE, DIST_TABLE_SIZE, DIST_UNIFORM, PPM_ALL, RANDOM_CHUNK, RuleSlot,
};

use crate::{
    maps::{COUNTERS, DIST, LAST_RANDOM},
    rules::Hit,
};

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
    /// Hold it to the rule's rate: the entry point paces (egress) or polices (ingress), and
    /// counts the packet as affected if it was held back or dropped.
    Limit,
    /// Answer the DNS query (or drop it) as the domain rule says (egress, DNS program only).
    Answer,
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

/// A random number correlated with the rule's previous one as netem does it:
/// `(rnd·(2³²−ρ) + last·ρ) >> 32`.
#[inline(always)]
fn correlated_random(index: u32, rho: u32) -> u32 {
    // SAFETY: plain helper call.
    let rnd = unsafe { bpf_get_prandom_u32() };
    if rho == 0 {
        return rnd;
    }
    let Some(chunk) = LAST_RANDOM.get_ptr_mut(index / RANDOM_CHUNK) else {
        return rnd;
    };
    // SAFETY: per-CPU value, only this CPU touches it while we run; the entry is in bounds.
    unsafe {
        let last = &mut (*chunk)[(index % RANDOM_CHUNK) as usize];
        let mixed =
            ((rnd as u64 * ((1u64 << 32) - rho as u64) + *last as u64 * rho as u64) >> 32) as u32;
        *last = mixed;
        mixed
    }
}

/// The rule's delay with its jitter sampled: `delay ± jitter` uniform, or `delay + jitter·t`
/// with `t` from the distribution's table; never below zero.
#[inline(always)]
fn sample_delay(index: u32, slot: &RuleSlot) -> u64 {
    let (delay, jitter) = (slot.delay_ns, slot.jitter_ns);
    if jitter == 0 {
        return delay;
    }
    let r = correlated_random(index, slot.correlation) as u64;
    if slot.distribution == DIST_UNIFORM {
        // r * (2j + 1) >> 32 is uniform over 0..=2j without a division.
        let offset = (r * (2 * jitter + 1)) >> 32;
        return (delay + offset).saturating_sub(jitter);
    }
    let table = (slot.distribution as u32).saturating_sub(1);
    // The top 12 bits of r: an index below DIST_TABLE_SIZE the verifier can see.
    let i = (r as u32 >> 20) as usize & (DIST_TABLE_SIZE as usize - 1);
    let t = DIST.get(table).map_or(0, |t| t[i]) as i64;
    // Arithmetic shift: table values are σ × DIST_SCALE, a power of two.
    let d = delay as i64 + ((jitter as i64 * t) >> DIST_SCALE.trailing_zeros());
    if d < 0 { 0 } else { d as u64 }
}

/// Counts the match, applies the rule's action and returns the verdict.
#[inline(always)]
pub fn apply(hit: &Hit, len: u32) -> Verdict {
    if hit.slot.action == ACTION_BANDWIDTH {
        count(hit.index, len, false);
        return Verdict::Limit;
    }
    let affected = match hit.slot.action {
        ACTION_BLACKHOLE | ACTION_LOSS | ACTION_LATENCY | ACTION_DNS => roll(hit.slot.ppm),
        _ => false,
    };
    count(hit.index, len, affected);
    match (affected, hit.slot.action) {
        (false, _) => Verdict::Pass,
        (true, ACTION_LATENCY) => Verdict::Delay(sample_delay(hit.index, hit.slot)),
        (true, ACTION_DNS) => Verdict::Answer,
        (true, _) => Verdict::Drop,
    }
}

/// This CPU's counters of slot `index`.
#[inline(always)]
fn counters(index: u32) -> Option<*mut Counters> {
    let chunk = COUNTERS.get_ptr_mut(index / COUNTER_CHUNK)?;
    // SAFETY: a per-CPU value of the map, the entry in bounds.
    Some(unsafe { &mut (*chunk)[(index % COUNTER_CHUNK) as usize] as *mut Counters })
}

#[inline(always)]
fn count(index: u32, len: u32, affected: bool) {
    if let Some(c) = counters(index) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe {
            (*c).matched_packets += 1;
            (*c).matched_bytes += len as u64;
            if affected {
                (*c).affected_packets += 1;
            }
        }
    }
}

/// Counts a packet a [`Verdict::Limit`] held back or dropped.
#[inline(always)]
pub fn count_affected(index: u32) {
    if let Some(c) = counters(index) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe { (*c).affected_packets += 1 }
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
