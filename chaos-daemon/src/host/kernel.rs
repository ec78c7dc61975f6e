//! Kernel release and the features the fault kinds depend on.

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

/// Whether this kernel can run `sch_fq` (needed for latency), measured once by installing it
/// in a private network namespace: a module that loads on demand is in neither
/// `/sys/module` nor `modules.builtin` until then.
pub fn has_fq() -> bool {
    static FQ: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FQ.get_or_init(crate::loader::qdisc::fq_available)
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
