//! Rule lookup: an O(1) prefilter bitmap over the address's bucket (an IPv4 /16, a fold of an
//! IPv6 address's first 48 bits), then one hash lookup per (prefix length, key shape) pair in
//! use — shapes (proto, port), (proto, any), (any, port), (any, any) — longest length first,
//! and the LPM tries of the pairs beyond `MAX_PROBES`. Among the unexpired matches the longest
//! address prefix wins; on a tie the more specific protocol/port. The cost depends on the pairs
//! in use, never on the number of rules.
//!
//! On egress, rules scoped to a cgroup come first: for each level some scoped rule uses
//! (`SCOPE_LEVELS`, deepest first), the same lookup with the id of the packet's socket's cgroup
//! ancestor at that level as the key's scope; the first scope with a live match decides, then
//! the unscoped rules. Packets the prefilter turns away never read the cgroup.

use aya_ebpf::{
    bindings::__sk_buff,
    cty::c_void,
    helpers::{bpf_ktime_get_ns, bpf_loop, bpf_skb_ancestor_cgroup_id},
    maps::{HashMap, lpm_trie::Key},
    programs::TcContext,
};
use chaos_common::{
    ACTION_NONE, Direction, KEY_ADDR, KEY_HEADER_BITS, MAX_PROBES, MAX_SCOPE_PROBES, NETMASKS,
    PORT_ANY, PROTO_ANY, Probes, RuleSlot, SHAPE_ANY, SHAPE_ANYPROTO_PORT, SHAPE_PROTO_ANYPORT,
    SHAPE_PROTO_PORT, SHAPES, prefilter_bit, prefilter_bucket, prefilter_table, rule_key_v4,
    rule_key_v6, trie_key_v4, trie_key_v6,
};

use crate::{
    maps::{
        HEARTBEAT, KEY_SHAPES, PREFILTER, PROBES, RULES_V4, RULES_V4_EGRESS, RULES_V4_INGRESS,
        RULES_V6, RULES_V6_EGRESS, RULES_V6_INGRESS, SCOPE_LEVELS, SLOTS,
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

/// The slot at `index` if it is in use, not expired, and its daemon's heartbeat is fresh.
#[inline(always)]
pub fn live(index: Option<&u32>) -> Option<Hit> {
    let index = chaos_live_slot(*index?);
    SLOTS.get(index).map(|slot| Hit { index, slot })
}

/// `index` if its slot is live, else [`NO_HIT`]. A global function, so the verifier checks it
/// once for every caller instead of once per inlined call site and caller state. The clock and
/// the heartbeat are read only here, so packets that match no rule never pay for them.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn chaos_live_slot(index: u32) -> u32 {
    let Some(slot) = SLOTS.get(index) else {
        return NO_HIT;
    };
    if slot.action == ACTION_NONE {
        return NO_HIT;
    }
    let heartbeat = HEARTBEAT.get(0).filter(|h| h.interval_ns != 0);
    if slot.expires_at_ns == 0 && heartbeat.is_none() {
        return index;
    }
    // SAFETY: plain helper call, no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if slot.expires_at_ns != 0 && slot.expires_at_ns <= now {
        return NO_HIT;
    }
    if let Some(h) = heartbeat
        && now.saturating_sub(h.beat_ns) > h.interval_ns
    {
        return NO_HIT;
    }
    index
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
    let levels = SCOPE_LEVELS.get(0).copied().unwrap_or(0);
    if levels != 0
        && let Some(index) = find_scoped(ctx, pkt, levels)
    {
        return SLOTS.get(index).map(|slot| Hit { index, slot });
    }
    find(pkt, Direction::Egress, 0)
}

/// What a lookup returns when nothing matched.
const NO_HIT: u32 = u32::MAX;

/// The scoped search's state, on the caller's stack: the levels still to try, and the slot index
/// found.
struct ScopeSearch {
    skb: *mut __sk_buff,
    pkt: *const Packet,
    levels: u64,
    index: u32,
}

/// The slot index of the first live egress rule for `pkt` scoped to one of its socket's cgroup
/// ancestors at `levels`, deepest first. The lookups run in a `bpf_loop` callback, so the
/// verifier checks one callback body rather than the lookup once per unrolled level and caller
/// state (≈ 350 ms of a 380 ms program load on 6.18). The caller passes a constant trip count and
/// the callback does all the per-level work, so the loop is entered in one verifier state.
#[inline(always)]
fn find_scoped(ctx: &TcContext, pkt: &Packet, levels: u64) -> Option<u32> {
    let mut search = ScopeSearch {
        skb: ctx.skb.skb,
        pkt,
        levels,
        index: NO_HIT,
    };
    // SAFETY: the callback uses `search` only during the call.
    unsafe {
        bpf_loop(
            MAX_SCOPE_PROBES,
            scoped_probe as *mut c_void,
            &mut search as *mut ScopeSearch as *mut c_void,
            0,
        )
    };
    (search.index != NO_HIT).then_some(search.index)
}

/// One level of [`find_scoped`], the deepest left: 1 (stop) once a rule matched or no level is left.
extern "C" fn scoped_probe(_: u64, search: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` passes back the `ScopeSearch` `find_scoped` gave it.
    let search = unsafe { &mut *(search as *mut ScopeSearch) };
    if search.levels == 0 {
        return 1;
    }
    let level = 63 - search.levels.leading_zeros();
    search.levels &= !(1u64 << level);
    // SAFETY: the program's own skb; a packet without a (full) socket yields 0.
    let scope = unsafe { bpf_skb_ancestor_cgroup_id(search.skb, level as i32) };
    if scope == 0 {
        return 0;
    }
    // SAFETY: the caller's packet, alive for the whole loop.
    let pkt = unsafe { &*search.pkt };
    match find(pkt, Direction::Egress, scope) {
        Some(hit) => {
            search.index = hit.index;
            1
        }
        None => 0,
    }
}

/// Whether some rule of `direction` may match the packet's prefilter bucket.
#[inline(always)]
fn prefiltered(pkt: &Packet, direction: Direction) -> bool {
    let table = prefilter_table(direction, pkt.ipv6);
    let (word, mask) = prefilter_bit(table, prefilter_bucket(pkt.ipv6, &pkt.addr));
    PREFILTER.get(word).copied().unwrap_or(0) & mask != 0
}

/// Finds the rule for `pkt` among the rules of `direction` scoped to `scope` (0: unscoped).
#[inline(always)]
fn find(pkt: &Packet, direction: Direction, scope: u64) -> Option<Hit> {
    let table = prefilter_table(direction, pkt.ipv6);
    // Plain integers, not an `Option<Hit>`: copies of a `None` carry an undefined payload
    // register, which the verifier rejects as unreadable.
    let mut best = Best::NONE;
    if let Some(probes) = PROBES.get(table) {
        if pkt.ipv6 {
            let key = rule_key_v6(direction, 0, scope, 0, 0, pkt.addr);
            best = probe::<32, 16>(&RULES_V6, key, pkt, probes);
        } else {
            let a = pkt.addr;
            let key = rule_key_v4(direction, 0, scope, 0, 0, [a[0], a[1], a[2], a[3]]);
            best = probe::<20, 4>(&RULES_V4, key, pkt, probes);
        }
    }
    let shapes = KEY_SHAPES.get(table).copied().unwrap_or(0);
    if shapes != 0 {
        offer_tries(&mut best, pkt, direction, scope, shapes);
    }
    if best.index == NO_HIT {
        return None;
    }
    SLOTS.get(best.index).map(|slot| Hit {
        index: best.index,
        slot,
    })
}

/// The best live rule found so far: slot index ([`NO_HIT`]: none), prefix length, shape.
#[derive(Clone, Copy)]
struct Best {
    index: u32,
    len: u8,
    shape: u8,
}

impl Best {
    const NONE: Best = Best {
        index: NO_HIT,
        len: 0,
        shape: SHAPES as u8,
    };
}

/// Looks the packet up in the LPM tries of the shapes in `shapes`, keeping a trie match in
/// `best` if it is longer, or as long and of a more specific shape.
#[inline(always)]
fn offer_tries(best: &mut Best, pkt: &Packet, direction: Direction, scope: u64, shapes: u32) {
    let tries = [
        (SHAPE_PROTO_PORT, pkt.proto, pkt.port),
        (SHAPE_PROTO_ANYPORT, pkt.proto, PORT_ANY),
        (SHAPE_ANYPROTO_PORT, PROTO_ANY, pkt.port),
        (SHAPE_ANY, PROTO_ANY, PORT_ANY),
    ];
    // One key per family, rewritten in place for each shape: the lookup runs in a BPF-to-BPF
    // call beside the caller's frame, and both must fit the 512-byte stack.
    if pkt.ipv6 {
        let trie = match direction {
            Direction::Ingress => &RULES_V6_INGRESS,
            Direction::Egress => &RULES_V6_EGRESS,
        };
        let mut key = Key::new(KEY_HEADER_BITS + 128, trie_key_v6(scope, 0, 0, pkt.addr));
        for (shape, proto, port) in tries {
            if shapes & (1 << shape) != 0 && usable(shape, pkt.port) {
                let p = port.to_be_bytes();
                (key.data[8], key.data[9], key.data[10]) = (proto, p[0], p[1]);
                offer(best, shape, trie.get(&key));
            }
        }
    } else {
        let trie = match direction {
            Direction::Ingress => &RULES_V4_INGRESS,
            Direction::Egress => &RULES_V4_EGRESS,
        };
        let a = pkt.addr;
        let addr = [a[0], a[1], a[2], a[3]];
        let mut key = Key::new(KEY_HEADER_BITS + 32, trie_key_v4(scope, 0, 0, addr));
        for (shape, proto, port) in tries {
            if shapes & (1 << shape) != 0 && usable(shape, pkt.port) {
                let p = port.to_be_bytes();
                (key.data[8], key.data[9], key.data[10]) = (proto, p[0], p[1]);
                offer(best, shape, trie.get(&key));
            }
        }
    }
}

/// Keeps in `best` whichever of it and the slot a trie lookup of `shape` returned has the longer
/// prefix, or on equal length the more specific shape.
#[inline(always)]
fn offer(best: &mut Best, shape: u8, index: Option<&u32>) {
    let Some(hit) = live(index) else {
        return;
    };
    let len = hit.slot.prefix_len;
    if best.index != NO_HIT && (best.len > len || (best.len == len && best.shape < shape)) {
        return;
    }
    *best = Best {
        index: hit.index,
        len,
        shape,
    };
}

/// Whether a packet with `port` (0: none) can match a rule of `shape`: one without a port
/// cannot match a rule that names one.
#[inline(always)]
fn usable(shape: u8, port: u16) -> bool {
    port != PORT_ANY || shape == SHAPE_PROTO_ANYPORT || shape == SHAPE_ANY
}

/// Looks `pkt` up under each hashed (prefix length, shape) pair, in the table's order (longest
/// first, then most specific): the first live rule and its shape. A packet without a
/// port probes port-naming pairs with port 0, which finds the same-length rule without a port:
/// it would have been found next anyway. `N` is the key size, `A` the address's bytes.
#[inline(always)]
fn probe<const N: usize, const A: usize>(
    rules: &HashMap<[u8; N], u32>,
    mut key: [u8; N],
    pkt: &Packet,
    probes: &Probes,
) -> Best {
    let port = pkt.port.to_be_bytes();
    for i in 0..MAX_PROBES {
        if i as u32 >= probes.count {
            break;
        }
        let p = &probes.probe[i];
        // SAFETY: a byte of a map value; one load, so the key's length and mask agree even
        // while the daemon rewrites this probe (see `NETMASKS`).
        let len = unsafe { core::ptr::read_volatile(&p.len) };
        let mask = &NETMASKS[len as usize];
        for b in 0..A {
            key[KEY_ADDR + b] = pkt.addr[b] & mask[b];
        }
        let port_mask = p.port_mask.to_be_bytes();
        (key[1], key[2], key[3], key[4]) = (
            len,
            pkt.proto & p.proto_mask,
            port[0] & port_mask[0],
            port[1] & port_mask[1],
        );
        // SAFETY: the value is a plain u32 copied out right away; a concurrent delete can at
        // worst make us read a just-removed slot index, which `live` checks.
        // By reference: a key passed by value is copied to the stack again.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let index = unsafe { rules.get(&key) };
        if let Some(hit) = live(index) {
            return Best {
                index: hit.index,
                len,
                shape: p.shape,
            };
        }
    }
    Best::NONE
}
