//! Builds the eBPF programs (`chaos-ebpf`) with the nightly toolchain via aya-build and leaves
//! the object at `$OUT_DIR/chaos-ebpf`, which the library embeds.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (fast `cargo clippy`); an empty object is written so the
//! crate still compiles, and loading it fails at run time with a clear error.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v != "0" && !v.is_empty()) {
        fs::write(out_dir.join("chaos-ebpf"), [])?;
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("chaos-daemon has no parent directory"))?
        .join("chaos-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", root.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "chaos-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
