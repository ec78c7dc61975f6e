//! Helpers for the end-to-end tests: crafted packets ([`packet`]) and network namespaces joined
//! by veth pairs that clean themselves up ([`netns`]), cgroups likewise ([`cgroup`]).

#![warn(missing_docs)]

pub mod bench;
pub mod cgroup;
pub mod daemon;
pub mod dns;
pub mod fidelity;
pub mod netns;
pub mod packet;
pub mod peers;
pub mod services;
pub mod traffic;
