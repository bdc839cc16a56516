//! The restore target, reached only through directory descriptors.
//!
//! Why: a path is looked up again at every use, so a directory inside the target that
//! someone swaps for a symlink (to `/etc`, to another user's home) would carry every
//! later write through it, however carefully the last component is opened. Here every
//! directory below the target is opened from its parent with `O_NOFOLLOW|O_DIRECTORY`,
//! files, links and nodes are made with the `*at` calls relative to that descriptor,
//! and metadata is set through descriptors: no symlink below the target is followed.
//! The target itself may be a symlink; the user named it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Open directory descriptors kept for reuse. Files of one directory are restored
/// together, so a small cache saves most walks; the default limit of open files on
/// many systems is 1,024.
const CACHED_DIRS: usize = 128;

pub(super) struct TargetDir {
    root: PathBuf,
    /// The target with symlinks resolved (once, when opened): below it nothing is
    /// followed, so a path below the target joined to it is where the entry really is.
    real_root: PathBuf,
    root_fd: Arc<OwnedFd>,
    cache: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
}

fn open_fd(dir: Option<&OwnedFd>, name: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let fd = openat(
        dir.map(AsRawFd::as_raw_fd),
        name,
        flags | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` inside `dir`, never following a symlink.
pub(super) fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    open_fd(
        Some(dir),
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
}

/// What `name` inside `dir` is, without following a symlink; `None` when absent.
pub(super) fn stat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<FileStat>> {
    match fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Ok(Some(st)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

pub(super) fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// Removes a non-directory `name` in `dir`, if there is one.
pub(super) fn remove_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EISDIR) => Err(io::Error::other("a directory is in the way")),
        Err(e) => Err(e.into()),
    }
}

/// Creates `name` in `dir` as a new, empty file (`O_EXCL|O_NOFOLLOW`, mode 0600 until
/// its own mode is set).
pub(super) fn create_file_at(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    Ok(File::from(open_fd(
        Some(dir),
        Path::new(name),
        flags,
        Mode::from_bits_truncate(0o600),
    )?))
}

/// Opens the existing regular file `name` in `dir` for reading; anything else (a
/// symlink, a fifo, a device) is refused without blocking.
pub(super) fn open_file_at(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let f = File::from(open_fd(Some(dir), Path::new(name), flags, Mode::empty())?);
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Removes the directory `name` in `dir` and everything below it when `remove` is set,
/// else only counts it, never following a symlink; returns the (files, directories)
/// counted, the directory itself included.
pub(super) fn walk_tree_at(dir: &OwnedFd, name: &OsStr, remove: bool) -> io::Result<(u64, u64)> {
    let fd = open_dir_at(dir, name)?;
    let (mut files, mut dirs) = (0u64, 1u64);
    for n in list_at(&fd)? {
        match stat_at(&fd, &n)? {
            Some(st) if is_dir(&st) => {
                let (f, d) = walk_tree_at(&fd, &n, remove)?;
                files += f;
                dirs += d;
            }
            Some(_) => {
                if remove {
                    remove_at(&fd, &n)?;
                }
                files += 1;
            }
            None => {}
        }
    }
    if remove {
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir)?;
    }
    Ok((files, dirs))
}

/// The names in directory `fd`, without `.` and `..`.
pub(super) fn list_at(fd: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::fd::IntoRawFd;
    use std::os::unix::ffi::OsStrExt;
    // A new open file description, so reading it moves no offset another user of `fd`
    // sees; the stream owns (and closes) it from here on.
    let own = open_fd(
        Some(fd),
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(own.into_raw_fd())?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

impl TargetDir {
    /// Creates the target if needed and opens it.
    pub(super) fn open(root: &Path) -> io::Result<TargetDir> {
        std::fs::create_dir_all(root)?;
        let fd = open_fd(
            None,
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        Ok(TargetDir::new(root, fd))
    }

    fn new(root: &Path, fd: OwnedFd) -> TargetDir {
        let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        TargetDir {
            root: root.to_path_buf(),
            real_root,
            root_fd: Arc::new(fd),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Where `path`, at or below the target, really is (for comparing with the
    /// repository's location).
    pub(super) fn real(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(rel) => self.real_root.join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// Opens the target if it exists (a dry run creates nothing).
    pub(super) fn open_existing(root: &Path) -> io::Result<Option<TargetDir>> {
        match open_fd(
            None,
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(TargetDir::new(root, fd))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The descriptor of the directory `dir`, a path at or below the target, walked
    /// from the nearest directory already open.
    pub(super) fn dir(&self, dir: &Path) -> io::Result<Arc<OwnedFd>> {
        let rel = dir
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::other("outside the restore target"))?;
        if rel.as_os_str().is_empty() {
            return Ok(Arc::clone(&self.root_fd));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fd) = cache.get(rel) {
            return Ok(Arc::clone(fd));
        }
        let (mut fd, mut done) = (Arc::clone(&self.root_fd), PathBuf::new());
        for anc in rel.ancestors().skip(1) {
            if let Some(f) = cache.get(anc) {
                (fd, done) = (Arc::clone(f), anc.to_path_buf());
                break;
            }
        }
        let rest = rel
            .strip_prefix(&done)
            .map_err(|_| io::Error::other("outside the restore target"))?
            .to_path_buf();
        for comp in rest.components() {
            let Component::Normal(name) = comp else {
                return Err(io::Error::other(
                    "not a plain path below the restore target",
                ));
            };
            fd = Arc::new(open_dir_at(&fd, name).map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::other(format!(
                    "{} is not a directory (a symlink in the way is never followed)",
                    done.join(name).display()
                )),
                _ => e,
            })?);
            done.push(name);
            if cache.len() >= CACHED_DIRS {
                cache.clear();
            }
            cache.insert(done.clone(), Arc::clone(&fd));
        }
        Ok(fd)
    }

    /// The directory holding `dest`, and `dest`'s name in it.
    pub(super) fn parent<'a>(&self, dest: &'a Path) -> io::Result<(Arc<OwnedFd>, &'a OsStr)> {
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(io::Error::other("not a path below the restore target"));
        };
        Ok((self.dir(parent)?, name))
    }

    /// Forgets a cached descriptor of `dir` (it was removed or replaced).
    pub(super) fn forget(&self, dir: &Path) {
        if let Ok(rel) = dir.strip_prefix(&self.root) {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, _| !k.starts_with(rel));
        }
    }
}
