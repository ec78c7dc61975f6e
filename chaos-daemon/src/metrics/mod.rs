//! Prometheus metrics (`GET /metrics`): API requests by method and status, faults active,
//! the dead-man switch, build info, and the faults' counters read from the maps at scrape time.
//!
//! Cardinality is bounded by default: the fault counters are one series per (name, kind,
//! direction, interface), summed over the faults that share them, with the counts of removed
//! faults kept (so the sums never go down) — 10,000 faults under a few names are a few dozen
//! series. `metrics_per_fault = true` adds the fault id as a label instead (one series per fault,
//! gone with it). At most [`MAX_AGGREGATE_SERIES`] distinct label sets are kept; the rest are
//! summed under `name="_other"`.

mod exposition;

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

pub use exposition::{Family, Format, Kind, encode};

use crate::spec::{CountersView, Fault, FaultSpec};

/// Most distinct (name, kind, direction, interface) series of the fault counters.
pub const MAX_AGGREGATE_SERIES: usize = 1000;

/// The name under which faults past [`MAX_AGGREGATE_SERIES`] are summed.
pub const OTHER: &str = "_other";

/// The labels fault counters are summed under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    name: String,
    kind: &'static str,
    direction: String,
    interface: String,
}

impl SeriesKey {
    /// The series `spec` counts in.
    pub fn of(spec: &FaultSpec) -> SeriesKey {
        SeriesKey {
            name: spec.name.clone().unwrap_or_default(),
            kind: spec.action.kind(),
            direction: spec.direction.to_string(),
            interface: spec.interface.clone().unwrap_or_default(),
        }
    }

    /// Itself if `series` holds it or has room for it, else the `_other` series of its kind.
    fn within_cap<V>(mut self, series: &BTreeMap<SeriesKey, V>) -> SeriesKey {
        if !series.contains_key(&self) && series.len() >= MAX_AGGREGATE_SERIES {
            self.name = OTHER.into();
        }
        self
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("direction", self.direction.clone()),
            ("interface", self.interface.clone()),
            ("kind", self.kind.to_string()),
            ("name", self.name.clone()),
        ]
    }
}

/// Final counts of removed faults, by series: keeps the summed counters monotonic.
#[derive(Debug, Default)]
pub struct Retired {
    series: BTreeMap<SeriesKey, CountersView>,
}

impl Retired {
    /// Adds the last counts of a removed fault.
    pub fn add(&mut self, spec: &FaultSpec, counters: &CountersView) {
        let key = SeriesKey::of(spec).within_cap(&self.series);
        add(self.series.entry(key).or_default(), counters);
    }

    /// How many series are held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// A copy for a scrape.
    pub fn snapshot(&self) -> BTreeMap<SeriesKey, CountersView> {
        self.series.clone()
    }
}

fn add(to: &mut CountersView, c: &CountersView) {
    to.matched += c.matched;
    to.matched_bytes += c.matched_bytes;
    to.affected += c.affected;
}

/// What one scrape reads from the fault table.
pub struct Scrape {
    /// Installed faults with live counters.
    pub faults: Vec<Fault>,
    /// Final counts of removed ones.
    pub retired: BTreeMap<SeriesKey, CountersView>,
}

/// Metrics that live across scrapes.
#[derive(Default)]
pub struct Metrics {
    api_requests: Mutex<BTreeMap<(String, u16), u64>>,
    per_fault: bool,
}

impl Metrics {
    /// Metrics with per-fault series (`metrics_per_fault`) or summed ones.
    pub fn new(per_fault: bool) -> Metrics {
        Metrics {
            api_requests: Mutex::default(),
            per_fault,
        }
    }

    /// Counts one API request answered with `status`.
    pub fn count_request(&self, method: &str, status: u16) {
        let mut m = self
            .api_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *m.entry((method.to_string(), status)).or_default() += 1;
    }

    /// The exposition of `scrape` in `format`.
    pub fn render(&self, scrape: &Scrape, format: Format) -> String {
        encode(&mut self.families(scrape), format)
    }

    /// Every family of a scrape.
    pub fn families(&self, scrape: &Scrape) -> Vec<Family> {
        let mut out = Vec::new();
        let mut requests = Family::new(
            "chaos_api_requests",
            Kind::Counter,
            "API requests by method and status",
        );
        for ((method, status), n) in self
            .api_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            requests.push(
                vec![("method", method.clone()), ("status", status.to_string())],
                *n as f64,
            );
        }
        out.push(requests);
        let mut build = Family::new("chaos_build", Kind::Info, "The daemon's version");
        build.push(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            1.0,
        );
        out.push(build);
        let mut active = Family::new(
            "chaos_faults_active",
            Kind::Gauge,
            "Faults currently installed",
        );
        active.push(vec![], scrape.faults.len() as f64);
        out.push(active);
        if let Some(d) = crate::loader::deadman::status() {
            if let Some(age) = d.heartbeat_age {
                let mut f = Family::new(
                    "chaos_deadman_heartbeat_age_seconds",
                    Kind::Gauge,
                    "Age of the daemon heartbeat the kernel sees; rules are ignored past the interval",
                );
                f.push(vec![], age.as_secs_f64());
                out.push(f);
            }
            let mut f = Family::new(
                "chaos_deadman_interval_seconds",
                Kind::Gauge,
                "The dead-man interval",
            );
            f.push(vec![], d.interval.as_secs_f64());
            out.push(f);
            let mut f = Family::new(
                "chaos_deadman_trips",
                Kind::Counter,
                "Times the dead-man switch tripped (the daemon was stopped or starved)",
            );
            f.push(vec![], d.trips as f64);
            out.push(f);
        }
        out.extend(self.fault_families(scrape));
        out
    }

    fn fault_families(&self, scrape: &Scrape) -> [Family; 3] {
        let mut matched = Family::new(
            "chaos_fault_matched_packets",
            Kind::Counter,
            "Packets that matched a fault",
        );
        let mut bytes = Family::new(
            "chaos_fault_matched_bytes",
            Kind::Counter,
            "Bytes of packets that matched a fault",
        );
        let mut affected = Family::new(
            "chaos_fault_affected_packets",
            Kind::Counter,
            "Packets a fault acted on (dropped, delayed or answered)",
        );
        let mut push = |labels: Vec<(&'static str, String)>, c: &CountersView| {
            matched.push(labels.clone(), c.matched as f64);
            bytes.push(labels.clone(), c.matched_bytes as f64);
            affected.push(labels, c.affected as f64);
        };
        if self.per_fault {
            for f in &scrape.faults {
                let mut labels = SeriesKey::of(&f.spec).labels();
                labels.insert(0, ("id", f.id.clone()));
                push(labels, &f.counters);
            }
        } else {
            let mut sums = scrape.retired.clone();
            for f in &scrape.faults {
                let key = SeriesKey::of(&f.spec).within_cap(&sums);
                add(sums.entry(key).or_default(), &f.counters);
            }
            for (key, c) in &sums {
                push(key.labels(), c);
            }
        }
        [matched, bytes, affected]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(id: &str, name: &str, counters: u64) -> Fault {
        let spec: FaultSpec = serde_json::from_value(serde_json::json!({
            "name": name, "interface": "eth0", "match": {"cidr": "10.0.0.1"},
            "action": {"kind": "blackhole"}, "ttl": "1m"
        }))
        .unwrap();
        Fault {
            id: id.into(),
            spec,
            created_at: String::new(),
            expires_at: String::new(),
            remaining_ms: 0,
            counters: CountersView {
                matched: counters,
                matched_bytes: counters * 100,
                affected: counters,
            },
            effective_percent: 100.0,
            created_by: None,
        }
    }

    fn affected_series(m: &Metrics, scrape: &Scrape) -> Vec<String> {
        m.render(scrape, Format::Classic)
            .lines()
            .filter(|l| l.starts_with("chaos_fault_affected_packets_total"))
            .map(String::from)
            .collect()
    }

    #[test]
    fn faults_sum_by_name_and_removed_ones_still_count() {
        let m = Metrics::new(false);
        let mut retired = Retired::default();
        let gone = fault("c", "redis", 5);
        retired.add(&gone.spec, &gone.counters);
        let scrape = Scrape {
            faults: vec![
                fault("a", "redis", 1),
                fault("b", "redis", 2),
                fault("d", "web", 4),
            ],
            retired: retired.snapshot(),
        };
        assert_eq!(
            affected_series(&m, &scrape),
            [
                "chaos_fault_affected_packets_total{direction=\"egress\",interface=\"eth0\",kind=\"blackhole\",name=\"redis\"} 8",
                "chaos_fault_affected_packets_total{direction=\"egress\",interface=\"eth0\",kind=\"blackhole\",name=\"web\"} 4",
            ]
        );
        let per_fault = affected_series(&Metrics::new(true), &scrape);
        assert_eq!(per_fault.len(), 3, "{per_fault:?}");
        assert!(per_fault[0].starts_with("chaos_fault_affected_packets_total{id=\"a\","));
    }

    #[test]
    fn series_past_the_cap_are_summed_as_other() {
        let mut retired = Retired::default();
        for i in 0..MAX_AGGREGATE_SERIES + 5 {
            let f = fault("x", &format!("n{i}"), 1);
            retired.add(&f.spec, &f.counters);
        }
        assert_eq!(retired.len(), MAX_AGGREGATE_SERIES + 1);
        let scrape = Scrape {
            faults: vec![fault("y", "fresh", 3)],
            retired: retired.snapshot(),
        };
        let series = affected_series(&Metrics::new(false), &scrape);
        assert_eq!(series.len(), MAX_AGGREGATE_SERIES + 1);
        assert!(
            series.iter().any(|s| s.contains("name=\"_other\"} 8")),
            "5 retired past the cap and the live one"
        );
    }
}
