//! Typed writers over the programs' maps. The injector decides *what* to write; this module
//! knows *how* (map types, flags, per-CPU values, prefilter bitmaps).

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, PerCpuValues, lpm_trie::Key},
};
use chaos_common::{
    Counters, DnsRule, ExactKeyV4, ExactKeyV6, PREFILTER_TABLES, PREFILTER_WORDS, RuleKeyV4,
    RuleKeyV6, RuleSlot,
};
use std::ops::RangeInclusive;

use super::{
    Error,
    compile::{Compiled, Index, KeyData, MapKey, Table},
};

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
const SLASH16S: usize = 65_536;

/// The maps of one loaded object.
pub struct RuleMaps {
    v4_egress: LpmTrie<MapData, RuleKeyV4, u32>,
    v6_egress: LpmTrie<MapData, RuleKeyV6, u32>,
    v4_ingress: LpmTrie<MapData, RuleKeyV4, u32>,
    v6_ingress: LpmTrie<MapData, RuleKeyV6, u32>,
    exact_v4: HashMap<MapData, ExactKeyV4, u32>,
    exact_v6: HashMap<MapData, ExactKeyV6, u32>,
    slots: Array<MapData, RuleSlot>,
    counters: PerCpuArray<MapData, Counters>,
    prefilter: Array<MapData, u64>,
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
    /// Rules per (prefilter table, /16): a bit is set while its count is non-zero.
    prefilter_refs: Vec<u32>,
    /// Rules per (prefilter table, key shape bit index: 4 trie shapes, then 4 exact shapes).
    shape_refs: [[u32; 8]; PREFILTER_TABLES as usize],
    nr_cpus: usize,
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
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(what, e)| Error::Load(format!("{what}: {e}").into()))?;
        Ok(RuleMaps {
            v4_egress: take(ebpf, "RULES_V4_EGRESS")?,
            v6_egress: take(ebpf, "RULES_V6_EGRESS")?,
            v4_ingress: take(ebpf, "RULES_V4_INGRESS")?,
            v6_ingress: take(ebpf, "RULES_V6_INGRESS")?,
            exact_v4: take(ebpf, "EXACT_V4")?,
            exact_v6: take(ebpf, "EXACT_V6")?,
            slots: take(ebpf, "SLOTS")?,
            counters: take(ebpf, "COUNTERS")?,
            prefilter: take(ebpf, "PREFILTER")?,
            key_shapes: take(ebpf, "KEY_SHAPES")?,
            dist: take(ebpf, "DIST")?,
            dns_rules: take(ebpf, "DNS_RULES")?,
            dns_ports: take(ebpf, "DNS_PORTS")?,
            dns_wildcards: take(ebpf, "DNS_WILDCARDS")?,
            scope_levels: take(ebpf, "SCOPE_LEVELS")?,
            scope_level_refs: vec![0; 64],
            dns_port_refs: vec![0; 65_536],
            dns_wildcard_refs: vec![0; chaos_common::DNS_WILDCARD_WORDS as usize * 64],
            prefilter_refs: vec![0; PREFILTER_TABLES as usize * SLASH16S],
            shape_refs: Default::default(),
            nr_cpus,
        })
    }

    /// Writes the jitter distributions' tables (once, after load).
    pub fn write_distributions(&mut self) -> Result<(), Error> {
        for (t, table) in super::distribution::tables().into_iter().enumerate() {
            self.dist.set(t as u32, table, 0).map_err(map_err("DIST"))?;
        }
        Ok(())
    }

    /// Inserts `key → slot` (for a domain rule, the rule's value pointing at `slot`); fails if
    /// the key is already present.
    pub fn insert_key(&mut self, key: &MapKey, slot: u32, index: &Index) -> Result<(), Error> {
        let p = key.prefix_len;
        match (key.table, &key.data) {
            (_, KeyData::Dns(_)) => {
                let Index::Dns { rule, hash, .. } = index else {
                    unreachable!("compile pairs DNS keys with DNS values")
                };
                let rule = DnsRule { slot, ..*rule };
                self.dns_rules.insert(hash, rule, BPF_NOEXIST)
            }
            (_, KeyData::ExactV4(k)) => self.exact_v4.insert(k, slot, BPF_NOEXIST),
            (_, KeyData::ExactV6(k)) => self.exact_v6.insert(k, slot, BPF_NOEXIST),
            (Table::V4Egress, KeyData::V4(d)) => {
                self.v4_egress.insert(&Key::new(p, *d), slot, BPF_NOEXIST)
            }
            (Table::V4Ingress, KeyData::V4(d)) => {
                self.v4_ingress.insert(&Key::new(p, *d), slot, BPF_NOEXIST)
            }
            (Table::V6Egress, KeyData::V6(d)) => {
                self.v6_egress.insert(&Key::new(p, *d), slot, BPF_NOEXIST)
            }
            (Table::V6Ingress, KeyData::V6(d)) => {
                self.v6_ingress.insert(&Key::new(p, *d), slot, BPF_NOEXIST)
            }
            _ => unreachable!("compile pairs IPv4 keys with IPv4 tables"),
        }
        .map_err(map_err(key.map_name()))
    }

    /// Removes a key (exact prefix and data; for a domain rule, its hash in `index`).
    pub fn remove_key(&mut self, key: &MapKey, index: &Index) -> Result<(), Error> {
        let p = key.prefix_len;
        match (key.table, &key.data) {
            (_, KeyData::Dns(_)) => {
                let Index::Dns { hash, .. } = index else {
                    unreachable!("compile pairs DNS keys with DNS values")
                };
                self.dns_rules.remove(hash)
            }
            (_, KeyData::ExactV4(k)) => self.exact_v4.remove(k),
            (_, KeyData::ExactV6(k)) => self.exact_v6.remove(k),
            (Table::V4Egress, KeyData::V4(d)) => self.v4_egress.remove(&Key::new(p, *d)),
            (Table::V4Ingress, KeyData::V4(d)) => self.v4_ingress.remove(&Key::new(p, *d)),
            (Table::V6Egress, KeyData::V6(d)) => self.v6_egress.remove(&Key::new(p, *d)),
            (Table::V6Ingress, KeyData::V6(d)) => self.v6_ingress.remove(&Key::new(p, *d)),
            _ => unreachable!("compile pairs IPv4 keys with IPv4 tables"),
        }
        .map_err(map_err(key.map_name()))
    }

    /// Writes a rule slot.
    pub fn write_slot(&mut self, index: u32, slot: &RuleSlot) -> Result<(), Error> {
        self.slots.set(index, slot, 0).map_err(map_err("SLOTS"))
    }

    /// Zeroes a slot's counters on every CPU.
    pub fn reset_counters(&mut self, index: u32) -> Result<(), Error> {
        let zeros =
            PerCpuValues::try_from(vec![Counters::default(); self.nr_cpus]).map_err(|e| {
                Error::Map {
                    map: "COUNTERS",
                    source: MapError::IoError(e),
                }
            })?;
        self.counters
            .set(index, zeros, 0)
            .map_err(map_err("COUNTERS"))
    }

    /// A slot's counters summed over CPUs.
    pub fn counters(&self, index: u32) -> Result<Counters, Error> {
        let per_cpu = self.counters.get(&index, 0).map_err(map_err("COUNTERS"))?;
        Ok(per_cpu.iter().fold(Counters::default(), |acc, c| Counters {
            matched_packets: acc.matched_packets + c.matched_packets,
            matched_bytes: acc.matched_bytes + c.matched_bytes,
            affected_packets: acc.affected_packets + c.affected_packets,
        }))
    }

    /// Makes the rule's key reachable: its prefilter and shape bits (IP rules) or its port's
    /// `DNS_PORTS` bit (domain rules). On failure the counts are as before.
    pub fn index_add(&mut self, c: &Compiled) -> Result<(), Error> {
        match &c.index {
            Index::Ip {
                prefilter,
                shape,
                scope_level,
            } => {
                let table = c.key.table.prefilter();
                self.prefilter_add(table, prefilter.clone(), *shape)?;
                if let Some(level) = scope_level
                    && let Err(e) = self.scope_level_update(*level, true)
                {
                    let _ = self.prefilter_remove(table, prefilter.clone(), *shape);
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
                scope_level,
            } => {
                let r = self.prefilter_remove(c.key.table.prefilter(), prefilter.clone(), *shape);
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

    /// Counts one more rule of key shape `shape` in the /16s of `range`, setting the prefilter
    /// and shape bits that become non-zero. On failure the counts are as before.
    pub fn prefilter_add(
        &mut self,
        table: u32,
        range: RangeInclusive<u16>,
        shape: u32,
    ) -> Result<(), Error> {
        self.shape_update(table, shape, true)?;
        if let Err(e) = self.prefilter_update(table, range.clone(), true) {
            // Counts were raised before the failing write: lower them again, best effort.
            let _ = self.prefilter_update(table, range, false);
            let _ = self.shape_update(table, shape, false);
            return Err(e);
        }
        Ok(())
    }

    /// Counts one rule less; clears the bits that become zero.
    pub fn prefilter_remove(
        &mut self,
        table: u32,
        range: RangeInclusive<u16>,
        shape: u32,
    ) -> Result<(), Error> {
        let r = self.prefilter_update(table, range, false);
        self.shape_update(table, shape, false).and(r)
    }

    fn shape_update(&mut self, table: u32, shape: u32, add: bool) -> Result<(), Error> {
        let refs = &mut self.shape_refs[table as usize];
        let i = shape.trailing_zeros() as usize;
        refs[i] = if add {
            refs[i] + 1
        } else {
            refs[i].saturating_sub(1)
        };
        let bits = refs
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, r)| if *r > 0 { acc | 1 << i } else { acc });
        self.key_shapes
            .set(table, bits, 0)
            .map_err(map_err("KEY_SHAPES"))
    }

    fn prefilter_update(
        &mut self,
        table: u32,
        range: RangeInclusive<u16>,
        add: bool,
    ) -> Result<(), Error> {
        let base = table as usize * SLASH16S;
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
            self.prefilter
                .set(index, bits, 0)
                .map_err(map_err("PREFILTER"))?;
        }
        Ok(())
    }
}
