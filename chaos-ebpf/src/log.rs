//! Anomaly reports through aya-log. The level is a load-time constant (`AYA_LOG_LEVEL`, 0 =
//! off unless the daemon runs with `--bpf-log`), so the verifier drops these calls entirely
//! when logging is off; when on, only odd packets are reported, never ordinary ones.

use aya_ebpf::EbpfContext;
use aya_log_ebpf::debug;

use crate::parse::Anomaly;

/// Reports `anomaly`, if any.
#[inline(always)]
pub fn report<C: EbpfContext>(ctx: &C, anomaly: Option<Anomaly>) {
    match anomaly {
        Some(Anomaly::BadIpv4Header) => {
            debug!(ctx, "bad IPv4 header (version or IHL): passed untouched")
        }
        Some(Anomaly::LongIpv6Chain) => {
            debug!(
                ctx,
                "IPv6 extension chain over 4 headers: only address rules can match"
            )
        }
        None => {}
    }
}
