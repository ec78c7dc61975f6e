//! Bandwidth faults: EDT pacing of a rule's aggregate on egress (as Cilium's bandwidth
//! manager), a token-bucket policer on ingress (received packets cannot wait, so those above
//! the rate are dropped).

use aya_ebpf::helpers::bpf_ktime_get_ns;
use chaos_common::{PACING_HORIZON_NS, RateState};

use crate::{maps::RATE_STATE, rules::Hit};

const NS_PER_SEC: u64 = 1_000_000_000;

/// The rule's state, reset when its slot belongs to a new rule: a full bucket, and a last
/// departure (or refill) at `since`.
#[inline(always)]
fn state(hit: &Hit, since: u64) -> Option<*mut RateState> {
    let s = RATE_STATE.get_ptr_mut(hit.index)?;
    // SAFETY: a map value pointer, valid for this program run.
    unsafe {
        if (*s).generation != hit.slot.generation {
            (*s).generation = hit.slot.generation;
            (*s).tokens = hit.slot.burst_bytes as u64;
            (*s).last_ns = since;
        }
    }
    Some(s)
}

/// What pacing decided for an egress packet.
pub enum Paced {
    /// Within the rate: leaves as it would have.
    Now,
    /// Leaves at this CLOCK_MONOTONIC time.
    At(u64),
    /// Would leave beyond the horizon: drop it.
    Drop,
}

/// Departure `max(t, t_last + len·1e9/rate)` as Cilium's EDT (each packet's wire time is the gap
/// before the next), where `t` (≥ `now`) is when the packet would leave without us (TCP's own
/// pacing time, or now).
#[inline(always)]
pub fn pace(hit: &Hit, len: u32, now: u64, t: u64) -> Paced {
    let rate = hit.slot.rate_bytes_per_sec;
    if rate == 0 {
        return Paced::Now;
    }
    let Some(s) = state(hit, 0) else {
        return Paced::Now;
    };
    let cost = len as u64 * NS_PER_SEC / rate;
    // SAFETY: a map value pointer, valid for this program run.
    unsafe {
        let next = (*s).last_ns + cost;
        if next <= t {
            (*s).last_ns = t;
            return Paced::Now;
        }
        if next - now >= PACING_HORIZON_NS {
            return Paced::Drop;
        }
        (*s).last_ns = next;
        Paced::At(next)
    }
}

/// Token bucket: true if the packet fits (and takes its tokens).
#[inline(always)]
pub fn police(hit: &Hit, len: u32) -> bool {
    let rate = hit.slot.rate_bytes_per_sec;
    if rate == 0 {
        return true;
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(s) = state(hit, now) else {
        return true;
    };
    let burst = hit.slot.burst_bytes as u64;
    // SAFETY: a map value pointer, valid for this program run.
    unsafe {
        // At most a second of refill: the bucket is full by then, and elapsed·rate stays
        // inside a u64 for any rate the daemon accepts.
        let elapsed = now.saturating_sub((*s).last_ns).min(NS_PER_SEC);
        let mut tokens = (*s).tokens + elapsed * rate / NS_PER_SEC;
        if tokens > burst {
            tokens = burst;
        }
        (*s).last_ns = now;
        let len = len as u64;
        if tokens >= len {
            (*s).tokens = tokens - len;
            true
        } else {
            (*s).tokens = tokens;
            false
        }
    }
}
