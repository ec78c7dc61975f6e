//! Established TCP sessions, from NETLINK_SOCK_DIAG (the SSH-peer guard reads them).

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

/// Remote addresses of established TCP connections whose local port is `port` (SSH: 22), from
/// a NETLINK_SOCK_DIAG dump (reading /proc/net/tcp costs milliseconds per read on large hosts).
/// Fails if either family's dump fails: a partial list would let a fault cut a session it
/// does not show.
pub fn tcp_peers_of_local_port(port: u16) -> std::io::Result<Vec<IpAddr>> {
    let mut peers = Vec::new();
    for family in [AF_INET, AF_INET6] {
        dump_established(family, port, &mut peers)?;
    }
    peers.sort();
    peers.dedup();
    Ok(peers)
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
        assert!(
            tcp_peers_of_local_port(port)
                .unwrap()
                .contains(&"127.0.0.1".parse().unwrap())
        );
        drop(client);
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(
            tcp_peers_of_local_port(unused.local_addr().unwrap().port())
                .unwrap()
                .is_empty()
        );
    }
}
