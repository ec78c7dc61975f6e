//! The daemon's fault table: installed faults, the per-interface [`Injector`]s that enforce them,
//! and their deadlines. Interfaces get an injector (programs attached) with their first fault and
//! lose it (programs detached) with their last.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{BuildHasher, Hasher},
    time::{Duration, SystemTime},
};

use crate::{
    Error, Injector, RuleId,
    attach::AttachOptions,
    clock::{deadline_ns, monotonic_ns},
    spec::{CountersView, Fault, FaultSpec},
    validate::{ApiError, Validated},
};

struct Entry {
    spec: FaultSpec,
    iface: String,
    rule: RuleId,
    created: SystemTime,
    expires_at_ns: u64,
}

/// All installed faults.
pub struct Faults {
    injectors: BTreeMap<String, Injector>,
    /// Loaded programs not bound to an interface, reused for the next one (skips the verifier).
    spare: Option<Injector>,
    entries: BTreeMap<String, Entry>,
    deadlines: BTreeSet<(u64, String)>,
    max_rules: u32,
    attach: AttachOptions,
    id_salt: u64,
    next_id: u64,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InterfaceNotFound(_) => ApiError::unprocessable("interface", e.to_string()),
            Error::Conflict(_) => ApiError {
                status: 409,
                error: e.to_string(),
                field: Some("match".into()),
            },
            Error::Full(_) => ApiError::new(409, e.to_string()),
            Error::Invalid(_) => ApiError::unprocessable("match", e.to_string()),
            _ => ApiError::new(500, e.to_string()),
        }
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
            id_salt: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            next_id: 0,
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

    /// Interfaces that currently have programs attached.
    pub fn interfaces(&self) -> Vec<String> {
        self.injectors.keys().cloned().collect()
    }

    /// A fresh 12-hex-digit id: a keyed hash of a counter, so ids are unguessable across
    /// restarts and never reused by this process.
    fn new_id(&mut self) -> String {
        loop {
            self.next_id += 1;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u64(self.id_salt);
            h.write_u64(self.next_id);
            let id = format!("{:012x}", h.finish() >> 16);
            if !self.entries.contains_key(&id) {
                return id;
            }
        }
    }

    /// Installs all validated faults or none (across interfaces).
    pub fn create(&mut self, items: Vec<Validated>) -> Result<Vec<Fault>, ApiError> {
        if self.entries.len() + items.len() > self.max_rules as usize {
            return Err(ApiError::new(
                409,
                format!(
                    "rule limit reached: {} installed + {} requested > max_rules {}",
                    self.entries.len(),
                    items.len(),
                    self.max_rules
                ),
            ));
        }
        let mut by_iface: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, v) in items.iter().enumerate() {
            by_iface.entry(v.iface.clone()).or_default().push(i);
        }
        // Load programs for new interfaces first, so TTLs count from the moment of installation.
        for iface in by_iface.keys() {
            if let Err(e) = self.injector(iface) {
                self.drop_idle_injectors();
                return Err(e.into());
            }
        }
        let now = SystemTime::now();
        let now_ns = monotonic_ns();
        let mut items = items;
        for v in &mut items {
            v.rule.expires_at_ns = Some(deadline_ns(now_ns, v.spec.ttl));
        }
        let mut rule_ids: Vec<Option<RuleId>> = vec![None; items.len()];
        let mut done: Vec<(String, Vec<RuleId>)> = Vec::new();
        for (iface, idx) in &by_iface {
            let rules: Vec<_> = idx.iter().map(|&i| items[i].rule.clone()).collect();
            let result = self.injector(iface).and_then(|inj| inj.add_batch(&rules));
            match result {
                Ok(ids) => {
                    for (&i, id) in idx.iter().zip(&ids) {
                        rule_ids[i] = Some(*id);
                    }
                    done.push((iface.clone(), ids));
                }
                Err(e) => {
                    for (iface, ids) in done {
                        if let Some(inj) = self.injectors.get_mut(&iface) {
                            for id in ids {
                                let _ = inj.remove(id);
                            }
                        }
                    }
                    self.drop_idle_injectors();
                    let mut err = ApiError::from(e);
                    if items.len() > 1 {
                        err.error = format!("{} (batch not applied)", err.error);
                    }
                    return Err(err);
                }
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for (v, rule) in items.into_iter().zip(rule_ids) {
            let id = self.new_id();
            let entry = Entry {
                expires_at_ns: v.rule.expires_at_ns.unwrap_or(u64::MAX),
                spec: v.spec,
                iface: v.iface,
                rule: rule.expect("every item was installed"),
                created: now,
            };
            self.deadlines.insert((entry.expires_at_ns, id.clone()));
            out.push(self.view(&id, &entry));
            self.entries.insert(id, entry);
        }
        Ok(out)
    }

    fn injector(&mut self, iface: &str) -> Result<&mut Injector, Error> {
        if !self.injectors.contains_key(iface) {
            let inj = match self.spare.take() {
                Some(mut spare) => match spare.rebind(iface) {
                    Ok(()) => spare,
                    Err(e) => {
                        self.spare = Some(spare);
                        return Err(e);
                    }
                },
                None => {
                    let mut inj = Injector::open(iface)?;
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

    fn view(&self, id: &str, e: &Entry) -> Fault {
        let now_ns = monotonic_ns();
        let remaining = Duration::from_nanos(e.expires_at_ns.saturating_sub(now_ns));
        let counters = self
            .injectors
            .get(&e.iface)
            .and_then(|inj| inj.counters(e.rule).ok())
            .map(|c| CountersView {
                matched: c.matched_packets,
                matched_bytes: c.matched_bytes,
                affected: c.affected_packets,
            })
            .unwrap_or_default();
        Fault {
            id: id.to_string(),
            spec: e.spec.clone(),
            created_at: humantime::format_rfc3339_millis(e.created).to_string(),
            expires_at: humantime::format_rfc3339_millis(e.created + e.spec.ttl).to_string(),
            remaining_ms: remaining.as_millis() as u64,
            counters,
        }
    }

    /// All faults, oldest id first.
    pub fn list(&self) -> Vec<Fault> {
        self.entries
            .iter()
            .map(|(id, e)| self.view(id, e))
            .collect()
    }

    /// One fault.
    pub fn get(&self, id: &str) -> Option<Fault> {
        self.entries.get(id).map(|e| self.view(id, e))
    }

    /// Removes one fault and returns its last view.
    pub fn remove(&mut self, id: &str) -> Result<Fault, ApiError> {
        let view = self
            .get(id)
            .ok_or_else(|| ApiError::new(404, format!("no fault with id {id}")))?;
        let e = self.entries.remove(id).expect("present");
        self.deadlines.remove(&(e.expires_at_ns, id.to_string()));
        let result = self
            .injectors
            .get_mut(&e.iface)
            .map(|inj| inj.remove(e.rule));
        self.drop_idle_injectors();
        if let Some(Err(err)) = result {
            tracing::error!(id, error = %err, "removing fault from the maps failed");
        }
        Ok(view)
    }

    /// Removes every fault (the panic button); returns their last views.
    pub fn remove_all(&mut self) -> Vec<Fault> {
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        ids.iter().filter_map(|id| self.remove(id).ok()).collect()
    }

    /// Removes the faults whose deadline has passed.
    pub fn expire(&mut self) -> Vec<Fault> {
        let now = monotonic_ns();
        let due: Vec<String> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        due.iter().filter_map(|id| self.remove(id).ok()).collect()
    }

    /// Removes the faults of interfaces that disappeared (or were replaced by a new interface
    /// with the same name): the kernel dropped their links, so they enforce nothing anymore.
    pub fn drop_vanished_interfaces(&mut self) -> Vec<Fault> {
        let gone: Vec<String> = self
            .injectors
            .iter()
            .filter(|(_, inj)| !inj.interface_alive())
            .map(|(iface, _)| iface.clone())
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| gone.contains(&e.iface))
            .map(|(id, _)| id.clone())
            .collect();
        // `remove` drops the emptied injectors like any other; one may stay as the spare, whose
        // `rebind` resolves the next interface afresh and discards the dead links.
        ids.iter().filter_map(|id| self.remove(id).ok()).collect()
    }

    /// CLOCK_MONOTONIC ns of the next deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(at, _)| *at)
    }
}
