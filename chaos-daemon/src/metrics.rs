//! Prometheus metrics (`GET /metrics`): API requests by status (kept), plus faults active and
//! per-fault counters read from the maps at scrape time.

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};

use crate::spec::Fault;

type Labels = Vec<(String, String)>;

/// Metrics that live across scrapes.
#[derive(Default)]
pub struct Metrics {
    api_requests: Family<Labels, Counter>,
}

impl Metrics {
    /// Counts one API request answered with `status`.
    pub fn count_request(&self, method: &str, status: u16) {
        self.api_requests
            .get_or_create(&vec![
                ("method".into(), method.to_string()),
                ("status".into(), status.to_string()),
            ])
            .inc();
    }

    /// Renders the text exposition for the current `faults`.
    pub fn render(&self, faults: &[Fault]) -> String {
        let mut reg = Registry::default();
        reg.register(
            "chaos_api_requests",
            "API requests by method and status",
            self.api_requests.clone(),
        );
        let active = Gauge::<i64>::default();
        active.set(faults.len() as i64);
        reg.register("chaos_faults_active", "Faults currently installed", active);
        if let Some(d) = crate::loader::deadman::status() {
            if let Some(age) = d.heartbeat_age {
                reg.register(
                    "chaos_deadman_heartbeat_age_seconds",
                    "Age of the daemon heartbeat the kernel sees; rules are ignored past the interval",
                    ConstGauge::new(age.as_secs_f64()),
                );
            }
            reg.register(
                "chaos_deadman_interval_seconds",
                "The dead-man interval",
                ConstGauge::new(d.interval.as_secs_f64()),
            );
            reg.register(
                "chaos_deadman_trips",
                "Times the dead-man switch tripped (the daemon was stopped or starved)",
                ConstCounter::new(d.trips),
            );
        }
        let matched = Family::<Labels, Counter>::default();
        let matched_bytes = Family::<Labels, Counter>::default();
        let affected = Family::<Labels, Counter>::default();
        for f in faults {
            let labels = vec![
                ("id".to_string(), f.id.clone()),
                ("name".to_string(), f.spec.name.clone().unwrap_or_default()),
                ("kind".to_string(), f.spec.action.kind().to_string()),
                (
                    "interface".to_string(),
                    f.spec.interface.clone().unwrap_or_default(),
                ),
            ];
            matched.get_or_create(&labels).inc_by(f.counters.matched);
            matched_bytes
                .get_or_create(&labels)
                .inc_by(f.counters.matched_bytes);
            affected.get_or_create(&labels).inc_by(f.counters.affected);
        }
        reg.register(
            "chaos_fault_matched_packets",
            "Packets that matched a fault",
            matched,
        );
        reg.register(
            "chaos_fault_matched_bytes",
            "Bytes of packets that matched a fault",
            matched_bytes,
        );
        reg.register(
            "chaos_fault_affected_packets",
            "Packets a fault acted on (dropped)",
            affected,
        );
        let mut out = String::new();
        encode(&mut out, &reg).expect("writing to a String cannot fail");
        out
    }
}
