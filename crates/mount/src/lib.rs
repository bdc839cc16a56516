//! Every snapshot of a repository as a read-only FUSE filesystem, laid out as restic
//! users know it: `snapshots/<time>/`, `snapshots/latest`, `ids/<short id>/`,
//! `hosts/<host>/<time>/`, `tags/<tag>/<time>/`, each holding the snapshot's tree from
//! `/` down.
//!
//! Design decisions:
//! - Nothing is loaded up front: a directory's tree is loaded the first time it is
//!   looked into, so `ls` of one directory of a huge snapshot costs one tree.
//! - Each path gets its own inode (Linux refuses directories reachable under two
//!   names), except files hardlinked within one snapshot, which share one, so link
//!   counts and link structure look as they did on the source.
//! - A read fetches only the blobs covering the requested range, through a cache
//!   bounded in bytes; the blob after the last one read is fetched ahead on another
//!   thread, so a sequential reader rarely waits for decryption.
//! - The snapshot list is read again when a top-level directory is listed or looked
//!   into, at most every [`REFRESH`]: new backups appear without remounting.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fuser::MountOption;

use cairn_repo::session::{Access, LoadIndex, Session};
use cairn_repo::Repository;

/// How often listing a top-level directory may re-read the snapshot list.
pub const REFRESH: Duration = Duration::from_secs(3);
/// Decoded blobs kept for reads.
const CACHE_BYTES: usize = 64 << 20;
/// Attributes of snapshot content never change; virtual directories may.
const TTL_CONTENT: Duration = Duration::from_secs(3600);
const TTL_VIRTUAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount needs /dev/fuse (the fuse kernel module), and this machine has none")]
    NoFuseDevice,
    #[error("mount needs fusermount3 or fusermount on PATH (Debian package fuse3)")]
    NoFusermount,
    #[error("mountpoint {0}: {1}")]
    Mountpoint(String, String),
    #[error("mounting at {0}: {1}")]
    Mount(String, std::io::Error),
    /// Not even the setuid fusermount3 helps then: it opens the device as the user.
    #[error("mounting at {0}: this user may not open /dev/fuse ({1}); distributions make it crw-rw-rw- (as root: chmod 0666 /dev/fuse), or mount as root")]
    FuseDenied(String, std::io::Error),
    #[error(transparent)]
    Repo(#[from] cairn_repo::RepoError),
}

/// Which snapshots a mount shows (restic's `mount --host/--tag/--path`).
pub type SnapshotFilter = Arc<dyn Fn(&cairn_repo::SnapshotRef) -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct MountOptions {
    /// Only the snapshots this accepts; all without one.
    pub only: Option<SnapshotFilter>,
    /// Let users other than the one mounting see the files (needs `user_allow_other`
    /// in /etc/fuse.conf unless root).
    pub allow_other: bool,
    /// Leave permission checks to the kernel using the stored modes and owners
    /// (restic's default too); off, anyone who can reach the mountpoint reads all.
    pub default_permissions: bool,
}

/// Fails with one clear error when this machine cannot mount FUSE filesystems.
pub fn check_prerequisites() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    let on_path = |bin: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    };
    if !on_path("fusermount3") && !on_path("fusermount") {
        return Err(MountError::NoFusermount);
    }
    Ok(())
}

/// A mounted repository; dropping it unmounts.
pub struct Mounted {
    session: fuser::BackgroundSession,
    mountpoint: std::path::PathBuf,
    /// The shared lock, held (and refreshed) while mounted so prune leaves the packs
    /// being read alone; dropped after the filesystem (fields drop in order).
    _repository: cairn_repo::session::Session,
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the filesystem went away on its own (`fusermount -u`, `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.guard.is_finished()
    }

    /// Ends a mount that went away on its own: releases the lock, and leaves the
    /// session alone (dropping it would try to unmount again).
    pub fn end_finished(self) {
        let Mounted {
            session,
            _repository,
            ..
        } = self;
        #[allow(clippy::mem_forget)]
        std::mem::forget(session);
        drop(_repository);
    }
}

/// Takes a shared lock on `repo`, loads its index, mounts it at `mountpoint` and serves
/// it on a background thread.
pub fn mount(
    repo: Arc<Repository>,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<Mounted, MountError> {
    check_prerequisites()?;
    let shown = mountpoint.display().to_string();
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MountError::Mountpoint(shown, "not a directory".into())),
        Err(e) => return Err(MountError::Mountpoint(shown, e.to_string())),
    }
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.allow_other {
        options.push(MountOption::AllowOther);
    }
    if opts.default_permissions {
        options.push(MountOption::DefaultPermissions);
    }
    // fuser mounts by itself where it may and otherwise through the setuid fusermount3
    // (as libfuse does), but both need the device opened as this user: a refusal
    // there would come back as a bare "Permission denied".
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Err(MountError::FuseDenied(shown, e));
    }
    let held = Session::begin(&repo, "mount", Access::Read, LoadIndex::Yes)?;
    let fs = Fs::new(repo, opts.only.clone())?;
    let session =
        fuser::spawn_mount2(fs, mountpoint, &options).map_err(|e| MountError::Mount(shown, e))?;
    let mountpoint = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    Ok(Mounted {
        session,
        mountpoint,
        _repository: held,
    })
}

/// One more try at unmounting `path` through fusermount3 (which root and the user who
/// mounted it may both use); whether it is gone afterwards.
pub fn unmount(path: &Path) -> bool {
    let _ = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-q")
        .arg("--")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    !is_mounted(path)
}

/// Whether `path` is a mount point now (per /proc/self/mounts, where spaces and other
/// awkward bytes are octal escapes).
pub fn is_mounted(path: &Path) -> bool {
    let want = path
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
    })
}

mod content;
mod fuse;
mod tree;

use tree::Fs;
