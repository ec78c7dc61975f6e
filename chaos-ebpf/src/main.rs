//! The data plane: a TC egress classifier ([`egress`], attached with a TCX link) and an XDP
//! ingress program ([`ingress`]). Both parse the packet ([`parse`]), find the rule that applies
//! to the remote endpoint ([`rules`] over [`maps`]) and apply its action ([`actions`]); DNS queries to a watched port
//! go on to a tail-called program that matches the queried name ([`dns`]). Rules
//! live in maps written by `chaos-daemon`; layouts are in `chaos-common`. Odd packets are
//! reported through aya-log ([`log`]), off by default.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod actions;
mod dns;
mod edt;
mod egress;
mod ingress;
mod log;
mod maps;
mod parse;
mod rate;
mod rules;

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
