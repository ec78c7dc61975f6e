//! The API socket file: created with mode 0660 (and a group), removed only if it is the very
//! socket this process created, and watched so a deleted socket never leaves a daemon running
//! that nobody can reach.

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use tokio::net::UnixListener;

/// The socket this process bound.
pub struct ApiSocket {
    path: PathBuf,
    /// (device, inode) of the socket file as created.
    id: (u64, u64),
}

/// True if a daemon answers on `socket`.
pub fn someone_listens(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Removes a leftover socket at `path`; refuses to touch anything that is not a socket.
/// Returns whether one was removed.
pub fn remove_stale(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        Ok(m) if !m.file_type().is_socket() => bail!(
            "{} exists and is not a socket: refusing to remove it (pick another --socket)",
            path.display()
        ),
        Ok(_) if someone_listens(path) => bail!(
            "another chaos-daemon is already listening on {}",
            path.display()
        ),
        Ok(_) => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            Ok(true)
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl ApiSocket {
    /// Creates the directory and the socket at `path`, mode 0660, group `group`. On any error
    /// after the socket file exists, the file is removed again.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<(ApiSocket, UnixListener)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        remove_stale(path)?;
        // Create the socket 0660 already: a client may connect the moment it exists, before
        // any chmod after bind could run.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound.with_context(|| format!("cannot listen on {}", path.display()))?;
        let socket = ApiSocket {
            path: path.to_path_buf(),
            id: file_id(path).context("the socket vanished right after bind")?,
        };
        // From here on, dropping `socket` removes the file.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        if let Some(group) = group {
            let gid = nix::unistd::Group::from_name(group)?
                .with_context(|| format!("socket_group {group:?} does not exist"))?
                .gid;
            nix::unistd::chown(path, None, Some(gid))
                .with_context(|| format!("cannot chown socket to group {group}"))?;
        }
        Ok((socket, listener))
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False once the file at the path is not the socket this process created (deleted, or
    /// replaced by another daemon's).
    pub fn still_ours(&self) -> bool {
        file_id(&self.path) == Some(self.id)
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
