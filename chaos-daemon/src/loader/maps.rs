//! Typed writers over the programs' maps. The injector decides *what* to write; this module
//! knows *how* (map types, flags, per-CPU values, prefilter bitmaps).

use aya::{
    Ebpf,
    maps::{Array, HashMap, IterableMap, LpmTrie, MapData, MapError, PerCpuArray, lpm_trie::Key},
};
use chaos_common::{
    COUNTER_CHUNK, CounterChunk, Counters, DnsRule, KEY_ADDR, KEY_HEADER_BITS, MAX_PROBES,
    PREFILTER_TABLES, PREFILTER_WORDS, Probe, Probes, RuleKeyV4, RuleKeyV6, RuleSlot,
    SHAPE_ANYPROTO_PORT, SHAPE_PROTO_ANYPORT, SHAPE_PROTO_PORT, SHAPES, TrieKeyV4, TrieKeyV6,
};
use std::collections::HashMap as Counts;
use std::ops::RangeInclusive;

use super::{
    Error, batch,
    compile::{Compiled, Home, Index, KeyData, Table},
};

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only if the key is present.
const BPF_EXIST: u64 = 2;
const BUCKETS: usize = 65_536;

/// The maps of one loaded object.
pub struct RuleMaps {
    rules_v4: HashMap<MapData, RuleKeyV4, u32>,
    rules_v6: HashMap<MapData, RuleKeyV6, u32>,
    v4_egress: LpmTrie<MapData, TrieKeyV4, u32>,
    v6_egress: LpmTrie<MapData, TrieKeyV6, u32>,
    v4_ingress: LpmTrie<MapData, TrieKeyV4, u32>,
    v6_ingress: LpmTrie<MapData, TrieKeyV6, u32>,
    slots: Array<MapData, RuleSlot>,
    counters: PerCpuArray<MapData, CounterChunk>,
    prefilter: Array<MapData, u64>,
    probes: Array<MapData, Probes>,
    key_shapes: Array<MapData, u32>,
    dist: Array<MapData, [i16; chaos_common::DIST_TABLE_SIZE as usize]>,
    dns_rules: HashMap<MapData, u64, DnsRule>,
    dns_ports: Array<MapData, u64>,
    dns_wildcards: Array<MapData, u64>,
    /// Domain rules per port: a `DNS_PORTS` bit is set while its count is non-zero.
    dns_port_refs: Vec<u32>,
    /// Wildcard rules per suffix label count: a `DNS_WILDCARDS` bit is set while non-zero.
    dns_wildcard_refs: Vec<u32>,
    scope_levels: Array<MapData, u64>,
    /// Scoped rules per cgroup level: a `SCOPE_LEVELS` bit is set while non-zero.
    scope_level_refs: Vec<u32>,
    /// Rules per (prefilter table, bucket): a bit is set while its count is non-zero.
    prefilter_refs: Vec<u32>,
    /// The `PREFILTER` words as last written: most rules land in a bucket already set, and a
    /// write that changes nothing would be a syscall per rule for nothing.
    prefilter_words: Vec<u64>,
    /// Placed rules per (prefilter table, prefix length, shape), and where they live.
    homes: Counts<(u32, u8, u8), (Home, u32)>,
    /// Enabled hashed rules per (prefilter table, prefix length, shape): a pair is in the
    /// table's `PROBES` list while its count is non-zero.
    probe_refs: Counts<(u32, u8, u8), u32>,
    /// Enabled trie rules per (prefilter table, shape): a `KEY_SHAPES` bit is set while non-zero.
    shape_refs: [[u32; SHAPES]; PREFILTER_TABLES as usize],
    /// Slots whose counters the programs may have touched since load (handed to a rule once):
    /// the others still hold the map's initial zeros.
    counted: Vec<bool>,
    /// What a reused slot's counters held when it was handed to its rule (absent: zeros).
    bases: Counts<u32, Counters>,
}

/// Counts one more (or one less) user of bit `i` of a bitmap map and rewrites the bit's word;
/// on failure the count is as before.
fn counted_bit(
    refs: &mut [u32],
    words: &mut Array<MapData, u64>,
    i: usize,
    add: bool,
) -> Result<(), MapError> {
    let before = refs[i];
    refs[i] = if add {
        before + 1
    } else {
        before.saturating_sub(1)
    };
    let word = i / 64;
    let bits = refs[word * 64..word * 64 + 64]
        .iter()
        .enumerate()
        .fold(0u64, |acc, (b, r)| if *r > 0 { acc | 1 << b } else { acc });
    let written = words.set(word as u32, bits, 0);
    if written.is_err() {
        refs[i] = before;
    }
    written
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> Error {
    move |source| Error::Map { map, source }
}

/// The error of a failed [`batch`] write.
fn batch_err(map: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| map_err(map)(MapError::IoError(e))
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, Error> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| Error::Load(format!("map {name} missing from the eBPF object").into()))?;
    T::try_from(map).map_err(map_err(name))
}

impl RuleMaps {
    /// Takes ownership of the maps out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, Error> {
        Ok(RuleMaps {
            rules_v4: take(ebpf, "RULES_V4")?,
            rules_v6: take(ebpf, "RULES_V6")?,
            v4_egress: take(ebpf, "RULES_V4_EGRESS")?,
            v6_egress: take(ebpf, "RULES_V6_EGRESS")?,
            v4_ingress: take(ebpf, "RULES_V4_INGRESS")?,
            v6_ingress: take(ebpf, "RULES_V6_INGRESS")?,
            slots: take(ebpf, "SLOTS")?,
            counters: take(ebpf, "COUNTERS")?,
            prefilter: take(ebpf, "PREFILTER")?,
            probes: take(ebpf, "PROBES")?,
            key_shapes: take(ebpf, "KEY_SHAPES")?,
            dist: take(ebpf, "DIST")?,
            dns_rules: take(ebpf, "DNS_RULES")?,
            dns_ports: take(ebpf, "DNS_PORTS")?,
            dns_wildcards: take(ebpf, "DNS_WILDCARDS")?,
            scope_levels: take(ebpf, "SCOPE_LEVELS")?,
            scope_level_refs: vec![0; 64],
            dns_port_refs: vec![0; 65_536],
            dns_wildcard_refs: vec![0; chaos_common::DNS_WILDCARD_WORDS as usize * 64],
            prefilter_refs: vec![0; PREFILTER_TABLES as usize * BUCKETS],
            prefilter_words: vec![0; (PREFILTER_TABLES * PREFILTER_WORDS) as usize],
            homes: Counts::new(),
            probe_refs: Counts::new(),
            shape_refs: Default::default(),
            counted: vec![false; chaos_common::MAX_SLOTS as usize],
            bases: Counts::new(),
        })
    }

    /// Writes the jitter distributions' tables (once, after load).
    pub fn write_distributions(&mut self) -> Result<(), Error> {
        for (t, table) in super::distribution::tables().into_iter().enumerate() {
            self.dist.set(t as u32, table, 0).map_err(map_err("DIST"))?;
        }
        Ok(())
    }

    /// Chooses the map an IP rule's key goes to (`c.home`): where the rules of its (table,
    /// length, shape) already are, else the hash map while the table's `PROBES` list has room,
    /// else the trie. Undone by [`RuleMaps::unplace`] once the key is gone.
    pub fn place(&mut self, c: &mut Compiled) {
        let Some(pair) = pair(c) else {
            return;
        };
        let hashed = self
            .homes
            .iter()
            .filter(|((t, _, _), (home, _))| *t == pair.0 && *home == Home::Hash)
            .count();
        let (home, n) = self.homes.entry(pair).or_insert_with(|| {
            let home = if hashed < MAX_PROBES {
                Home::Hash
            } else {
                Home::Trie
            };
            (home, 0)
        });
        *n += 1;
        c.home = *home;
    }

    /// Forgets a placed rule.
    pub fn unplace(&mut self, c: &Compiled) {
        if let Some(pair) = pair(c)
            && let Some((_, n)) = self.homes.get_mut(&pair)
        {
            *n -= 1;
            if *n == 0 {
                self.homes.remove(&pair);
            }
        }
    }

    /// Inserts the rule's key → `slot` (for a domain rule, its value pointing at `slot`) into
    /// the map `place` chose; fails if the key is already present.
    pub fn insert_key(&mut self, c: &Compiled, slot: u32) -> Result<(), Error> {
        let name = map_name(c);
        match (&c.key.data, c.home) {
            (KeyData::Dns(_), _) => {
                let Index::Dns { rule, hash, .. } = &c.index else {
                    unreachable!("compile pairs DNS keys with DNS values")
                };
                let rule = DnsRule { slot, ..*rule };
                self.dns_rules.insert(hash, rule, BPF_NOEXIST)
            }
            (KeyData::V4(k), Home::Hash) => self.rules_v4.insert(k, slot, BPF_NOEXIST),
            (KeyData::V6(k), Home::Hash) => self.rules_v6.insert(k, slot, BPF_NOEXIST),
            (KeyData::V4(k), Home::Trie) => {
                let key = trie_v4(k);
                self.trie_v4(c.key.table).insert(&key, slot, BPF_NOEXIST)
            }
            (KeyData::V6(k), Home::Trie) => {
                let key = trie_v6(k);
                self.trie_v6(c.key.table).insert(&key, slot, BPF_NOEXIST)
            }
        }
        .map_err(map_err(name))
    }

    /// Inserts the keys of rules whose keys are known to be new, `slots[i]` being `cs[i]`'s:
    /// the hashed IP keys in a few batch calls, the others one by one. On failure some may be
    /// in; removing all of them undoes it.
    pub fn insert_keys(&mut self, cs: &[Compiled], slots: &[u32]) -> Result<(), Error> {
        let (mut v4, mut v4_slots, mut v6, mut v6_slots) = (vec![], vec![], vec![], vec![]);
        for (c, &slot) in cs.iter().zip(slots) {
            match (&c.key.data, c.home) {
                (KeyData::V4(k), Home::Hash) => {
                    v4.push(*k);
                    v4_slots.push(slot);
                }
                (KeyData::V6(k), Home::Hash) => {
                    v6.push(*k);
                    v6_slots.push(slot);
                }
                _ => self.insert_key(c, slot)?,
            }
        }
        batch::update(self.rules_v4.map(), &v4, &v4_slots).map_err(batch_err("RULES_V4"))?;
        batch::update(self.rules_v6.map(), &v6, &v6_slots).map_err(batch_err("RULES_V6"))
    }

    /// Removes the keys of these rules: the hashed IP keys in a few batch calls, the others one
    /// by one. Every key is tried even after a failure; the first error is returned.
    pub fn remove_keys(&mut self, cs: &[&Compiled]) -> Result<(), Error> {
        let (mut v4, mut v6) = (vec![], vec![]);
        let mut first_err = None;
        for c in cs {
            match (&c.key.data, c.home) {
                (KeyData::V4(k), Home::Hash) => v4.push(*k),
                (KeyData::V6(k), Home::Hash) => v6.push(*k),
                _ => {
                    if let Err(e) = self.remove_key(c) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        // The kernel stops at a key it cannot delete: the rest go one by one, so one bad key
        // (already gone) neither hides the others nor leaves them matching.
        if let Err((done, e)) = batch::delete(self.rules_v4.map(), &v4) {
            first_err.get_or_insert(batch_err("RULES_V4")(e));
            for k in &v4[done..] {
                let _ = self.rules_v4.remove(k);
            }
        }
        if let Err((done, e)) = batch::delete(self.rules_v6.map(), &v6) {
            first_err.get_or_insert(batch_err("RULES_V6")(e));
            for k in &v6[done..] {
                let _ = self.rules_v6.remove(k);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Removes the rule's key.
    fn remove_key(&mut self, c: &Compiled) -> Result<(), Error> {
        let name = map_name(c);
        match (&c.key.data, c.home) {
            (KeyData::Dns(_), _) => {
                let Index::Dns { hash, .. } = &c.index else {
                    unreachable!("compile pairs DNS keys with DNS values")
                };
                self.dns_rules.remove(hash)
            }
            (KeyData::V4(k), Home::Hash) => self.rules_v4.remove(k),
            (KeyData::V6(k), Home::Hash) => self.rules_v6.remove(k),
            (KeyData::V4(k), Home::Trie) => {
                let key = trie_v4(k);
                self.trie_v4(c.key.table).remove(&key)
            }
            (KeyData::V6(k), Home::Trie) => {
                let key = trie_v6(k);
                self.trie_v6(c.key.table).remove(&key)
            }
        }
        .map_err(map_err(name))
    }

    fn trie_v4(&mut self, table: Table) -> &mut LpmTrie<MapData, TrieKeyV4, u32> {
        match table {
            Table::V4Ingress => &mut self.v4_ingress,
            _ => &mut self.v4_egress,
        }
    }

    fn trie_v6(&mut self, table: Table) -> &mut LpmTrie<MapData, TrieKeyV6, u32> {
        match table {
            Table::V6Ingress => &mut self.v6_ingress,
            _ => &mut self.v6_egress,
        }
    }

    /// Replaces a domain rule's value (what the program answers, and from which resolvers)
    /// under its present key, pointing at `slot`: one write, so a query sees the old value or
    /// the new one. Nothing for other rules, whose key holds only the slot index.
    pub fn rewrite_value(&mut self, c: &Compiled, slot: u32) -> Result<(), Error> {
        let Index::Dns { rule, hash, .. } = &c.index else {
            return Ok(());
        };
        let rule = DnsRule { slot, ..*rule };
        self.dns_rules
            .insert(hash, rule, BPF_EXIST)
            .map_err(map_err("DNS_RULES"))
    }

    /// Writes `values[i]` into slot `indices[i]`, in a few batch calls.
    pub fn write_slots(&mut self, indices: &[u32], values: &[RuleSlot]) -> Result<(), Error> {
        batch::update(self.slots.map(), indices, values).map_err(batch_err("SLOTS"))
    }

    /// Every entry of the rule maps, one line each, sorted (arrays: the non-zero entries).
    #[cfg(feature = "test-hooks")]
    pub fn dump(&self) -> Result<Vec<String>, Error> {
        // A hash map's or trie's entries, the key as `key` spells it.
        fn entries<K, V: std::fmt::Debug>(
            out: &mut Vec<String>,
            name: &'static str,
            iter: impl Iterator<Item = Result<(K, V), MapError>>,
            key: impl Fn(&K) -> String,
        ) -> Result<(), Error> {
            for kv in iter {
                let (k, v) = kv.map_err(map_err(name))?;
                out.push(format!("{name} {} {v:?}", key(&k)));
            }
            Ok(())
        }
        fn plain<K: std::fmt::Debug>(k: &K) -> String {
            format!("{k:?}")
        }
        fn prefixed<K: aya::Pod + std::fmt::Debug>(k: &Key<K>) -> String {
            format!("/{} {:?}", k.prefix_len(), k.data())
        }
        fn array<V: aya::Pod + std::fmt::Debug + Default + PartialEq>(
            out: &mut Vec<String>,
            name: &'static str,
            map: &Array<MapData, V>,
        ) -> Result<(), Error> {
            for i in 0..map.len() {
                let v = map.get(&i, 0).map_err(map_err(name))?;
                if v != V::default() {
                    out.push(format!("{name}[{i}] {v:?}"));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        entries(&mut out, "RULES_V4", self.rules_v4.iter(), plain)?;
        entries(&mut out, "RULES_V6", self.rules_v6.iter(), plain)?;
        entries(&mut out, "DNS_RULES", self.dns_rules.iter(), plain)?;
        entries(&mut out, "RULES_V4_EGRESS", self.v4_egress.iter(), prefixed)?;
        entries(&mut out, "RULES_V6_EGRESS", self.v6_egress.iter(), prefixed)?;
        entries(
            &mut out,
            "RULES_V4_INGRESS",
            self.v4_ingress.iter(),
            prefixed,
        )?;
        entries(
            &mut out,
            "RULES_V6_INGRESS",
            self.v6_ingress.iter(),
            prefixed,
        )?;
        array(&mut out, "SLOTS", &self.slots)?;
        array(&mut out, "PREFILTER", &self.prefilter)?;
        array(&mut out, "PROBES", &self.probes)?;
        array(&mut out, "KEY_SHAPES", &self.key_shapes)?;
        array(&mut out, "SCOPE_LEVELS", &self.scope_levels)?;
        array(&mut out, "DNS_PORTS", &self.dns_ports)?;
        array(&mut out, "DNS_WILDCARDS", &self.dns_wildcards)?;
        out.sort();
        Ok(out)
    }

    /// Makes what these slots have counted so far their zero. Nothing is written: a slot's
    /// counters share a per-CPU element with 31 others, and writing the element would lose the
    /// counts the programs add to those meanwhile. Slots never handed to a rule since load still
    /// hold the map's zeros and are not read.
    pub fn reset_counters(&mut self, indices: &[u32]) -> Result<(), Error> {
        let used: Vec<u32> = indices
            .iter()
            .copied()
            .filter(|&i| {
                self.counted
                    .get_mut(i as usize)
                    .is_none_or(|counted| std::mem::replace(counted, true))
            })
            .collect();
        let now = self.read_counters(&used)?;
        for (i, c) in used.into_iter().zip(now) {
            if c == Counters::default() {
                self.bases.remove(&i);
            } else {
                self.bases.insert(i, c);
            }
        }
        Ok(())
    }

    /// The counters of these slots since their last [`RuleMaps::reset_counters`], summed over
    /// CPUs, in order: one read per element, however many slots share it.
    pub fn counters(&self, indices: &[u32]) -> Result<Vec<Counters>, Error> {
        let mut out = self.read_counters(indices)?;
        for (c, i) in out.iter_mut().zip(indices) {
            if let Some(base) = self.bases.get(i) {
                *c = c.since(*base);
            }
        }
        Ok(out)
    }

    /// What the slots' counters hold, summed over CPUs.
    fn read_counters(&self, indices: &[u32]) -> Result<Vec<Counters>, Error> {
        let mut chunks = Counts::new();
        indices
            .iter()
            .map(|&i| {
                let chunk = i / COUNTER_CHUNK;
                let per_cpu = match chunks.entry(chunk) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(self.counters.get(&chunk, 0).map_err(map_err("COUNTERS"))?)
                    }
                };
                let entry = (i % COUNTER_CHUNK) as usize;
                Ok(per_cpu
                    .iter()
                    .fold(Counters::default(), |acc, c| acc.plus(c[entry])))
            })
            .collect()
    }

    /// Makes the rule's key reachable: its prefilter and shape bits (IP rules) or its port's
    /// `DNS_PORTS` bit (domain rules). On failure the counts are as before.
    pub fn index_add(&mut self, c: &Compiled) -> Result<(), Error> {
        match &c.index {
            Index::Ip {
                prefilter,
                shape,
                length,
                scope_level,
            } => {
                let pair = (c.key.table.prefilter(), *length, *shape);
                self.pair_update(pair, c.home, true)?;
                if let Err(e) = self.prefilter_update(pair.0, prefilter.clone(), true) {
                    // Counts were raised before the failing write: lower them again, best effort.
                    let _ = self.prefilter_update(pair.0, prefilter.clone(), false);
                    let _ = self.pair_update(pair, c.home, false);
                    return Err(e);
                }
                if let Some(level) = scope_level
                    && let Err(e) = self.scope_level_update(*level, true)
                {
                    let _ = self.prefilter_update(pair.0, prefilter.clone(), false);
                    let _ = self.pair_update(pair, c.home, false);
                    return Err(e);
                }
                Ok(())
            }
            Index::Dns {
                rule,
                wildcard_labels,
                ..
            } => {
                self.dns_port_update(rule.port, true)?;
                if let Some(labels) = wildcard_labels
                    && let Err(e) = self.dns_wildcard_update(*labels, true)
                {
                    let _ = self.dns_port_update(rule.port, false);
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// Undoes [`RuleMaps::index_add`].
    pub fn index_remove(&mut self, c: &Compiled) -> Result<(), Error> {
        match &c.index {
            Index::Ip {
                prefilter,
                shape,
                length,
                scope_level,
            } => {
                let pair = (c.key.table.prefilter(), *length, *shape);
                let r = self
                    .prefilter_update(pair.0, prefilter.clone(), false)
                    .and(self.pair_update(pair, c.home, false));
                match scope_level {
                    Some(level) => self.scope_level_update(*level, false).and(r),
                    None => r,
                }
            }
            Index::Dns {
                rule,
                wildcard_labels,
                ..
            } => {
                let ports = self.dns_port_update(rule.port, false);
                match wildcard_labels {
                    Some(labels) => self.dns_wildcard_update(*labels, false).and(ports),
                    None => ports,
                }
            }
        }
    }

    /// The cgroup levels scoped rules use now.
    pub fn scope_levels(&self) -> impl Iterator<Item = u8> + '_ {
        (0..64u8).filter(|l| self.scope_level_refs[*l as usize] > 0)
    }

    fn scope_level_update(&mut self, level: u8, add: bool) -> Result<(), Error> {
        counted_bit(
            &mut self.scope_level_refs,
            &mut self.scope_levels,
            level as usize,
            add,
        )
        .map_err(map_err("SCOPE_LEVELS"))
    }

    fn dns_port_update(&mut self, port: u16, add: bool) -> Result<(), Error> {
        counted_bit(
            &mut self.dns_port_refs,
            &mut self.dns_ports,
            port as usize,
            add,
        )
        .map_err(map_err("DNS_PORTS"))
    }

    fn dns_wildcard_update(&mut self, labels: u8, add: bool) -> Result<(), Error> {
        counted_bit(
            &mut self.dns_wildcard_refs,
            &mut self.dns_wildcards,
            labels as usize,
            add,
        )
        .map_err(map_err("DNS_WILDCARDS"))
    }

    /// Counts one more (or one less) enabled rule of a (table, length, shape) pair, rewriting the
    /// table's `PROBES` list (hashed pairs) or `KEY_SHAPES` bits (trie pairs) when the set of
    /// pairs in use changes. On failure the count is as before.
    fn pair_update(&mut self, pair: (u32, u8, u8), home: Home, add: bool) -> Result<(), Error> {
        let (table, _, shape) = pair;
        if home == Home::Trie {
            let refs = &mut self.shape_refs[table as usize];
            let before = refs[shape as usize];
            refs[shape as usize] = if add {
                before + 1
            } else {
                before.saturating_sub(1)
            };
            let bits = refs
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, r)| if *r > 0 { acc | 1 << i } else { acc });
            let written = self.key_shapes.set(table, bits, 0);
            if written.is_err() {
                self.shape_refs[table as usize][shape as usize] = before;
            }
            return written.map_err(map_err("KEY_SHAPES"));
        }
        let before = self.probe_refs.get(&pair).copied().unwrap_or(0);
        let after = if add {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        let set = |refs: &mut Counts<(u32, u8, u8), u32>, n: u32| {
            if n == 0 {
                refs.remove(&pair);
            } else {
                refs.insert(pair, n);
            }
        };
        set(&mut self.probe_refs, after);
        if (before == 0) == (after == 0) {
            return Ok(());
        }
        let mut pairs: Vec<(u8, u8)> = self
            .probe_refs
            .keys()
            .filter(|(t, _, _)| *t == table)
            .map(|(_, len, shape)| (*len, *shape))
            .collect();
        // Longest first, then the most specific shape: the program's first live hit is the best.
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut value = Probes::default();
        for (probe, (len, shape)) in value.probe.iter_mut().zip(&pairs) {
            *probe = probe_of(*len, *shape);
        }
        value.count = pairs.len().min(MAX_PROBES) as u32;
        let written = self.probes.set(table, value, 0);
        if written.is_err() {
            set(&mut self.probe_refs, before);
        }
        written.map_err(map_err("PROBES"))
    }

    fn prefilter_update(
        &mut self,
        table: u32,
        range: RangeInclusive<u16>,
        add: bool,
    ) -> Result<(), Error> {
        let base = table as usize * BUCKETS;
        let (start, end) = (*range.start() as usize, *range.end() as usize);
        for r in &mut self.prefilter_refs[base + start..=base + end] {
            *r = if add { *r + 1 } else { r.saturating_sub(1) };
        }
        // Rewrite every 64-bit word the range touches (a word write is one syscall).
        for word in (start / 64)..=(end / 64) {
            let refs = &self.prefilter_refs[base + word * 64..base + word * 64 + 64];
            let bits = refs
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, r)| if *r > 0 { acc | 1 << i } else { acc });
            let index = table * PREFILTER_WORDS + word as u32;
            if self.prefilter_words[index as usize] == bits {
                continue;
            }
            self.prefilter
                .set(index, bits, 0)
                .map_err(map_err("PREFILTER"))?;
            self.prefilter_words[index as usize] = bits;
        }
        Ok(())
    }
}

/// An IP rule's (prefilter table, prefix length, shape).
fn pair(c: &Compiled) -> Option<(u32, u8, u8)> {
    match c.index {
        Index::Ip { shape, length, .. } => Some((c.key.table.prefilter(), length, shape)),
        Index::Dns { .. } => None,
    }
}

fn map_name(c: &Compiled) -> &'static str {
    match c.home {
        Home::Trie => c.key.table.trie_name(),
        Home::Hash => c.key.map_name(),
    }
}

/// A `PROBES` entry: the pair and which of the key's fields count.
fn probe_of(len: u8, shape: u8) -> Probe {
    let named = |yes: bool| if yes { u16::MAX } else { 0 };
    Probe {
        len,
        shape,
        proto_mask: named(shape == SHAPE_PROTO_PORT || shape == SHAPE_PROTO_ANYPORT) as u8,
        port_mask: named(shape == SHAPE_PROTO_PORT || shape == SHAPE_ANYPROTO_PORT),
        ..Probe::default()
    }
}

/// The trie key of a hashed IPv4 key: `[scope, proto, port, addr]`, prefix `88 + length`.
fn trie_v4(k: &RuleKeyV4) -> Key<TrieKeyV4> {
    let mut data = [0u8; 15];
    data[..8].copy_from_slice(&k[KEY_ADDR + 4..]);
    data[8..11].copy_from_slice(&k[2..5]);
    data[11..].copy_from_slice(&k[KEY_ADDR..KEY_ADDR + 4]);
    Key::new(KEY_HEADER_BITS + u32::from(k[1]), data)
}

/// The trie key of a hashed IPv6 key.
fn trie_v6(k: &RuleKeyV6) -> Key<TrieKeyV6> {
    let mut data = [0u8; 27];
    data[..8].copy_from_slice(&k[KEY_ADDR + 16..]);
    data[8..11].copy_from_slice(&k[2..5]);
    data[11..].copy_from_slice(&k[KEY_ADDR..KEY_ADDR + 16]);
    Key::new(KEY_HEADER_BITS + u32::from(k[1]), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_common::{Direction, SHAPE_ANY, rule_key_v4, trie_key_v4};

    #[test]
    fn trie_keys_carry_the_hashed_keys_fields() {
        let k = rule_key_v4(Direction::Egress, 24, 9, 6, 443, [10, 1, 2, 0]);
        let t = trie_v4(&k);
        assert_eq!(t.prefix_len(), 88 + 24);
        assert_eq!(t.data(), trie_key_v4(9, 6, 443, [10, 1, 2, 0]));
    }

    #[test]
    fn probes_carry_the_length_and_which_fields_count() {
        let p = probe_of(28, SHAPE_PROTO_ANYPORT);
        assert_eq!((p.len, p.proto_mask, p.port_mask), (28, 0xff, 0));
        let p = probe_of(0, SHAPE_ANY);
        assert_eq!((p.proto_mask, p.port_mask), (0, 0));
        let p = probe_of(128, SHAPE_PROTO_PORT);
        assert_eq!((p.proto_mask, p.port_mask), (0xff, u16::MAX));
        let p = probe_of(0, SHAPE_ANYPROTO_PORT);
        assert_eq!((p.proto_mask, p.port_mask), (0, u16::MAX));
    }
}
