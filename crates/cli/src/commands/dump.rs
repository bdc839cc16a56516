//! `cairn dump`: a file to stdout, or a directory as a tar stream.

use std::io::Write;

use cairn_format::Timestamp;
use cairn_ops::walk::find_node;
use clap::Args;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};

#[derive(Args, Debug)]
pub struct DumpArgs {
    pub snapshot: String,
    /// Absolute path inside the snapshot
    pub path: String,
}

pub fn run(g: &GlobalArgs, a: DumpArgs) -> anyhow::Result<ExitCode> {
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
