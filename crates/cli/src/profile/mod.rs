//! Profiles: `--profile NAME` reads `NAME.toml` from `CAIRN_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`, so the whole daily job is
//! `cairn --profile home backup && cairn --profile home forget && cairn --profile home ship`.
//!
//! A profile only fills in what the command line (or an environment variable) left
//! unset: flags always win. Unknown keys are errors naming the file, line and key, so a
//! typo cannot silently drop an exclude or a retention rule.

mod rustic;

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use cairn_ops::forget::Duration;

use crate::args::{Cli, Command};
use crate::exit::{fail, ExitCode};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub repository: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    #[serde(default)]
    pub backup: BackupProfile,
    #[serde(default)]
    pub forget: ForgetProfile,
    #[serde(default)]
    pub ship: ShipProfile,
    #[serde(default)]
    pub snapshots: SnapshotsProfile,
    #[serde(default)]
    pub limits: LimitsProfile,
    /// Read the index from the repository every time (`--no-cache`).
    pub no_cache: Option<bool>,
    #[serde(default)]
    pub b2: B2Profile,
}

/// B2 credentials for `b2:` locations where B2_APPLICATION_KEY_ID/B2_APPLICATION_KEY
/// are not set, so `cairn --profile home ship` works by hand as under the systemd
/// unit's environment file.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct B2Profile {
    pub key_id: Option<String>,
    /// A file holding the application key (its first line).
    pub key_file: Option<PathBuf>,
    /// The key itself: only in a profile no one else may read (mode 0600).
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub key: Option<zeroize::Zeroizing<String>>,
    /// `--b2-endpoint`.
    pub endpoint: Option<String>,
}

fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<zeroize::Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(zeroize::Zeroizing::new))
}

impl std::fmt::Debug for B2Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2Profile")
            .field("key_id", &self.key_id)
            .field("key_file", &self.key_file)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Bandwidth for B2 transfers, KiB/s (`--limit-upload`, `--limit-download`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsProfile {
    pub upload_kib: Option<u64>,
    pub download_kib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupProfile {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub iexclude: Vec<String>,
    #[serde(default)]
    pub exclude_file: Vec<PathBuf>,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default, deserialize_with = "cairn_ops::size::deserialize_opt_size")]
    pub exclude_larger_than: Option<u64>,
    pub one_file_system: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub read_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetProfile {
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    #[serde(default, deserialize_with = "Duration::deserialize_opt")]
    pub keep_within: Option<Duration>,
    /// Snapshots with any of these tags (each: commas for all of several) are kept.
    #[serde(default)]
    pub keep_tag: Vec<String>,
    pub prune: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipProfile {
    pub destination: Option<String>,
    pub transfers: Option<usize>,
    pub verify: Option<bool>,
    /// Large deletions at the destination without asking (see `ship --allow-deletes`).
    pub allow_deletes: Option<bool>,
    /// Object Lock: days every shipped file stays locked (see `ship --lock-days`).
    pub lock_days: Option<u32>,
    #[serde(default, deserialize_with = "deserialize_lock_mode")]
    pub lock_mode: Option<cairn_backend::LockMode>,
}

fn deserialize_lock_mode<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<cairn_backend::LockMode>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| cairn_backend::LockMode::parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsProfile {
    #[serde(default, deserialize_with = "Duration::deserialize_opt")]
    pub warn_ship_age: Option<Duration>,
    #[serde(default, deserialize_with = "Duration::deserialize_opt")]
    pub warn_drill_age: Option<Duration>,
}

/// The file `--profile NAME` reads.
pub fn path(name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return Err(fail(
            ExitCode::Fatal,
            format!("profile name {name:?} must be a plain name (the file is NAME.toml)"),
        ));
    }
    let dir = std::env::var_os("CAIRN_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("cairn")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/cairn")))
        .ok_or_else(|| {
            fail(
                ExitCode::Fatal,
                "no CAIRN_CONFIG_DIR or HOME to find profiles in",
            )
        })?;
    Ok(dir.join(format!("{name}.toml")))
}

/// Reads a profile; an error names the file, the line and what is wrong there.
pub fn load(path: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(ExitCode::Fatal, format!("profile {}: {e}", path.display())))?;
    let bad = |why: String| {
        fail(
            ExitCode::Fatal,
            format!("profile {}: {why}", path.display()),
        )
    };
    let p = match toml::from_str::<toml::Table>(&text) {
        Ok(mut t) if rustic::is_rustic(&t) => {
            rustic::normalize(&mut t).map_err(bad)?;
            Profile::deserialize(toml::Value::Table(t))
                .map_err(|e| bad(e.message().trim().to_string()))?
        }
        _ => parse(path, &text)?,
    };
    if p.b2.key.is_some() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o777);
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "[b2] key is in a file others may read (mode {:o}): `chmod 600 {}`, or name a file with key_file",
                mode & 0o777,
                path.display()
            )));
        }
    }
    Ok(p)
}

/// A profile in cairn's own form; an error names the line and the key.
fn parse(path: &Path, text: &str) -> anyhow::Result<Profile> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map(|s| s.start.min(text.len()));
        let line = start.map(|s| text[..s].matches('\n').count() + 1);
        let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
        // A wrong value's message names the type, not the key: name the key too.
        let key = start
            .and_then(|s| {
                text[..s]
                    .rsplit('\n')
                    .next()
                    .map(|l| l.split('=').next().unwrap_or("").trim().to_string())
            })
            .filter(|k| !k.is_empty() && !e.message().contains(k.as_str()));
        let key = key.map(|k| format!(" (key `{k}`)")).unwrap_or_default();
        fail(
            ExitCode::Fatal,
            format!(
                "profile {}{at}{key}: {}",
                path.display(),
                e.message().trim()
            ),
        )
    })
}

/// Whether the user set `id` (on the command line or through its environment variable).
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.try_get_raw(id).ok().flatten().map(|_| m.value_source(id)),
        Some(Some(ValueSource::CommandLine | ValueSource::EnvVariable))
    )
}

pub(crate) fn fill<T>(m: &ArgMatches, id: &str, field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        if !given(m, id) {
            *field = v;
        }
    }
}

fn fill_vec<T>(m: &ArgMatches, id: &str, field: &mut Vec<T>, value: Vec<T>) {
    if !value.is_empty() && !given(m, id) {
        *field = value;
    }
}

/// Fills what the command line left unset from the profile named by `--profile`.
pub fn apply(cli: &mut Cli, m: &ArgMatches) -> anyhow::Result<()> {
    let Some(name) = cli.global.profile.clone() else {
        return Ok(());
    };
    let file = path(&name)?;
    let p = load(&file)?;
    b2_credentials(&file, &p.b2)?;
    let sub = m.subcommand().map(|(_, s)| s).unwrap_or(m);
    // Global flags may come before or after the command; both match sets know them.
    fill_global(&mut cli.global, &p, |id| given(m, id) || given(sub, id));
    fill_command(&mut cli.command, sub, p);
    Ok(())
}

/// The global options (repository, password source, bandwidth limits) the command line
/// left unset; `top` says whether the command line gave one.
fn fill_global(g: &mut crate::args::GlobalArgs, p: &Profile, top: impl Fn(&str) -> bool) {
    if !top("repo") && p.repository.is_some() {
        g.repo = p.repository.clone();
    }
    if !top("password_file") && !top("password_command") {
        if p.password_file.is_some() {
            g.password_file = p.password_file.clone();
        }
        if p.password_command.is_some() {
            g.password_command = p.password_command.clone();
        }
    }
    if !top("limit_upload") && p.limits.upload_kib.is_some() {
        g.limit_upload = p.limits.upload_kib;
    }
    if !top("limit_download") && p.limits.download_kib.is_some() {
        g.limit_download = p.limits.download_kib;
    }
    if !top("no_cache") && p.no_cache == Some(true) {
        g.no_cache = true;
    }
    if !top("b2_endpoint") && p.b2.endpoint.is_some() {
        g.b2_endpoint = p.b2.endpoint.clone();
    }
}

/// Hands the profile's B2 credentials to the B2 backend (the environment still wins).
fn b2_credentials(path: &Path, b: &B2Profile) -> anyhow::Result<()> {
    let Some(key_id) = b.key_id.clone() else {
        if b.key.is_some() || b.key_file.is_some() {
            return Err(fail(
                ExitCode::Fatal,
                format!("profile {}: [b2] has a key but no key_id", path.display()),
            ));
        }
        return Ok(());
    };
    let key = match (&b.key, &b.key_file) {
        (Some(k), None) => k.clone(),
        (None, Some(f)) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                fail(
                    ExitCode::Fatal,
                    format!(
                        "profile {}: [b2] key_file {}: {e}",
                        path.display(),
                        f.display()
                    ),
                )
            })?);
            zeroize::Zeroizing::new(text.lines().next().unwrap_or("").trim().to_string())
        }
        _ => {
            return Err(fail(
                ExitCode::Fatal,
                format!(
                    "profile {}: [b2] needs exactly one of key_file and key",
                    path.display()
                ),
            ))
        }
    };
    cairn_b2::set_profile_credentials(cairn_b2::Credentials { key_id, key });
    Ok(())
}

/// The command's own options, from the profile's section for it.
fn fill_command(command: &mut Command, sub: &ArgMatches, p: Profile) {
    match command {
        Command::Backup(a) => fill_backup(a, sub, p.backup),
        Command::Forget(a) => {
            let f = p.forget;
            // A retention rule on the command line replaces the profile's whole policy.
            let any_keep = [
                "keep_last",
                "keep_hourly",
                "keep_daily",
                "keep_weekly",
                "keep_monthly",
                "keep_yearly",
                "keep_within",
                "keep_tags",
            ]
            .iter()
            .any(|id| given(sub, id));
            if !any_keep && a.snapshots.is_empty() {
                fill(sub, "keep_last", &mut a.keep_last, f.keep_last);
                fill(sub, "keep_hourly", &mut a.keep_hourly, f.keep_hourly);
                fill(sub, "keep_daily", &mut a.keep_daily, f.keep_daily);
                fill(sub, "keep_weekly", &mut a.keep_weekly, f.keep_weekly);
                fill(sub, "keep_monthly", &mut a.keep_monthly, f.keep_monthly);
                fill(sub, "keep_yearly", &mut a.keep_yearly, f.keep_yearly);
                fill(
                    sub,
                    "keep_within",
                    &mut a.keep_within,
                    f.keep_within.map(Some),
                );
                fill_vec(sub, "keep_tags", &mut a.keep_tags, f.keep_tag);
            }
            fill(sub, "prune", &mut a.prune, f.prune);
        }
        Command::Ship(a) => {
            let s = p.ship;
            fill(sub, "dest", &mut a.dest, s.destination.map(Some));
            fill(sub, "transfers", &mut a.transfers, s.transfers.map(Some));
            fill(sub, "verify", &mut a.verify, s.verify);
            fill(sub, "allow_deletes", &mut a.allow_deletes, s.allow_deletes);
            fill(sub, "lock_days", &mut a.lock_days, s.lock_days.map(Some));
            fill(sub, "lock_mode", &mut a.lock_mode, s.lock_mode);
        }
        Command::Snapshots(a) => a.ages.fill_from(sub, &p.snapshots),
        Command::Report(a) => a.ages.fill_from(sub, &p.snapshots),
        _ => {}
    }
}

fn fill_backup(a: &mut crate::commands::backup::BackupArgs, sub: &ArgMatches, b: BackupProfile) {
    fill_vec(sub, "paths", &mut a.paths, b.paths);
    fill_vec(sub, "excludes", &mut a.excludes, b.exclude);
    fill_vec(sub, "iexcludes", &mut a.iexcludes, b.iexclude);
    fill_vec(sub, "exclude_files", &mut a.exclude_files, b.exclude_file);
    fill_vec(
        sub,
        "exclude_if_present",
        &mut a.exclude_if_present,
        b.exclude_if_present,
    );
    fill(
        sub,
        "exclude_larger_than",
        &mut a.exclude_larger_than,
        b.exclude_larger_than.map(Some),
    );
    fill(
        sub,
        "one_file_system",
        &mut a.one_file_system,
        b.one_file_system,
    );
    fill_vec(sub, "tags", &mut a.tags, b.tags);
    fill(sub, "host", &mut a.host, b.host.map(Some));
    fill(
        sub,
        "read_concurrency",
        &mut a.read_concurrency,
        b.read_concurrency.map(Some),
    );
}
