//! Command-line definitions. Flag names follow restic where restic has the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Read settings from NAME.toml in CAIRN_CONFIG_DIR or ~/.config/cairn (flags win)
    #[arg(long, env = "CAIRN_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Repository location: a directory, local:/path, b2:BUCKET/PREFIX or rclone:REMOTE:BUCKET/PREFIX
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
    /// Directory for the metadata cache of remote repositories
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use a metadata cache
    #[arg(long, global = true)]
    pub no_cache: bool,
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
    /// Print a shell completion script: `source <(cairn completions bash)`
    Completions(CompletionsArgs),
    /// Write man pages (cairn.1 and one per command) into a directory
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

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
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompareArg {
    Modtime,
    Size,
    Checksum,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    pub src: String,
    pub dst: String,
    /// Delete files in DST that SRC lacks (on B2: hide them), after all transfers succeeded
    #[arg(long)]
    pub delete: bool,
    /// Like --delete, but delete every version on B2
    #[arg(long)]
    pub hard_delete: bool,
    /// Let --delete empty the destination when the source is empty, or delete more than
    /// 10% of its files (once that is more than 10)
    #[arg(long)]
    pub allow_deletes: bool,
    /// How files are compared
    #[arg(long, value_enum, default_value = "modtime")]
    pub compare: CompareArg,
    /// Concurrent transfers (default 16 with B2, 4 otherwise)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Only paths matching REGEX (relative path)
    #[arg(long = "include", value_name = "REGEX")]
    pub includes: Vec<String>,
    /// Skip paths matching REGEX (relative path)
    #[arg(long = "exclude", value_name = "REGEX")]
    pub excludes: Vec<String>,
    /// Leave destination files that are newer alone
    #[arg(long, conflicts_with = "replace_newer")]
    pub skip_newer: bool,
    /// Overwrite destination files even when they are newer
    #[arg(long)]
    pub replace_newer: bool,
    /// Show what would be transferred
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ShipArgs {
    /// Destination location (or the profile's ship.destination)
    pub dest: Option<String>,
    /// Concurrent uploads (default 16 for B2, 4 otherwise)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Print what would be uploaded and deleted
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Compare the destination's listing with the repository afterwards
    #[arg(long)]
    pub verify: bool,
    /// Also upload this cairn binary and RECOVERY.txt beside the repository
    #[arg(long)]
    pub with_binary: bool,
    /// Create the destination bucket (or directory) if it does not exist; without it a
    /// missing destination is an error, so a typo creates nothing
    #[arg(long, visible_alias = "create")]
    pub create_bucket: bool,
    /// Allow deleting more than 10% of the destination's files, or snapshots this
    /// repository never forgot (profile: ship.allow_deletes = true)
    #[arg(long)]
    pub allow_deletes: bool,
    /// Forget this machine's record of ships to DEST (a destination no longer used), so
    /// `snapshots` stops reporting it; ships nothing
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "with_binary", "create_bucket", "allow_deletes"])]
    pub forget_destination: bool,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source repository location
    #[arg(
        long,
        value_name = "LOCATION",
        env = "CAIRN_FROM_REPOSITORY",
        hide_env_values = true
    )]
    pub from_repo: String,
    /// Password file for the source repository (else CAIRN_FROM_PASSWORD, else prompt)
    #[arg(long, value_name = "F", env = "CAIRN_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Snapshots to copy (default: all)
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub command: RepairCommand,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs, salvaging readable blobs of damaged packs
    Index {
        /// Go on although a ship destination holds an intact copy of a damaged pack
        /// (try `repair packs --from` first)
        #[arg(long)]
        force: bool,
    },
    /// Write copies of damaged snapshots without the files whose data is lost (tagged
    /// "repaired"); the originals stay unless --forget
    Snapshots {
        /// Only list what would be lost
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Remove the damaged originals (recorded as forgotten)
        #[arg(long)]
        forget: bool,
        /// Go on although a ship destination holds packs this repository lacks (try
        /// `repair packs --from` first)
        #[arg(long)]
        force: bool,
    },
    /// Fetch intact copies of damaged or missing packs from another copy of this
    /// repository (a ship destination), verify them and put them back
    Packs {
        /// The other copy: b2:BUCKET/PREFIX, rclone:..., or a directory
        #[arg(long, value_name = "LOCATION")]
        from: String,
    },
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob on names (or on full paths when it contains /)
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Only search these snapshots
    #[arg(short, long = "snapshot", value_name = "SNAP")]
    pub snapshots: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub first: String,
    pub second: String,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    pub snapshot: String,
    /// Absolute path inside the snapshot
    pub path: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatsMode {
    RestoreSize,
    RawData,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Snapshots to count (default: all)
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    #[arg(long, value_enum, default_value = "restore-size")]
    pub mode: StatsMode,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub limits: PruneLimits,
    /// Show what would be deleted and repacked, without changing anything
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// How much unused space prune tolerates and how much it repacks (also `forget --prune`).
#[derive(Args, Debug, Clone)]
pub struct PruneLimits {
    /// Tolerated unused space: a percentage of the repository or a SIZE
    #[arg(long, default_value = "5%", value_name = "PERCENT%|SIZE")]
    pub max_unused: String,
    /// Repack at most this much data in one run
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (IDs or prefixes), in addition to the policy
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(
        short = 'l',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_last: i64,
    /// Keep the newest snapshot of each of the last N hours (-1: all)
    #[arg(
        short = 'H',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_hourly: i64,
    /// Keep the newest snapshot of each of the last N days
    #[arg(
        short = 'd',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_daily: i64,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(
        short = 'w',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_weekly: i64,
    /// Keep the newest snapshot of each of the last N months
    #[arg(
        short = 'm',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_monthly: i64,
    /// Keep the newest snapshot of each of the last N years
    #[arg(
        short = 'y',
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep_yearly: i64,
    /// Keep every snapshot within DURATION of the newest (e.g. 1y6m2d)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot with this tag
    #[arg(long = "keep-tag", value_name = "T")]
    pub keep_tags: Vec<String>,
    /// Let the policy remove every snapshot of a group (by default that is refused: a
    /// --keep-tag nobody has, or a typo, would otherwise keep nothing)
    #[arg(long, visible_alias = "allow-empty-keep")]
    pub unsafe_allow_remove_all: bool,
    #[command(flatten)]
    pub select: SnapshotSelect,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// Show what would be removed
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub prune_limits: PruneLimits,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read and verify every pack
    #[arg(long)]
    pub read_data: bool,
    /// Read a subset of packs: N/M (deterministic), P% or SIZE (random)
    #[arg(long, value_name = "N/M|P%|SIZE")]
    pub read_data_subset: Option<String>,
    /// Also compare the SHA1s B2 stores for a ship destination with this repository's
    /// files, without downloading anything
    #[arg(long, value_name = "LOCATION")]
    pub remote_hashes: Option<String>,
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Files drawn from each snapshot (half at random, half weighted by size)
    #[arg(long, default_value_t = 20)]
    pub files: usize,
    /// Snapshots drawn
    #[arg(long, default_value_t = 3)]
    pub snapshots: usize,
    /// Draw snapshots taken within this long before now
    #[arg(long, default_value = "1y", value_name = "DURATION")]
    pub within: String,
    /// Drill this repository (e.g. the offsite copy) instead of -r; the record is kept in both
    #[arg(long, value_name = "LOCATION")]
    pub from: Option<String>,
    /// Also compare restored files with the live files that are unchanged since the snapshot
    #[arg(long)]
    pub compare_source: bool,
    /// List past drills instead of running one
    #[arg(long)]
    pub history: bool,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also those of running processes
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key files (* marks the one in use)
    List,
    /// Add a password
    Add {
        /// Read the new password from the first line of F (else prompt twice)
        #[arg(long, value_name = "F")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key by ID (prefix); never the last one or the one in use
    Remove { id: String },
    /// Change the password in use
    Passwd {
        /// Read the new password from the first line of F (else prompt twice)
        #[arg(long, value_name = "F")]
        new_password_file: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Snapshots to change (IDs, prefixes, or latest)
    #[arg(required = true, value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Tags to add
    #[arg(long, value_name = "T")]
    pub add: Vec<String>,
    /// Tags to remove
    #[arg(long, value_name = "T")]
    pub remove: Vec<String>,
    /// Replace all tags with these
    #[arg(long, value_name = "T")]
    pub set: Vec<String>,
}

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
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable; commas separate several)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot
    #[arg(long, value_name = "H")]
    pub host: Option<String>,
    /// Compare with this snapshot instead of the latest of the same host and paths
    #[arg(long, value_name = "SNAP")]
    pub parent: Option<String>,
    /// Exclude paths matching GLOB
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from F, one per line
    #[arg(long = "exclude-file", value_name = "F")]
    pub exclude_files: Vec<PathBuf>,
    /// Exclude directories that contain a file named NAME
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Exclude files larger than SIZE (K, M, G, T suffixes)
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Do not cross filesystem boundaries
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Do not use inode numbers to detect unchanged files
    #[arg(long)]
    pub ignore_inode: bool,
    /// Do not use ctime to detect unchanged files
    #[arg(long)]
    pub ignore_ctime: bool,
    /// Read every file, even those the parent snapshot shows unchanged
    #[arg(short, long)]
    pub force: bool,
    /// Do everything but write to the repository
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Back up standard input as one file. cairn cannot tell whether the program feeding
    /// it finished or failed half way; prefer --stdin-from-command
    #[arg(long)]
    pub stdin: bool,
    /// Run the command given after `--` and back up its output as one file; nothing is
    /// saved unless it exits 0 (cairn backup --stdin-from-command -- pg_dump mydb)
    #[arg(long, conflicts_with = "stdin")]
    pub stdin_from_command: bool,
    /// File name for --stdin and --stdin-from-command
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub stdin_filename: String,
    /// Compression for this backup (auto, off, max, 1-22)
    #[arg(long)]
    pub compression: Option<String>,
    /// Concurrent pack uploads (default 8 for B2, none for a local directory)
    #[arg(long, value_name = "N")]
    pub transfers: Option<usize>,
    /// Seconds between index checkpoints (default 300); for tests of interrupted backups
    #[arg(long, hide = true, value_name = "SECS")]
    pub checkpoint_interval: Option<u64>,
    /// Files read at the same time (default: one per core)
    #[arg(long, value_name = "N")]
    pub read_concurrency: Option<usize>,
    /// Run at normal CPU and I/O priority (by default backup yields to everything else:
    /// nice 10, best-effort I/O at the lowest level)
    #[arg(long)]
    pub no_nice: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only these snapshots (IDs, prefixes, or latest)
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub select: SnapshotSelect,
    /// Only the latest N snapshots of each group
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Warn when a ship destination has not had a complete copy for longer than this
    #[arg(
        long,
        value_name = "AGE",
        default_value = "7d",
        env = "CAIRN_WARN_SHIP_AGE"
    )]
    pub warn_ship_age: String,
    /// Warn when no restore drill has passed for longer than this
    #[arg(
        long,
        value_name = "AGE",
        default_value = "13m",
        env = "CAIRN_WARN_DRILL_AGE"
    )]
    pub warn_drill_age: String,
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

impl SnapshotSelect {
    pub fn filter(&self) -> cairn_ops::snapshots::SnapshotFilter {
        cairn_ops::snapshots::SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }

    pub fn group_by(&self) -> Result<cairn_ops::snapshots::GroupBy, String> {
        cairn_ops::snapshots::GroupBy::parse(&self.group_by)
    }
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot ID, prefix, or latest
    pub snapshot: String,
    /// Absolute path inside the snapshot
    pub path: Option<String>,
    /// Show mode, owner, size and mtime
    #[arg(short, long)]
    pub long: bool,
    /// List subdirectories too
    #[arg(long)]
    pub recursive: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OverwriteArg {
    Always,
    IfChanged,
    Never,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAP or SNAP:/path/inside
    pub snapshot: String,
    /// Directory to restore into
    #[arg(short, long, value_name = "DIR")]
    pub target: PathBuf,
    /// Only restore paths matching GLOB (and what is below them)
    #[arg(short, long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Like --include, ignoring case
    #[arg(long = "iinclude", value_name = "GLOB")]
    pub iincludes: Vec<String>,
    /// Do not restore paths matching GLOB
    #[arg(short, long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Read back every restored file and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
    /// What to do with files that already exist in the target
    #[arg(long, value_enum, default_value = "always")]
    pub overwrite: OverwriteArg,
    /// Delete what the snapshot does not have from the restored directories: only at or
    /// below the backed-up paths, only what --include/--exclude select, never this
    /// repository or its cache. Each deletion is listed; look first with --dry-run
    #[arg(long)]
    pub delete: bool,
    /// Show what would be restored without writing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}
