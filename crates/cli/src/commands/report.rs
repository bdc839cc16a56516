//! `cairn report [--output FILE.html]`: the one page to look at (see `crate::report`).

use std::path::PathBuf;

use clap::Args;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Where to write the page (`-`: standard output)
    #[arg(short, long, value_name = "FILE", default_value = "cairn-report.html")]
    pub output: PathBuf,
    #[command(flatten)]
    pub ages: super::snapshots::WarnAges,
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let location = repo.backend().location();
    // Sizes of every snapshot (loads the index, takes no lock: as `stats`).
    let stats = cairn_ops::stats::run(&repo, &[])?;
    let mut snapshots = repo.list_snapshots()?;
    snapshots.sort_by_key(|s| s.snapshot.time);
    let packs: std::collections::HashSet<String> =
        repo.list_packs()?.iter().map(|(p, _)| p.to_hex()).collect();
    let verified = cairn_ops::verified::VerificationLog::load(&repo)?
        .locations()
        .map(|(loc, seen)| {
            let here: Vec<i64> = seen
                .iter()
                .filter(|(p, _)| packs.contains(*p))
                .map(|(_, t)| *t)
                .collect();
            (loc.to_string(), here.len(), here.iter().min().copied())
        })
        .collect();
    let now = cairn_repo::sys::now();
    let r = crate::report::Report {
        repository_id: repo.config().id.clone(),
        generated: now,
        snapshots,
        stats,
        ships: crate::shipped::load(g, &location),
        drills: cairn_ops::drill::history(&repo).unwrap_or_default(),
        last_check: crate::checked::load(g, &location),
        verified,
        packs: packs.len(),
        warn_ship_age: now - a.ages.warn_ship_age.before(now),
        warn_drill_age: now - a.ages.warn_drill_age.before(now),
        location,
    };
    let page = crate::report::render(&r);
    if a.output.as_os_str() == "-" {
        print!("{page}");
    } else {
        write_atomically(&a.output, page.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.output.display()))?;
        if !g.quiet {
            eprintln!("wrote {}", a.output.display());
        }
    }
    Ok(ExitCode::Ok)
}

/// A page half written (disk full, Ctrl-C) never replaces a good one.
fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
