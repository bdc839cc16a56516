//! `cairn find`: files by name in snapshots.

use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::output::{self};

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob on names (or on full paths when it contains /)
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Only search these snapshots
    #[arg(short, long = "snapshot", value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Patterns match whatever the case
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// Only entries modified at or after this moment (2024-05-01, "2024-05-01 08:00", RFC 3339, or 3d ago)
    #[arg(short = 'O', long, value_name = "MOMENT")]
    pub oldest: Option<String>,
    /// Only entries modified at or before this moment
    #[arg(short = 'N', long, value_name = "MOMENT")]
    pub newest: Option<String>,
    /// Only snapshots of these hosts, tags and paths (and `latest` among them)
    #[command(flatten)]
    pub latest: crate::args::LatestFilter,
}

pub fn run(g: &GlobalArgs, a: FindArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    // Only the snapshots the filters accept (none: nothing to search, not all).
    let filtered = a.snapshots.is_empty() && !a.latest.is_empty();
    let specs: Vec<String> = if filtered {
        a.latest
            .accepted(&repo)?
            .iter()
            .map(|s| s.id.to_hex())
            .collect()
    } else {
        a.snapshots
            .iter()
            .map(|s| a.latest.resolve(&repo, s))
            .collect::<anyhow::Result<_>>()?
    };
    let now = cairn_backend::now_millis();
    let moment = |m: &Option<String>| {
        m.as_deref()
            .map(|s| cairn_ops::moment::parse_moment(s, now))
            .transpose()
            .map_err(|e| fail(ExitCode::Fatal, e))
    };
    let opts = cairn_ops::find::FindOptions {
        ignore_case: a.ignore_case,
        oldest: moment(&a.oldest)?,
        newest: moment(&a.newest)?,
    };
    let found = if filtered && specs.is_empty() {
        Vec::new()
    } else {
        cairn_ops::find::run(&repo, &specs, &a.patterns, &opts)?
    };
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
