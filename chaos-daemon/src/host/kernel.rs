//! Kernel release and the features the fault kinds depend on.

use std::path::Path;

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
    fn kernel_facts() {
        assert!(!kernel_release().is_empty());
        assert!(super::super::iface_exists("lo").unwrap());
        assert!(!super::super::iface_exists("no-such-if0").unwrap());
    }
}
