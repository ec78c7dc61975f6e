//! cgroup v2 scopes: where the hierarchy is mounted, what a `match.cgroup` names, whether that
//! cgroup still exists, and the removal of the empty ones `chaosctl exec` leaves behind.
//!
//! A scope is a cgroup's id and level as the kernel's `bpf_skb_ancestor_cgroup_id` sees them:
//! the id is the directory's inode number (64-bit kernels ≥ 5.5), the level its depth below the
//! hierarchy's root, counted from the real root even when the daemon runs in a cgroup namespace.

use std::{
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use crate::loader::Scope;

/// Directory under the cgroup v2 mount that holds `chaosctl exec`'s cgroups, one per command.
pub const EXEC_PARENT: &str = "chaos-exec";

/// How old an empty cgroup under [`EXEC_PARENT`] must be before a sweep removes it:
/// `chaosctl exec` moves its command in within milliseconds of the mkdir (which sets the
/// directory's mtime; moving processes in does not change it).
const EXEC_SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// A resolved cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Its directory.
    pub path: PathBuf,
    /// What the data plane matches.
    pub scope: Scope,
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts)
/// and the depth of that mount's root in the whole hierarchy (non-zero inside a cgroup
/// namespace). The first cgroup2 line of `/proc/self/mountinfo`.
pub fn mount() -> Result<(PathBuf, usize), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    mount_in(&info).ok_or_else(|| "cgroup v2 is not mounted on this host".to_string())
}

fn mount_in(mountinfo: &str) -> Option<(PathBuf, usize)> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        if rest.split(' ').next() != Some("cgroup2") {
            return None;
        }
        let fields: Vec<&str> = fields.split(' ').collect();
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        let depth = Path::new(root).components().count().saturating_sub(1);
        Some((PathBuf::from(point), depth))
    })
}

/// Where cgroup v2 is mounted, as [`mount`] finds it; in a mount namespace of its own without
/// one (`ip netns exec` mounts a fresh sysfs over `/sys`, hiding the host's), first mounts
/// cgroup v2 at `/sys/fs/cgroup` there. The mount lives and dies with that namespace and is
/// never made in the host's (PID 1's) namespace.
pub fn ensure_mounted() -> Result<(PathBuf, usize), String> {
    // Two requests validating at once must not stack two mounts.
    static MOUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MOUNTING.lock().unwrap_or_else(|p| p.into_inner());
    if let Ok(m) = mount() {
        return Ok(m);
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    if ns("self").is_none() || ns("self") == ns("1") {
        return mount();
    }
    nix::mount::mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("cgroup v2 is not mounted here and mounting it failed: {e}"))?;
    tracing::info!("mounted cgroup v2 at /sys/fs/cgroup in the daemon's mount namespace");
    mount()
}

/// Resolves `spec`: a path under the cgroup v2 mount (`/sys/fs/cgroup/unified/app`), a path
/// relative to it (`app/web`, `/app/web`, as `/proc/PID/cgroup` shows them), or
/// `systemd:NAME.service` (also `.scope`, `.slice`), found anywhere in the hierarchy.
pub fn resolve(spec: &str) -> Result<Cgroup, String> {
    let (mount, base_level) = ensure_mounted()?;
    resolve_under(spec, &mount, base_level)
}

fn resolve_under(spec: &str, mount: &Path, base_level: usize) -> Result<Cgroup, String> {
    let relative = match spec.strip_prefix("systemd:") {
        Some(unit) => find_unit(unit, mount)?,
        None => {
            let p = Path::new(spec);
            let rel = p.strip_prefix(mount).unwrap_or(p);
            let mut clean = PathBuf::new();
            for c in rel.components() {
                match c {
                    Component::Normal(n) => clean.push(n),
                    Component::RootDir | Component::CurDir => {}
                    Component::ParentDir | Component::Prefix(_) => {
                        return Err(format!("{spec:?}: \"..\" is not allowed in a cgroup path"));
                    }
                }
            }
            clean
        }
    };
    let level = relative.components().count();
    if level == 0 {
        return Err(format!(
            "{spec:?} is the root cgroup, which holds every process: drop match.cgroup to \
             affect all of them"
        ));
    }
    let level = base_level + level;
    if level > chaos_common::MAX_SCOPE_LEVEL as usize {
        return Err(format!(
            "{spec:?} is {level} levels deep; scopes go down to level {}",
            chaos_common::MAX_SCOPE_LEVEL
        ));
    }
    let path = mount.join(&relative);
    let meta = std::fs::metadata(&path).map_err(|e| {
        format!(
            "no cgroup {} ({e}); cgroup v2 is mounted at {}",
            path.display(),
            mount.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("{} is not a cgroup directory", path.display()));
    }
    match nix::sys::statfs::statfs(&path) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {}
        Ok(_) => {
            return Err(format!(
                "{} is not in a cgroup v2 hierarchy",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot statfs {}: {e}", path.display())),
    }
    Ok(Cgroup {
        path,
        scope: Scope {
            id: meta.ino(),
            level: level as u8,
        },
    })
}

/// The one cgroup directory named `unit` (systemd puts a unit's cgroup under its slice, at
/// any depth), relative to `mount`.
fn find_unit(unit: &str, mount: &Path) -> Result<PathBuf, String> {
    if unit.is_empty() || unit.contains('/') || !unit.contains('.') {
        return Err(format!(
            "{unit:?} is not a systemd unit name (e.g. systemd:redis.service)"
        ));
    }
    let mut found = Vec::new();
    let mut queue = vec![PathBuf::new()];
    // Breadth-first, bounded: unit cgroups sit a few levels down, and a huge tree must not
    // stall the API.
    let mut visited = 0;
    while let Some(rel) = queue.pop() {
        let Ok(dir) = std::fs::read_dir(mount.join(&rel)) else {
            continue;
        };
        for entry in dir.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            visited += 1;
            let child = rel.join(entry.file_name());
            if entry.file_name() == unit {
                found.push(child);
            } else if child.components().count() < 6 && visited < 100_000 {
                queue.push(child);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "no cgroup for systemd unit {unit} under {} (is it running?)",
            mount.display()
        )),
        _ => Err(format!(
            "systemd unit {unit} matches several cgroups ({}): give the path",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Removes the empty cgroups under [`EXEC_PARENT`] older than a minute: those of a `chaosctl
/// exec` that was killed, or whose command left a process that exited after chaosctl. rmdir
/// refuses a cgroup that holds processes or children, so nothing in use goes. Their paths.
pub fn sweep_exec_leftovers() -> Vec<PathBuf> {
    let Ok((mount, _)) = ensure_mounted() else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir(mount.join(EXEC_PARENT)) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.metadata().is_ok_and(|m| {
                m.is_dir()
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= EXEC_SWEEP_AGE)
            })
        })
        .map(|e| e.path())
        .filter(|p| std::fs::remove_dir(p).is_ok())
        .collect()
}

/// What became of a resolved cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupState {
    /// Still there, the same directory.
    Same,
    /// Removed, or removed and created again (a new id: its sockets are not the old ones').
    Gone,
    /// The check failed for another reason (EMFILE): nothing is known.
    Unknown,
}

impl Cgroup {
    /// Whether processes live in the cgroup or below it (`cgroup.events`); `None` if that
    /// cannot be read.
    pub fn populated(&self) -> Option<bool> {
        let events = std::fs::read_to_string(self.path.join("cgroup.events")).ok()?;
        events
            .lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() == "1")
    }

    /// Removes the cgroup if `chaosctl exec` made it (it sits in [`EXEC_PARENT`] at the top of
    /// the hierarchy) and it is empty; whether it was removed.
    pub fn remove_if_exec(&self) -> bool {
        let ours = mount().is_ok_and(|(m, _)| self.path.parent() == Some(&m.join(EXEC_PARENT)));
        ours && self.state() == CgroupState::Same && std::fs::remove_dir(&self.path).is_ok()
    }

    /// Whether the cgroup still exists as the directory resolved.
    pub fn state(&self) -> CgroupState {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() == self.scope.id => CgroupState::Same,
            Ok(_) => CgroupState::Gone,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CgroupState::Gone,
            Err(_) => CgroupState::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_line_of_mountinfo_names_the_mount_and_its_depth() {
        let hybrid = "25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_in(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), 0))
        );
        let namespaced = "30 20 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_in(namespaced),
            Some((PathBuf::from("/sys/fs/cgroup"), 2))
        );
        assert_eq!(mount_in("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
    }

    #[test]
    fn paths_that_cannot_be_a_scope_are_refused_with_the_reason() {
        let tmp = std::env::temp_dir();
        for (spec, why) in [
            ("/", "root cgroup"),
            ("a/../../etc", "\"..\""),
            ("systemd:", "not a systemd unit"),
            ("systemd:a/b.service", "not a systemd unit"),
        ] {
            let e = resolve_under(spec, &tmp, 0).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
        let deep = vec!["d"; 64].join("/");
        assert!(
            resolve_under(&deep, &tmp, 0)
                .unwrap_err()
                .contains("levels deep")
        );
        // A directory that is not in a cgroup v2 hierarchy.
        let e = resolve_under(tmp.to_str().unwrap(), Path::new("/"), 0).unwrap_err();
        assert!(e.contains("not in a cgroup v2"), "{e}");
        let e = resolve_under("no-such-cgroup-here", &tmp, 0).unwrap_err();
        assert!(e.contains("no cgroup"), "{e}");
    }
}
