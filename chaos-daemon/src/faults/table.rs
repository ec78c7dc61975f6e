//! The fault table proper (synchronous): installed faults, the per-interface [`Injector`]s that
//! enforce them, and their deadlines. Interfaces get an injector (programs attached) with their
//! first fault and lose it (programs detached) with their last.
//!
//! Every change is audited here ([`audit::record`]), so no path can forget it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    time::{Duration, SystemTime},
};

use super::{
    FaultError,
    ids::{FaultId, IdGen},
};
use crate::{
    audit::{self, Caller, Event},
    clock::{deadline_ns, monotonic_ns},
    host::cgroup::{Cgroup, CgroupState},
    loader::{self, Injector, InterfaceState, RuleId, attach::AttachOptions},
    spec::{CountersView, CreatedBy, Fault, FaultSpec},
    validate::Validated,
};

struct Entry {
    spec: FaultSpec,
    iface: String,
    /// A fault is one or more rules, all on `iface`.
    rules: Vec<RuleId>,
    created: SystemTime,
    /// Creation order (ids are random; the wall clock can step back).
    seq: u64,
    expires_at_ns: u64,
    /// The cgroup the fault is scoped to: it ends when the cgroup goes, or empties after
    /// having held processes.
    cgroup: Option<Cgroup>,
    /// Processes were seen in `cgroup`.
    populated: bool,
    /// The protection `force` overrode.
    overrode: Option<String>,
    /// Who installed it.
    caller: Caller,
}

/// What the table holds, cheap to copy out (for `GET /v1/health`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Installed faults.
    pub faults: usize,
    /// Interfaces with programs attached.
    pub interfaces: Vec<String>,
    /// CLOCK_MONOTONIC ns of the next deadline.
    pub next_deadline_ns: Option<u64>,
    /// Interfaces whose root qdisc the daemon replaced with its tree, and the root kind each
    /// tree took the place of (to restore after a crash).
    pub fq_interfaces: Vec<(String, Option<String>)>,
}

/// All installed faults.
pub struct Faults {
    injectors: BTreeMap<String, Injector>,
    /// Loaded programs not bound to an interface, reused for the next one (skips the verifier).
    spare: Option<Injector>,
    /// Boxed: ids are random, so inserts land mid-node, and a B-tree shifts its values to make
    /// room (440-byte entries made that a tenth of a 100,000-fault create).
    entries: BTreeMap<FaultId, Box<Entry>>,
    deadlines: BTreeSet<(u64, FaultId)>,
    max_rules: u32,
    attach: AttachOptions,
    ids: IdGen,
    closed: bool,
    /// Last counts of removed faults, for the summed metrics.
    retired: crate::metrics::Retired,
}

/// A loader error as the table reports it: a missing interface is the caller's mistake, not
/// the loader's failure.
fn loader_error(e: loader::Error) -> FaultError {
    match e {
        loader::Error::InterfaceNotFound(i) => FaultError::InterfaceNotFound(i),
        e => FaultError::Loader(e),
    }
}

/// RFC 3339 with milliseconds; never panics (humantime's formatter does past year 9999, which
/// no TTL accepted by the config reaches).
pub fn rfc3339(t: SystemTime) -> String {
    const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) if d < YEAR_10000 => humantime::format_rfc3339_millis(t).to_string(),
        Ok(_) => "9999-12-31T23:59:59.999Z".into(),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

impl Faults {
    /// An empty table allowing `max_rules` faults in all. `spare`, if given, is a loaded
    /// [`Injector`] used for the first interface; `attach` says how programs are attached.
    pub fn new(max_rules: u32, spare: Option<Injector>, attach: AttachOptions) -> Self {
        let spare = spare.map(|mut s| {
            s.set_attach_options(attach);
            s
        });
        Faults {
            attach,
            injectors: BTreeMap::new(),
            spare,
            entries: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            max_rules,
            ids: IdGen::new(),
            closed: false,
            retired: Default::default(),
        }
    }

    /// Number of installed faults.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no fault is installed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counts and attached interfaces.
    pub fn summary(&self) -> Summary {
        Summary {
            faults: self.entries.len(),
            interfaces: self.injectors.keys().cloned().collect(),
            next_deadline_ns: self.deadlines.first().map(|(at, _)| *at),
            fq_interfaces: self
                .injectors
                .iter()
                .filter(|(_, inj)| inj.fq_installed())
                .map(|(i, inj)| (i.clone(), inj.replaced_root().map(str::to_string)))
                .collect(),
        }
    }

    /// From now on every create is refused with [`FaultError::ShuttingDown`].
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Installs all validated faults or none (across interfaces). Nothing that can fail or
    /// panic runs after the first map write without undoing it.
    pub fn create(
        &mut self,
        items: Vec<Validated>,
        caller: Caller,
    ) -> Result<Vec<Fault>, FaultError> {
        if self.closed {
            return Err(FaultError::ShuttingDown);
        }
        // Rules installed now would be inert until the switch is re-armed, then come alive
        // unannounced.
        if crate::loader::deadman::is_tripped() {
            return Err(FaultError::DeadmanTripped);
        }
        let rules: usize = items.iter().map(|v| v.rules.len()).sum();
        let installed: usize = self.entries.values().map(|e| e.rules.len()).sum();
        if installed + rules > self.max_rules as usize {
            return Err(FaultError::LimitReached {
                installed,
                requested: rules,
                max: self.max_rules,
            });
        }
        let mut by_iface: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, v) in items.iter().enumerate() {
            by_iface.entry(v.iface.clone()).or_default().push(i);
        }
        // Bring every interface's injector up to date (programs loaded, attached to the device
        // that has the name now) first, so TTLs count from the moment of installation.
        for (iface, idx) in &by_iface {
            let rules = idx.iter().flat_map(|&i| items[i].rules.iter());
            // The DNS program takes seconds to verify on a loaded host: a 2 s TTL counted
            // before it would end before the rule ever worked.
            let ready = self
                .injector(iface)
                .and_then(|inj| inj.preload(rules).map_err(loader_error));
            if let Err(e) = ready {
                self.drop_idle_injectors();
                return Err(e);
            }
        }
        let now = SystemTime::now();
        let now_ns = monotonic_ns();
        let mut items = items;
        for v in &mut items {
            let at = deadline_ns(now_ns, v.spec.ttl);
            for r in &mut v.rules {
                r.expires_at_ns = Some(at);
            }
        }
        let mut rule_ids: Vec<Vec<RuleId>> = vec![Vec::new(); items.len()];
        let mut done: Vec<(String, Vec<RuleId>)> = Vec::new();
        for (iface, idx) in &by_iface {
            // Flatten the faults of this interface into one batch; remember which fault each
            // rule came from to hand the ids back.
            let mut owner = Vec::new();
            let mut batch = Vec::new();
            for &i in idx {
                for r in &items[i].rules {
                    owner.push(i);
                    batch.push(r.clone());
                }
            }
            let result = self
                .injectors
                .get_mut(iface)
                .expect("created above")
                .add_batch(&batch);
            match result {
                Ok(ids) => {
                    for (&i, id) in owner.iter().zip(&ids) {
                        rule_ids[i].push(*id);
                    }
                    done.push((iface.clone(), ids));
                }
                Err(e) => {
                    self.rollback(done);
                    return Err(self.explain(e, &owner, &items));
                }
            }
        }
        // From here on only bookkeeping; a panic in it (it should have none) still undoes the
        // map writes, so the kernel never holds a rule the table does not list.
        let recorded = catch_unwind(AssertUnwindSafe(|| {
            let mut out = Vec::with_capacity(items.len());
            for (v, rules) in items.into_iter().zip(rule_ids) {
                let id = self.ids.fresh(|id| self.entries.contains_key(&id));
                let entry = Entry {
                    seq: self.ids.issued(),
                    expires_at_ns: v.rules[0].expires_at_ns.unwrap_or(u64::MAX),
                    spec: v.spec,
                    iface: v.iface,
                    rules,
                    created: now,
                    cgroup: v.cgroup,
                    populated: false,
                    overrode: v.overrode,
                    caller,
                };
                out.push((id, entry));
            }
            out
        }));
        let entries = match recorded {
            Ok(e) => e,
            Err(panic) => {
                self.rollback(done);
                resume_unwind(panic);
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        let _held = audit::Hold::start();
        for (id, entry) in entries {
            audit::created(
                &id.to_string(),
                &entry.spec,
                entry.overrode.as_deref(),
                caller,
            );
            self.deadlines.insert((entry.expires_at_ns, id));
            // Counters start at zero when the rule goes in; the create answers with that
            // rather than a lookup per rule and CPU (a fifth of a 100,000-fault create).
            out.push(Self::view_with(id, &entry, CountersView::default()));
            self.entries.insert(id, Box::new(entry));
        }
        Ok(out)
    }

    /// Whether `items` would install now without a conflict: the check an experiment gets
    /// when it is posted (its dry run too), before its steady state is even probed. A fault
    /// added in between is still refused at the injection.
    pub fn check_conflicts(&self, items: &[Validated]) -> Result<(), FaultError> {
        let mut by_iface: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, v) in items.iter().enumerate() {
            by_iface.entry(&v.iface).or_default().push(i);
        }
        for (iface, idx) in by_iface {
            let owner: Vec<usize> = idx
                .iter()
                .flat_map(|&i| std::iter::repeat_n(i, items[i].rules.len()))
                .collect();
            let batch: Vec<loader::Rule> = idx
                .iter()
                .flat_map(|&i| items[i].rules.iter().cloned())
                .collect();
            Injector::check_batch(self.injectors.get(iface), &batch)
                .map_err(|e| self.explain(e, &owner, items))?;
        }
        Ok(())
    }

    /// Removes rules a failed create had installed.
    fn rollback(&mut self, done: Vec<(String, Vec<RuleId>)>) {
        for (iface, ids) in done {
            if let Some(inj) = self.injectors.get_mut(&iface)
                && let Err(e) = inj.remove_many(&ids)
            {
                tracing::error!(iface, error = %e, "rolling back a failed create");
            }
        }
        self.drop_idle_injectors();
    }

    /// A loader error in the words of the table: which fault, which installed one.
    fn explain(&self, e: loader::Error, owner: &[usize], items: &[Validated]) -> FaultError {
        match e {
            loader::Error::Conflict { index, existing } => {
                let fault = owner.get(index).copied().unwrap_or(0);
                // Which network of a `match.cidrs` list collided (one rule each, in order).
                let first = owner.iter().position(|&o| o == fault).unwrap_or(index);
                let entry = items[fault]
                    .spec
                    .matches
                    .cidrs
                    .as_ref()
                    .filter(|list| list.len() == items[fault].rules.len())
                    .and_then(|list| Some((index - first, list.get(index - first)?)));
                FaultError::Conflict {
                    index: fault,
                    entry: entry.map(|(i, _)| i),
                    what: match entry {
                        Some((_, net)) => {
                            format!("{} (network {net})", items[fault].spec.summary())
                        }
                        None => items[fault].spec.summary(),
                    },
                    spec: Box::new(items[fault].spec.clone()),
                    existing: existing.and_then(|rule| {
                        self.entries
                            .iter()
                            .find(|(_, e)| e.iface == items[fault].iface && e.rules.contains(&rule))
                            .map(|(id, _)| id.to_string())
                    }),
                }
            }
            e => loader_error(e),
        }
    }

    /// The injector of `iface`, created (from the spare if there is one) on first use, and
    /// attached again if the interface was re-created under the same name.
    fn injector(&mut self, iface: &str) -> Result<&mut Injector, FaultError> {
        let state = self.injectors.get(iface).map(Injector::interface_state);
        match state {
            Some(InterfaceState::Same | InterfaceState::Unknown(_)) => {}
            Some(InterfaceState::Replaced(_)) => self.follow_replaced(iface),
            Some(InterfaceState::Gone) => self.drop_interface(iface),
            None => {}
        }
        if !self.injectors.contains_key(iface) {
            let inj = match self.spare.take() {
                Some(mut spare) => match spare.rebind(iface) {
                    Ok(()) => spare,
                    Err(e) => {
                        self.spare = Some(spare);
                        return Err(loader_error(e));
                    }
                },
                None => {
                    let mut inj = Injector::open(iface).map_err(loader_error)?;
                    inj.set_attach_options(self.attach);
                    inj
                }
            };
            self.injectors.insert(iface.to_string(), inj);
        }
        Ok(self.injectors.get_mut(iface).expect("inserted above"))
    }

    /// Interfaces without faults lose their injector (its programs are already detached); one is
    /// kept as the spare, the others are unloaded.
    fn drop_idle_injectors(&mut self) {
        let idle: Vec<String> = self
            .injectors
            .iter()
            .filter(|(_, i)| i.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for iface in idle {
            let inj = self.injectors.remove(&iface).expect("listed above");
            tracing::info!(iface, "no faults left on interface: programs detached");
            if self.spare.is_none() {
                self.spare = Some(inj);
            }
        }
    }

    fn view(&self, id: FaultId, e: &Entry) -> Fault {
        let counters = self.counters(&[e]).remove(0);
        Self::view_with(id, e, counters)
    }

    /// The views of these faults: the counters read in one pass per interface.
    fn views<'a>(&self, faults: impl IntoIterator<Item = (FaultId, &'a Entry)>) -> Vec<Fault> {
        let faults: Vec<(FaultId, &Entry)> = faults.into_iter().collect();
        let entries: Vec<&Entry> = faults.iter().map(|(_, e)| *e).collect();
        faults
            .iter()
            .zip(self.counters(&entries))
            .map(|((id, e), counters)| Self::view_with(*id, e, counters))
            .collect()
    }

    /// Each fault's counters, its rules' summed: every interface's rules are read together, so
    /// a per-CPU counter element is read once however many of them it holds. A fault whose
    /// counters cannot be read shows zeros (the maps error is logged).
    fn counters(&self, entries: &[&Entry]) -> Vec<CountersView> {
        let mut out = vec![CountersView::default(); entries.len()];
        let mut by_iface: HashMap<&str, (Vec<RuleId>, Vec<usize>)> = HashMap::new();
        for (n, e) in entries.iter().enumerate() {
            let (rules, owners) = by_iface.entry(&e.iface).or_default();
            rules.extend(&e.rules);
            owners.extend(std::iter::repeat_n(n, e.rules.len()));
        }
        for (iface, (rules, owners)) in by_iface {
            let Some(inj) = self.injectors.get(iface) else {
                continue;
            };
            match inj.counters_many(&rules) {
                Ok(counted) => {
                    for (c, n) in counted.into_iter().zip(owners) {
                        if let Some(c) = c {
                            let v = &mut out[n];
                            v.matched += c.matched_packets;
                            v.matched_bytes += c.matched_bytes;
                            v.affected += c.affected_packets;
                        }
                    }
                }
                Err(error) => tracing::warn!(iface, %error, "reading counters failed"),
            }
        }
        out
    }

    fn view_with(id: FaultId, e: &Entry, counters: CountersView) -> Fault {
        let now_ns = monotonic_ns();
        let remaining = Duration::from_nanos(e.expires_at_ns.saturating_sub(now_ns));
        Fault {
            id: id.to_string(),
            spec: e.spec.clone(),
            created_at: rfc3339(e.created),
            expires_at: rfc3339(e.created.checked_add(e.spec.ttl).unwrap_or(e.created)),
            remaining_ms: u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
            counters,
            effective_percent: e.spec.effective_percent(),
            created_by: match e.caller {
                Caller::Daemon => None,
                Caller::Client {
                    uid,
                    gid,
                    pid,
                    process,
                    ..
                } => Some(CreatedBy {
                    uid,
                    gid,
                    pid,
                    process: process.map(|p| p.as_string()),
                }),
            },
        }
    }

    /// All faults, oldest first (a batch in the order of its request).
    pub fn list(&self) -> Vec<Fault> {
        // The key inline: a comparison that chased each entry's box would miss the cache.
        let mut all: Vec<(u64, FaultId, &Entry)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.seq, *id, &**e))
            .collect();
        all.sort_unstable_by_key(|(seq, ..)| *seq);
        self.views(all.into_iter().map(|(_, id, e)| (id, e)))
    }

    /// What `GET /metrics` shows: the faults and the last counts of removed ones.
    pub fn scrape(&self) -> crate::metrics::Scrape {
        crate::metrics::Scrape {
            faults: self.list(),
            retired: self.retired.snapshot(),
        }
    }

    /// One fault.
    pub fn get(&self, id: &str) -> Option<Fault> {
        let id = FaultId::parse(id)?;
        self.entries.get(&id).map(|e| self.view(id, e))
    }

    /// Removes one fault, audited as `event`, and returns its last view.
    pub fn remove(&mut self, id: &str, event: Event, caller: Caller) -> Result<Fault, FaultError> {
        FaultId::parse(id)
            .and_then(|id| self.remove_id(id, event, caller))
            .ok_or_else(|| FaultError::NotFound(id.to_string()))
    }

    fn remove_id(&mut self, id: FaultId, event: Event, caller: Caller) -> Option<Fault> {
        self.remove_ids(vec![id], event, caller).pop()
    }

    /// Removes these faults (those not installed are skipped), each audited as `event`, their
    /// rules in one batch per interface; returns their last views.
    fn remove_ids(&mut self, ids: Vec<FaultId>, event: Event, caller: Caller) -> Vec<Fault> {
        let mut gone = Vec::with_capacity(ids.len());
        let mut rules: HashMap<String, Vec<RuleId>> = HashMap::new();
        for id in ids {
            let Some(e) = self.entries.remove(&id) else {
                continue;
            };
            self.deadlines.remove(&(e.expires_at_ns, id));
            rules.entry(e.iface.clone()).or_default().extend(&e.rules);
            gone.push((id, e));
        }
        // Counters are read while the rules are still in.
        let views = self.views(gone.iter().map(|(id, e)| (*id, &**e)));
        let removed: Vec<(Fault, Box<Entry>)> = views
            .into_iter()
            .zip(gone.into_iter().map(|(_, e)| e))
            .collect();
        for (iface, ids) in rules {
            if let Some(inj) = self.injectors.get_mut(&iface)
                && let Err(err) = inj.remove_many(&ids)
            {
                tracing::error!(iface, rules = ids.len(), error = %err, "removing rules from the maps failed");
            }
        }
        self.drop_idle_injectors();
        removed
            .into_iter()
            .map(|(view, e)| {
                self.retired.add(&e.spec, &view.counters);
                audit::record(event, &view.id, &e.spec, caller);
                view
            })
            .collect()
    }

    /// Replaces the action (and share) of fault `id` with `v`'s and, with `remaining`, moves
    /// its deadline to that long from now, in the kernel too. What it matches stays; on error
    /// nothing changed.
    pub fn update(
        &mut self,
        id: &str,
        v: Validated,
        remaining: Option<Duration>,
        caller: Caller,
    ) -> Result<Fault, FaultError> {
        if self.closed {
            return Err(FaultError::ShuttingDown);
        }
        if crate::loader::deadman::is_tripped() {
            return Err(FaultError::DeadmanTripped);
        }
        let not_found = || FaultError::NotFound(id.to_string());
        let id = FaultId::parse(id).ok_or_else(not_found)?;
        let e = self.entries.get(&id).ok_or_else(not_found)?;
        let (old_at, created, iface) = (e.expires_at_ns, e.created, e.iface.clone());
        let rule_ids = e.rules.clone();
        let mut rules = v.rules;
        // The patched spec keeps the match, so it compiles to the same rules in the same order.
        if rules.len() != rule_ids.len() {
            return Err(FaultError::Internal(format!(
                "the update compiled to {} rules for a fault of {}",
                rules.len(),
                rule_ids.len()
            )));
        }
        if v.iface != iface {
            return Err(FaultError::Loader(loader::Error::Invalid(
                "an update cannot move a fault to another interface".into(),
            )));
        }
        let at = remaining.map_or(old_at, |r| deadline_ns(monotonic_ns(), r));
        for rule in &mut rules {
            rule.expires_at_ns = Some(at);
        }
        self.injectors
            .get_mut(&iface)
            .ok_or_else(|| FaultError::InterfaceNotFound(iface.clone()))?
            .update(&rule_ids, &rules)
            .map_err(loader_error)?;
        let mut spec = v.spec;
        spec.ttl = match remaining {
            // The view's expires_at is created + ttl: keep that the new deadline.
            // Whole milliseconds: the spec reads "10m 385ms", not nanosecond noise.
            Some(r) => {
                let elapsed = created.elapsed().unwrap_or_default().as_millis();
                Duration::from_millis(u64::try_from(elapsed).unwrap_or(u64::MAX)) + r
            }
            None => self.entries[&id].spec.ttl,
        };
        let e = self.entries.get_mut(&id).expect("looked up above");
        let was = std::mem::replace(&mut e.spec, spec);
        e.expires_at_ns = at;
        self.deadlines.remove(&(old_at, id));
        self.deadlines.insert((at, id));
        let e = &self.entries[&id];
        audit::updated(&id.to_string(), &was, &e.spec, caller);
        Ok(self.view(id, e))
    }

    fn remove_where(
        &mut self,
        keep: impl Fn(&Entry) -> bool,
        event: Event,
        caller: Caller,
    ) -> usize {
        let _held = audit::Hold::start();
        let ids: Vec<FaultId> = self
            .entries
            .iter()
            .filter(|(_, e)| !keep(e))
            .map(|(id, _)| *id)
            .collect();
        self.remove_ids(ids, event, caller).len()
    }

    /// Removes the faults `selector` selects; returns how many.
    pub fn remove_selected(&mut self, selector: &crate::spec::Selector, caller: Caller) -> usize {
        self.remove_where(|e| !selector.matches(&e.spec), Event::Delete, caller)
    }

    /// Removes every fault (the panic button, shutdown); returns how many.
    pub fn remove_all(&mut self, event: Event, caller: Caller) -> usize {
        self.remove_where(|_| false, event, caller)
    }

    /// Removes the faults whose deadline has passed; returns how many.
    pub fn expire(&mut self) -> usize {
        let now = monotonic_ns();
        let _held = audit::Hold::start();
        let due: Vec<FaultId> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        self.remove_ids(due, Event::Expire, Caller::Daemon).len()
    }

    /// Follows every interface that has faults: re-attaches where it was re-created under the
    /// same name, drops the faults of one that is gone (its links died with it, so they
    /// enforce nothing). A lookup that cannot tell (EMFILE) changes nothing.
    pub fn follow_interfaces(&mut self) {
        let states: Vec<(String, InterfaceState)> = self
            .injectors
            .iter()
            .map(|(i, inj)| (i.clone(), inj.interface_state()))
            .collect();
        for (iface, state) in states {
            match state {
                InterfaceState::Same => self.follow_qdisc(&iface),
                InterfaceState::Replaced(_) => self.follow_replaced(&iface),
                InterfaceState::Gone => self.drop_interface(&iface),
                InterfaceState::Unknown(e) => {
                    tracing::warn!(iface, error = %e, "cannot look up interface; keeping its faults")
                }
            }
        }
    }

    /// Ends the faults that need departure times (latency, egress bandwidth) on `iface` if the
    /// qdisc that honours them was deleted or replaced: listing them would claim delays the
    /// kernel no longer makes. A check that cannot tell changes nothing.
    fn follow_qdisc(&mut self, iface: &str) {
        let Some(inj) = self.injectors.get_mut(iface) else {
            return;
        };
        if inj.departures_lost() != Some(true) {
            return;
        }
        inj.forget_qdisc();
        let n = self.remove_where(
            |e| e.iface != iface || !needs_departures(&e.spec),
            Event::QdiscGone,
            Caller::Daemon,
        );
        tracing::warn!(
            iface,
            removed = n,
            "the root qdisc was deleted or replaced: the faults it held delays for are ended"
        );
    }

    /// Ends the faults whose cgroup is gone (the service stopped or restarted: a new cgroup
    /// of the same name is another scope) and, for `until_cgroup_empty`, emptied after
    /// processes were seen in it; the emptied cgroup goes too if `chaosctl exec` made it (its
    /// chaosctl may have been killed). A check that cannot tell changes nothing.
    pub fn follow_cgroups(&mut self) {
        let mut ended = Vec::new();
        let mut emptied = Vec::new();
        for (id, e) in &mut self.entries {
            let Some(c) = &e.cgroup else { continue };
            match (c.state(), c.populated()) {
                (CgroupState::Gone, _) => ended.push((*id, Event::CgroupGone)),
                (CgroupState::Same, Some(true)) => e.populated = true,
                (CgroupState::Same, Some(false)) if e.populated && e.spec.until_cgroup_empty => {
                    ended.push((*id, Event::CgroupEmptied));
                    emptied.push(c.clone());
                }
                _ => {}
            }
        }
        for (id, event) in ended {
            let _ = self.remove_id(id, event, Caller::Daemon);
        }
        for c in emptied {
            if c.remove_if_exec() {
                tracing::info!(cgroup = %c.path.display(), "removed the emptied cgroup of chaosctl exec");
            }
        }
    }

    fn follow_replaced(&mut self, iface: &str) {
        let Some(inj) = self.injectors.get_mut(iface) else {
            return;
        };
        match inj.reattach() {
            Ok(()) => {
                tracing::warn!(
                    iface,
                    "interface was re-created: programs attached to the new one"
                );
                for (id, e) in self.entries.iter().filter(|(_, e)| e.iface == iface) {
                    audit::record(
                        Event::InterfaceReplaced,
                        &id.to_string(),
                        &e.spec,
                        Caller::Daemon,
                    );
                }
            }
            Err(e) => {
                tracing::error!(iface, error = %e, "cannot attach to the re-created interface");
                self.drop_interface(iface);
            }
        }
    }

    fn drop_interface(&mut self, iface: &str) {
        // `remove` drops the emptied injector like any other; it may stay as the spare, whose
        // `rebind` resolves the next interface afresh and discards the dead links.
        self.remove_where(|e| e.iface != iface, Event::InterfaceGone, Caller::Daemon);
    }
}

/// Whether `spec`'s packets are held by departure times (needs the qdisc tree).
fn needs_departures(spec: &crate::spec::FaultSpec) -> bool {
    match spec.action {
        crate::spec::ActionSpec::Latency { .. } => true,
        crate::spec::ActionSpec::Bandwidth { .. } => {
            spec.direction == crate::spec::DirectionSpec::Egress
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_table_refuses_creates_before_touching_the_kernel() {
        // No spare and no interface: reaching the loader would fail differently.
        let mut t = Faults::new(10, None, AttachOptions::default());
        t.close();
        let spec: FaultSpec = serde_json::from_str(
            r#"{"interface":"lo","match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"ttl":"1m"}"#,
        )
        .unwrap();
        let v = Validated {
            spec,
            iface: "lo".into(),
            rules: vec![loader::Rule::blackhole(
                loader::Direction::Egress,
                "10.0.0.1/32".parse().unwrap(),
            )],
            cgroup: None,
            overrode: None,
        };
        assert!(matches!(
            t.create(vec![v], Caller::Daemon),
            Err(FaultError::ShuttingDown)
        ));
        assert!(t.is_empty());
    }

    #[test]
    fn dates_past_year_9999_never_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        assert!(rfc3339(SystemTime::now()).ends_with('Z'));
    }
}
