//! What the fault table can refuse. The server maps each to an HTTP status; nothing here knows
//! about HTTP.

use crate::loader;

/// Why a change to the fault table did not happen. A failed change leaves the table and the
/// kernel maps exactly as they were.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// No fault with this id.
    #[error("no fault with id {0}")]
    NotFound(String),
    /// Same match as an installed fault (`existing` names it) or as another fault of the batch.
    #[error("{what}: a fault with the same match is already installed{}", existing.as_ref().map(|e| format!(" (id {e})")).unwrap_or_else(|| " earlier in this batch".into()))]
    Conflict {
        /// Position of the fault in the request (0 for a single fault).
        index: usize,
        /// Position in the fault's `match.cidrs` of the network that collided.
        entry: Option<usize>,
        /// Summary of the refused fault.
        what: String,
        /// Id of the installed fault it collides with.
        existing: Option<String>,
        /// The refused fault (for the audit line).
        spec: Box<crate::spec::FaultSpec>,
    },
    /// `max_rules` would be exceeded.
    #[error("rule limit reached: {installed} installed + {requested} requested > max_rules {max}")]
    LimitReached {
        /// Installed faults.
        installed: usize,
        /// Faults in the request.
        requested: usize,
        /// The configured limit.
        max: u32,
    },
    /// The interface does not exist (any more).
    #[error("interface {0} not found in this network namespace")]
    InterfaceNotFound(String),
    /// The daemon is stopping: nothing new is installed.
    #[error("chaos-daemon is shutting down; no new faults are accepted")]
    ShuttingDown,
    /// The dead-man switch tripped and the daemon is ending the faults the kernel lifted.
    #[error(
        "the dead-man switch tripped (the daemon was stopped or starved for longer than its deadman interval); its faults are being ended: retry in a moment"
    )]
    DeadmanTripped,
    /// A bug: the change panicked (and was undone).
    #[error("internal error: {0}")]
    Internal(String),
    /// The loader failed (map update, attach, invalid rule).
    #[error(transparent)]
    Loader(#[from] loader::Error),
}
