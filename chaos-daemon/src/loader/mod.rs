//! The loader: everything between a typed [`Rule`] and the kernel. It knows nothing of HTTP,
//! JSON or fault ids.
//!
//! * [`rule`] — what to match, what to do, until when.
//! * [`compile`] — pure translation of a rule into map entries (key, slot, prefilter bits).
//! * [`maps`] — typed writers over the programs' maps.
//! * [`attach`] — loading the embedded object and attaching TCX/XDP links (never pinned).
//! * [`qdisc`] — the root `fq` latency needs, over netlink.
//! * [`distribution`] — the jitter distributions' inverse-CDF tables.
//! * [`injector`] — [`Injector`]: one interface, atomic add/remove, counters, detach on drop.
//! * [`testrun`] — BPF_PROG_TEST_RUN for program tests and benchmarks.
//! * [`bpf_log`] — the programs' anomaly reports (aya-log), off by default.

pub mod attach;
mod batch;
pub mod bpf_log;
pub mod compile;
pub mod deadman;
pub mod distribution;
pub mod error;
pub mod injector;
pub mod maps;
pub mod qdisc;
pub mod rule;
pub mod testrun;

pub use distribution::Distribution;
pub use error::Error;
pub use injector::{Injector, InterfaceState, RuleId};
pub use rule::{Action, Direction, DnsMatch, DnsResponse, IpMatch, Match, Protocol, Rule, Scope};
