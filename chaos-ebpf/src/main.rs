//! The data plane: a TC egress classifier (`chaos_egress`, attached with a TCX link) and an XDP
//! ingress program (`chaos_ingress`). Both parse the packet ([`parse`]), find the rule that
//! applies to the remote endpoint ([`rules`]) and apply its action ([`actions`]). Rules live in
//! maps written by `chaos-daemon`; layouts are in `chaos-common`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod actions;
mod parse;
mod rules;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

use crate::actions::Verdict;

/// `TC_ACT_UNSPEC`, which TCX reads as NEXT: let the next program (or the stack) decide.
const TC_NEXT: i32 = -1;

/// TC egress: matches the destination (address, protocol, destination port).
#[classifier]
pub fn chaos_egress(ctx: TcContext) -> i32 {
    let Some(pkt) = parse::parse(ctx.data(), ctx.data_end(), false) else {
        return TC_NEXT;
    };
    match rules::lookup(&pkt, false) {
        Some(hit) => match actions::apply(&hit, ctx.len()) {
            Verdict::Pass => TC_NEXT,
            Verdict::Drop => actions::silent_egress_drop(),
        },
        None => TC_NEXT,
    }
}

/// XDP ingress: matches the source (address, protocol, source port).
#[xdp]
pub fn chaos_ingress(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let Some(pkt) = parse::parse(data, data_end, true) else {
        return xdp_action::XDP_PASS;
    };
    match rules::lookup(&pkt, true) {
        Some(hit) => match actions::apply(&hit, (data_end - data) as u32) {
            Verdict::Pass => xdp_action::XDP_PASS,
            Verdict::Drop => xdp_action::XDP_DROP,
        },
        None => xdp_action::XDP_PASS,
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
