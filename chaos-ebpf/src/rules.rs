//! Rule lookup: an O(1) prefilter bitmap over the address's first 16 bits, then at most four
//! LPM-trie lookups — (proto, port), (proto, any), (any, port), (any, any). Among the unexpired
//! matches the longest address prefix wins; on a tie the more specific protocol/port wins.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::lpm_trie::Key};
use chaos_common::{
    ACTION_NONE, Direction, EXACT_SHAPE_SHIFT, PORT_ANY, PROTO_ANY, RuleSlot, SHAPE_ANY,
    SHAPE_ANYPROTO_PORT, SHAPE_PROTO_ANYPORT, SHAPE_PROTO_PORT, exact_key_v4, exact_key_v6, key_v4,
    key_v6, prefilter_bit, prefilter_table,
};

use crate::{
    maps::{
        EXACT_V4, EXACT_V6, HEARTBEAT, KEY_SHAPES, PREFILTER, RULES_V4_EGRESS, RULES_V4_INGRESS,
        RULES_V6_EGRESS, RULES_V6_INGRESS, SLOTS,
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

/// Finds the rule for `pkt` in the tables of `direction`.
#[inline(always)]
pub fn lookup(pkt: &Packet, direction: Direction) -> Option<Hit> {
    let table = prefilter_table(direction, pkt.ipv6);
    let top16 = u16::from_be_bytes([pkt.addr[0], pkt.addr[1]]);
    let (word, mask) = prefilter_bit(table, top16);
    if PREFILTER.get(word).copied().unwrap_or(0) & mask == 0 {
        return None;
    }
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
    // Full-length rules first: nothing is longer, so the first live one wins outright.
    if shapes >> EXACT_SHAPE_SHIFT != 0 {
        for (shape, proto, port) in probes {
            if shapes & (shape << EXACT_SHAPE_SHIFT) == 0 {
                continue;
            }
            // SAFETY: the value is a plain u32 copied out right away by `live`; a concurrent
            // delete can at worst make us read a just-removed slot index, which `live` checks.
            let index = unsafe {
                if pkt.ipv6 {
                    EXACT_V6.get(exact_key_v6(direction, proto, port, pkt.addr))
                } else {
                    let addr = [pkt.addr[0], pkt.addr[1], pkt.addr[2], pkt.addr[3]];
                    EXACT_V4.get(exact_key_v4(direction, proto, port, addr))
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
        for (shape, proto, port) in probes {
            if shapes & shape != 0 {
                offer(
                    &mut best,
                    trie.get(Key::new(24 + 128, key_v6(proto, port, pkt.addr))),
                );
            }
        }
    } else {
        let trie = match direction {
            Direction::Ingress => &RULES_V4_INGRESS,
            Direction::Egress => &RULES_V4_EGRESS,
        };
        let addr = [pkt.addr[0], pkt.addr[1], pkt.addr[2], pkt.addr[3]];
        for (shape, proto, port) in probes {
            if shapes & shape != 0 {
                offer(
                    &mut best,
                    trie.get(Key::new(24 + 32, key_v4(proto, port, addr))),
                );
            }
        }
    }
    best
}
