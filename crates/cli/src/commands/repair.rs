use std::sync::Arc;

use cairn_repo::LockKind;
use serde_json::json;

use crate::args::{GlobalArgs, RepairArgs, RepairCommand};
use crate::exit::ExitCode;
use crate::output;

pub fn run(g: &GlobalArgs, a: RepairArgs) -> anyhow::Result<ExitCode> {
    let mut repo = super::open_repo(g)?;
    let dry_run = matches!(a.command, RepairCommand::Snapshots { dry_run: true });
    repo.set_dry_run(dry_run);
    let repo = Arc::new(repo);
    let _lock = repo.lock(LockKind::Exclusive, "repair")?;
    match a.command {
        RepairCommand::Index => {
            let s = cairn_ops::repair::repair_index(&repo)?;
            for p in &s.problems {
                eprintln!("warning: {p}");
            }
            if g.json {
                output::print_json(&json!({"message_type": "summary", "repair_index": s}));
            } else if !g.quiet {
                println!(
                    "indexed {} packs; {} damaged packs, {} blobs salvaged, {} lost; replaced {} index files",
                    s.packs_indexed, s.packs_damaged, s.blobs_salvaged, s.blobs_lost, s.index_files_replaced
                );
                if s.blobs_lost > 0 {
                    println!("run `cairn repair snapshots` to drop the files that lost data");
                }
            }
        }
        RepairCommand::Snapshots { .. } => {
            repo.load_index()?;
            let s = cairn_ops::repair::repair_snapshots(&repo, dry_run)?;
            if g.json {
                let rw: Vec<_> = s.rewritten.iter().map(|(o, n)| json!({"old": o.to_hex(), "new": n.to_hex()})).collect();
                output::print_json(&json!({"message_type": "summary", "rewritten": rw, "lost": s.lost, "dry_run": dry_run}));
            } else if !g.quiet {
                for l in &s.lost {
                    println!("lost: {l}");
                }
                for (o, n) in &s.rewritten {
                    println!("snapshot {} repaired as {} (tagged \"repaired\")", o.short(), n.short());
                }
                if s.lost.is_empty() {
                    println!("no snapshot needed repair");
                }
            }
        }
    }
    Ok(ExitCode::Ok)
}
