use cairn_ops::forget::Duration;
use cairn_ops::snapshots::group;
use cairn_repo::SnapshotRef;
use clap::Args;

use crate::args::GlobalArgs;
use crate::args::SnapshotSelect;
use crate::exit::{fail, ExitCode};
use crate::output;

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
    #[command(flatten)]
    pub ages: WarnAges,
}

/// When a copy or a proof is overdue: `snapshots` warns, `report` marks it.
#[derive(Args, Debug)]
pub struct WarnAges {
    /// Warn when a ship destination has not had a complete copy for longer than this
    #[arg(
        long,
        value_name = "AGE",
        default_value = "7d",
        env = "CAIRN_WARN_SHIP_AGE",
        value_parser = Duration::parse
    )]
    pub warn_ship_age: Duration,
    /// Warn when no restore drill has passed for longer than this
    #[arg(
        long,
        value_name = "AGE",
        default_value = "13m",
        env = "CAIRN_WARN_DRILL_AGE",
        value_parser = Duration::parse
    )]
    pub warn_drill_age: Duration,
}

impl WarnAges {
    /// Fills what the command line left unset from the profile's `[snapshots]`.
    pub fn fill_from(&mut self, sub: &clap::ArgMatches, p: &crate::profile::SnapshotsProfile) {
        crate::profile::fill(
            sub,
            "warn_ship_age",
            &mut self.warn_ship_age,
            p.warn_ship_age,
        );
        crate::profile::fill(
            sub,
            "warn_drill_age",
            &mut self.warn_drill_age,
            p.warn_drill_age,
        );
    }
}

pub fn run(g: &GlobalArgs, a: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(g)?;
    let by = a.select.group_by().map_err(|e| fail(ExitCode::Fatal, e))?;
    let filter = a.select.filter();
    let mut snaps: Vec<SnapshotRef> = if a.snapshots.is_empty() {
        repo.list_snapshots()?
            .into_iter()
            .filter(|s| filter.matches(s))
            .collect()
    } else {
        let mut v = Vec::new();
        for spec in &a.snapshots {
            v.push(repo.find_snapshot(spec)?);
        }
        v
    };
    if let Some(n) = a.latest {
        snaps = group(snaps, by)
            .into_values()
            .flat_map(|v| {
                let skip = v.len().saturating_sub(n);
                v.into_iter().skip(skip)
            })
            .collect();
        snaps.sort_by_key(|x| x.snapshot.time);
    }
    let ships = crate::shipped::load(g, &repo.backend().location());
    let status = if snaps.is_empty() {
        None
    } else {
        Some(status(
            &repo,
            &ships,
            &a.ages.warn_ship_age,
            &a.ages.warn_drill_age,
        ))
    };
    if g.json {
        let drills = cairn_ops::drill::history(&repo).unwrap_or_default();
        output::print_json(&serde_json::Value::Array(
            snaps
                .iter()
                .map(|s| with_copies(output::snapshot_json(s), &s.id.to_hex(), &ships, &drills))
                .collect(),
        ));
        return Ok(ExitCode::Ok);
    }
    println!(
        "{:<8}  {:<19}  {:<15}  {:<15}  Paths",
        "ID", "Time", "Host", "Tags"
    );
    println!("{}", "-".repeat(80));
    for s in &snaps {
        let sn = &s.snapshot;
        let tags = sn.tags.join(",");
        for (i, p) in sn.paths.iter().enumerate() {
            if i == 0 {
                println!(
                    "{:<8}  {:<19}  {:<15}  {:<15}  {p}",
                    s.id.short(),
                    sn.time.format("%Y-%m-%d %H:%M:%S"),
                    sn.hostname,
                    tags
                );
            } else {
                println!("{:<8}  {:<19}  {:<15}  {:<15}  {p}", "", "", "", "");
            }
        }
    }
    println!("{}", "-".repeat(80));
    println!("{} snapshots", snaps.len());
    if let Some(line) = status {
        println!("{line}");
    }
    Ok(ExitCode::Ok)
}

/// The line `snapshots` ends with: when each ship destination last received a complete
/// copy and when a restore drill last passed. Backups nobody has tried to restore are a
/// hope, not a backup, and an offsite copy that stopped being updated protects less
/// each day: each gets a warning on stderr when older than its limit.
fn status(
    repo: &cairn_repo::Repository,
    ships: &crate::shipped::Ships,
    ship_age: &Duration,
    drill_age: &Duration,
) -> String {
    let now = chrono::Local::now().fixed_offset();
    let when = |t: chrono::DateTime<chrono::FixedOffset>| {
        format!(
            "{} ({} ago)",
            t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M"),
            ago(now - t)
        )
    };
    let mut parts = Vec::new();
    // A repository on B2 is itself the offsite copy: nothing to say about ships.
    let remote = crate::location::is_remote(&repo.backend().location());
    if ships.is_empty() && !remote {
        parts.push("never shipped from this machine".into());
    }
    for (dest, e) in ships {
        parts.push(format!("last ship to {dest} {}", when(e.time)));
        if e.time < ship_age.before(now) {
            eprintln!("warning: the last ship to {dest} was {} ago, more than {ship_age}; run `cairn ship {dest}`", ago(now - e.time));
        }
    }
    let drills = cairn_ops::drill::history(repo).unwrap_or_default();
    match drills.iter().filter(|d| d.ok).map(|d| d.time).max() {
        Some(t) => parts.push(format!("last passing drill {}", when(t))),
        None => parts.push("no passing drill".into()),
    }
    if !drills
        .iter()
        .any(|d| d.ok && d.time >= drill_age.before(now))
    {
        let span = drill_age.to_string();
        let span = if span == "13m" {
            "13 months".to_string()
        } else {
            span
        };
        eprintln!("warning: no restore drill has passed in the last {span}; run `cairn drill` to prove these backups can be read back");
    }
    parts.join("; ")
}

/// restic's snapshot object, plus where the snapshot has gone and who proved it: the
/// last ship from this machine to each destination that carried it, and every drill
/// that restored from it.
fn with_copies(
    mut v: serde_json::Value,
    id: &str,
    ships: &crate::shipped::Ships,
    drills: &[cairn_format::DrillRecord],
) -> serde_json::Value {
    let time = |t: &chrono::DateTime<chrono::FixedOffset>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let shipped: Vec<_> = ships
        .iter()
        .filter(|(_, e)| e.snapshots.iter().any(|s| s == id))
        .map(|(dest, e)| serde_json::json!({"destination": dest, "time": time(&e.time)}))
        .collect();
    let drilled: Vec<_> = drills
        .iter()
        .filter(|d| d.snapshots.iter().any(|s| s == id))
        .map(|d| serde_json::json!({"time": time(&d.time), "hostname": d.hostname, "ok": d.ok}))
        .collect();
    v["shipped"] = shipped.into();
    v["drills"] = drilled.into();
    v
}

/// A span as a person reads it: the largest unit that fits.
fn ago(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (n, unit) = match s {
        0..60 => (s, "second"),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}
