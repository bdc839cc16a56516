//! `cairn diff`: what changed between two snapshots.

use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output::{self, size};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot (ID, prefix, or latest)
    pub first: String,
    /// The newer snapshot, compared with FIRST
    pub second: String,
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

pub fn run(g: &GlobalArgs, a: DiffArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let (first, second) = (
        a.latest.resolve(&repo, &a.first)?,
        a.latest.resolve(&repo, &a.second)?,
    );
    let (x, y, d) = cairn_ops::diff::run(&repo, &first, &second)?;
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
