//! Interfaces and routes of the daemon's network namespace.

/// Whether `iface` exists in this network namespace. Only "no such device" is a no: a lookup
/// that fails otherwise (EMFILE: it needs a socket) cannot tell.
pub fn iface_exists(iface: &str) -> Result<bool, nix::Error> {
    match nix::net::if_::if_nametoindex(iface) {
        Ok(_) => Ok(true),
        Err(nix::Error::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
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
