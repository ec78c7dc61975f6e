//! Facts about the host read from /proc and /sys: default-route interface, SSH session peers,
//! kernel release and features. All in the daemon's own network namespace.

use std::{net::IpAddr, path::Path};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

/// Whether `iface` exists in this network namespace.
pub fn iface_exists(iface: &str) -> bool {
    nix::net::if_::if_nametoindex(iface).is_ok()
}

/// Names of all interfaces in this network namespace.
pub fn interfaces() -> Vec<String> {
    nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The interface of the IPv4 (else IPv6) default route.
pub fn default_iface() -> Option<String> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let from_v4 = v4.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    });
    from_v4.or_else(|| {
        let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
        v6.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 10 && f[0].chars().all(|c| c == '0') && f[1] == "00" && f[9] != "lo")
                .then(|| f[9].to_string())
        })
    })
}

/// Remote addresses of established TCP connections whose local port is `port` (SSH: 22), from
/// a NETLINK_SOCK_DIAG dump (reading /proc/net/tcp costs milliseconds per read on large hosts).
/// Errors yield what was collected so far.
pub fn tcp_peers_of_local_port(port: u16) -> Vec<IpAddr> {
    let mut peers = Vec::new();
    for family in [AF_INET, AF_INET6] {
        if let Err(e) = dump_established(family, port, &mut peers) {
            tracing::warn!(error = %e, "cannot list TCP sessions via sock_diag");
        }
    }
    peers.sort();
    peers.dedup();
    peers
}

fn dump_established(family: u8, port: u16, out: &mut Vec<IpAddr>) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::ESTABLISHED,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut rx = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut rx[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&rx[offset..size])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    if id.source_port == port {
                        out.push(match id.destination_address {
                            IpAddr::V6(v6) => {
                                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
                            }
                            v4 => v4,
                        });
                    }
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => return Err(std::io::Error::other(format!("{e:?}"))),
                _ => {}
            }
            if msg.header.length == 0 {
                break;
            }
            offset += msg.header.length as usize;
        }
    }
}

/// Kernel release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether the kernel can do TCX links (≥ 6.6).
pub fn has_tcx() -> bool {
    let rel = kernel_release();
    let mut parts = rel.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 6)
}

/// Whether `sch_fq` is loaded or built in (needed for latency/bandwidth faults).
pub fn has_fq() -> bool {
    if Path::new("/sys/module/sch_fq").exists() {
        return true;
    }
    let builtin = format!("/lib/modules/{}/modules.builtin", kernel_release());
    std::fs::read_to_string(builtin).is_ok_and(|s| s.contains("sch_fq.ko"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_peers_of_established_sessions_on_a_local_port() {
        // Loopback only: a listener on an ephemeral port and one client.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server_side, _) = listener.accept().unwrap();
        assert!(tcp_peers_of_local_port(port).contains(&"127.0.0.1".parse().unwrap()));
        drop(client);
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(tcp_peers_of_local_port(unused.local_addr().unwrap().port()).is_empty());
    }

    #[test]
    fn kernel_facts() {
        assert!(!kernel_release().is_empty());
        assert!(iface_exists("lo"));
        assert!(!iface_exists("no-such-if0"));
    }
}
