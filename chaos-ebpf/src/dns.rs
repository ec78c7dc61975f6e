//! DNS faults (`chaos_egress_dns`, reached by a tail call from the egress classifier for
//! packets to a watched port): the queried name is looked up in `DNS_RULES` and a matching
//! query is dropped, or rewritten in place into the response a resolver would send and handed
//! back to the same interface, so the client has its answer within microseconds and the
//! resolver never sees the query.
//!
//! Only a standard query (QR=0, opcode 0) with exactly one question, no answer or authority
//! records and at most an OPT record, in a plain frame (no VLAN tag in the frame, IPv4 without
//! fragmentation, IPv6 without extension headers), is considered; anything else (responses,
//! updates, malformed or truncated packets, names with compression pointers or a dot inside a
//! label) goes on to the IP rules untouched. A query is answered only if it is exactly that
//! (its IP and UDP lengths end with the frame, nothing follows the question or the OPT record,
//! whose options are all there), checked before the first byte is written. Over TCP a matching query is dropped whatever the rule's
//! response: answering would mean forging the stream's sequence numbers.
//!
//! Cost: the name is loaded once into per-CPU scratch space, walked once to find its end, once
//! to encode it (`chaos_common::dns_key`) and once to hash the encoding, which yields the hash
//! of every suffix on the way. Rules are found by hash: one lookup for the exact name, then one
//! per suffix length some wildcard rule has, longest first, until one covers the query (a rule
//! for another resolver or port passes it on to the broader ones), whatever the number of rules.

use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_F_MARK_MANGLED_0},
    helpers::{bpf_redirect, bpf_skb_load_bytes},
    macros::classifier,
    programs::TcContext,
};
use chaos_common::{
    DNS_DROP, DNS_HASH_BASIS, DnsRule, IPPROTO_TCP, IPPROTO_UDP, TC_ACT_NEXT, dns_hash_step,
};

use crate::{
    actions::{self, Verdict},
    egress::ip_verdict,
    log,
    maps::{DNS_MAX_LABELS, DNS_PORTS, DNS_RULES, DNS_SCRATCH, DNS_WILDCARDS, DnsScratch},
    parse::{self, Packet},
    rules,
};

/// `lo` has this index in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Slot of the DNS program in `DNS_PROGRAMS`.
pub const PROGRAM_INDEX: u32 = 0;

const DNS_HEADER: usize = 12;
const UDP_HEADER: usize = 8;
/// Offset of the checksum in the UDP header.
const UDP_CHECKSUM: usize = 6;
/// Longest name in wire format (RFC 1035).
const MAX_WIRE_NAME: usize = 255;
/// A 255-byte name has at most 127 labels, plus the root.
const MAX_LABELS: usize = 128;
const MAX_LABEL: usize = 63;
/// Flags word: QR and opcode (a standard query has them all clear).
const QR_OPCODE: u16 = 0xf800;
const QR: u16 = 0x8000;
/// RD and CD are kept from the query.
const RD_CD: u16 = 0x0110;
const RA: u16 = 0x0080;
const TYPE_OPT: u16 = 41;
/// EDNS option code PADDING (RFC 7830): what the query's options become in the answer.
const OPTION_PADDING: u16 = 12;
/// OPT record: root name (1), type (2), class (2), TTL (4), RDLENGTH (2).
const OPT_FIXED: usize = 11;

/// True for TCP and UDP packets to a port some domain rule watches: the cheap test that keeps
/// all other traffic out of the DNS program.
#[inline(always)]
pub fn watched(pkt: &Packet) -> bool {
    if pkt.port == 0 || (pkt.proto != IPPROTO_UDP && pkt.proto != IPPROTO_TCP) {
        return false;
    }
    let word = DNS_PORTS.get(pkt.port as u32 >> 6).copied().unwrap_or(0);
    word & (1u64 << (pkt.port & 63)) != 0
}

/// Egress packets to a watched port: the domain rules first, then the IP rules.
#[classifier]
pub fn chaos_egress_dns(ctx: TcContext) -> i32 {
    if let Some(code) = headers(&ctx).and_then(|pkt| answer(&ctx, &pkt)) {
        return code;
    }
    // Parsed afresh: the verifier then meets the IP rules in one state, not in one per path
    // through the name code.
    match parse::parse(ctx.data(), ctx.data_end(), chaos_common::Direction::Egress) {
        Ok(pkt) => ip_verdict(&ctx, &pkt),
        Err(anomaly) => {
            log::report(&ctx, anomaly);
            TC_ACT_NEXT
        }
    }
}

/// The headers of a plain DNS query: Ethernet, IPv4 (unfragmented) or IPv6 (no extension
/// headers), TCP or UDP. Read with helper loads rather than [`parse::parse`]'s packet pointers:
/// its many paths (VLAN tags, extension headers) would each walk the name code in the verifier.
/// Queries in other frames are left to the IP rules.
#[inline(always)]
fn headers(ctx: &TcContext) -> Option<Packet> {
    const ETH_HLEN: usize = 14;
    let ethertype: [u8; 2] = ctx.load(12).ok()?;
    let mut pkt = Packet::at(ETH_HLEN);
    match ethertype {
        [0x08, 0x00] => {
            // Version and header length; flags and fragment offset; protocol. Small loads:
            // the stack is shared with the IP rules' code.
            let vihl: u8 = ctx.load(ETH_HLEN).ok()?;
            let frag: [u8; 2] = ctx.load(ETH_HLEN + 6).ok()?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            // Any fragment (offset or more-fragments set) is left alone.
            if vihl >> 4 != 4 || ihl < 20 || u16::from_be_bytes(frag) & 0x3fff != 0 {
                return None;
            }
            pkt.proto = ctx.load(ETH_HLEN + 9).ok()?;
            let dst: [u8; 4] = ctx.load(ETH_HLEN + 16).ok()?;
            pkt.addr[..4].copy_from_slice(&dst);
            pkt.l4_offset = ETH_HLEN + ihl;
        }
        [0x86, 0xdd] => {
            pkt.ipv6 = true;
            pkt.proto = ctx.load(ETH_HLEN + 6).ok()?;
            pkt.addr = ctx.load(ETH_HLEN + 24).ok()?;
            pkt.l4_offset = ETH_HLEN + 40;
        }
        _ => return None,
    }
    if pkt.proto != IPPROTO_UDP && pkt.proto != IPPROTO_TCP {
        return None;
    }
    let ports: [u8; 4] = ctx.load(pkt.l4_offset).ok()?;
    pkt.port = u16::from_be_bytes([ports[2], ports[3]]);
    Some(pkt)
}

/// The query's header fields that matter.
struct Query {
    /// Offset of the DNS message from the start of the frame.
    at: usize,
    /// The flags word as it is in the packet (network byte order).
    flags_raw: u16,
    /// An OPT record follows the question.
    has_opt: bool,
}

/// The verdict for a DNS query a live domain rule covers, or `None` to let the IP rules decide.
/// A function of its own (a BPF-to-BPF call): its stack frame is not added to the IP rules'.
#[inline(never)]
fn answer(ctx: &TcContext, pkt: &Packet) -> Option<i32> {
    let l4 = pkt.l4_offset;
    if l4 == 0 {
        return None;
    }
    let tcp = pkt.proto == IPPROTO_TCP;
    let at = if tcp {
        // Data offset, then the 2-byte length that prefixes a DNS message on a stream.
        let doff: u8 = ctx.load(l4 + 12).ok()?;
        l4 + ((doff >> 4) as usize) * 4 + 2
    } else {
        l4 + UDP_HEADER
    };
    let hdr: [u8; DNS_HEADER] = ctx.load(at).ok()?;
    let flags = u16::from_be_bytes([hdr[2], hdr[3]]);
    let counts_ok = hdr[4..10] == [0, 1, 0, 0, 0, 0] && hdr[10] == 0 && hdr[11] <= 1;
    if flags & QR_OPCODE != 0 || !counts_ok {
        return None;
    }
    let query = Query {
        at,
        flags_raw: u16::from_ne_bytes([hdr[2], hdr[3]]),
        has_opt: hdr[11] == 1,
    };
    let name_at = at + DNS_HEADER;
    let scratch = DNS_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch, only this program on this CPU uses it while it runs.
    let scratch = unsafe { &mut *scratch };
    let avail = (ctx.len() as usize).checked_sub(name_at)?;
    // The root name plus type and class is the shortest question.
    if avail < 5 {
        return None;
    }
    let n = if avail > scratch.wire.len() {
        scratch.wire.len()
    } else {
        avail
    };
    // Bounded again on the register the call takes: the compiler may spill `avail` before its
    // check and reload it for the call, and 6.1's verifier then loses the bounds of the reloaded
    // copy ("R3 min value is outside of the allowed memory range": a possible zero length).
    // For n in 1..=256, ((n - 1) & 0xff) + 1 is n, and the verifier sees it in 1..=256;
    // forgotten first, so the compiler cannot fold it back into `n`.
    let n = ((forget(&mut scratch.opaque, n) - 1) & 0xff) + 1;
    // SAFETY: `n` is within [5, 256], the size of `wire` (a clamped length the verifier can see;
    // aya's load_bytes into a 256-byte buffer is refused for a possible zero length).
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            name_at as u32,
            scratch.wire.as_mut_ptr() as *mut _,
            n as u32,
        )
    };
    if loaded != 0 {
        return None;
    }
    let wire_len = forget(&mut scratch.opaque, name_length(&scratch.wire, n)?);
    let question_end = name_at + wire_len + 4;
    if question_end > ctx.len() as usize {
        return None;
    }
    let key_len = reverse_name(&scratch.wire, wire_len, &mut scratch.key)?;
    let key_len = forget(&mut scratch.opaque, key_len);
    let rule = *find_rule(scratch, key_len, pkt)?;
    let answered = !tcp && rule.rcode != DNS_DROP;
    // Checked before anything is counted or written: a query that is not answered goes on as
    // it came.
    let opt = if answered {
        well_formed(ctx, pkt, question_end, query.has_opt)?
    } else {
        None
    };
    let hit = rules::live(Some(&rule.slot))?;
    match actions::apply(&hit, ctx.len()) {
        Verdict::Answer if !answered => Some(actions::silent_egress_drop()),
        Verdict::Answer => Some(respond(ctx, pkt, &query, rule.rcode, opt)),
        // Not picked this time (a share below 100 %): the query goes on, IP rules included.
        _ => None,
    }
}

/// The most specific rule covering the query whose encoded name is `scratch.key[..len]`: the
/// exact name's, else the longest wildcard suffix's, among rules whose resolver network and
/// port cover the query's destination.
#[inline(always)]
fn find_rule(scratch: &mut DnsScratch, len: usize, pkt: &Packet) -> Option<&'static DnsRule> {
    let mut h = DNS_HASH_BASIS;
    let mut labels = 0usize;
    for j in 0..MAX_WIRE_NAME {
        if j >= len {
            break;
        }
        let c = scratch.key[j & 0xff];
        h = dns_hash_step(h, c);
        // Branch-free, so the verifier walks one path per byte: every byte writes the entry of
        // the labels seen so far, and the last write to entry k is the k-th dot's (0-based).
        scratch.suffixes[labels & (DNS_MAX_LABELS - 1)] = h;
        labels += ((c ^ b'.') as usize).wrapping_sub(1) >> (usize::BITS - 1);
    }
    let labels = forget(&mut scratch.opaque, labels);
    // Exact names end in a 0 byte; the slot past the last suffix holds their hash.
    scratch.suffixes[labels & (DNS_MAX_LABELS - 1)] = dns_hash_step(h, 0);
    if let Some(rule) = rule_for(&scratch.suffixes[labels & (DNS_MAX_LABELS - 1)], pkt) {
        return Some(rule);
    }
    // Suffix label counts some wildcard rule has, below the name's own count (a wildcard never
    // covers its apex) and above 0.
    let below = |word: u32| -> u64 {
        let first = word as usize * 64;
        let bits = DNS_WILDCARDS.get(word).copied().unwrap_or(0);
        match labels.saturating_sub(first) {
            0 => 0,
            n if n >= 64 => bits,
            n => bits & ((1u64 << n) - 1),
        }
    };
    let mut lo = below(0) & !1;
    let mut hi = below(1);
    // Longest suffix first; the first rule found that covers the query decides. One stored
    // for another resolver or port does not end the search: a broader wildcard may cover the
    // query (`*.svc.test` for resolver .3 must not hide `*.test` for any resolver).
    let mut found = None;
    for _ in 1..DNS_MAX_LABELS {
        if lo | hi == 0 {
            break;
        }
        // Branch-free choice of the word holding the highest candidate.
        let in_hi = (hi | hi.wrapping_neg()) >> 63;
        let pick = 0u64.wrapping_sub(in_hi);
        let word = lo ^ ((lo ^ hi) & pick);
        let bit = 63 - word.leading_zeros() as usize;
        let k = bit + 64 * in_hi as usize;
        hi &= !((1u64 << bit) & pick);
        lo &= !((1u64 << bit) & !pick);
        let h = &scratch.suffixes[k & (DNS_MAX_LABELS - 1)];
        if let Some(rule) = rule_for(h, pkt) {
            found = Some(rule);
            break;
        }
    }
    found
}

/// The rule stored under the name hashes `h`, if both hashes are its and it covers `pkt`.
/// Neither the key nor the rule is copied to the stack (the key is looked up where it lies in
/// the scratch map): stack writes would make every probe's outcome a state of its own to the
/// verifier.
#[inline(always)]
fn rule_for(h: &[u64; 2], pkt: &Packet) -> Option<&'static DnsRule> {
    let rule = stored(&h[0])?;
    (rule.check == h[1] && covers(rule, pkt)).then_some(rule)
}

/// The rule under `key`, looked up where the key lies (no copy to the stack).
#[inline(always)]
fn stored(key: &u64) -> Option<&'static DnsRule> {
    // SAFETY: read-only use of the value; a concurrent delete can at worst hand us a rule whose
    // slot `rules::live` then finds freed.
    unsafe { DNS_RULES.get(key) }
}

/// Length of the wire-format name at the start of `wire` (root label included), of which `n`
/// bytes are the packet's; `None` for a name that is too long, runs past the packet or uses a
/// compression pointer (never found in a question).
#[inline(always)]
fn name_length(wire: &[u8; 256], n: usize) -> Option<usize> {
    let mut pos = 0usize;
    for _ in 0..MAX_LABELS {
        if pos >= n || pos >= MAX_WIRE_NAME {
            return None;
        }
        let len = wire[pos & 0xff] as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len > MAX_LABEL {
            return None;
        }
        pos += len + 1;
    }
    None
}

/// Writes the lookup key of the `wire_len`-byte name in `wire` into `key` (see
/// `chaos_common::dns_key`: a dot after each label, lowercased, byte-reversed, then a 0 byte) and
/// returns its length without the 0; `None` for a label holding a dot, which no rule can mean.
#[inline(always)]
fn reverse_name(wire: &[u8; 256], wire_len: usize, key: &mut [u8; 256]) -> Option<usize> {
    let out = wire_len - 1;
    // Position of the next length byte: it becomes the dot after the label before it.
    let mut next = 1 + wire[0] as usize;
    for i in 1..MAX_WIRE_NAME {
        if i >= wire_len {
            break;
        }
        let b = wire[i & 0xff];
        let c = if i == next {
            next = i + 1 + b as usize;
            b'.'
        } else if b == b'.' {
            return None;
        } else if b.wrapping_sub(b'A') < 26 {
            b | 0x20
        } else {
            b
        };
        key[out.wrapping_sub(i) & 0xff] = c;
    }
    key[out & 0xff] = 0;
    Some(out)
}

/// `v`, with everything the verifier knew about it forgotten (a round trip through map memory,
/// whose contents it does not track). A loop that may end at any of its iterations leaves as
/// many states as iterations, each with its own range for the values it computed, and each would
/// walk the code after it anew; forgotten, they are one.
#[inline(always)]
fn forget(slot: &mut u64, v: usize) -> usize {
    // SAFETY: `slot` is a valid, aligned u64 in the per-CPU scratch map.
    unsafe {
        core::ptr::write_volatile(slot, v as u64);
        core::ptr::read_volatile(slot) as usize
    }
}

/// Whether the rule's resolver port and network cover the query's destination.
#[inline(always)]
fn covers(rule: &DnsRule, pkt: &Packet) -> bool {
    if rule.port != pkt.port {
        return false;
    }
    match rule.family {
        0 => return true,
        4 if !pkt.ipv6 => {}
        6 if pkt.ipv6 => {}
        _ => return false,
    }
    let mut i = 0;
    while i < 16 {
        if pkt.addr[i] & rule.mask[i] != rule.net[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A query's OPT record: its RDLENGTH and the first 4 bytes of its options (zero without).
struct Opt {
    rdlen: u16,
    options: [u8; 4],
}

/// The OPT record of a UDP query fit to be answered (`Some(None)` when it has none), or `None`:
/// the answer echoes the datagram in place, so the IP and UDP lengths must end where the frame
/// does, and the message must end right after its question, or after an OPT record whose
/// options it carries in full. An additional record that is not an OPT (a TSIG, say) is
/// refused too, so a signed query is never answered unsigned.
#[inline(always)]
fn well_formed(
    ctx: &TcContext,
    pkt: &Packet,
    question_end: usize,
    has_opt: bool,
) -> Option<Option<Opt>> {
    let len = ctx.len() as usize;
    let (ip_len_at, ip_header) = if pkt.ipv6 { (4, 40) } else { (2, 0) };
    let ip_len: [u8; 2] = ctx.load(pkt.l3_offset + ip_len_at).ok()?;
    let udp_len: [u8; 2] = ctx.load(pkt.l4_offset + 4).ok()?;
    if pkt.l3_offset + ip_header + u16::from_be_bytes(ip_len) as usize != len
        || pkt.l4_offset + u16::from_be_bytes(udp_len) as usize != len
    {
        return None;
    }
    if !has_opt {
        return (question_end == len).then_some(None);
    }
    let rr: [u8; OPT_FIXED] = ctx.load(question_end).ok()?;
    let rdlen = u16::from_be_bytes([rr[9], rr[10]]);
    if rr[0] != 0
        || u16::from_be_bytes([rr[1], rr[2]]) != TYPE_OPT
        || question_end + OPT_FIXED + rdlen as usize != len
    {
        return None;
    }
    let options = match rdlen {
        0 => [0; 4],
        // An option is at least its code and length.
        1..=3 => return None,
        _ => ctx.load(question_end + OPT_FIXED).ok()?,
    };
    Some(Some(Opt { rdlen, options }))
}

/// Turns the query into its response in place and sends it back up the interface: MACs,
/// addresses and ports swapped (which leaves the IP and UDP checksums as they were), QR, RA and
/// the response code set, RD and CD kept, the question echoed. An OPT record stays (the client
/// asked with EDNS, the answer speaks it) with its options turned into one PADDING option,
/// since echoing the client's cookie as if it were the server's would be a lie a strict client
/// rejects. Every byte it reads was checked by [`well_formed`]; if a write still fails (the
/// kernel could not make the packet writable), the half-rewritten packet is dropped, never sent.
#[inline(always)]
fn respond(ctx: &TcContext, pkt: &Packet, query: &Query, rcode: u8, opt: Option<Opt>) -> i32 {
    match rewrite(ctx, pkt, query, rcode, opt) {
        Some(()) => {}
        None => return actions::silent_egress_drop(),
    }
    // SAFETY: reads the context's ifindex.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // Back up the interface: into its ingress, as if the resolver had answered. Not on `lo`: a
    // packet entering lo that way has lost its route, and loopback addresses arriving without
    // one are martians; sent out of lo again it keeps the local route and lo delivers it.
    let flags = if ifindex == LOOPBACK_IFINDEX {
        0
    } else {
        BPF_F_INGRESS as u64
    };
    // SAFETY: plain helper call; returns TC_ACT_REDIRECT.
    unsafe { bpf_redirect(ifindex, flags) as i32 }
}

#[inline(always)]
fn rewrite(
    ctx: &TcContext,
    pkt: &Packet,
    query: &Query,
    rcode: u8,
    opt: Option<Opt>,
) -> Option<()> {
    let l3 = pkt.l3_offset;
    let l4 = pkt.l4_offset;
    let csum = l4 + UDP_CHECKSUM;
    let macs: [u8; 12] = ctx.load(0).ok()?;
    let p: [u8; 4] = ctx.load(l4).ok()?;
    let mut swapped = [0u8; 12];
    swapped[..6].copy_from_slice(&macs[6..]);
    swapped[6..].copy_from_slice(&macs[..6]);
    if pkt.ipv6 {
        // Source and destination in turn: two 16-byte values are enough stack.
        let src: [u8; 16] = ctx.load(l3 + 8).ok()?;
        ctx.store(0, &swapped, 0).ok()?;
        ctx.store(l3 + 8, &pkt.addr, 0).ok()?;
        ctx.store(l3 + 24, &src, 0).ok()?;
    } else {
        let a: [u8; 8] = ctx.load(l3 + 12).ok()?;
        let s = [a[4], a[5], a[6], a[7], a[0], a[1], a[2], a[3]];
        ctx.store(0, &swapped, 0).ok()?;
        ctx.store(l3 + 12, &s, 0).ok()?;
    }
    ctx.store(l4, &[p[2], p[3], p[0], p[1]], 0).ok()?;
    let flags = u16::from_be(query.flags_raw);
    let answer = (QR | (flags & RD_CD) | RA | rcode as u16).to_be();
    replace16(ctx, csum, query.at + 2, query.flags_raw, answer)?;
    if let Some(o) = opt
        && o.rdlen >= 4
    {
        // The options end the message (checked by `well_formed`).
        let option = ctx.len() as usize - o.rdlen as usize;
        replace16(
            ctx,
            csum,
            option,
            u16::from_ne_bytes([o.options[0], o.options[1]]),
            OPTION_PADDING.to_be(),
        )?;
        replace16(
            ctx,
            csum,
            option + 2,
            u16::from_ne_bytes([o.options[2], o.options[3]]),
            (o.rdlen - 4).to_be(),
        )?;
    }
    Some(())
}

/// Writes the 16-bit word `new` (network byte order, as `old`) at `offset` and fixes the UDP
/// checksum at `csum` for it (a zero IPv4 checksum, "none", stays zero).
#[inline(always)]
fn replace16(ctx: &TcContext, csum: usize, offset: usize, old: u16, new: u16) -> Option<()> {
    ctx.store(offset, &new, 0).ok()?;
    ctx.l4_csum_replace(
        csum,
        old as u64,
        new as u64,
        2 | BPF_F_MARK_MANGLED_0 as u64,
    )
    .ok()
}
