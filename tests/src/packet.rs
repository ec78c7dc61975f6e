//! Crafted Ethernet frames for BPF_PROG_TEST_RUN. Checksums are left at zero: the programs do not
//! verify them.

use std::net::IpAddr;

/// Transport of a crafted packet.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    /// TCP with (source port, destination port).
    Tcp(u16, u16),
    /// UDP with (source port, destination port).
    Udp(u16, u16),
    /// ICMP / ICMPv6 echo request.
    Icmp,
}

/// Builds an Ethernet frame from `src` to `dst` (same family) carrying `l4` and `payload` bytes.
pub fn frame(src: IpAddr, dst: IpAddr, l4: L4, payload: usize) -> Vec<u8> {
    let mut l4_bytes = match l4 {
        L4::Tcp(s, d) => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&s.to_be_bytes());
            h[2..4].copy_from_slice(&d.to_be_bytes());
            h[12] = 5 << 4; // data offset
            h[13] = 0x02; // SYN
            h
        }
        L4::Udp(s, d) => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&s.to_be_bytes());
            h[2..4].copy_from_slice(&d.to_be_bytes());
            h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
            h
        }
        L4::Icmp => {
            let v6 = dst.is_ipv6();
            vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1]
        }
    };
    l4_bytes.resize(l4_bytes.len() + payload, 0xab);
    let proto = match (l4, dst) {
        (L4::Tcp(..), _) => 6,
        (L4::Udp(..), _) => 17,
        (L4::Icmp, IpAddr::V4(_)) => 1,
        (L4::Icmp, IpAddr::V6(_)) => 58,
    };
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = (20 + l4_bytes.len()) as u16;
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]); // id, DF, ttl, proto, csum
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86DDu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4_bytes.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("source and destination must be the same family"),
    }
    f.extend_from_slice(&l4_bytes);
    f
}

/// Turns an IPv4 frame built by [`frame`] into a fragment: `offset` in 8-byte units (0 = the
/// first fragment, which still carries the transport header), `more` = more fragments follow.
/// A later fragment's payload is not a transport header, as on the wire.
pub fn v4_fragment(mut f: Vec<u8>, offset: u16, more: bool) -> Vec<u8> {
    let field = offset | if more { 0x2000 } else { 0 };
    f[14 + 6..14 + 8].copy_from_slice(&field.to_be_bytes());
    if offset != 0 {
        f[14 + 20..].fill(0xab);
    }
    f
}

/// Inserts an IPv6 Fragment header (44) right after the IPv6 header of a frame built by
/// [`frame`]; `offset` and `more` as for [`v4_fragment`].
pub fn v6_fragment(f: Vec<u8>, offset: u16, more: bool) -> Vec<u8> {
    let next = f[14 + 6];
    let field = (offset << 3) | u16::from(more);
    let mut ext = vec![next, 0];
    ext.extend_from_slice(&field.to_be_bytes());
    ext.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    let mut out = f[..14 + 40].to_vec();
    out[14 + 6] = 44;
    let payload = u16::from_be_bytes([out[14 + 4], out[14 + 5]]) + 8;
    out[14 + 4..14 + 6].copy_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&ext);
    let mut rest = f[14 + 40..].to_vec();
    if offset != 0 {
        rest.fill(0xab);
    }
    out.extend_from_slice(&rest);
    out
}

/// Inserts an IPv6 extension header of type `kind` (Hop-by-Hop 0, Routing 43, Destination
/// Options 60: 8 bytes; Authentication 51: 12 bytes) right after the IPv6 header of a frame
/// built by [`frame`].
pub fn with_v6_ext_header(f: Vec<u8>, kind: u8) -> Vec<u8> {
    let next = f[14 + 6];
    let ext: Vec<u8> = if kind == 51 {
        // AH: length in 4-byte units minus 2 → 12 bytes.
        vec![next, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    } else {
        // Length in 8-byte units minus 1 → 8 bytes, PadN options.
        vec![next, 0, 1, 4, 0, 0, 0, 0]
    };
    let mut out = f[..14 + 40].to_vec();
    out[14 + 6] = kind;
    let payload = u16::from_be_bytes([out[14 + 4], out[14 + 5]]) + ext.len() as u16;
    out[14 + 4..14 + 6].copy_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&ext);
    out.extend_from_slice(&f[14 + 40..]);
    out
}

/// Inserts an 802.1Q (`0x8100`) or 802.1ad (`0x88a8`) tag with VLAN id 42 after the MAC
/// addresses of a frame built by [`frame`].
pub fn with_vlan_tag(f: Vec<u8>, tpid: u16) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&42u16.to_be_bytes());
    out.extend_from_slice(&f[12..]);
    out
}

/// Builds a frame like [`frame`] carrying `payload` (TCP: after a 20-byte header with ACK|PSH,
/// UDP: after the 8-byte header) with correct IPv4 header and transport checksums.
pub fn datagram(src: IpAddr, dst: IpAddr, l4: L4, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(src, dst, l4, payload.len());
    let start = f.len() - payload.len();
    f[start..].copy_from_slice(payload);
    if let L4::Tcp(..) = l4 {
        f[start - 20 + 13] = 0x18; // ACK | PSH: a segment with data
    }
    set_checksums(&mut f);
    f
}

/// Offsets of the IP header, the transport header and the transport checksum in a frame built
/// by [`frame`], and whether it is IPv6.
fn layout(f: &[u8]) -> (usize, usize, usize, bool) {
    let v6 = f[12..14] == [0x86, 0xdd];
    let l4 = if v6 { 14 + 40 } else { 14 + 20 };
    let proto = if v6 { f[14 + 6] } else { f[14 + 9] };
    let csum = match proto {
        6 => l4 + 16,
        17 => l4 + 6,
        _ => l4 + 2,
    };
    (14, l4, csum, v6)
}

fn ones_complement_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The transport checksum's pseudo-header for a frame built by [`frame`].
fn pseudo_header(f: &[u8], l3: usize, l4: usize, v6: bool) -> Vec<u8> {
    let len = (f.len() - l4) as u32;
    let mut p = Vec::new();
    if v6 {
        p.extend_from_slice(&f[l3 + 8..l3 + 40]);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, f[l3 + 6]]);
    } else {
        p.extend_from_slice(&f[l3 + 12..l3 + 20]);
        p.extend_from_slice(&[0, f[l3 + 9]]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    }
    p
}

/// Fills in the IPv4 header checksum and the TCP/UDP checksum.
pub fn set_checksums(f: &mut [u8]) {
    let (l3, l4, csum, v6) = layout(f);
    if !v6 {
        f[l3 + 10..l3 + 12].fill(0);
        let sum = !ones_complement_sum(&[&f[l3..l3 + 20]]);
        f[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
    }
    f[csum..csum + 2].fill(0);
    let pseudo = pseudo_header(f, l3, l4, v6);
    let mut sum = !ones_complement_sum(&[&pseudo, &f[l4..]]);
    if sum == 0 && f[csum - 6..csum - 4] != [0, 0] {
        sum = 0xffff; // UDP: 0 means "no checksum"
    }
    f[csum..csum + 2].copy_from_slice(&sum.to_be_bytes());
}

/// Whether the IPv4 header checksum and the TCP/UDP checksum of a frame hold (an IPv4 UDP
/// checksum of 0, "none", counts as holding).
pub fn checksums_valid(f: &[u8]) -> bool {
    let (l3, l4, csum, v6) = layout(f);
    if !v6 && ones_complement_sum(&[&f[l3..l3 + 20]]) != 0xffff {
        return false;
    }
    if !v6 && f[l3 + 9] == 17 && f[csum..csum + 2] == [0, 0] {
        return true;
    }
    let pseudo = pseudo_header(f, l3, l4, v6);
    ones_complement_sum(&[&pseudo, &f[l4..]]) == 0xffff
}
