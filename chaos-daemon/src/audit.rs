//! The audit trail: one line (target `audit`) per change to the fault table, naming the fault
//! and who made the change. Every change goes through [`record`].

use std::fmt;

use crate::spec::FaultSpec;

/// Who asked for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The daemon itself (expiry, shutdown, a vanished interface).
    Daemon,
    /// An API client, as SO_PEERCRED saw it.
    Client {
        /// User id.
        uid: Option<u32>,
        /// Process id.
        pid: Option<i32>,
    },
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Daemon => f.write_str("daemon"),
            Caller::Client { uid, pid } => {
                f.write_str("uid=")?;
                match uid {
                    Some(u) => write!(f, "{u}")?,
                    None => f.write_str("?")?,
                }
                f.write_str(" pid=")?;
                match pid {
                    Some(p) => write!(f, "{p}"),
                    None => f.write_str("?"),
                }
            }
        }
    }
}

/// What happened to a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Installed by a client.
    Create,
    /// Removed by id.
    Delete,
    /// Removed by the panic button.
    DeleteAll,
    /// Its TTL ended.
    Expire,
    /// Removed because the daemon stops.
    Shutdown,
    /// Removed because its interface disappeared.
    InterfaceGone,
    /// Removed because the cgroup it was scoped to disappeared.
    CgroupGone,
    /// Removed because the cgroup it was scoped to held processes and then none.
    CgroupEmptied,
    /// Its interface was re-created under the same name; the programs were attached again.
    InterfaceReplaced,
    /// The dead-man switch tripped: the kernel had lifted it; the daemon ended it.
    Deadman,
}

impl Event {
    /// The `action` field of the audit line.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Delete => "delete",
            Event::DeleteAll => "delete_all",
            Event::Expire => "expire",
            Event::Shutdown => "shutdown",
            Event::InterfaceGone => "interface_gone",
            Event::CgroupGone => "cgroup_gone",
            Event::CgroupEmptied => "cgroup_emptied",
            Event::InterfaceReplaced => "interface_replaced",
            Event::Deadman => "deadman",
        }
    }
}

/// Writes the audit line for `event` on fault `id`.
pub fn record(event: Event, id: &str, spec: &FaultSpec, caller: Caller) {
    tracing::info!(
        target: "audit",
        action = event.as_str(),
        id,
        fault = %spec.summary(),
        caller = %caller,
        "fault {}",
        event.as_str()
    );
}
