//! Packet parsing: Ethernet (up to 2 VLAN tags) → IPv4/IPv6 (up to 4 extension headers, then a
//! fragment header) → TCP/UDP ports, with bounds checks the verifier accepts.
//! Non-IP and truncated headers yield `Err` and pass untouched. Fragments are classified by
//! their addresses, which every fragment carries; only the first fragment has the transport
//! header, so later ones have no port (port rules see the first fragment only, and a datagram
//! whose first fragment is dropped is never reassembled).

use chaos_common::{Direction, IPPROTO_TCP, IPPROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// VLAN tags skipped at most (QinQ).
const MAX_VLAN_TAGS: usize = 2;
const IPV6_HLEN: usize = 40;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_DEST: u8 = 60;
/// IPv6 extension headers skipped at most before giving up on the transport header.
const MAX_EXT_HEADERS: usize = 4;

/// Something odd about a packet, reported through aya-log (off unless the daemon runs with
/// `--bpf-log`); the packet is still handled as well as it can be.
#[derive(Clone, Copy)]
pub enum Anomaly {
    /// An IPv4 header with a wrong version or a header length under 20 bytes: passed untouched.
    BadIpv4Header,
    /// More IPv6 extension headers than are followed: only address rules can match.
    LongIpv6Chain,
}

/// Why a packet was not classified: `None` for what is simply not ours (non-IP, truncated).
pub type Skip = Option<Anomaly>;

/// The remote endpoint of a packet, as the rules see it.
pub struct Packet {
    /// Address family.
    pub ipv6: bool,
    /// Remote address (destination on egress, source on ingress); IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    /// IP protocol number.
    pub proto: u8,
    /// Remote port (destination on egress, source on ingress); 0 when the protocol has none or
    /// the packet is a later fragment.
    pub port: u16,
    /// Offset of the IP header from the start of the frame.
    pub l3_offset: usize,
    /// Offset of the transport header from the start of the frame; 0 for a later fragment,
    /// which carries none.
    pub l4_offset: usize,
    /// Something odd that did not stop classification.
    pub anomaly: Option<Anomaly>,
}

impl Packet {
    /// An IPv4 packet with nothing known yet but where its IP header starts.
    #[inline(always)]
    pub const fn at(l3_offset: usize) -> Packet {
        Packet {
            ipv6: false,
            addr: [0; 16],
            proto: 0,
            port: 0,
            l3_offset,
            l4_offset: 0,
            anomaly: None,
        }
    }
}

/// Returns a pointer to a `T` at `offset` if it lies entirely inside `[start, end)`.
#[inline(always)]
fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Option<*const T> {
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn read<T: Copy>(start: usize, end: usize, offset: usize) -> Option<T> {
    // SAFETY: ptr_at checked that the bytes are inside the packet; read_unaligned copes with
    // any alignment.
    ptr_at::<T>(start, end, offset).map(|p| unsafe { p.read_unaligned() })
}

#[inline(always)]
fn get<T: Copy>(start: usize, end: usize, offset: usize) -> Result<T, Skip> {
    read(start, end, offset).ok_or(None)
}

/// Parses the packet between `data` and `data_end`; `direction` picks destination (egress) or
/// source (ingress).
#[inline(always)]
pub fn parse(data: usize, data_end: usize, direction: Direction) -> Result<Packet, Skip> {
    let ingress = direction == Direction::Ingress;
    let mut ethertype = u16::from_be(get::<u16>(data, data_end, 12)?);
    let mut l3 = ETH_HLEN;
    // 802.1Q / 802.1ad tags (XDP sees them when the NIC does not strip them).
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: [u8; 4] = get(data, data_end, l3)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        l3 += 4;
    }
    let mut pkt = Packet::at(l3);
    let l4: usize;
    // False for a fragment other than the first: it has no transport header.
    let has_l4: bool;
    if ethertype == ETH_P_IP {
        // The fixed header in one read: one bounds check, however the compiler orders things.
        let h: [u8; 20] = get(data, data_end, l3)?;
        let ihl = ((h[0] & 0x0f) as usize) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return Err(Some(Anomaly::BadIpv4Header));
        }
        // A non-zero fragment offset: the transport header is in the first fragment.
        has_l4 = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
        pkt.proto = h[9];
        let a = if ingress { 12 } else { 16 };
        pkt.addr[..4].copy_from_slice(&h[a..a + 4]);
        // The header must be complete even if options are present.
        get::<u8>(data, data_end, l3 + ihl - 1)?;
        l4 = l3 + ihl;
    } else if ethertype == ETH_P_IPV6 {
        pkt.ipv6 = true;
        let h: [u8; IPV6_HLEN] = get(data, data_end, l3)?;
        let a = if ingress { 8 } else { 24 };
        pkt.addr.copy_from_slice(&h[a..a + 16]);
        let mut next = h[6];
        let mut off = l3 + IPV6_HLEN;
        // Skip a bounded chain of extension headers to reach the transport header. A longer
        // chain leaves `proto` at an extension header: address-only rules still match.
        for _ in 0..MAX_EXT_HEADERS {
            if !matches!(
                next,
                NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_AUTH
            ) {
                break;
            }
            // Next header and length in one read: one bounds check the verifier can follow.
            let [following, len]: [u8; 2] = get(data, data_end, off)?;
            off += if next == NEXTHDR_AUTH {
                (len as usize + 2) * 4
            } else {
                (len as usize + 1) * 8
            };
            next = following;
        }
        if matches!(
            next,
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_AUTH
        ) {
            pkt.anomaly = Some(Anomaly::LongIpv6Chain);
        }
        if next == NEXTHDR_FRAGMENT {
            // Next header, reserved, then offset (13 bits) and flags.
            let f: [u8; 4] = get(data, data_end, off)?;
            next = f[0];
            has_l4 = u16::from_be_bytes([f[2], f[3]]) >> 3 == 0;
            off += 8;
        } else {
            has_l4 = true;
        }
        pkt.proto = next;
        l4 = off;
    } else {
        return Err(None);
    }
    if !has_l4 {
        return Ok(pkt);
    }
    pkt.l4_offset = l4;
    if pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP {
        // Both ports must be there: a header cut inside the ports is "too short to parse".
        let ports: [u8; 4] = get(data, data_end, l4)?;
        let at = if ingress { 0 } else { 2 };
        pkt.port = u16::from_be_bytes([ports[at], ports[at + 1]]);
    }
    Ok(pkt)
}
