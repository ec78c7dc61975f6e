//! Rule lookup: an O(1) prefilter bitmap over the address's first 16 bits, then at most four
//! LPM-trie lookups — (proto, port), (proto, any), (any, port), (any, any). Among the unexpired
//! matches the longest address prefix wins; on a tie the more specific protocol/port wins.
//!
//! On egress, rules scoped to a cgroup come first: for each level some scoped rule uses
//! (`SCOPE_LEVELS`, deepest first), the same lookup with the id of the packet's socket's cgroup
//! ancestor at that level as the key's scope; the first scope with a live match decides, then
//! the unscoped rules. Packets the prefilter turns away never read the cgroup.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_skb_ancestor_cgroup_id},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use chaos_common::{
    ACTION_NONE, Direction, EXACT_SHAPE_SHIFT, KEY_HEADER_BITS, MAX_SCOPE_PROBES, PORT_ANY,
    PROTO_ANY, RuleSlot, SHAPE_ANY, SHAPE_ANYPROTO_PORT, SHAPE_PROTO_ANYPORT, SHAPE_PROTO_PORT,
    exact_key_v4, exact_key_v6, key_v4, key_v6, prefilter_bit, prefilter_table,
};

use crate::{
    maps::{
        EXACT_V4, EXACT_V6, HEARTBEAT, KEY_SHAPES, PREFILTER, RULES_V4_EGRESS, RULES_V4_INGRESS,
        RULES_V6_EGRESS, RULES_V6_INGRESS, SCOPE_LEVELS, SLOTS,
    },
    parse::Packet,
};

/// The rule that applies to a packet.
pub struct Hit {
    /// Slot index (also the counters index).
    pub index: u32,
    /// The slot's contents.
    pub slot: &'static RuleSlot,
}

/// The slot at `index` if it is in use, not expired, and its daemon's heartbeat is fresh. The
/// clock and the heartbeat are read only here, so packets that match no rule never pay for them.
#[inline(always)]
pub fn live(index: Option<&u32>) -> Option<Hit> {
    let index = *index?;
    let slot = SLOTS.get(index)?;
    if slot.action == ACTION_NONE {
        return None;
    }
    let heartbeat = HEARTBEAT.get(0).filter(|h| h.interval_ns != 0);
    if slot.expires_at_ns == 0 && heartbeat.is_none() {
        return Some(Hit { index, slot });
    }
    // SAFETY: plain helper call, no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if slot.expires_at_ns != 0 && slot.expires_at_ns <= now {
        return None;
    }
    if let Some(h) = heartbeat
        && now.saturating_sub(h.beat_ns) > h.interval_ns
    {
        return None;
    }
    Some(Hit { index, slot })
}

/// Keeps in `best` whichever of it and the slot a trie lookup returned has the longer prefix
/// (the earlier one on a tie).
#[inline(always)]
fn offer(best: &mut Option<Hit>, index: Option<&u32>) {
    let Some(hit) = live(index) else {
        return;
    };
    if let Some(b) = best
        && b.slot.prefix_len >= hit.slot.prefix_len
    {
        return;
    }
    *best = Some(hit);
}

/// Finds the rule for an ingress packet (XDP has no socket, so no scope).
#[inline(always)]
pub fn lookup_ingress(pkt: &Packet) -> Option<Hit> {
    if !prefiltered(pkt, Direction::Ingress) {
        return None;
    }
    find(pkt, Direction::Ingress, 0)
}

/// Finds the rule for an egress packet: scoped rules of its socket's cgroups first.
#[inline(always)]
pub fn lookup_egress(ctx: &TcContext, pkt: &Packet) -> Option<Hit> {
    if !prefiltered(pkt, Direction::Egress) {
        return None;
    }
    let mut levels = SCOPE_LEVELS.get(0).copied().unwrap_or(0);
    for _ in 0..MAX_SCOPE_PROBES {
        if levels == 0 {
            break;
        }
        let level = 63 - levels.leading_zeros();
        levels &= !(1u64 << level);
        // SAFETY: the context's own skb; a packet without a (full) socket yields 0.
        let scope = unsafe { bpf_skb_ancestor_cgroup_id(ctx.skb.skb, level as i32) };
        if scope == 0 {
            continue;
        }
        let index = find_scoped(pkt, scope);
        if index != NO_HIT {
            return SLOTS.get(index).map(|slot| Hit { index, slot });
        }
    }
    find(pkt, Direction::Egress, 0)
}

/// What [`find_scoped`] returns when nothing matched.
const NO_HIT: u32 = u32::MAX;

/// The slot index of the egress rule for `pkt` scoped to `scope`, or [`NO_HIT`]. A function of
/// its own, called once per probed level, so the verifier checks the lookup once, not once per
/// unrolled level.
#[inline(never)]
fn find_scoped(pkt: &Packet, scope: u64) -> u32 {
    match find(pkt, Direction::Egress, scope) {
        Some(hit) => hit.index,
        None => NO_HIT,
    }
}

/// Whether some rule of `direction` may match the packet's /16.
#[inline(always)]
fn prefiltered(pkt: &Packet, direction: Direction) -> bool {
    let table = prefilter_table(direction, pkt.ipv6);
    let top16 = u16::from_be_bytes([pkt.addr[0], pkt.addr[1]]);
    let (word, mask) = prefilter_bit(table, top16);
    PREFILTER.get(word).copied().unwrap_or(0) & mask != 0
}

/// Finds the rule for `pkt` among the rules of `direction` scoped to `scope` (0: unscoped).
#[inline(always)]
fn find(pkt: &Packet, direction: Direction, scope: u64) -> Option<Hit> {
    let table = prefilter_table(direction, pkt.ipv6);
    let mut shapes = KEY_SHAPES.get(table).copied().unwrap_or(0);
    if pkt.port == PORT_ANY {
        let with_port = SHAPE_PROTO_PORT | SHAPE_ANYPROTO_PORT;
        shapes &= !(with_port | with_port << EXACT_SHAPE_SHIFT);
    }
    // Most specific shape first: on equal prefix length the earlier one wins.
    let probes = [
        (SHAPE_PROTO_PORT, pkt.proto, pkt.port),
        (SHAPE_PROTO_ANYPORT, pkt.proto, PORT_ANY),
        (SHAPE_ANYPROTO_PORT, PROTO_ANY, pkt.port),
        (SHAPE_ANY, PROTO_ANY, PORT_ANY),
    ];
    // One key per map, rewritten in place for each probe: the lookup runs in a BPF-to-BPF call
    // beside the caller's frame, and both must fit the 512-byte stack.
    // Full-length rules first: nothing is longer, so the first live one wins outright.
    if shapes >> EXACT_SHAPE_SHIFT != 0 {
        let mut k6 = exact_key_v6(direction, scope, 0, 0, pkt.addr);
        let a = pkt.addr;
        let mut k4 = exact_key_v4(direction, scope, 0, 0, [a[0], a[1], a[2], a[3]]);
        for (shape, proto, port) in probes {
            if shapes & (shape << EXACT_SHAPE_SHIFT) == 0 {
                continue;
            }
            let p = port.to_be_bytes();
            // SAFETY: the value is a plain u32 copied out right away by `live`; a concurrent
            // delete can at worst make us read a just-removed slot index, which `live` checks.
            // By reference: a key passed by value is copied to the stack again.
            #[allow(clippy::needless_borrows_for_generic_args)]
            let index = unsafe {
                if pkt.ipv6 {
                    (k6[1], k6[2], k6[3]) = (proto, p[0], p[1]);
                    EXACT_V6.get(&k6)
                } else {
                    (k4[1], k4[2], k4[3]) = (proto, p[0], p[1]);
                    EXACT_V4.get(&k4)
                }
            };
            if let Some(hit) = live(index) {
                return Some(hit);
            }
        }
    }
    let mut best = None;
    if pkt.ipv6 {
        let trie = match direction {
            Direction::Ingress => &RULES_V6_INGRESS,
            Direction::Egress => &RULES_V6_EGRESS,
        };
        let mut key = Key::new(KEY_HEADER_BITS + 128, key_v6(scope, 0, 0, pkt.addr));
        for (shape, proto, port) in probes {
            if shapes & shape != 0 {
                let p = port.to_be_bytes();
                (key.data[8], key.data[9], key.data[10]) = (proto, p[0], p[1]);
                offer(&mut best, trie.get(&key));
            }
        }
    } else {
        let trie = match direction {
            Direction::Ingress => &RULES_V4_INGRESS,
            Direction::Egress => &RULES_V4_EGRESS,
        };
        let a = pkt.addr;
        let mut key = Key::new(
            KEY_HEADER_BITS + 32,
            key_v4(scope, 0, 0, [a[0], a[1], a[2], a[3]]),
        );
        for (shape, proto, port) in probes {
            if shapes & shape != 0 {
                let p = port.to_be_bytes();
                (key.data[8], key.data[9], key.data[10]) = (proto, p[0], p[1]);
                offer(&mut best, trie.get(&key));
            }
        }
    }
    best
}
