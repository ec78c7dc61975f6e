//! Facts about the host, all in the daemon's own network namespace: interfaces and the
//! default route ([`routes`]), established SSH sessions ([`sock_diag`]), kernel release and
//! features ([`kernel`]); cgroup v2 scopes ([`cgroup`]).

pub mod cgroup;
mod kernel;
mod routes;
mod sock_diag;

pub use kernel::{has_fq, has_tcx, kernel_release};
pub use routes::{default_iface, iface_exists, interfaces};
pub use sock_diag::tcp_peers_of_local_port;
