//! Errors of the loader library. Each message says what went wrong and what to do.

use std::io;

/// Everything the loader can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface does not exist in the caller's network namespace.
    #[error("interface {0} not found in this network namespace (check `ip link`)")]
    InterfaceNotFound(String),
    /// The process lacks the capabilities to load or attach BPF programs.
    #[error(
        "permission denied while {0}: needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root)"
    )]
    PermissionDenied(&'static str),
    /// The embedded object could not be loaded (verifier rejection, missing kernel feature…).
    #[error("loading the eBPF programs failed: {0}")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Attaching a program to the interface failed.
    #[error("attaching {program} to {iface} failed: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface name.
        iface: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map update failed.
    #[error("updating BPF map {map} failed: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Underlying error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Rule `index` of a batch has the same direction, network, protocol and port as an
    /// installed rule (`existing`) or as an earlier rule of the same batch (`None`).
    #[error("rule {index} has the same match as {}", if existing.is_some() { "an installed rule" } else { "an earlier rule of the batch" })]
    Conflict {
        /// Position in the batch.
        index: usize,
        /// The installed rule it collides with.
        existing: Option<super::RuleId>,
    },
    /// No free rule slot.
    #[error("rule table full: {0} rules installed on this interface")]
    Full(u32),
    /// The rule is invalid for the data plane (port on ICMP, …).
    #[error("invalid rule: {0}")]
    Invalid(String),
    /// The root qdisc latency needs could not be put in place.
    #[error("{0}")]
    Qdisc(String),
    /// Unknown rule id.
    #[error("no rule with id {0}")]
    NoSuchRule(u32),
}

impl Error {
    /// Classifies a load/attach error: EPERM becomes [`Error::PermissionDenied`].
    pub(crate) fn from_bpf(
        what: &'static str,
        err: impl std::error::Error + Send + Sync + 'static,
        other: impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error,
    ) -> Error {
        if is_permission_error(&err) {
            Error::PermissionDenied(what)
        } else {
            other(Box::new(err))
        }
    }
}

/// True if any error in the chain is an EPERM I/O error (missing capabilities). The verifier
/// rejects programs with EACCES/EINVAL, which is not a permission problem.
fn is_permission_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.raw_os_error() == Some(libc::EPERM)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eperm_means_missing_privileges() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(
            Error::from_bpf("loading", eperm, Error::Load),
            Error::PermissionDenied("loading")
        ));
        // The verifier rejects a program with EACCES: that is a load error, not privileges.
        assert!(matches!(
            Error::from_bpf("loading", eacces, Error::Load),
            Error::Load(_)
        ));
    }
}
