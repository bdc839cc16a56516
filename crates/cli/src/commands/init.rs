use cairn_format::CompressionMode;
use cairn_repo::{InitOptions, Repository};
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::{location, output, password};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Compression for new blobs: auto (zstd 3), off, max (zstd 19) or a zstd level 1-22
    #[arg(long, default_value = "auto")]
    pub compression: String,
    /// Target pack size in MiB
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub pack_size: u32,
    /// Chunk sizes MIN,AVG,MAX in KiB (default 512,1024,8192); for experiments and tests
    #[arg(long, hide = true, value_name = "MIN,AVG,MAX")]
    pub chunker_sizes: Option<String>,
    /// Create the repository under /media, /mnt or /run/media even though no drive is
    /// mounted there (the path is on the same filesystem as /)
    #[arg(long)]
    pub force: bool,
    /// Object Lock: lock every file the repository stores for N days (a B2 bucket with
    /// file lock enabled), and let each backup extend the lock of what is still stored
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=cairn_format::MAX_LOCK_DAYS as i64))]
    pub lock_days: Option<u32>,
    /// governance (a key with bypassGovernance can lift it) or compliance (nobody can)
    #[arg(long, value_name = "MODE", default_value = "governance", value_parser = cairn_backend::LockMode::parse, requires = "lock_days")]
    pub lock_mode: cairn_backend::LockMode,
}

pub fn run(g: &GlobalArgs, a: InitArgs) -> anyhow::Result<ExitCode> {
    let compression =
        CompressionMode::parse(&a.compression).map_err(|e| fail(ExitCode::Fatal, e))?;
    let loc = g.repo.as_deref().unwrap_or("");
    if !a.force && !location::is_remote(loc) {
        refuse_unmounted_drive(loc)?;
    }
    let backend = location::open_backend(loc, g)?;
    let pw = password::get(g, true)?;
    let mut opts = InitOptions {
        compression,
        pack_size_mib: a.pack_size,
        lock: a.lock_days.map(|days| cairn_format::LockSettings {
            days,
            mode: match a.lock_mode {
                cairn_backend::LockMode::Governance => cairn_format::RetentionMode::Governance,
                cairn_backend::LockMode::Compliance => cairn_format::RetentionMode::Compliance,
            },
        }),
        ..InitOptions::default()
    };
    if let Some(sizes) = &a.chunker_sizes {
        let v: Vec<u32> = sizes
            .split(',')
            .filter_map(|x| x.trim().parse::<u32>().ok())
            .collect();
        let [min, avg, max] = v[..] else {
            return Err(fail(
                ExitCode::Fatal,
                format!("invalid --chunker-sizes {sizes:?}: expected MIN,AVG,MAX in KiB"),
            ));
        };
        let p = cairn_ops::chunker_params(min * 1024, avg * 1024, max * 1024)
            .map_err(|e| fail(ExitCode::Fatal, e))?;
        (
            opts.chunker_min_size,
            opts.chunker_avg_size,
            opts.chunker_max_size,
        ) = p;
    }
    let repo = Repository::init(backend.clone(), pw.as_bytes(), &opts)?;
    if g.json {
        output::print_json(&json!({
            "message_type": "initialized",
            "id": repo.config().id,
            "repository": backend.location(),
            "lock_days": a.lock_days,
        }));
    } else if !g.quiet {
        println!(
            "created cairn repository {} at {}",
            &repo.config().id[..10],
            backend.location()
        );
        if let Some(days) = a.lock_days {
            println!(
                "every file it stores is locked for {days} days ({} mode); each backup extends the locks of what is still stored",
                a.lock_mode.as_str()
            );
        }
        println!(
            "Please note that knowledge of your password is required to access the repository."
        );
        println!("Losing your password means that your data is irrecoverably lost.");
    }
    Ok(ExitCode::Ok)
}

/// Where removable drives are mounted. An unmounted drive leaves its empty mountpoint
/// behind, and a repository created there fills the laptop's own disk instead.
const DRIVE_ROOTS: [&str; 3] = ["/media", "/mnt", "/run/media"];

/// Refuses a repository path under a drive root that lies on the same filesystem as
/// `/`: the drive is almost certainly not mounted.
fn refuse_unmounted_drive(loc: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = std::path::absolute(loc.strip_prefix("local:").unwrap_or(loc))?;
    if !DRIVE_ROOTS.iter().any(|r| path.starts_with(r)) {
        return Ok(());
    }
    // The deepest part of the path that exists tells which filesystem it is on.
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("/"));
    let (here, root) = (
        std::fs::metadata(existing)?.dev(),
        std::fs::metadata("/")?.dev(),
    );
    if here == root {
        return Err(fail(
            ExitCode::Fatal,
            format!(
                "{} is under {} but on the same filesystem as /: the drive is probably not mounted (mount it, or pass --force to create the repository on this disk anyway)",
                path.display(),
                existing.display()
            ),
        ));
    }
    Ok(())
}
