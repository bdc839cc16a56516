//! `cairn mount MOUNTPOINT`: serves until Ctrl-C/SIGTERM (then unmounts and exits 0) or
//! until the filesystem is unmounted from outside (`fusermount3 -u`).

use std::sync::{Arc, Mutex};

use cairn_mount::{MountOptions, Mounted};
use clap::Args;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Empty directory to mount on
    pub mountpoint: std::path::PathBuf,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root)
    #[arg(long)]
    pub allow_other: bool,
    /// Do not let the kernel check the stored modes and owners: anyone who can reach the
    /// mountpoint reads everything
    #[arg(long)]
    pub no_default_permissions: bool,
    /// Only snapshots of these hosts, tags and paths
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

/// The live mount, where the signal thread can reach it.
static MOUNTED: Mutex<Option<Mounted>> = Mutex::new(None);

/// Unmounts the live mount, if there is one, and returns the exit code: 0 when it is
/// gone, 1 (with what to do) when something still holds it open.
pub fn unmount_on_signal() -> Option<i32> {
    let m = MOUNTED.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    let at = m.mountpoint().to_path_buf();
    drop(m);
    // A program may hold it for a moment (a file manager's look, an `ls` finishing):
    // the filesystem is still served, so try again for a few seconds before giving up.
    let t = std::time::Instant::now();
    while cairn_mount::is_mounted(&at) && t.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        cairn_mount::unmount(&at);
    }
    if cairn_mount::is_mounted(&at) {
        eprintln!("cairn: could not unmount {0}: a program still has it open; close it, then run `fusermount3 -u {0}`", at.display());
        return Some(1);
    }
    eprintln!("cairn: unmounted {}", at.display());
    Some(0)
}

pub fn run(g: &GlobalArgs, a: MountArgs) -> anyhow::Result<ExitCode> {
    // Before asking for a password: a machine that cannot mount says so at once.
    cairn_mount::check_prerequisites()?;
    let repo = Arc::new(super::open_repo(g)?);
    let only: Option<cairn_mount::SnapshotFilter> = (!a.latest.is_empty()).then(|| {
        let f = a.latest.filter();
        Arc::new(move |s: &cairn_repo::SnapshotRef| f.matches(s)) as cairn_mount::SnapshotFilter
    });
    let opts = MountOptions {
        only,
        allow_other: a.allow_other,
        default_permissions: !a.no_default_permissions,
    };
    let mounted = cairn_mount::mount(Arc::clone(&repo), &a.mountpoint, &opts)?;
    *MOUNTED.lock().unwrap_or_else(|p| p.into_inner()) = Some(mounted);
    if g.json {
        crate::output::print_json(&serde_json::json!({
            "message_type": "mounted",
            "repository": repo.backend().location(),
            "mountpoint": a.mountpoint,
        }));
    } else if !g.quiet {
        eprintln!(
            "mounted {} at {}; Ctrl-C unmounts",
            repo.backend().location(),
            a.mountpoint.display()
        );
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut guard = MOUNTED.lock().unwrap_or_else(|p| p.into_inner());
        // Taken: the signal thread is unmounting and ends the process itself (returning
        // here would exit 0 while it still tries, or before it says it could not).
        if guard.as_ref().is_some_and(Mounted::is_finished) {
            // Unmounted from outside.
            if let Some(m) = guard.take() {
                m.end_finished();
            }
            return Ok(ExitCode::Ok);
        }
    }
}
