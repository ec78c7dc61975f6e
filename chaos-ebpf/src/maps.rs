//! Every map the programs read; the daemon writes them (layouts in `chaos-common`).

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray},
};
use chaos_common::{
    COUNTER_CHUNK, CounterChunk, DIST_TABLE_SIZE, DIST_TABLES, DNS_PORT_WORDS, DNS_WILDCARD_WORDS,
    DnsKeyData, DnsRule, Heartbeat, MAX_FLOWS, MAX_SLOTS, MAX_TRIE_ENTRIES, PREFILTER_TABLES,
    PREFILTER_WORDS, Probes, RANDOM_CHUNK, RandomChunk, RateState, RuleKeyV4, RuleKeyV6, RuleSlot,
    TrieKeyV4, TrieKeyV6,
};

/// IPv4 rules of both directions, every prefix length (egress matches the destination, ingress
/// the source): key `chaos_common::rule_key_v4`, value a slot index.
#[map]
pub static RULES_V4: HashMap<RuleKeyV4, u32> = HashMap::with_max_entries(MAX_SLOTS, 0);
/// IPv6 rules.
#[map]
pub static RULES_V6: HashMap<RuleKeyV6, u32> = HashMap::with_max_entries(MAX_SLOTS, 0);
/// Egress IPv4 rules of the (length, shape) pairs `PROBES` has no room for (match destination).
#[map]
pub static RULES_V4_EGRESS: LpmTrie<TrieKeyV4, u32> =
    LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Egress IPv6 overflow rules.
#[map]
pub static RULES_V6_EGRESS: LpmTrie<TrieKeyV6, u32> =
    LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Ingress IPv4 overflow rules (match source).
#[map]
pub static RULES_V4_INGRESS: LpmTrie<TrieKeyV4, u32> =
    LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Ingress IPv6 overflow rules.
#[map]
pub static RULES_V6_INGRESS: LpmTrie<TrieKeyV6, u32> =
    LpmTrie::with_max_entries(MAX_TRIE_ENTRIES, 0);
/// Bit L set while some egress rule is scoped to a cgroup at level L (`rules::lookup_egress`).
#[map]
pub static SCOPE_LEVELS: Array<u64> = Array::with_max_entries(1, 0);
/// Rule slots, indexed by the rule maps' values.
#[map]
pub static SLOTS: Array<RuleSlot> = Array::with_max_entries(MAX_SLOTS, 0);
/// Per-rule per-CPU counters, `COUNTER_CHUNK` slots per element.
#[map]
pub static COUNTERS: PerCpuArray<CounterChunk> =
    PerCpuArray::with_max_entries(MAX_SLOTS / COUNTER_CHUNK, 0);
/// One bit per prefilter bucket and (direction, family): set when some rule may match
/// addresses in it.
#[map]
pub static PREFILTER: Array<u64> = Array::with_max_entries(PREFILTER_TABLES * PREFILTER_WORDS, 0);
/// Per (direction, family): the (prefix length, shape) pairs of the hashed rules.
#[map]
pub static PROBES: Array<Probes> = Array::with_max_entries(PREFILTER_TABLES, 0);
/// Per (direction, family): bit `1 << shape` set while some trie rule has that shape.
#[map]
pub static KEY_SHAPES: Array<u32> = Array::with_max_entries(PREFILTER_TABLES, 0);
/// Last departure time (CLOCK_MONOTONIC ns) per flow (the skb hash) of delayed packets.
#[map]
pub static FLOW_DEPARTURES: LruHashMap<u32, u64> = LruHashMap::with_max_entries(MAX_FLOWS, 0);
/// Inverse-CDF tables of the jitter distributions, one entry per table (`DIST_*` − 1), in
/// standard deviations × `DIST_SCALE`; written once by the daemon at load (three writes).
#[map]
pub static DIST: Array<[i16; DIST_TABLE_SIZE as usize]> = Array::with_max_entries(DIST_TABLES, 0);
/// Per rule and CPU: the last (correlated) random number, for jitter correlation;
/// `RANDOM_CHUNK` slots per element.
#[map]
pub static LAST_RANDOM: PerCpuArray<RandomChunk> =
    PerCpuArray::with_max_entries(MAX_SLOTS / RANDOM_CHUNK, 0);
/// Per rule: pacing (egress) or token-bucket (ingress) state of bandwidth faults, shared by all
/// CPUs (updates race benignly: a lost update lets one packet through early).
#[map]
pub static RATE_STATE: Array<RateState> = Array::with_max_entries(MAX_SLOTS, 0);
/// The daemon's heartbeat (the dead-man switch), read only when a rule matches.
#[map]
pub static HEARTBEAT: Array<Heartbeat> = Array::with_max_entries(1, 0);
/// Domain rules (egress), keyed by the first hash of the encoded name
/// (`chaos_common::dns_key`, `dns_hash`): exact names and `*.suffix` wildcards alike. Not
/// preallocated: a full table would pin ≈ 16 MB of kernel memory in every loaded object, DNS
/// faults or not.
#[map]
pub static DNS_RULES: HashMap<u64, DnsRule> =
    HashMap::with_max_entries(MAX_SLOTS, BPF_F_NO_PREALLOC);
/// One bit per suffix label count some wildcard rule has: a query probes only those suffixes.
#[map]
pub static DNS_WILDCARDS: Array<u64> = Array::with_max_entries(DNS_WILDCARD_WORDS, 0);
/// One bit per port: set while a domain rule watches queries to it. Only packets to such a port
/// pay for the DNS program.
#[map]
pub static DNS_PORTS: Array<u64> = Array::with_max_entries(DNS_PORT_WORDS, 0);
/// The DNS program, for the egress classifier's tail call (index `dns::PROGRAM_INDEX`).
#[map]
pub static DNS_PROGRAMS: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Labels a name can have (a 255-byte wire name has at most 127, plus the root).
pub const DNS_MAX_LABELS: usize = 128;

/// Per-CPU working space of the DNS program (too big for the 512-byte stack).
#[repr(C)]
pub struct DnsScratch {
    /// The query's name in wire format (and whatever follows it).
    pub wire: [u8; 256],
    /// The name encoded as `chaos_common::dns_key` does.
    pub key: DnsKeyData,
    /// The hashes of the encoding's prefixes ending at each dot: `suffixes[k]` is the hash of
    /// the name's last `k` labels as a wildcard rule encodes them.
    pub suffixes: [[u64; 2]; DNS_MAX_LABELS],
    /// A value the verifier is made to forget (`dns::forget`).
    pub opaque: u64,
}

/// One [`DnsScratch`] per CPU.
#[map]
pub static DNS_SCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);
