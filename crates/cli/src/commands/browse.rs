//! Read-only commands that look into snapshots: find, diff, dump, stats.

use std::io::Write;

use cairn_format::Timestamp;
use cairn_ops::walk::find_node;
use cairn_repo::SnapshotRef;
use serde_json::json;

use crate::args::{DiffArgs, DumpArgs, FindArgs, GlobalArgs, StatsArgs, StatsMode};
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

fn select(repo: &cairn_repo::Repository, specs: &[String]) -> anyhow::Result<Vec<SnapshotRef>> {
    if specs.is_empty() {
        return Ok(repo.list_snapshots()?);
    }
    Ok(specs
        .iter()
        .map(|s| repo.find_snapshot(s))
        .collect::<Result<_, _>>()?)
}

pub fn find(g: &GlobalArgs, a: FindArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_with_index(g)?;
    let snaps = select(&repo, &a.snapshots)?;
    let found = cairn_ops::find::find(&repo, &snaps, &a.patterns)?;
    if g.json {
        let v: Vec<_> = found
            .iter()
            .map(|f| {
                json!({
                    "snapshot": f.snapshot.id.to_hex(),
                    "matches": f.matches.iter().map(|(p, n)| json!({
                        "path": cairn_format::RawBytes(p.clone()), "type": n.node_type.name(), "size": n.size, "mtime": n.mtime,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::print_json(&json!(v));
        return Ok(ExitCode::Ok);
    }
    for f in &found {
        println!(
            "found in snapshot {} from {}:",
            f.snapshot.id.short(),
            f.snapshot.snapshot.time.format("%Y-%m-%d %H:%M:%S")
        );
        for (p, n) in &f.matches {
            println!("  {:>12}  {}", n.size, String::from_utf8_lossy(p));
        }
    }
    if found.is_empty() && !g.quiet {
        println!("no matches");
    }
    Ok(ExitCode::Ok)
}

pub fn diff(g: &GlobalArgs, a: DiffArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_with_index(g)?;
    let (x, y) = (
        repo.find_snapshot(&a.first)?,
        repo.find_snapshot(&a.second)?,
    );
    let d = cairn_ops::diff::diff(&repo, &x.snapshot.tree, &y.snapshot.tree)?;
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "changes": d.changes.iter().map(|(p, c)| json!({"path": p, "change": c})).collect::<Vec<_>>(),
            "files_added": d.files_added, "files_removed": d.files_removed, "files_modified": d.files_modified,
            "dirs_added": d.dirs_added, "dirs_removed": d.dirs_removed,
            "bytes_added": d.bytes_added, "bytes_removed": d.bytes_removed,
        }));
        return Ok(ExitCode::Ok);
    }
    println!("comparing snapshot {} to {}:", x.id.short(), y.id.short());
    for (p, c) in &d.changes {
        println!("{}    {p}", c.symbol());
    }
    println!(
        "files: {} new, {} removed, {} changed",
        d.files_added, d.files_removed, d.files_modified
    );
    println!("dirs:  {} new, {} removed", d.dirs_added, d.dirs_removed);
    println!(
        "added: {}, removed: {}",
        size(d.bytes_added),
        size(d.bytes_removed)
    );
    Ok(ExitCode::Ok)
}

pub fn dump(g: &GlobalArgs, a: DumpArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_with_index(g)?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    let t = snap.snapshot.time;
    let node = find_node(
        &repo,
        &snap.snapshot.tree,
        &a.path,
        Timestamp(t.timestamp(), t.timestamp_subsec_nanos()),
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    cairn_ops::dump::dump(&repo, &node, &a.path, &mut out)?;
    out.flush()
        .map_err(|e| fail(ExitCode::Fatal, format!("writing to stdout: {e}")))?;
    Ok(ExitCode::Ok)
}

pub fn stats(g: &GlobalArgs, a: StatsArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_with_index(g)?;
    let snaps = select(&repo, &a.snapshots)?;
    let s = cairn_ops::stats::stats(&repo, &snaps)?;
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "mode".into(),
                json!(match a.mode {
                    StatsMode::RestoreSize => "restore-size",
                    StatsMode::RawData => "raw-data",
                }),
            );
            m.insert(
                "total_size".into(),
                json!(match a.mode {
                    StatsMode::RestoreSize => s.restore_size,
                    StatsMode::RawData => s.stored_size,
                }),
            );
        }
        output::print_json(&v);
        return Ok(ExitCode::Ok);
    }
    println!("snapshots:          {}", s.snapshots);
    match a.mode {
        StatsMode::RestoreSize => {
            println!("total file count:   {}", s.total_file_count);
            println!("total size:         {}", size(s.restore_size));
        }
        StatsMode::RawData => {
            println!("total blob count:   {}", s.blob_count);
            println!("total uncompressed: {}", size(s.raw_data_size));
            println!("total size:         {}", size(s.stored_size));
        }
    }
    println!(
        "deduplication:      {:.2}x (restore size / unique data)",
        s.deduplication_ratio
    );
    println!(
        "compression:        {:.2}x (unique data / stored)",
        s.compression_ratio
    );
    Ok(ExitCode::Ok)
}
