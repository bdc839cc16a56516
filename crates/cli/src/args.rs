//! Command-line definitions. Flag names follow restic where restic has the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::backup::BackupArgs;
use crate::commands::check::CheckArgs;
use crate::commands::copy::CopyArgs;
use crate::commands::diff::DiffArgs;
use crate::commands::drill::DrillArgs;
use crate::commands::dump::DumpArgs;
use crate::commands::find::FindArgs;
use crate::commands::forget::ForgetArgs;
use crate::commands::init::InitArgs;
use crate::commands::key::KeyArgs;
use crate::commands::ls::LsArgs;
use crate::commands::manual::CompletionsArgs;
use crate::commands::manual::ManArgs;
use crate::commands::mount::MountArgs;
use crate::commands::prune::PruneArgs;
use crate::commands::repair::RepairArgs;
use crate::commands::restore::RestoreArgs;
use crate::commands::ship::ShipArgs;
use crate::commands::snapshots::SnapshotsArgs;
use crate::commands::stats::StatsArgs;
use crate::commands::sync::SyncArgs;
use crate::commands::tag::TagArgs;
use crate::commands::unlock::UnlockArgs;

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Deduplicating, encrypted backups, local and on Backblaze B2"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes: shown after the command's own, under their own heading.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Read settings from NAME.toml in CAIRN_CONFIG_DIR or ~/.config/cairn (flags win)
    #[arg(long, env = "CAIRN_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Repository location: a directory, local:/path, b2:BUCKET/PREFIX,
    /// s3:[https://HOST/]BUCKET/PREFIX, sftp:[USER@]HOST:PATH or rclone:REMOTE:PATH
    #[arg(
        short = 'r',
        long = "repo",
        env = "CAIRN_REPOSITORY",
        global = true,
        hide_env_values = true
    )]
    pub repo: Option<String>,
    /// Read the password from the first line of FILE
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run CMD with sh and use its first line of output as the password
    #[arg(
        long,
        env = "CAIRN_PASSWORD_COMMAND",
        global = true,
        value_name = "CMD"
    )]
    pub password_command: Option<String>,
    /// Directory for caches: remote repositories' metadata, every repository's index
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no cache: download metadata again, build the index in memory
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// While another command holds a conflicting lock, keep trying this long (e.g. 30s, 5m, 1h) instead of failing at once
    #[arg(long, global = true, value_name = "WAIT", value_parser = parse_wait)]
    pub retry_lock: Option<std::time::Duration>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Never show progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Only print errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Upload limit for B2 in KiB/s, all transfers together (0: unlimited)
    #[arg(long, global = true, value_name = "KIB")]
    pub limit_upload: Option<u64>,
    /// Download limit for B2 in KiB/s, all transfers together (0: unlimited)
    #[arg(long, global = true, value_name = "KIB")]
    pub limit_download: Option<u64>,
    /// S3: put the bucket in the path (host/BUCKET/key) on AWS too, where it otherwise
    /// goes in the host name (a bucket name with dots); other hosts use the path already
    #[arg(long, global = true)]
    pub s3_path_style: bool,
    /// B2 API base URL (for the emulator or another region)
    #[arg(long, env = "CAIRN_B2_ENDPOINT", global = true, value_name = "URL")]
    pub b2_endpoint: Option<String>,
    /// Allow a plain-http B2 endpoint that is not on this machine (the application key
    /// then crosses the network in clear); loopback endpoints need no flag
    #[arg(long, global = true)]
    pub insecure_http: bool,
    /// Files above this go to B2 as large files in parts (rclone's --b2-upload-cutoff)
    #[arg(long, env = "CAIRN_B2_UPLOAD_CUTOFF", global = true, value_name = "SIZE", value_parser = cairn_ops::size::parse_size)]
    pub b2_upload_cutoff: Option<u64>,
    /// Part size for large-file uploads (rclone's --b2-chunk-size)
    #[arg(long, env = "CAIRN_B2_CHUNK_SIZE", global = true, value_name = "SIZE", value_parser = cairn_ops::size::parse_size)]
    pub b2_chunk_size: Option<u64>,
    /// Server-side copies above this go part by part, in parts of this size (rclone's --b2-copy-cutoff)
    #[arg(long, env = "CAIRN_B2_COPY_CUTOFF", global = true, value_name = "SIZE", value_parser = cairn_ops::size::parse_size)]
    pub b2_copy_cutoff: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Save files and directories as a new snapshot
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot
    Ls(LsArgs),
    /// Restore a snapshot, or part of one, into a directory
    Restore(RestoreArgs),
    /// Remove stale locks (all locks with --remove-all)
    Unlock(UnlockArgs),
    /// Manage the passwords (key files) of the repository
    Key(KeyArgs),
    /// Change the tags of snapshots
    Tag(TagArgs),
    /// Verify the repository's structure, and with --read-data its contents
    Check(CheckArgs),
    /// Remove snapshots by ID or by a retention policy
    Forget(ForgetArgs),
    /// Delete data no snapshot needs
    Prune(PruneArgs),
    /// Find files by name in snapshots
    Find(FindArgs),
    /// Show what changed between two snapshots
    Diff(DiffArgs),
    /// Write a file to stdout, or a directory as a tar stream
    Dump(DumpArgs),
    /// Sizes, deduplication and compression
    Stats(StatsArgs),
    /// Rebuild the index, or rewrite snapshots that reference lost data
    Repair(RepairArgs),
    /// Copy snapshots from another repository into this one
    Copy(CopyArgs),
    /// Push the repository to DEST (b2:..., rclone:..., a directory), uploading only what is new
    Ship(ShipArgs),
    /// A profile's daily job: backup, forget and ship (`cairn --profile home daily`); a
    /// backup with unreadable files (exit 3) still forgets and ships, then exits 3
    #[command(visible_alias = "run-daily")]
    Daily,
    /// Make DST hold what SRC holds (directories or B2, either way), as rclone sync does
    Sync(SyncArgs),
    /// Restore a random sample of files and verify them: the yearly restore test
    Drill(DrillArgs),
    /// Browse every snapshot as a read-only filesystem (FUSE) until Ctrl-C
    Mount(MountArgs),
    /// Write one self-contained HTML page about the repository: snapshots, sizes, ships, drills, checks
    Report(crate::commands::report::ReportArgs),
    /// Print a shell completion script: `source <(cairn completions bash)`
    Completions(CompletionsArgs),
    /// Write man pages (cairn.1 and one per command) into a directory
    Man(ManArgs),
}

/// Which snapshots a command considers and how it groups them (snapshots, forget).
#[derive(Args, Debug)]
pub struct SnapshotSelect {
    /// Only snapshots of this host
    #[arg(long = "host", value_name = "H")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (commas: all of them; repeat: any group)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<String>,
    /// Group by host, paths and/or tags (comma separated)
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
}

/// The filter the three options `--host`, `--tag` and `--path` make.
fn snapshot_filter(
    hosts: &[String],
    tags: &[String],
    paths: &[String],
) -> cairn_ops::snapshots::SnapshotFilter {
    cairn_ops::snapshots::SnapshotFilter {
        hosts: hosts.to_vec(),
        tags: tags.to_vec(),
        paths: paths.to_vec(),
    }
}

impl SnapshotSelect {
    pub fn filter(&self) -> cairn_ops::snapshots::SnapshotFilter {
        snapshot_filter(&self.hosts, &self.tags, &self.paths)
    }

    pub fn group_by(&self) -> Result<cairn_ops::snapshots::GroupBy, String> {
        cairn_ops::snapshots::GroupBy::parse(&self.group_by)
    }
}

/// What `latest` means (and, for find and mount, which snapshots count), as in restic:
/// `restore latest --host laptop` restores the laptop's latest snapshot.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Snapshot selection")]
pub struct LatestFilter {
    /// `latest` means the latest snapshot of this host (repeat for any of several)
    #[arg(long = "host", value_name = "H")]
    pub hosts: Vec<String>,
    /// ... with these tags (commas: all of them; repeat: any group)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// ... that includes this path
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<String>,
}

impl LatestFilter {
    pub fn filter(&self) -> cairn_ops::snapshots::SnapshotFilter {
        snapshot_filter(&self.hosts, &self.tags, &self.paths)
    }

    /// The repository's snapshots the filter accepts, oldest first.
    pub fn accepted(
        &self,
        repo: &cairn_repo::Repository,
    ) -> anyhow::Result<Vec<cairn_repo::SnapshotRef>> {
        let f = self.filter();
        let mut all = repo.list_snapshots()?;
        all.retain(|s| f.matches(s));
        Ok(all)
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// `spec` (`SNAP` or `SNAP:/path`) with `latest` replaced by the ID of the latest
    /// snapshot the filter accepts; anything else as it is.
    pub fn resolve(&self, repo: &cairn_repo::Repository, spec: &str) -> anyhow::Result<String> {
        let (snap, rest) = match spec.split_once(':') {
            Some((snap, rest)) => (snap, Some(rest)),
            None => (spec, None),
        };
        if snap != "latest" || self.is_empty() {
            return Ok(spec.to_string());
        }
        let id = self
            .accepted(repo)?
            .last()
            .map(|s| s.id.to_hex())
            .ok_or_else(|| {
                cairn_repo::RepoError::SnapshotNotFound(format!("latest {}", self.describe()))
            })?;
        Ok(match rest {
            Some(rest) => format!("{id}:{rest}"),
            None => id,
        })
    }

    /// "(host laptop, tag daily)" for messages.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, v) in [
            ("host", &self.hosts),
            ("tag", &self.tags),
            ("path", &self.paths),
        ] {
            if !v.is_empty() {
                parts.push(format!("{what} {}", v.join(" or ")));
            }
        }
        format!("({})", parts.join(", "))
    }
}

/// A wait such as `30s`, `5m`, `1h30m` (restic's `--retry-lock` form); `0` for none.
pub fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 5m or 1h30m");
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (mut secs, mut num, mut any) = (0u64, String::new(), false);
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    /// `--help` of every command: its own options first, the global ones under their
    /// own heading after them, and every argument described.
    #[test]
    fn help_lists_the_command_first_and_describes_every_argument() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str) {
            // clap's own `help` subcommands take no options.
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{path} {}", sub.get_name());
                for arg in sub.get_positionals() {
                    assert!(
                        arg.get_help().is_some(),
                        "{name}: <{}> undescribed",
                        arg.get_id()
                    );
                }
                let help = sub.clone().render_help().to_string();
                let global = help.find("Global options:");
                assert!(
                    global.is_some(),
                    "{name}: no Global options heading:\n{help}"
                );
                if let Some(own) = help.find("\nOptions:") {
                    assert!(
                        own < global.unwrap_or(0),
                        "{name}: own options after global ones"
                    );
                }
                assert!(
                    !help[..global.unwrap_or(0)].contains("--repo"),
                    "{name}: a global option among the command's own"
                );
                walk(sub, &name);
            }
        }
        // Built, as when it parses: global options reach the subcommands.
        let mut cmd = super::Cli::command();
        cmd.build();
        walk(&cmd, "cairn");
    }

    #[test]
    fn waits_parse_as_restic_writes_them() {
        use std::time::Duration;
        assert_eq!(super::parse_wait("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(super::parse_wait("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(super::parse_wait("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "5x", "m", "99999999999999999999h"] {
            assert!(super::parse_wait(bad).is_err(), "{bad}");
        }
    }

    use clap::CommandFactory;

    /// Every SIZE, DURATION and AGE argument goes through its parser: a field typed
    /// `u64` without one would take `4096` and refuse `4K`.
    #[test]
    fn sizes_and_durations_are_parsed_by_their_parsers() {
        fn walk(cmd: &clap::Command, seen: &mut usize) {
            for arg in cmd.get_arguments() {
                let sample = match arg.get_value_names().and_then(|n| n.first()) {
                    Some(n) if n.as_str() == "SIZE" => "4K",
                    Some(n) if n.as_str() == "DURATION" || n.as_str() == "AGE" => "1y6m",
                    _ => continue,
                };
                // Only this argument given, nothing else required.
                let alone = cmd
                    .clone()
                    .mut_args(|a| a.required(false))
                    .arg_required_else_help(false)
                    .subcommand_required(false);
                let long = format!("--{}", arg.get_long().unwrap_or_default());
                let parsed = alone.try_get_matches_from([cmd.get_name(), &long, sample]);
                assert!(
                    parsed.is_ok(),
                    "{} {long} {sample}: {}",
                    cmd.get_name(),
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
                *seen += 1;
            }
            for sub in cmd.get_subcommands() {
                walk(sub, seen);
            }
        }
        let mut seen = 0;
        walk(&super::Cli::command(), &mut seen);
        assert!(seen >= 8, "only {seen} SIZE/DURATION arguments found");
    }
}
