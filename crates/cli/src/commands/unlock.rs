//! `cairn unlock`: remove stale locks, or all with --remove-all.

use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output;

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also those of running processes
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(g: &GlobalArgs, a: UnlockArgs) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(g)?;
    let n = repo.unlock(a.remove_all)?;
    if g.json {
        output::print_json(&json!({"message_type": "summary", "locks_removed": n}));
    } else if !g.quiet {
        println!(
            "removed {n} {}lock(s)",
            if a.remove_all { "" } else { "stale " }
        );
    }
    Ok(ExitCode::Ok)
}
