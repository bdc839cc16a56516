use cairn_ops::snapshots::group;
use cairn_repo::SnapshotRef;

use crate::args::{GlobalArgs, SnapshotsArgs};
use crate::exit::{fail, ExitCode};
use crate::output;

pub fn run(g: &GlobalArgs, a: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(g)?;
    let by = a.select.group_by().map_err(|e| fail(ExitCode::Fatal, e))?;
    let filter = a.select.filter();
    let mut snaps: Vec<SnapshotRef> = if a.snapshots.is_empty() {
        repo.list_snapshots()?.into_iter().filter(|s| filter.matches(s)).collect()
    } else {
        let mut v = Vec::new();
        for spec in &a.snapshots {
            v.push(repo.find_snapshot(spec)?);
        }
        v
    };
    if let Some(n) = a.latest {
        snaps = group(snaps, by).into_values().flat_map(|v| {
            let skip = v.len().saturating_sub(n);
            v.into_iter().skip(skip)
        }).collect();
        snaps.sort_by(|x, y| x.snapshot.time.cmp(&y.snapshot.time));
    }
    if !snaps.is_empty() {
        warn_without_drill(&repo);
    }
    if g.json {
        output::print_json(&serde_json::Value::Array(snaps.iter().map(output::snapshot_json).collect()));
        return Ok(ExitCode::Ok);
    }
    println!("{:<8}  {:<19}  {:<15}  {:<15}  Paths", "ID", "Time", "Host", "Tags");
    println!("{}", "-".repeat(80));
    for s in &snaps {
        let sn = &s.snapshot;
        let tags = sn.tags.join(",");
        for (i, p) in sn.paths.iter().enumerate() {
            if i == 0 {
                println!("{:<8}  {:<19}  {:<15}  {:<15}  {p}", s.id.short(), sn.time.format("%Y-%m-%d %H:%M:%S"), sn.hostname, tags);
            } else {
                println!("{:<8}  {:<19}  {:<15}  {:<15}  {p}", "", "", "", "");
            }
        }
    }
    println!("{}", "-".repeat(80));
    println!("{} snapshots", snaps.len());
    Ok(ExitCode::Ok)
}

/// Backups nobody has tried to restore are a hope, not a backup: one line when no drill
/// has passed in the last 13 months.
fn warn_without_drill(repo: &cairn_repo::Repository) {
    let since = cairn_ops::forget::Duration { months: 13, ..Default::default() }.before(chrono::Local::now().fixed_offset());
    let passed = cairn_ops::drill::history(repo).map(|h| h.iter().any(|d| d.ok && d.time >= since)).unwrap_or(true);
    if !passed {
        eprintln!("warning: no restore drill has passed in the last 13 months; run `cairn drill` to prove these backups can be read back");
    }
}
