//! `cargo xtask vm`: one command inside a qemu VM booted on a stock Debian kernel, with the
//! host's root as its read-only root (9p), so the workspace's binaries run there as they are.
//!
//! Kernels: Debian's generic 6.1 (bookworm: no TCX, the netlink clsact path) and 6.12 (trixie,
//! through a private apt source list and state directory under `target/vm/apt`, never the
//! system's sources). Everything is cached under `target/vm/`. `/dev/kvm` here cannot boot
//! stock kernels, so qemu runs in TCG; booting the ELF `vmlinux` (PVH) instead of the
//! compressed bzImage saves the ~3 s its decompression takes under TCG.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::run;

const MIRROR: &str = "http://deb.debian.org/debian";
const INIT: &str = include_str!("../vm/init");

/// A kernel the tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Short name: `6.1`, `6.12`.
    pub label: &'static str,
    /// Debian suite its package comes from.
    suite: &'static str,
    /// Where the package keeps its modules, below the extracted root.
    modules_prefix: &'static str,
    /// Modules the initramfs loads to reach the 9p root (dependencies are added).
    boot_modules: &'static [&'static str],
}

/// Debian 12's kernel (no TCX) and Debian 13's (TCX).
pub const KERNELS: [Kernel; 2] = [
    Kernel {
        label: "6.1",
        suite: "bookworm",
        modules_prefix: "",
        boot_modules: &["virtio_pci", "9pnet_virtio", "9p", "overlay"],
    },
    Kernel {
        label: "6.12",
        suite: "trixie",
        modules_prefix: "usr",
        boot_modules: &["9pnet_virtio", "9p", "overlay"],
    },
];

impl Kernel {
    /// The kernel named `label`.
    pub fn named(label: &str) -> Result<Kernel> {
        KERNELS
            .into_iter()
            .find(|k| k.label == label)
            .with_context(|| format!("unknown kernel {label:?}: pick 6.1 or 6.12"))
    }
}

/// A kernel ready to boot.
pub struct Prepared {
    kernel: Kernel,
    image: PathBuf,
    initrd: PathBuf,
}

fn output(cmd: &mut Command) -> Result<String> {
    let desc = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {desc}"))?;
    if !out.status.success() {
        bail!(
            "{desc} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// apt options that point apt at a private source list, lists and cache for `suite`
/// (bookworm uses the system's own, which already hold it).
fn apt_options(vm_dir: &Path, suite: &str) -> Result<Vec<String>> {
    if suite == "bookworm" {
        return Ok(Vec::new());
    }
    let apt = vm_dir.join("apt").join(suite);
    fs::create_dir_all(apt.join("lists/partial"))?;
    fs::create_dir_all(apt.join("cache/archives/partial"))?;
    let list = apt.join("sources.list");
    fs::write(
        &list,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {suite} main\n"
        ),
    )?;
    let opts = vec![
        format!("-oDir::Etc::sourcelist={}", list.display()),
        "-oDir::Etc::sourceparts=-".into(),
        format!("-oDir::State::Lists={}", apt.join("lists").display()),
        format!("-oDir::Cache={}", apt.join("cache").display()),
        "-oDebug::NoLocking=1".into(),
    ];
    if !apt.join("updated").exists() {
        run(Command::new("apt-get").args(&opts).args(["update", "-qq"]))?;
        fs::write(apt.join("updated"), "")?;
    }
    Ok(opts)
}

/// The current image package of `suite`, from its `linux-image-amd64` meta package (old ABI
/// versions vanish from the mirrors, so never pin one).
fn image_package(opts: &[String]) -> Result<String> {
    let deps = output(
        Command::new("apt-cache")
            .args(opts)
            .args(["depends", "linux-image-amd64"]),
    )?;
    deps.lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|v| format!("linux-image-{v}-unsigned"))
        .context("linux-image-amd64 names no image package")
}

/// Downloads (once) and extracts the kernel, its modules made loadable by busybox, and builds
/// the initramfs.
pub fn prepare(root: &Path, kernel: Kernel) -> Result<Prepared> {
    let vm_dir = root.join("target/vm");
    let dir = vm_dir.join(kernel.label);
    let ready = dir.join("ready");
    let (image, initrd) = (dir.join("kernel"), dir.join("initrd.gz"));
    let key = dir.join("initrd.key");
    if ready.exists() && image.exists() && initrd.exists() {
        // An /init or module list changed since the initramfs was built: rebuild only it.
        if fs::read_to_string(&key).ok() != Some(initrd_key(kernel)) {
            let release = fs::read_to_string(&ready)?;
            let modbase = dir.join("root").join(kernel.modules_prefix);
            build_initrd(&modbase, release.trim(), kernel, &initrd)?;
            fs::write(&key, initrd_key(kernel))?;
        }
        return Ok(Prepared {
            kernel,
            image,
            initrd,
        });
    }
    println!(
        "vm: preparing kernel {} (once; cached under {})",
        kernel.label,
        dir.display()
    );
    let cache = vm_dir.join("cache");
    fs::create_dir_all(&cache)?;
    let opts = apt_options(&vm_dir, kernel.suite)?;
    let package = image_package(&opts)?;
    let deb = match find_deb(&cache, &package)? {
        Some(d) => d,
        None => {
            // apt drops privileges to _apt for downloads into a directory it can write.
            let _ = Command::new("chown").arg("_apt").arg(&cache).status();
            run(Command::new("apt-get")
                .args(&opts)
                .args(["download", "-qq", &package])
                .current_dir(&cache))?;
            find_deb(&cache, &package)?.with_context(|| format!("{package} not downloaded"))?
        }
    };
    let _ = fs::remove_dir_all(&dir);
    let extracted = dir.join("root");
    fs::create_dir_all(&extracted)?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&extracted))?;
    let modbase = extracted.join(kernel.modules_prefix);
    let release = fs::read_dir(modbase.join("lib/modules"))?
        .next()
        .context("no modules in the kernel package")??
        .file_name()
        .to_string_lossy()
        .into_owned();
    // busybox insmod/modprobe cannot read compressed modules.
    run(Command::new("find")
        .arg(modbase.join("lib/modules"))
        .args(["-name", "*.ko.xz", "-exec", "xz", "-d", "{}", "+"]))?;
    run(Command::new("depmod").arg("-b").arg(&modbase).arg(&release))?;
    let bz = extracted.join(format!("boot/vmlinuz-{release}"));
    let elf = dir.join(format!("vmlinux-{release}"));
    let boot = if extract_vmlinux(&bz, &elf)? { elf } else { bz };
    std::os::unix::fs::symlink(&boot, &image)?;
    build_initrd(&modbase, &release, kernel, &initrd)?;
    fs::write(&key, initrd_key(kernel))?;
    fs::write(&ready, &release)?;
    Ok(Prepared {
        kernel,
        image,
        initrd,
    })
}

/// What the initramfs is built from besides the kernel package.
fn initrd_key(kernel: Kernel) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (INIT, kernel.boot_modules).hash(&mut h);
    format!("{:016x}", h.finish())
}

fn find_deb(cache: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    Ok(fs::read_dir(cache)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        }))
}

/// Unpacks the ELF `vmlinux` inside a bzImage (xz, zstd or gzip payload); true if it carries
/// the PVH note qemu needs to boot it directly.
fn extract_vmlinux(bz: &Path, out: &Path) -> Result<bool> {
    let data = fs::read(bz).with_context(|| format!("cannot read {}", bz.display()))?;
    let magics: [(&[u8], &str); 3] = [
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x1f, 0x8b, 0x08, 0x00], "gzip"),
    ];
    let Some((offset, tool)) = magics
        .iter()
        .filter_map(|(m, t)| data.windows(m.len()).position(|w| w == *m).map(|i| (i, *t)))
        .min()
    else {
        return Ok(false);
    };
    let mut child = Command::new(tool)
        .args(["-dcq"])
        .stdin(std::process::Stdio::piped())
        .stdout(fs::File::create(out)?)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        // The decompressor stops at the end of its stream and may close the pipe early.
        let _ = stdin.write_all(&data[offset..]);
    }
    // Non-zero is expected: the bzImage has data after the compressed stream.
    let _ = child.wait()?;
    let notes = output(Command::new("readelf").arg("-n").arg(out)).unwrap_or_default();
    Ok(notes.contains("0x00000012"))
}

fn build_initrd(modbase: &Path, release: &str, kernel: Kernel, out: &Path) -> Result<()> {
    let tree = out.with_extension("d");
    let _ = fs::remove_dir_all(&tree);
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "host",
        "shared",
        "modules",
        "keep",
        "lib/modules",
    ] {
        fs::create_dir_all(tree.join(d))?;
    }
    fs::copy("/bin/busybox", tree.join("bin/busybox"))?;
    for applet in output(Command::new("/bin/busybox").arg("--list-full"))?.lines() {
        let link = tree.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/busybox", link)?;
        }
    }
    run(Command::new("mknod")
        .arg(tree.join("dev/console"))
        .args(["c", "5", "1"]))?;
    // Boot modules in dependency order, as kmod resolves them against the extracted tree.
    let mut order = Vec::new();
    for m in kernel.boot_modules {
        let deps = output(Command::new("modprobe").arg("-d").arg(modbase).args([
            "-S",
            release,
            "--show-depends",
            m,
        ]))?;
        for line in deps.lines() {
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = Path::new(path.split_whitespace().next().unwrap_or(""));
                let name = path.file_name().context("module path")?.to_owned();
                if !order.contains(&name) {
                    fs::copy(path, tree.join("modules").join(&name))?;
                    order.push(name);
                }
            }
        }
    }
    let order: Vec<String> = order
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    fs::write(tree.join("modules/order"), order.join("\n") + "\n")?;
    let moddir = modbase.join("lib/modules").join(release);
    fs::write(tree.join("moddir"), moddir.display().to_string())?;
    fs::write(tree.join("init"), INIT)?;
    run(Command::new("chmod").arg("755").arg(tree.join("init")))?;
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        tree.display(),
        out.display()
    )))?;
    fs::remove_dir_all(&tree)?;
    Ok(())
}

/// Where files a VM command leaves in its `/run/shared/out` end up on the host (the host's root
/// is read-only inside).
pub fn out_dir(root: &Path) -> std::path::PathBuf {
    root.join("target/vm/out")
}

/// What runs `cmd` in the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// The initramfs's shell, chrooted into the read-only host root (≈ 6 s to the command).
    Chroot,
    /// systemd as PID 1 over a writable overlay of the host root, `cmd` in a oneshot unit
    /// (≈ 60 s to the command under TCG): for what must meet a real service manager.
    Systemd,
}

/// Boots `p`, runs `cmd` (a shell command line) inside with the workspace `root` visible at its
/// own path, and returns the command's exit code. The console goes to stdout; files the command
/// writes to `/run/shared/out` are moved to [`out_dir`].
pub fn run_in(root: &Path, p: &Prepared, boot: Boot, cmd: &str, timeout: Duration) -> Result<i32> {
    let out = out_dir(root);
    let _ = fs::remove_dir_all(&out);
    let shared =
        root.join("target/vm/shared")
            .join(format!("{}-{}", p.kernel.label, std::process::id()));
    let _ = fs::remove_dir_all(&shared);
    fs::create_dir_all(&shared)?;
    fs::write(shared.join("cmd"), cmd)?;
    if boot == Boot::Systemd {
        fs::write(shared.join("systemd"), "")?;
    }
    // The VM mounts fresh /tmp and /run: keep the workspace if it lives there.
    fs::write(shared.join("keep"), format!("{}\n", root.display()))?;
    let started = Instant::now();
    let status = Command::new("timeout")
        .args(["--foreground", "-k", "5", &timeout.as_secs().to_string()])
        .arg("qemu-system-x86_64")
        // One vCPU: with two, the guest's live code patching (static keys flipped as XDP and
        // TCX programs come and go) raced across TCG's vCPU threads and oopsed ("int3" in
        // __netif_receive_skb_core) in one CI run on 6.12.
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .args(["-bios", "/usr/share/qemu/qboot.rom"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(&p.image)
        .arg("-initrd")
        .arg(&p.initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=rootfs,security_model=none,multidevs=remap,readonly=on",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=shared,security_model=none",
            shared.display()
        ))
        .stdin(std::process::Stdio::null())
        .status()
        .context("cannot start qemu-system-x86_64")?;
    let code = fs::read_to_string(shared.join("exit-code"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if shared.join("out").is_dir() {
        fs::rename(shared.join("out"), &out)?;
    }
    let _ = fs::remove_dir_all(&shared);
    match code {
        Some(c) => {
            println!(
                "vm {}: exit code {c} after {:.1} s",
                p.kernel.label,
                started.elapsed().as_secs_f64()
            );
            Ok(c)
        }
        None => bail!(
            "the {} VM ended without an exit code ({status}): it crashed or ran over {timeout:?}",
            p.kernel.label
        ),
    }
}
