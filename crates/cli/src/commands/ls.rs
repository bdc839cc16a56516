use std::io::Write;

use cairn_format::{Node, NodeType};
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output;

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
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

/// `ls -l` style mode string.
fn mode_string(n: &Node) -> String {
    let t = match n.node_type {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'l',
        NodeType::Fifo => 'p',
        NodeType::Chardev => 'c',
        NodeType::Blockdev => 'b',
        NodeType::Socket => 's',
        NodeType::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn time_string(t: cairn_format::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.secs(), t.nanos())
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

pub fn run(g: &GlobalArgs, a: LsArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let snapshot = a.latest.resolve(&repo, &a.snapshot)?;
    let (snap, entries) = cairn_ops::ls::run(&repo, &snapshot, a.path.as_deref(), a.recursive)?;
    if g.json {
        let nodes: Vec<_> = entries
            .iter()
            .map(|e| {
                let n = &e.node;
                json!({
                    "name": n.name,
                    "type": n.node_type.name(),
                    "path": cairn_format::RawBytes(e.path.clone()),
                    "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                    "size": n.size, "mode": n.mode, "links": n.links, "inode": n.inode,
                    "mtime": n.mtime, "atime": n.atime, "ctime": n.ctime,
                    "link_target": n.link_target,
                })
            })
            .collect();
        output::print_json(&json!({ "snapshot": output::snapshot_json(&snap), "nodes": nodes }));
        return Ok(ExitCode::Ok);
    }
    let mut out = std::io::stdout().lock();
    for e in &entries {
        let n = &e.node;
        let path = &e.path;
        if a.long {
            let _ = write!(
                out,
                "{} {:>8} {:>8} {:>12} {} ",
                mode_string(n),
                n.user,
                n.group,
                n.size,
                time_string(n.mtime)
            );
        }
        let _ = out.write_all(path);
        if a.long && n.node_type == NodeType::Symlink {
            let _ = out.write_all(b" -> ");
            let _ = out.write_all(n.link_target.as_slice());
        }
        let _ = out.write_all(b"\n");
    }
    Ok(ExitCode::Ok)
}
