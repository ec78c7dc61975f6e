//! Facts about the host read from /proc and /sys: default-route interface, SSH session peers,
//! kernel release and features. All in the daemon's own network namespace.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

/// Whether `iface` exists in this network namespace.
pub fn iface_exists(iface: &str) -> bool {
    nix::net::if_::if_nametoindex(iface).is_ok()
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

/// Remote addresses of established TCP connections whose local port is `port` (SSH: 22).
pub fn tcp_peers_of_local_port(port: u16) -> Vec<IpAddr> {
    let mut peers = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        peers.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| parse_tcp_line(l, v6, port)),
        );
    }
    peers.sort();
    peers.dedup();
    peers
}

/// One line of /proc/net/tcp{,6}: the peer if established (st 01) and the local port matches.
fn parse_tcp_line(line: &str, v6: bool, port: u16) -> Option<IpAddr> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
    if *state != "01" {
        return None;
    }
    let local_port = u16::from_str_radix(local.split(':').nth(1)?, 16).ok()?;
    if local_port != port {
        return None;
    }
    let addr = remote.split(':').next()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    // The kernel prints each 32-bit word of the address as a host-order (little-endian) integer.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ip = if v6 {
        let mut b = [0u8; 16];
        b.copy_from_slice(bytes.get(..16)?);
        let v6 = Ipv6Addr::from(b);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    } else {
        let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        IpAddr::V4(Ipv4Addr::from(b))
    };
    Some(ip)
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
    fn reads_established_ssh_peers() {
        let v4 = "   0: 0200000A:0016 0300000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 10 0 0 10 -1";
        assert_eq!(
            parse_tcp_line(v4, false, 22),
            Some("10.0.0.3".parse().unwrap())
        );
        let listen = v4.replace(" 01 ", " 0A ");
        assert_eq!(parse_tcp_line(&listen, false, 22), None);
        assert_eq!(parse_tcp_line(v4, false, 23), None);
        // The kernel's formatting: each 4-byte group of the address as a little-endian u32, %08X.
        let hex = |ip: Ipv6Addr| -> String {
            ip.octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_le_bytes(c.try_into().unwrap())))
                .collect()
        };
        let (local, peer): (Ipv6Addr, Ipv6Addr) =
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let v6 = format!("   0: {}:0016 {}:C350 01 0", hex(local), hex(peer));
        assert_eq!(parse_tcp_line(&v6, true, 22), Some(IpAddr::V6(peer)));
        let mapped: Ipv6Addr = "::ffff:10.0.0.3".parse().unwrap();
        let v6 = format!("   0: {}:0016 {}:C350 01 0", hex(local), hex(mapped));
        assert_eq!(
            parse_tcp_line(&v6, true, 22),
            Some("10.0.0.3".parse().unwrap())
        );
    }
}
