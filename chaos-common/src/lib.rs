//! Types shared by the eBPF programs (`chaos-ebpf`) and userspace (`chaos-daemon`).
//!
//! Everything here is `#[repr(C)]` and plain data: the same bytes are written by the daemon
//! into BPF maps and read by the programs in the kernel. With the `user` feature the types
//! implement [`aya::Pod`] so aya can copy them in and out of maps.
//!
//! # Map layout
//! * `RULES_V4`/`RULES_V6` — hash maps, both directions: key `[direction, prefix length, protocol,
//!   port_hi, port_lo, 0, 0, 0, masked address…, scope]` ([`rule_key_v4`]), value a slot index
//!   (`u32`). Every (prefix length, shape) pair is its own exact-match table within the map; the
//!   shapes are (proto, port), (proto, any), (any, port), (any, any).
//! * `PROBES` — one [`Probes`] per prefilter table: the pairs in use, longest length first (at
//!   most [`MAX_PROBES`]). A packet looks up one key per pair; the first live rule is the best
//!   hashed match, so the cost is flat in the number of rules.
//! * `RULES_{V4,V6}_{EGRESS,INGRESS}` — LPM tries for the rules of the pairs `PROBES` had no room
//!   for: key data `[scope, protocol, port_hi, port_lo, addr…]` ([`TrieKeyV4`]), prefix length
//!   `88 + cidr bits`, value a slot index; `KEY_SHAPES` (one `u32` per table, bit `1 << shape`)
//!   says which shapes have trie rules. A trie match wins over the hashed one only if longer
//!   (or as long and of a more specific shape).
//! * `SCOPE_LEVELS` — one `u64`: bit L set while some egress rule is scoped to a cgroup at level
//!   L. A packet that passes the prefilter is looked up, deepest level first, with the id of its
//!   socket's cgroup ancestor at each such level as the scope, then with scope 0 (no cgroup).
//! * `SLOTS` — array of [`RuleSlot`], one per installed rule: action, parameters, expiry.
//! * `COUNTERS` — per-CPU array of [`CounterChunk`]s: slot `i`'s [`Counters`] are entry
//!   `i % COUNTER_CHUNK` of element `i / COUNTER_CHUNK`.
//! * `PREFILTER` — array of `u64` bitmaps, one bit per bucket ([`prefilter_bucket`]: an IPv4
//!   address's /16, a fold of an IPv6 address's first 48 bits), [`PREFILTER_WORDS`] words per
//!   table, four tables (see [`prefilter_table`]). A clear bit means "no rule can match this
//!   packet", so non-matching traffic skips the rule lookups.
//! * `DNS_RULES` — hash map from the first [`dns_hash`] of a name encoded by [`dns_key`] to a
//!   [`DnsRule`] (slot, resolver port and network, response, second hash); `DNS_WILDCARDS` — one
//!   bit per suffix label count some `*.suffix` rule has; `DNS_PORTS` — one bit per port some
//!   domain rule watches, which sends the packet to the DNS program (`DNS_PROGRAMS`, a tail call).
#![no_std]
#![warn(missing_docs)]

/// Number of rule slots (and counter entries): the hard ceiling on rules per interface.
pub const MAX_SLOTS: u32 = 131_072;
/// Capacity of each LPM trie.
pub const MAX_TRIE_ENTRIES: u32 = MAX_SLOTS;

/// Protocol wildcard in a rule key.
pub const PROTO_ANY: u8 = 0;
/// Port wildcard in a rule key (port 0 is never a valid rule port).
pub const PORT_ANY: u16 = 0;

/// IP protocol numbers used by the classifier.
pub const IPPROTO_ICMP: u8 = 1;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// Slot is unused (or being torn down): the programs ignore it.
pub const ACTION_NONE: u8 = 0;
/// Drop every selected packet (silently: egress redirects to a non-existent ifindex, ingress XDP_DROP).
pub const ACTION_BLACKHOLE: u8 = 1;
/// Drop a random `ppm` share of matching packets.
pub const ACTION_LOSS: u8 = 2;
/// Delay a `ppm` share of matching packets (egress only): their departure time becomes
/// `max(now, skb->tstamp) + delay_ns ± jitter_ns` (uniform), kept monotonic per flow; `fq`
/// holds them until then.
pub const ACTION_LATENCY: u8 = 3;
/// Limit matching packets to `rate_bytes_per_sec`: on egress, EDT pacing of the rule's
/// aggregate (departure `max(now, t_last + len·1e9/rate)`, dropped beyond [`PACING_HORIZON_NS`]);
/// on ingress, a token-bucket policer of `burst_bytes` (drops above the rate).
pub const ACTION_BANDWIDTH: u8 = 4;

/// Answer matching DNS queries (egress only): rewrite the query into a response with the
/// [`DnsRule::rcode`] and send it back up the same interface, or drop it ([`DNS_DROP`]). Only
/// slots reached through `DNS_RULES` carry it.
pub const ACTION_DNS: u8 = 5;

/// Egress pacing drops a packet that would leave more than this far in the future: the queue a
/// bandwidth fault builds is at most two seconds deep (Cilium's bandwidth manager does the same).
pub const PACING_HORIZON_NS: u64 = 2_000_000_000;

/// `skb->priority` the egress program gives a packet it delays. The daemon's `prio` qdisc sends
/// this value (major 0, so its `priomap` decides) to the band where `netem` orphans the packet
/// (as it does its own delayed ones) before an `fq` holds it to its departure time: a delayed
/// packet then stops counting against its socket's TCP Small Queues budget and send buffer, so
/// bulk senders are held by the delay and not by the local queue. Every other priority maps to
/// the plain `fq` band. 15 (`TC_PRIO_MAX`) is one no stock priority uses.
pub const PRIORITY_DELAYED: u32 = 15;

/// `RuleSlot::flags`: jitter may reorder a flow (netem's behaviour); without it a flow's
/// departure times stay monotonic.
pub const FLAG_REORDER: u8 = 1;

/// Flows whose last departure time the egress program remembers (LRU), so jitter never
/// reorders a flow.
pub const MAX_FLOWS: u32 = 65_536;

/// `ppm` value meaning "every packet".
pub const PPM_ALL: u32 = 1_000_000;

/// Words per prefilter table: 65,536 bits, one per /16.
pub const PREFILTER_WORDS: u32 = 65_536 / 64;
/// Number of prefilter tables (egress v4, egress v6, ingress v4, ingress v6).
pub const PREFILTER_TABLES: u32 = 4;

/// Which way a packet goes, and so which end of it a rule matches. The discriminant is the
/// direction byte of exact keys and half of the prefilter table index.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets leaving the interface (TC egress); rules match the destination.
    Egress = 0,
    /// Packets arriving on the interface (XDP); rules match the source.
    Ingress = 1,
}

impl Direction {
    /// `egress` / `ingress`, as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

impl core::fmt::Display for Direction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TC return code that TCX reads as NEXT (`TC_ACT_UNSPEC`): the packet goes on.
pub const TC_ACT_NEXT: i32 = -1;
/// TC return code of `bpf_redirect`: how egress drops (to an ifindex that cannot exist).
pub const TC_ACT_REDIRECT: i32 = 7;
/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;

/// Index of the prefilter table for a direction and family.
#[inline(always)]
pub const fn prefilter_table(direction: Direction, ipv6: bool) -> u32 {
    (direction as u32) * 2 + ipv6 as u32
}

/// Position of the bit for `bucket` ([`prefilter_bucket`]) in a prefilter table: (word index,
/// bit mask).
#[inline(always)]
pub const fn prefilter_bit(table: u32, bucket: u16) -> (u32, u64) {
    (
        table * PREFILTER_WORDS + (bucket as u32 >> 6),
        1u64 << (bucket & 63),
    )
}

/// Bits of an IPv6 address the prefilter folds into its 16-bit bucket: a rule at least this
/// long marks one bucket. Most global IPv6 addresses share their first 16 bits (2000::/3), so
/// buckets by /16 would send nearly every packet to the lookups.
pub const PREFILTER_V6_BITS: u8 = 48;

/// The prefilter bucket of an address: IPv4 its first 16 bits (its /16); IPv6 the XOR of its
/// first three 16-bit words, so an IPv6 rule of /32 or longer covers one aligned range of
/// buckets (the daemon's `prefilter_range`) and one of /48 or longer a single bucket.
#[inline(always)]
pub const fn prefilter_bucket(ipv6: bool, addr: &[u8; 16]) -> u16 {
    let w0 = u16::from_be_bytes([addr[0], addr[1]]);
    if !ipv6 {
        return w0;
    }
    w0 ^ u16::from_be_bytes([addr[2], addr[3]]) ^ u16::from_be_bytes([addr[4], addr[5]])
}

/// Protocol/port shapes of a rule key, most specific first: on equal prefix length the earlier
/// shape wins. A shape is an index in [`Probes`] and a bit (`1 << shape`) in `KEY_SHAPES`.
pub const SHAPE_PROTO_PORT: u8 = 0;
/// Rules with a protocol and any port.
pub const SHAPE_PROTO_ANYPORT: u8 = 1;
/// Rules with any protocol and a port.
pub const SHAPE_ANYPROTO_PORT: u8 = 2;
/// Rules with any protocol and any port.
pub const SHAPE_ANY: u8 = 3;
/// Number of key shapes.
pub const SHAPES: usize = 4;

/// (prefix length, shape) pairs a table can keep in the hash map (`RULES_V4`/`RULES_V6`); the
/// rules of further pairs go to the table's LPM trie.
pub const MAX_PROBES: usize = 8;

/// One (prefix length, shape) pair of a [`Probes`] list, with what the program needs to build
/// its key without a branch (each branch doubled the verifier's paths per probed pair). The
/// netmask is not here but in [`NETMASKS`], indexed by `len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Prefix length.
    pub len: u8,
    /// Key shape (`SHAPE_*`).
    pub shape: u8,
    /// 0xff if the shape has a protocol, else 0.
    pub proto_mask: u8,
    /// Padding.
    pub _pad: u8,
    /// 0xffff if the shape has a port, else 0.
    pub port_mask: u16,
    /// Padding.
    pub _pad2: u16,
}

/// The netmask of every prefix length, as address bytes (IPv4 in the first 4; lengths past 128
/// are all ones and unused). The program takes a probe's mask from here by the probe's length,
/// one byte it reads once: an array map update is a plain copy, so a packet can read a probe
/// while the daemon rewrites it, and a mask read apart from its length could pair a /24 with a
/// /16's mask — a key that finds a /24 rule the packet is not in. A torn probe now yields a key
/// of one real (length, mask), which finds only a rule the packet matches, or nothing.
pub static NETMASKS: [[u8; 16]; 256] = netmasks();

const fn netmasks() -> [[u8; 16]; 256] {
    let mut table = [[0u8; 16]; 256];
    let mut len = 0;
    while len < 256 {
        let mut byte = 0;
        while byte < 16 {
            let bits = if len <= byte * 8 {
                0
            } else if len - byte * 8 >= 8 {
                8
            } else {
                len - byte * 8
            };
            table[len][byte] = (0xff00u16 >> bits) as u8;
            byte += 1;
        }
        len += 1;
    }
    table
}

/// Per prefilter table (`PROBES` map): the (prefix length, shape) pairs whose rules are in the
/// hash map, longest length first and, on one length, the most specific shape first. A packet
/// looks up one key per pair and the first rule found is the best hashed match: the cost
/// depends on how many pairs are in use, not on how many rules there are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probes {
    /// Pairs in use (≤ [`MAX_PROBES`]).
    pub count: u32,
    /// Padding.
    pub _pad: u32,
    /// The pairs.
    pub probe: [Probe; MAX_PROBES],
}

/// Rule key for IPv4 (`RULES_V4`, a hash map): `[direction (0 egress, 1 ingress), prefix length,
/// proto, port_hi, port_lo, 0, 0, 0, a, b, c, d (masked to the prefix), scope (8 bytes,
/// big-endian)]`. The length is part of the key, so every (length, shape) pair is its own
/// exact-match table inside one map.
pub type RuleKeyV4 = [u8; 20];
/// Rule key for IPv6 (`RULES_V6`): the same header, 16 address bytes, scope.
pub type RuleKeyV6 = [u8; 32];
/// Offset of the address in a rule key.
pub const KEY_ADDR: usize = 8;

/// Copies `src` into `dst` from `at` on (`const fn` has no slice copy).
#[inline(always)]
const fn put<const N: usize>(mut dst: [u8; N], at: usize, src: &[u8]) -> [u8; N] {
    let mut i = 0;
    while i < src.len() {
        dst[at + i] = src[i];
        i += 1;
    }
    dst
}

/// A rule key's header: direction, prefix length, protocol and port (0: any).
#[inline(always)]
const fn key_header<const N: usize>(
    direction: Direction,
    prefix_len: u8,
    proto: u8,
    port: u16,
) -> [u8; N] {
    let p = port.to_be_bytes();
    put(
        [0u8; N],
        0,
        &[direction as u8, prefix_len, proto, p[0], p[1]],
    )
}

/// Builds an IPv4 rule key; `addr` must already be masked to `prefix_len`. `scope` is the
/// cgroup id a rule is limited to, 0 for none.
#[inline(always)]
pub const fn rule_key_v4(
    direction: Direction,
    prefix_len: u8,
    scope: u64,
    proto: u8,
    port: u16,
    addr: [u8; 4],
) -> RuleKeyV4 {
    let k = key_header(direction, prefix_len, proto, port);
    put(put(k, KEY_ADDR, &addr), KEY_ADDR + 4, &scope.to_be_bytes())
}

/// Builds an IPv6 rule key.
#[inline(always)]
pub const fn rule_key_v6(
    direction: Direction,
    prefix_len: u8,
    scope: u64,
    proto: u8,
    port: u16,
    addr: [u8; 16],
) -> RuleKeyV6 {
    let k = key_header(direction, prefix_len, proto, port);
    put(put(k, KEY_ADDR, &addr), KEY_ADDR + 16, &scope.to_be_bytes())
}

/// The shape of a rule key.
#[inline(always)]
pub const fn key_shape(proto: u8, port: u16) -> u8 {
    match (proto != PROTO_ANY, port != PORT_ANY) {
        (true, true) => SHAPE_PROTO_PORT,
        (true, false) => SHAPE_PROTO_ANYPORT,
        (false, true) => SHAPE_ANYPROTO_PORT,
        (false, false) => SHAPE_ANY,
    }
}

/// Bits of a trie key before the address: scope (64) + protocol (8) + port (16).
pub const KEY_HEADER_BITS: u32 = 88;

/// LPM trie key data for IPv4 rules (`RULES_V4_{EGRESS,INGRESS}`, the pairs [`Probes`] has no room
/// for): `[scope (8 bytes, big-endian), proto, port_hi, port_lo, a, b, c, d]`, prefix length
/// `88 + cidr bits`. The scope is matched in full, so the rules of each cgroup, and those of
/// none (scope 0), form separate subtrees.
pub type TrieKeyV4 = [u8; 15];
/// LPM trie key data for IPv6 rules: `[scope, proto, port_hi, port_lo, 16 address bytes]`.
pub type TrieKeyV6 = [u8; 27];

/// Builds IPv4 trie key data. `proto`/`port` of 0 are wildcards; `scope` 0 is no cgroup.
#[inline(always)]
pub const fn trie_key_v4(scope: u64, proto: u8, port: u16, addr: [u8; 4]) -> TrieKeyV4 {
    let p = port.to_be_bytes();
    let k = put([0u8; 15], 0, &scope.to_be_bytes());
    put(put(k, 8, &[proto, p[0], p[1]]), 11, &addr)
}

/// Builds IPv6 trie key data.
#[inline(always)]
pub const fn trie_key_v6(scope: u64, proto: u8, port: u16, addr: [u8; 16]) -> TrieKeyV6 {
    let p = port.to_be_bytes();
    let k = put([0u8; 27], 0, &scope.to_be_bytes());
    put(put(k, 8, &[proto, p[0], p[1]]), 11, &addr)
}

/// Deepest cgroup level a rule can be scoped to (`SCOPE_LEVELS` has one bit per level; the
/// root, level 0, holds every process and is never a scope).
pub const MAX_SCOPE_LEVEL: u32 = 63;
/// Distinct cgroup levels the egress program probes per packet (deepest first): the daemon
/// refuses a scope at a further level while this many are in use.
pub const MAX_SCOPE_PROBES: u32 = 4;

/// One installed rule, as the programs see it. 64 bytes; the reserved fields give room for
/// latency/bandwidth parameters and cgroup scoping without changing the map layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleSlot {
    /// One of the `ACTION_*` constants; `ACTION_NONE` means the slot is free.
    pub action: u8,
    /// Address prefix length of the rule (0–32 / 0–128): the longest prefix wins among matches.
    pub prefix_len: u8,
    /// Latency: how the jitter is distributed (`DIST_*`).
    pub distribution: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Share of matching packets the action applies to, in parts per million (0..=1,000,000).
    pub ppm: u32,
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`) after which the slot is ignored; 0 = never.
    pub expires_at_ns: u64,
    /// cgroup v2 id the rule is scoped to (egress only; also in its key); 0 = any. Not read
    /// by the programs.
    pub cgroup_id: u64,
    /// Latency: added delay in ns.
    pub delay_ns: u64,
    /// Latency: the jitter in ns: the half-width of a uniform spread, or the standard deviation
    /// of a table distribution.
    pub jitter_ns: u64,
    /// Bandwidth: rate in bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Userspace generation tag, to tell reused slots apart in counters. Not read by the programs.
    pub generation: u64,
    /// Latency: correlation of successive jitter samples, as netem's ρ scaled to 2^32 (0 = none).
    pub correlation: u32,
    /// Bandwidth on ingress: the policer's bucket size in bytes.
    pub burst_bytes: u32,
}

/// Per-rule state of a bandwidth fault (`RATE_STATE`, indexed like `SLOTS`), shared by all CPUs.
/// A slot reused by another rule starts afresh: `generation` differs from the slot's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    /// The `RuleSlot::generation` this state belongs to.
    pub generation: u64,
    /// Egress: departure time of the rule's last paced packet. Ingress: when tokens were last added.
    pub last_ns: u64,
    /// Ingress: tokens (bytes) in the bucket.
    pub tokens: u64,
}

/// Jitter distributions. Uniform is computed; the others read an inverse-CDF table, as netem.
pub const DIST_UNIFORM: u8 = 0;
/// Normal (Gaussian).
pub const DIST_NORMAL: u8 = 1;
/// Pareto (a = 3), standardised.
pub const DIST_PARETO: u8 = 2;
/// netem's paretonormal: (normal + 3·pareto) / 4.
pub const DIST_PARETONORMAL: u8 = 3;
/// Table distributions (normal, pareto, paretonormal), in `DIST_TABLES` in that order.
pub const DIST_TABLES: u32 = 3;
/// Entries per table: the sample for a uniform random r is `table[r >> 20]`.
pub const DIST_TABLE_SIZE: u32 = 4096;
/// Table values are standard deviations × this (±4σ fits an i16).
pub const DIST_SCALE: i64 = 8192;

/// The dead-man switch (`HEARTBEAT`, one entry): the daemon writes `beat_ns` several times a
/// second; once it is older than `interval_ns` the programs treat every rule as absent, so a
/// dead or hung daemon's faults lift by themselves. `interval_ns` 0 = switched off (programs
/// loaded for tests and benchmarks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// CLOCK_MONOTONIC ns of the daemon's last beat.
    pub beat_ns: u64,
    /// How old a beat may get before the rules are ignored.
    pub interval_ns: u64,
}

/// Bytes of a name encoded by [`dns_key`] (the longest name, 253 characters, takes 255).
pub const DNS_KEY_BYTES: usize = 256;
/// A name encoded by [`dns_key`].
pub type DnsKeyData = [u8; DNS_KEY_BYTES];
/// Words of the `DNS_WILDCARDS` bitmap: one bit per suffix label count 0..=127.
pub const DNS_WILDCARD_WORDS: u32 = 2;
/// Words of the `DNS_PORTS` bitmap: one bit per port 0..=65535.
pub const DNS_PORT_WORDS: u32 = 65_536 / 64;
/// [`DnsRule::rcode`] meaning "drop the query" (the client times out). Real response codes
/// are 4 bits.
pub const DNS_DROP: u8 = 0xff;
/// DNS response code SERVFAIL.
pub const DNS_RCODE_SERVFAIL: u8 = 2;
/// DNS response code NXDOMAIN.
pub const DNS_RCODE_NXDOMAIN: u8 = 3;
/// DNS response code REFUSED.
pub const DNS_RCODE_REFUSED: u8 = 5;

/// A domain rule (`DNS_RULES` value, keyed by the first [`dns_hash`] of its encoded name):
/// what to answer, and which queries it is narrowed to. 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsRule {
    /// The second, independent hash of the rule's encoded name: a query whose first hash
    /// collides with the rule's but whose second does not is not the rule's name.
    pub check: u64,
    /// The rule's slot (action [`ACTION_DNS`], share, expiry, counters).
    pub slot: u32,
    /// Resolver port the query must go to.
    pub port: u16,
    /// Resolver address family the rule is narrowed to: 0 any, 4 or 6.
    pub family: u8,
    /// Response code to answer with, or [`DNS_DROP`].
    pub rcode: u8,
    /// Resolver network (IPv4 in the first 4 bytes), already masked.
    pub net: [u8; 16],
    /// Its mask.
    pub mask: [u8; 16],
}

/// Encodes a rule's name, or `None` if it does not fit: the bytes and their length in bits. `name` is lowercase presentation form without the trailing dot
/// (`api.example.com`); `wildcard` means "any name strictly below it" (`*.example.com`).
///
/// The encoding is the name with a dot after every label, byte-reversed: `api.example.com` →
/// `.moc.elpmaxe.ipa`, so that every suffix of the name is a prefix of its encoding. An exact
/// rule ends in a 0 byte (as a query's encoding does); a wildcard rule ends in `.`, the label
/// boundary that only names below the apex have. A query's wire-format name maps to the same
/// bytes (each length byte becomes a dot after the label before it), which the program computes
/// in one pass; dots cannot occur inside a label the program accepts. Rules are found by the
/// [`dns_hash`] of these bytes: the program hashes its query's encoding once and has the hash
/// of every suffix (at each dot) on the way.
pub fn dns_key(name: &[u8], wildcard: bool) -> Option<(DnsKeyData, u32)> {
    // The name, a dot, and the terminator.
    let len = name.len() + 2;
    if name.is_empty() || len > DNS_KEY_BYTES {
        return None;
    }
    let mut k = [0u8; DNS_KEY_BYTES];
    k[0] = b'.';
    let mut i = 0;
    while i < name.len() {
        k[name.len() - i] = name[i];
        i += 1;
    }
    k[name.len() + 1] = if wildcard { b'.' } else { 0 };
    Some((k, (len * 8) as u32))
}

/// Offset bases of the two hashes of [`dns_hash`].
pub const DNS_HASH_BASIS: [u64; 2] = [0xcbf2_9ce4_8422_2325, 0x9e37_79b9_7f4a_7c15];

/// One byte more of the two hashes domain rules are found by: FNV-1a, and a multiply-rotate
/// hash, independent enough that a query matches another name only if both collide.
#[inline(always)]
pub const fn dns_hash_step(h: [u64; 2], byte: u8) -> [u64; 2] {
    [
        (h[0] ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3),
        ((h[1] ^ byte as u64).wrapping_mul(0xff51_afd7_ed55_8ccd)).rotate_left(31),
    ]
}

/// The two hashes of `bytes` (an encoding from [`dns_key`]).
pub const fn dns_hash(bytes: &[u8]) -> [u64; 2] {
    let mut h = DNS_HASH_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        h = dns_hash_step(h, bytes[i]);
        i += 1;
    }
    h
}

/// Per-rule, per-CPU packet counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that matched the rule (unexpired).
    pub matched_packets: u64,
    /// Bytes of those packets.
    pub matched_bytes: u64,
    /// Packets the action was applied to (dropped, delayed…).
    pub affected_packets: u64,
}

impl Counters {
    /// Both counts added (a per-CPU sum).
    pub const fn plus(self, o: Counters) -> Counters {
        Counters {
            matched_packets: self.matched_packets.wrapping_add(o.matched_packets),
            matched_bytes: self.matched_bytes.wrapping_add(o.matched_bytes),
            affected_packets: self.affected_packets.wrapping_add(o.affected_packets),
        }
    }

    /// What was counted since `base` was read.
    pub const fn since(self, base: Counters) -> Counters {
        Counters {
            matched_packets: self.matched_packets.wrapping_sub(base.matched_packets),
            matched_bytes: self.matched_bytes.wrapping_sub(base.matched_bytes),
            affected_packets: self.affected_packets.wrapping_sub(base.affected_packets),
        }
    }
}

/// Slots per `COUNTERS` element. Creating a per-CPU array makes one per-CPU allocation per
/// element: 131,072 one-slot elements took a quarter of a second of the daemon's start, 4,096
/// chunks take milliseconds. Slot `i` counts in element `i / COUNTER_CHUNK`, entry
/// `i % COUNTER_CHUNK`.
pub const COUNTER_CHUNK: u32 = 32;
/// One `COUNTERS` element.
pub type CounterChunk = [Counters; COUNTER_CHUNK as usize];
/// Slots per `LAST_RANDOM` element, for the same reason.
pub const RANDOM_CHUNK: u32 = 256;
/// One `LAST_RANDOM` element.
pub type RandomChunk = [u32; RANDOM_CHUNK as usize];

#[cfg(feature = "user")]
mod user {
    // SAFETY: both are repr(C), Copy, contain only integers and have no padding holes that
    // matter to the kernel (RuleSlot is 64 bytes of explicit fields, Counters 24 bytes).
    unsafe impl aya::Pod for super::RuleSlot {}
    unsafe impl aya::Pod for super::Counters {}
    // SAFETY: repr(C), three u64s.
    unsafe impl aya::Pod for super::RateState {}
    // SAFETY: repr(C), two u64s.
    unsafe impl aya::Pod for super::Heartbeat {}
    // SAFETY: repr(C), 48 bytes of integers without padding.
    unsafe impl aya::Pod for super::DnsRule {}
    // SAFETY: repr(C), integers with explicit padding fields.
    unsafe impl aya::Pod for super::Probes {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(core::mem::size_of::<RuleSlot>(), 64);
        assert_eq!(core::mem::size_of::<Counters>(), 24);
    }

    #[test]
    fn netmasks_keep_the_prefix_bits() {
        assert_eq!(NETMASKS[0], [0; 16]);
        assert_eq!(&NETMASKS[28][..5], &[255, 255, 255, 240, 0]);
        assert_eq!(&NETMASKS[32][..5], &[255, 255, 255, 255, 0]);
        assert_eq!(NETMASKS[128], [255; 16]);
        for len in 0..=128u32 {
            let want = u128::MAX.checked_shl(128 - len).unwrap_or(0).to_be_bytes();
            assert_eq!(NETMASKS[len as usize], want, "/{len}");
        }
    }

    #[test]
    fn rule_keys_end_with_the_scope() {
        let k = rule_key_v6(Direction::Egress, 64, u64::MAX, 6, 443, [0xfd; 16]);
        assert_eq!(&k[..KEY_ADDR], &[0, 64, 6, 1, 187, 0, 0, 0]);
        assert!(k[KEY_ADDR..KEY_ADDR + 16].iter().all(|b| *b == 0xfd));
        assert!(k[KEY_ADDR + 16..].iter().all(|b| *b == 0xff));
        assert_eq!(core::mem::size_of::<Probes>(), 8 + 8 * MAX_PROBES);
        assert_eq!(
            trie_key_v4(0x0102, 6, 6379, [10, 0, 3, 1]),
            [0, 0, 0, 0, 0, 0, 1, 2, 6, 0x18, 0xeb, 10, 0, 3, 1]
        );
    }

    #[test]
    fn dns_keys_reverse_the_name_and_mark_exact_or_below() {
        let (k, bits) = dns_key(b"api.example.com", false).unwrap();
        assert_eq!(&k[..17], b".moc.elpmaxe.ipa\0");
        assert_eq!(bits, 17 * 8);
        let (k, bits) = dns_key(b"example.com", true).unwrap();
        assert_eq!(&k[..13], b".moc.elpmaxe.");
        assert_eq!(bits, 13 * 8);
        assert_eq!(core::mem::size_of::<DnsRule>(), 48);
        let (k, bits) = dns_key(b"example.com", true).unwrap();
        let (q, _) = dns_key(b"api.example.com", false).unwrap();
        assert_eq!(
            dns_hash(&k[..bits as usize / 8]),
            dns_hash(&q[..13]),
            "a suffix hashes as its prefix"
        );
        assert_ne!(dns_hash(b".moc.elpmaxe\0"), dns_hash(b".moc.elpmaxe."));
        assert!(dns_key(&[b'a'; 254], false).is_some());
        assert!(dns_key(&[b'a'; 255], false).is_none());
        assert!(dns_key(b"", true).is_none());
    }

    #[test]
    fn prefilter_bits_cover_each_bucket_once() {
        assert_eq!(prefilter_bit(0, 0), (0, 1));
        assert_eq!(prefilter_bit(0, 0x0a00), (40, 1));
        assert_eq!(prefilter_bit(0, 0xffff), (1023, 1 << 63));
        assert_eq!(
            prefilter_bit(prefilter_table(Direction::Ingress, true), 0).0,
            3 * PREFILTER_WORDS
        );
        let mut a = [0u8; 16];
        a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x07]);
        assert_eq!(prefilter_bucket(true, &a), 0x2001 ^ 0x0db8 ^ 0x0007);
        assert_eq!(prefilter_bucket(false, &a), 0x2001);
    }

    #[test]
    fn rule_keys_carry_the_length_and_the_masked_address() {
        let k = rule_key_v4(Direction::Ingress, 28, 7, IPPROTO_TCP, 443, [10, 0, 0, 16]);
        assert_eq!(
            k,
            [
                1, 28, 6, 1, 0xbb, 0, 0, 0, 10, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 7
            ]
        );
        let k = rule_key_v6(Direction::Egress, 128, 0, 0, 0, [0xfd; 16]);
        assert_eq!(
            (k[1], k[KEY_ADDR], k[KEY_ADDR + 15], k[31]),
            (128, 0xfd, 0xfd, 0)
        );
    }
}
