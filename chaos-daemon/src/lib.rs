//! `chaos-daemon` library: everything between a fault description and the BPF maps.
//!
//! * [`rule`] — the typed rule the loader installs (what to match, what to do, until when).
//! * [`compile`] — pure translation of a rule into map entries (trie key, slot, prefilter bits).
//! * [`maps`] — typed writers over the programs' maps.
//! * [`attach`] — loading the embedded object and attaching TCX/XDP links (never pinned).
//! * [`injector`] — [`Injector`]: one interface, atomic add/remove, counters, detach on drop.
//! * [`testrun`] — BPF_PROG_TEST_RUN helpers for program tests and benchmarks.
//! * [`clock`] — CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` reads.
//!
//! The daemon on top: [`spec`] (API JSON) → [`validate`] (→ rule or error naming the field) →
//! [`faults`] (fault table, per-interface injectors, deadlines) ← [`api`] (axum over a Unix socket,
//! expiry task); [`config`], [`host`] (/proc facts), [`metrics`] (Prometheus).

#![warn(missing_docs)]

pub mod api;
pub mod attach;
pub mod cli;
pub mod client;
pub mod clock;
pub mod compile;
pub mod config;
pub mod error;
pub mod faults;
pub mod host;
pub mod injector;
pub mod maps;
pub mod metrics;
pub mod rule;
pub mod spec;
pub mod testrun;
pub mod validate;

pub use error::Error;
pub use injector::{Injector, RuleId};
pub use rule::{Action, Direction, Protocol, Rule};

/// The compiled eBPF object (`chaos-ebpf`), embedded at build time.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chaos-ebpf"));
