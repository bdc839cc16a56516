pub(crate) mod backup;
pub(crate) mod check;
pub(crate) mod copy;
pub(crate) mod daily;
pub(crate) mod diff;
pub(crate) mod drill;
pub(crate) mod dump;
pub(crate) mod find;
pub(crate) mod forget;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod ls;
pub(crate) mod manual;
pub(crate) mod mount;
pub(crate) mod prune;
pub(crate) mod repair;
pub(crate) mod report;
pub(crate) mod restore;
pub(crate) mod ship;
pub(crate) mod snapshots;
pub(crate) mod stats;
pub(crate) mod sync;
pub(crate) mod tag;
pub(crate) mod unlock;

use std::sync::Arc;

use cairn_repo::Repository;

use crate::args::{Cli, Command, GlobalArgs};
use crate::exit::ExitCode;
use crate::{location, password};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Unlock(a) => unlock::run(g, a),
        Command::Key(a) => key::run(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Forget(a) => forget::run(g, a),
        Command::Prune(a) => prune::run(g, a),
        Command::Find(a) => find::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Dump(a) => dump::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Repair(a) => repair::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Ship(a) => ship::run(g, a),
        Command::Daily => daily::run(g),
        Command::Sync(a) => sync::run(g, a),
        Command::Drill(a) => drill::run(g, a),
        Command::Mount(a) => mount::run(g, a),
        Command::Report(a) => report::run(g, a),
        Command::Completions(a) => manual::completions(a),
        Command::Man(a) => manual::man_pages(a),
    }
}

/// Concurrent pack uploads to a remote repository: enough to hide B2's per-request
/// latency, while at most twice this many 16 MiB packs are held in memory.
pub use mount::unmount_on_signal;

pub const DEFAULT_REMOTE_TRANSFERS: usize = 8;

/// Fetches in flight when restoring, drilling, checking or mounting a remote repository:
/// each waits on the network, so more threads than cores (memory: see `read_ahead`).
pub const REMOTE_READ_THREADS: usize = 16;

/// Opens the repository named by the global options; writes nothing.
pub fn open_repo(g: &GlobalArgs) -> anyhow::Result<Repository> {
    open_repo_with(g, |_| {})
}

/// [`open_repo`], with the command's own settings (dry run, compression, transfers)
/// added to what the location decides, all given to the repository at once.
pub fn open_repo_with(
    g: &GlobalArgs,
    adjust: impl FnOnce(&mut cairn_repo::OpenOptions),
) -> anyhow::Result<Repository> {
    let loc = g.repo.as_deref().unwrap_or("");
    let mut backend = location::open_backend(loc, g)?;
    let cache = location::cache_dir(g, loc);
    if let Some(dir) = &cache {
        backend = Arc::new(cairn_backend::CachedBackend::new(
            backend,
            dir.clone(),
            cairn_repo::cacheable,
        ));
    }
    // Fail on a missing repository before asking for a password.
    match backend.stat("config") {
        Err(e) if e.is_not_found() => {
            return Err(cairn_repo::RepoError::NoRepository(backend.location()).into())
        }
        _ => {}
    }
    let pw = password::get(g, false)?;
    // The key that opened this location last time goes first (issue 19.2: a planted
    // key file must not cost every command its Argon2id).
    let last_key = crate::state::file(g, "keys", &backend.location(), "");
    let preferred = last_key
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|h| h.trim().parse().ok());
    let mut opts = cairn_repo::OpenOptions {
        preferred_key: preferred,
        tree_cache: cache.as_ref().map(|dir| dir.join("trees")),
        index_cache: location::index_cache(g, &backend.location()),
        ..Default::default()
    };
    opts.lock_timing.retry = g.retry_lock.unwrap_or_default();
    if location::is_remote(loc) {
        opts.transfers = DEFAULT_REMOTE_TRANSFERS;
        opts.remote_reads = Some(REMOTE_READ_THREADS);
    }
    adjust(&mut opts);
    let repo = Repository::open_with(backend, pw.as_bytes(), &opts)?;
    if let Some(p) = &last_key {
        if preferred != Some(repo.key_id()) {
            let _ = cairn_backend::write_private(p, repo.key_id().to_hex().as_bytes());
        }
    }
    crate::seen::watch(g, loc, &repo)?;
    Ok(repo)
}
