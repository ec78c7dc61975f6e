//! Protected paths: traffic a fault must not hit without `force`.

use ipnet::IpNet;

use crate::loader::{Match, Protocol, Rule};

/// A path that faults must not hit without `force`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protected {
    /// Any traffic to/from this network.
    Net {
        /// Protected network.
        net: IpNet,
        /// Why (shown in the 409).
        why: String,
    },
    /// Faults that name this TCP port.
    TcpPort {
        /// Protected port.
        port: u16,
        /// Why.
        why: String,
    },
}

/// The reason if `rule` would drop traffic on a protected path. A rule that covers every
/// address (/0) always counts: it hits whatever path the operator forgot to protect.
pub fn hits_protected(rule: &Rule, protected: &[Protected]) -> Option<String> {
    // A domain rule touches nothing but the DNS queries for its name.
    let Match::Ip(m) = &rule.matches else {
        return None;
    };
    if m.net.prefix_len() == 0 {
        return Some(format!("{} covers every address", m.net));
    }
    protected.iter().find_map(|p| match p {
        Protected::Net { net, why } => overlaps(&m.net, net).then(|| format!("{why}: {net}")),
        Protected::TcpPort { port, why } => (matches!(m.protocol, Protocol::Tcp | Protocol::Any)
            && m.port == Some(*port))
        .then(|| format!("{why}: TCP port {port}")),
    })
}

/// True if the two networks share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(b) || b.contains(a)
        }
        _ => false,
    }
}
