//! CLOCK_MONOTONIC in nanoseconds: the clock the programs compare `expires_at_ns` against.

use std::time::Duration;

/// Current CLOCK_MONOTONIC time in nanoseconds (what `bpf_ktime_get_ns` returns in the kernel).
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// CLOCK_MONOTONIC deadline `ttl` after `from_ns`, in nanoseconds (saturating).
pub fn deadline_ns(from_ns: u64, ttl: Duration) -> u64 {
    from_ns.saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
}
