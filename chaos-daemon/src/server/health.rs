//! `GET /v1/health`: answers from the table's summary, never waiting for a change in progress.

use std::sync::Arc;

use axum::{Json, extract::State};

use super::AppState;
use crate::{
    host,
    loader::deadman,
    spec::{DeadmanHealth, Features, Health, Limits},
};

/// `GET /v1/health`.
pub async fn get(State(state): State<Arc<AppState>>) -> Json<Health> {
    let summary = state.table.summary();
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: host::kernel_release(),
        interfaces: summary.interfaces,
        default_interface: host::default_iface(),
        uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        features: Features {
            fq: host::has_fq(),
            tcx: host::has_tcx(),
        },
        faults: summary.faults,
        limits: Limits {
            max_ttl: state.config.max_ttl,
            max_rules: state.config.max_rules,
        },
        deadman: deadman::status().map(|d| DeadmanHealth {
            interval_ms: d.interval.as_millis() as u64,
            heartbeat_age_ms: d.heartbeat_age.map(|a| a.as_millis() as u64),
            tripped: d.tripped,
            trips: d.trips,
        }),
    })
}
