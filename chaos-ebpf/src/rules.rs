//! Rule lookup: an O(1) prefilter bitmap over the address's first 16 bits, then at most four
//! LPM-trie lookups — (proto, port), (proto, any), (any, port), (any, any). Among the unexpired
//! matches the longest address prefix wins; on a tie the more specific protocol/port wins.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
};
use chaos_common::{
    ACTION_NONE, Counters, EXACT_SHAPE_SHIFT, ExactKeyV4, ExactKeyV6, MAX_SLOTS, MAX_TRIE_ENTRIES,
    PORT_ANY, PREFILTER_TABLES, PREFILTER_WORDS, PROTO_ANY, RuleKeyV4, RuleKeyV6, RuleSlot,
    SHAPE_ANY, SHAPE_ANYPROTO_PORT, SHAPE_PROTO_ANYPORT, SHAPE_PROTO_PORT, exact_key_v4,
    exact_key_v6, key_v4, key_v6, prefilter_bit, prefilter_table,
};

use crate::parse::Packet;

/// Egress IPv4 rules (match destination).
#[map]
static RULES_V4_EGRESS: LpmTrie<RuleKeyV4, u32> = LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Egress IPv6 rules.
#[map]
static RULES_V6_EGRESS: LpmTrie<RuleKeyV6, u32> = LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Ingress IPv4 rules (match source).
#[map]
static RULES_V4_INGRESS: LpmTrie<RuleKeyV4, u32> = LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Ingress IPv6 rules.
#[map]
static RULES_V6_INGRESS: LpmTrie<RuleKeyV6, u32> = LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Full-length IPv4 rules (/32), both directions (direction is the first key byte).
#[map]
static EXACT_V4: HashMap<ExactKeyV4, u32> = HashMap::with_max_entries(MAX_SLOTS, 0);
/// Full-length IPv6 rules (/128), both directions.
#[map]
static EXACT_V6: HashMap<ExactKeyV6, u32> = HashMap::with_max_entries(MAX_SLOTS, 0);
/// Rule slots, indexed by the tries' values.
#[map]
static SLOTS: Array<RuleSlot> = Array::with_max_entries(MAX_SLOTS, 0);
/// Per-rule per-CPU counters, indexed like SLOTS.
#[map]
pub static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// One bit per /16 and (direction, family): set when some rule may match addresses in it.
#[map]
static PREFILTER: Array<u64> = Array::with_max_entries(PREFILTER_TABLES * PREFILTER_WORDS, 0);
/// Per (direction, family): bitmask of the key shapes (SHAPE_*) some rule uses.
#[map]
static KEY_SHAPES: Array<u32> = Array::with_max_entries(PREFILTER_TABLES, 0);

/// The rule that applies to a packet.
pub struct Hit {
    /// Slot index (also the counters index).
    pub index: u32,
    /// The slot's contents.
    pub slot: &'static RuleSlot,
}

/// The slot at `index` if it is in use and not expired. The clock is read only here, so
/// packets that match no rule never pay for it.
#[inline(always)]
fn live(index: Option<&u32>) -> Option<Hit> {
    let index = *index?;
    let slot = SLOTS.get(index)?;
    if slot.action == ACTION_NONE {
        return None;
    }
    // SAFETY: plain helper call, no arguments.
    if slot.expires_at_ns != 0 && slot.expires_at_ns <= unsafe { bpf_ktime_get_ns() } {
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

/// Finds the rule for `pkt` in the egress (`ingress == false`) or ingress tables.
#[inline(always)]
pub fn lookup(pkt: &Packet, ingress: bool) -> Option<Hit> {
    let table = prefilter_table(ingress, pkt.ipv6);
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
                    EXACT_V6.get(exact_key_v6(ingress, proto, port, pkt.addr))
                } else {
                    let addr = [pkt.addr[0], pkt.addr[1], pkt.addr[2], pkt.addr[3]];
                    EXACT_V4.get(exact_key_v4(ingress, proto, port, addr))
                }
            };
            if let Some(hit) = live(index) {
                return Some(hit);
            }
        }
    }
    let mut best = None;
    if pkt.ipv6 {
        let trie = if ingress {
            &RULES_V6_INGRESS
        } else {
            &RULES_V6_EGRESS
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
        let trie = if ingress {
            &RULES_V4_INGRESS
        } else {
            &RULES_V4_EGRESS
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
