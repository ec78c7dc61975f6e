//! [`Injector`]: owns the programs and maps for one interface and keeps rules consistent.
//!
//! Every change is atomic from the packet's point of view: a rule's slot is written before its
//! trie key, so a packet either finds no key or a complete slot; removal deletes the key first.
//! A batch is all-or-nothing: any failure rolls back what the batch had installed.

use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;

use aya::Ebpf;
use chaos_common::{ACTION_NONE, Counters, MAX_SLOTS, RuleSlot};

use super::{
    Direction, Error, Rule,
    attach::{self, AttachOptions, EgressLink, IngressLink},
    bpf_log,
    compile::{Compiled, MapKey, compile},
    deadman,
    maps::RuleMaps,
    qdisc,
};

/// Handle of an installed rule. Stale handles (rule removed, slot reused) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId {
    /// Slot index (also the counters index).
    pub slot: u32,
    /// Installation generation, unique per injector.
    pub generation: u64,
}

struct Installed {
    compiled: Compiled,
    direction: Direction,
    generation: u64,
    /// The rule stamps departure times (needs fq).
    delays: bool,
}

/// What [`Injector::interface_state`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceState {
    /// Still the device the programs are attached to.
    Same,
    /// Deleted and created again under the same name, with this new index.
    Replaced(u32),
    /// No device of that name any more.
    Gone,
    /// The lookup failed for another reason; nothing is known.
    Unknown(nix::errno::Errno),
}

/// The fault injector of one interface. Dropping it detaches the programs.
pub struct Injector {
    iface: String,
    ifindex: u32,
    // Field order matters on drop: maps before the object (both are just fds, harmless either way).
    maps: RuleMaps,
    ebpf: Ebpf,
    egress_link: Option<EgressLink>,
    ingress_link: Option<IngressLink>,
    installed: HashMap<u32, Installed>,
    by_key: HashMap<MapKey, u32>,
    /// Free slots, reused oldest-freed first: a packet that read a slot index just before its
    /// rule was removed cannot meet a new rule in that slot until every other slot was reused.
    free: VecDeque<u32>,
    next_generation: u64,
    attach: AttachOptions,
    /// Installed rules per direction (index: `Direction as usize`).
    per_direction: [usize; 2],
    /// Drains the programs' log records while logging is on.
    _log_pump: Option<bpf_log::LogPump>,
    /// Keeps the object's heartbeat map beating (the dead-man switch) while it lives.
    _heartbeat: deadman::Registration,
    /// Installed rules that stamp departure times.
    delayed: usize,
    /// This injector made fq the interface's root qdisc (and removes it with its last delay).
    fq_ours: bool,
    /// The root qdisc kind the tree replaced, put back when it goes.
    replaced_root: Option<String>,
    /// The DNS program is loaded (with the first domain rule).
    dns_loaded: bool,
    /// The step at which the next install fails ([`Injector::fail_next_install_at`]).
    #[cfg(feature = "test-hooks")]
    fail_at: Option<usize>,
}

/// Longest delay plus jitter a rule may ask for: fq's horizon is set beyond it.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

impl Injector {
    /// Loads the programs for `iface` (which must exist in the caller's network namespace).
    /// Nothing is attached until the first rule of a direction arrives.
    pub fn open(iface: &str) -> Result<Self, Error> {
        // Fail fast, before the verifier runs.
        nix::net::if_::if_nametoindex(iface)
            .map_err(|_| Error::InterfaceNotFound(iface.to_string()))?;
        let mut inj = Self::detached()?;
        inj.rebind(iface)?;
        Ok(inj)
    }

    /// Loads the programs without an interface: for BPF_PROG_TEST_RUN tests and benchmarks.
    /// Adding a rule does not attach anything. The programs log as [`bpf_log::enable`] said,
    /// into the daemon's log.
    pub fn detached() -> Result<Self, Error> {
        match bpf_log::level() {
            0 => Self::load(0, None::<bpf_log::ToTracing>),
            level => Self::load(level, Some(bpf_log::ToTracing)),
        }
    }

    /// As [`Injector::detached`], the programs reporting anomalies at `level` to `logger`.
    pub fn detached_logging<T: log::Log + Send + 'static>(
        level: bpf_log::Level,
        logger: T,
    ) -> Result<Self, Error> {
        Self::load(level as u8, Some(logger))
    }

    fn load<T: log::Log + Send + 'static>(level: u8, logger: Option<T>) -> Result<Self, Error> {
        let mut ebpf = attach::load(level)?;
        let mut maps = RuleMaps::take(&mut ebpf)?;
        maps.write_distributions()?;
        let heartbeat = deadman::register(&mut ebpf)?;
        let log_pump = match logger {
            Some(l) => Some(bpf_log::LogPump::start(&mut ebpf, l)?),
            None => None,
        };
        Ok(Injector {
            _heartbeat: heartbeat,
            _log_pump: log_pump,
            iface: String::new(),
            ifindex: 0,
            maps,
            ebpf,
            egress_link: None,
            ingress_link: None,
            installed: HashMap::new(),
            by_key: HashMap::new(),
            free: (0..MAX_SLOTS).collect(),
            next_generation: 1,
            attach: AttachOptions::default(),
            per_direction: [0; 2],
            delayed: 0,
            fq_ours: false,
            replaced_root: None,
            dns_loaded: false,
            #[cfg(feature = "test-hooks")]
            fail_at: None,
        })
    }

    /// Points an injector without rules at another interface (keeps the loaded programs, so the
    /// verifier does not run again). Fails if rules are installed or `iface` does not exist.
    pub fn rebind(&mut self, iface: &str) -> Result<(), Error> {
        if !self.installed.is_empty() {
            return Err(Error::Invalid(format!(
                "cannot move an injector with {} rules to {iface}",
                self.installed.len()
            )));
        }
        let ifindex = nix::net::if_::if_nametoindex(iface)
            .map_err(|_| Error::InterfaceNotFound(iface.to_string()))?;
        self.detach_unused();
        self.iface = iface.to_string();
        self.ifindex = ifindex;
        Ok(())
    }

    /// What became of the interface this injector is bound to. Only "no such device" counts
    /// as gone: a lookup that fails for another reason (EMFILE under fd pressure) cannot tell,
    /// and a fault is never dropped on a guess.
    pub fn interface_state(&self) -> InterfaceState {
        if self.iface.is_empty() {
            return InterfaceState::Same;
        }
        match nix::net::if_::if_nametoindex(self.iface.as_str()) {
            Ok(i) if i == self.ifindex => InterfaceState::Same,
            Ok(i) => InterfaceState::Replaced(i),
            Err(nix::errno::Errno::ENODEV) => InterfaceState::Gone,
            Err(e) => InterfaceState::Unknown(e),
        }
    }

    /// Whether the qdisc that holds this interface's delayed packets is gone while delaying
    /// rules are in force (an operator deleted or replaced the root): their delays no longer
    /// happen. `None` when that cannot be told.
    pub fn departures_lost(&self) -> Option<bool> {
        if self.iface.is_empty() || self.delayed == 0 {
            return Some(false);
        }
        qdisc::holds_departures(self.ifindex).ok().map(|held| !held)
    }

    /// Forgets the qdisc tree, which is gone: the next delaying rule installs one again (or is
    /// refused, if an operator's qdisc is there now), and nothing is removed on the way out.
    pub fn forget_qdisc(&mut self) {
        self.fq_ours = false;
        self.replaced_root = None;
    }

    /// After the interface was deleted and created again under the same name: the old links
    /// died with the old device, so attach the programs to the new one (the maps and rules are
    /// untouched). Fails, leaving nothing attached, if the new device refuses the programs.
    pub fn reattach(&mut self) -> Result<(), Error> {
        let ifindex = nix::net::if_::if_nametoindex(self.iface.as_str())
            .map_err(|_| Error::InterfaceNotFound(self.iface.clone()))?;
        // The kernel already dropped these links, and our fq, with their device.
        self.egress_link = None;
        self.ingress_link = None;
        self.ifindex = ifindex;
        self.forget_qdisc();
        if self.delayed > 0 {
            self.ensure_fq()?;
        }
        for direction in [Direction::Egress, Direction::Ingress] {
            if self.per_direction[direction as usize] > 0 {
                self.ensure_attached(direction)?;
            }
        }
        Ok(())
    }

    /// Chooses how the programs are attached (takes effect at the next attach).
    pub fn set_attach_options(&mut self, options: AttachOptions) {
        self.attach = options;
    }

    /// Interface name ("" for a detached injector).
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Number of installed rules.
    pub fn len(&self) -> usize {
        self.installed.len()
    }

    /// True when no rule is installed.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty()
    }

    /// Whether the egress and ingress programs are attached.
    pub fn attached(&self) -> (bool, bool) {
        (self.egress_link.is_some(), self.ingress_link.is_some())
    }

    /// Installs one rule.
    pub fn add(&mut self, rule: &Rule) -> Result<RuleId, Error> {
        Ok(self.add_batch(std::slice::from_ref(rule))?[0])
    }

    /// Loads what `rules` need that is slow to verify (the DNS program) without changing what
    /// any packet sees, so a caller can do it before it starts counting their TTLs.
    pub fn preload<'a>(&mut self, rules: impl IntoIterator<Item = &'a Rule>) -> Result<(), Error> {
        if !self.dns_loaded
            && rules
                .into_iter()
                .any(|r| matches!(r.matches, super::Match::Dns(_)))
        {
            attach::load_dns(&mut self.ebpf)?;
            self.dns_loaded = true;
        }
        Ok(())
    }

    /// Whether `rules` could go in as one batch on top of `installed` (an interface without an
    /// injector yet: `None`): the first that an installed rule or an earlier rule of the batch
    /// already holds the match of is an [`Error::Conflict`]. Nothing is written.
    pub fn check_batch(installed: Option<&Injector>, rules: &[Rule]) -> Result<(), Error> {
        let compiled = rules.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
        Self::first_conflict(installed, &compiled)
    }

    fn first_conflict(installed: Option<&Injector>, compiled: &[Compiled]) -> Result<(), Error> {
        let mut seen = HashMap::with_capacity(compiled.len());
        for (index, c) in compiled.iter().enumerate() {
            if let Some(inj) = installed
                && let Some(&slot) = inj.by_key.get(&c.key)
            {
                let generation = inj.installed[&slot].generation;
                return Err(Error::Conflict {
                    index,
                    existing: Some(RuleId { slot, generation }),
                });
            }
            if seen.insert(&c.key, index).is_some() {
                return Err(Error::Conflict {
                    index,
                    existing: None,
                });
            }
        }
        Ok(())
    }

    /// Installs all rules or none. Validation and conflict checks happen before any map write.
    pub fn add_batch(&mut self, rules: &[Rule]) -> Result<Vec<RuleId>, Error> {
        let compiled = rules.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
        Self::first_conflict(Some(self), &compiled)?;
        let mut levels: std::collections::BTreeSet<u8> = self.maps.scope_levels().collect();
        levels.extend(rules.iter().filter_map(|r| r.cgroup.map(|s| s.level)));
        if levels.len() > chaos_common::MAX_SCOPE_PROBES as usize {
            return Err(Error::Invalid(format!(
                "faults are scoped to cgroups at {} different depths ({levels:?}); the data \
                 plane probes at most {}: scope to a cgroup at a depth already in use",
                levels.len(),
                chaos_common::MAX_SCOPE_PROBES
            )));
        }
        let total = self.installed.len() + compiled.len();
        if total > MAX_SLOTS as usize {
            return Err(Error::Full(self.installed.len() as u32));
        }
        self.preload(rules)?;
        if rules.iter().any(Rule::needs_fq) {
            self.ensure_fq()?;
        }
        for rule in rules {
            if let Err(e) = self.ensure_attached(rule.direction) {
                self.detach_unused();
                return Err(e);
            }
        }
        self.install(compiled, rules)
            .inspect_err(|_| self.detach_unused())
    }

    /// Makes fq the root qdisc before the first delaying rule goes in (a delay without fq is
    /// silently no delay).
    fn ensure_fq(&mut self) -> Result<(), Error> {
        if self.iface.is_empty() || self.fq_ours {
            return Ok(());
        }
        // What the tree takes the place of, to put back exactly (a root, single qdisc).
        let replaced = qdisc::root_kind(self.ifindex).ok().flatten();
        match qdisc::install_fq(self.ifindex, MAX_DELAY) {
            Ok(ours) => {
                self.fq_ours = ours;
                self.replaced_root = replaced.filter(|k| ours && k != "mq");
                if ours {
                    tracing::info!(iface = %self.iface, "fq installed (latency and bandwidth need it)");
                }
                Ok(())
            }
            Err(e) => Err(Error::Qdisc(format!("{}: {e}", self.iface))),
        }
    }

    /// Whether this injector made fq the root qdisc of its interface.
    pub fn fq_installed(&self) -> bool {
        self.fq_ours
    }

    /// The root qdisc kind the tree took the place of (`None` under an mq, or nothing there).
    pub fn replaced_root(&self) -> Option<&str> {
        self.replaced_root.as_deref()
    }

    /// Writes new rules (keys known to be absent) into free slots: every slot first, then every
    /// key (a packet that finds a key finds its slot written), then the prefilter and probe
    /// bits that make the keys reachable. On failure every write is undone.
    fn install(
        &mut self,
        mut compiled: Vec<Compiled>,
        rules: &[Rule],
    ) -> Result<Vec<RuleId>, Error> {
        let n = compiled.len();
        if n > self.free.len() {
            return Err(Error::Full(self.installed.len() as u32));
        }
        let slots: Vec<u32> = self.free.drain(..n).collect();
        for c in &mut compiled {
            c.slot.generation = self.next_generation;
            self.next_generation += 1;
            self.maps.place(c);
        }
        let values: Vec<RuleSlot> = compiled.iter().map(|c| c.slot).collect();
        let mut indexed = 0;
        let mut result = self
            .maps
            .reset_counters(&slots)
            .and_then(|()| self.maps.write_slots(&slots, &values))
            .and_then(|()| self.failpoint(0))
            .and_then(|()| self.maps.insert_keys(&compiled, &slots))
            .and_then(|()| self.failpoint(1));
        if result.is_ok() {
            for (k, c) in compiled.iter().enumerate() {
                if let Err(e) = self.maps.index_add(c) {
                    result = Err(e);
                    break;
                }
                indexed += 1;
                if let Err(e) = self.failpoint(2 + k) {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result {
            for c in &compiled[..indexed] {
                let _ = self.maps.index_remove(c);
            }
            // A key the failure kept out answers ENOENT: nothing to undo, and the keys after
            // it still go.
            let _ = self.maps.remove_keys(&compiled.iter().collect::<Vec<_>>());
            for c in &compiled {
                self.maps.unplace(c);
            }
            let _ = self
                .maps
                .write_slots(&slots, &vec![RuleSlot::default(); slots.len()]);
            for &slot in slots.iter().rev() {
                self.free.push_front(slot);
            }
            return Err(e);
        }
        let mut ids = Vec::with_capacity(n);
        // One growth instead of a rehash of everything at every doubling.
        self.by_key.reserve(n);
        self.installed.reserve(n);
        for ((c, rule), slot) in compiled.into_iter().zip(rules).zip(slots) {
            let direction = rule.direction;
            let generation = c.slot.generation;
            self.by_key.insert(c.key.clone(), slot);
            self.per_direction[direction as usize] += 1;
            let delays = rule.needs_fq();
            self.delayed += usize::from(delays);
            self.installed.insert(
                slot,
                Installed {
                    delays,
                    compiled: c,
                    direction,
                    generation,
                },
            );
            ids.push(RuleId { slot, generation });
        }
        Ok(ids)
    }

    /// Rewrites the action and expiry of rules in place, `rules[i]` for `ids[i]`: one write of
    /// each slot (in a few batch calls) and of each domain rule's value (its response), so a
    /// packet sees a rule's old version or its new one, and the counters go on. What they
    /// match cannot change. On failure what was written is written back: nothing changed.
    pub fn update(&mut self, ids: &[RuleId], rules: &[Rule]) -> Result<(), Error> {
        assert_eq!(ids.len(), rules.len(), "one rule per id");
        let mut new = Vec::with_capacity(rules.len());
        for (id, rule) in ids.iter().zip(rules) {
            let mut c = compile(rule)?;
            match self.installed.get(&id.slot) {
                Some(i) if i.generation == id.generation => {
                    if i.compiled.key != c.key || i.direction != rule.direction {
                        return Err(Error::Invalid(
                            "an update cannot change what a fault matches: remove it and add \
                             another"
                                .into(),
                        ));
                    }
                    c.home = i.compiled.home;
                }
                _ => return Err(Error::NoSuchRule(id.slot)),
            }
            c.slot.generation = id.generation;
            new.push(c);
        }
        if rules.iter().any(Rule::needs_fq) {
            self.ensure_fq()?;
        }
        let slots: Vec<u32> = ids.iter().map(|id| id.slot).collect();
        let values: Vec<RuleSlot> = new.iter().map(|c| c.slot).collect();
        let mut written = 0;
        let mut result = new
            .iter()
            .zip(&slots)
            .try_for_each(|(c, &slot)| {
                self.maps.rewrite_value(c, slot)?;
                written += 1;
                Ok(())
            })
            .and_then(|()| self.maps.write_slots(&slots, &values));
        if result.is_ok() {
            result = self.failpoint(0);
        }
        if let Err(e) = result {
            let old: Vec<RuleSlot> = slots
                .iter()
                .map(|s| self.installed[s].compiled.slot)
                .collect();
            let _ = self.maps.write_slots(&slots, &old);
            for &slot in &slots[..written] {
                let _ = self
                    .maps
                    .rewrite_value(&self.installed[&slot].compiled, slot);
            }
            return Err(e);
        }
        for ((slot, c), rule) in slots.iter().zip(new).zip(rules) {
            let delays = rule.needs_fq();
            let inst = self.installed.get_mut(slot).expect("checked above");
            self.delayed = self.delayed - usize::from(inst.delays) + usize::from(delays);
            inst.delays = delays;
            inst.compiled = c;
        }
        Ok(())
    }

    /// Removes a rule: its key first, then the slot, then its prefilter (or DNS port) bits.
    /// Detaches a direction's program when its last rule goes.
    pub fn remove(&mut self, id: RuleId) -> Result<(), Error> {
        self.remove_many(&[id])
    }

    /// Removes these rules as [`Injector::remove`] does, as one change: keys and slots in a few
    /// batch calls (a panic button over 100,000 rules). Ids no longer installed are skipped and
    /// reported; every step runs even if one fails (removing a key alone already stops
    /// matching), and the first error is returned.
    pub fn remove_many(&mut self, ids: &[RuleId]) -> Result<(), Error> {
        let mut first_err = None;
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            match self.installed.get(&id.slot) {
                Some(i) if i.generation == id.generation => {}
                _ => {
                    first_err.get_or_insert(Error::NoSuchRule(id.slot));
                    continue;
                }
            }
            let inst = self.installed.remove(&id.slot).expect("checked above");
            self.per_direction[inst.direction as usize] -= 1;
            self.delayed -= usize::from(inst.delays);
            self.by_key.remove(&inst.compiled.key);
            gone.push((id.slot, inst.compiled));
        }
        let compiled: Vec<&Compiled> = gone.iter().map(|(_, c)| c).collect();
        let keys = self.maps.remove_keys(&compiled);
        let slots: Vec<u32> = gone.iter().map(|(slot, _)| *slot).collect();
        let empty = RuleSlot {
            action: ACTION_NONE,
            ..Default::default()
        };
        let written = self.maps.write_slots(&slots, &vec![empty; slots.len()]);
        let mut index = Ok(());
        for c in &compiled {
            index = index.and(self.maps.index_remove(c));
            self.maps.unplace(c);
        }
        self.free.extend(slots);
        self.detach_unused();
        first_err
            .map_or(Ok(()), Err)
            .and(keys)
            .and(written)
            .and(index)
    }

    /// Ids of all installed rules.
    pub fn rule_ids(&self) -> Vec<RuleId> {
        self.installed
            .iter()
            .map(|(slot, i)| RuleId {
                slot: *slot,
                generation: i.generation,
            })
            .collect()
    }

    /// Removes every rule; returns how many were removed.
    pub fn remove_all(&mut self) -> Result<usize, Error> {
        let ids = self.rule_ids();
        self.remove_many(&ids).map(|()| ids.len())
    }

    /// Makes the next install fail, as a map write would, after `step`: 0 the slots written,
    /// 1 the keys too, `2 + k` rule `k`'s index bits too; or the next update, at step 0 after
    /// all its writes. For tests of the rollback.
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_install_at(&mut self, step: usize) {
        self.fail_at = Some(step);
    }

    /// Every entry of the rule maps in the kernel (arrays: the non-zero ones), one line each,
    /// sorted: what a failed request must leave as it found.
    #[cfg(feature = "test-hooks")]
    pub fn kernel_rule_maps(&self) -> Result<Vec<String>, Error> {
        self.maps.dump()
    }

    /// The failure [`Injector::fail_next_install_at`] asked for, if this is its step.
    fn failpoint(&mut self, step: usize) -> Result<(), Error> {
        #[cfg(feature = "test-hooks")]
        if self.fail_at == Some(step) {
            self.fail_at = None;
            return Err(Error::Map {
                map: "a failpoint",
                source: aya::maps::MapError::IoError(std::io::Error::from_raw_os_error(
                    libc::ENOMEM,
                )),
            });
        }
        let _ = step;
        Ok(())
    }

    /// Counters of a rule, summed over CPUs.
    pub fn counters(&self, id: RuleId) -> Result<Counters, Error> {
        self.counters_many(&[id])?
            .remove(0)
            .ok_or(Error::NoSuchRule(id.slot))
    }

    /// Counters of these rules (`None`: not installed), in order: each per-CPU element holding
    /// some of them is read once.
    pub fn counters_many(&self, ids: &[RuleId]) -> Result<Vec<Option<Counters>>, Error> {
        let live: Vec<bool> = ids
            .iter()
            .map(|id| {
                self.installed
                    .get(&id.slot)
                    .is_some_and(|i| i.generation == id.generation)
            })
            .collect();
        let slots: Vec<u32> = ids
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .map(|(id, _)| id.slot)
            .collect();
        let mut counted = self.maps.counters(&slots)?.into_iter();
        Ok(live
            .into_iter()
            .map(|live| if live { counted.next() } else { None })
            .collect())
    }

    /// The loaded object, for test runs.
    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    fn ensure_attached(&mut self, direction: Direction) -> Result<(), Error> {
        if self.iface.is_empty() {
            return Ok(());
        }
        match direction {
            Direction::Egress if self.egress_link.is_none() => {
                self.egress_link = Some(attach::attach_egress(
                    &mut self.ebpf,
                    &self.iface,
                    self.attach.tc,
                )?);
                tracing::info!(iface = %self.iface, "attached chaos_egress (TC egress)");
            }
            Direction::Ingress if self.ingress_link.is_none() => {
                self.ingress_link = Some(attach::attach_ingress(
                    &mut self.ebpf,
                    &self.iface,
                    self.attach.xdp,
                )?);
                tracing::info!(iface = %self.iface, "attached chaos_ingress (XDP)");
            }
            _ => {}
        }
        Ok(())
    }

    /// Detaches the program of each direction that has no rules left.
    fn detach_unused(&mut self) {
        if self.delayed == 0 && self.fq_ours {
            self.restore_qdisc();
        }
        let egress = self.per_direction[Direction::Egress as usize] > 0;
        let ingress = self.per_direction[Direction::Ingress as usize] > 0;
        if !egress && let Some(link) = self.egress_link.take() {
            if let Ok(p) = attach::egress(&mut self.ebpf) {
                let _ = p.detach(link);
            }
            tracing::info!(iface = %self.iface, "detached chaos_egress");
        }
        if !ingress && let Some(link) = self.ingress_link.take() {
            if let Ok(p) = attach::ingress(&mut self.ebpf) {
                let _ = p.detach(link);
            }
            tracing::info!(iface = %self.iface, "detached chaos_ingress");
        }
    }
}

impl Injector {
    /// Removes the fq this injector installed; the kernel attaches its default qdisc again.
    fn restore_qdisc(&mut self) {
        match qdisc::remove_fq(self.ifindex, self.replaced_root.as_deref()) {
            Ok(_) => {
                tracing::info!(iface = %self.iface, "fq removed: the default qdisc is back")
            }
            Err(e) => tracing::error!(iface = %self.iface, error = %e, "cannot remove fq"),
        }
        self.fq_ours = false;
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if self.fq_ours {
            self.restore_qdisc();
        }
    }
}
