//! `cairn dump`: a file to stdout, or a directory as a tar stream.

use std::io::Write;

use clap::Args;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Snapshot ID, prefix, or latest
    pub snapshot: String,
    /// Absolute path inside the snapshot
    pub path: String,
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

pub fn run(g: &GlobalArgs, a: DumpArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let snapshot = a.latest.resolve(&repo, &a.snapshot)?;
    cairn_ops::dump::run(&repo, &snapshot, &a.path, &mut out)?;
    out.flush()
        .map_err(|e| fail(ExitCode::Fatal, format!("writing to stdout: {e}")))?;
    Ok(ExitCode::Ok)
}
