use cairn_ops::check::{check, ReadData};
use cairn_repo::LockKind;
use serde_json::json;

use crate::args::{CheckArgs, GlobalArgs};
use crate::exit::{fail, ExitCode};
use crate::output::{self, size};

pub fn run(g: &GlobalArgs, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let read = match (a.read_data, &a.read_data_subset) {
        (true, Some(_)) => return Err(fail(ExitCode::Fatal, "--read-data and --read-data-subset exclude each other")),
        (true, None) => ReadData::All,
        (false, Some(s)) => ReadData::parse(s).map_err(|e| fail(ExitCode::Fatal, e))?,
        (false, None) => ReadData::None,
    };
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let _lock = repo.lock(LockKind::Shared, "check")?;
    let s = check(&repo, read)?;
    if g.json {
        output::print_json(&json!({
            "message_type": "summary",
            "errors": s.errors.len(),
            "packs_checked": s.packs_checked,
            "blobs_checked": s.blobs_checked,
            "bytes_read": s.bytes_read,
            "snapshots_checked": s.snapshots_checked,
            "trees_checked": s.trees_checked,
            "error_list": s.errors,
            "info": s.info,
            "affected": s.affected,
        }));
    } else if !g.quiet {
        println!("checked {} snapshots, {} trees", s.snapshots_checked, s.trees_checked);
        if read != ReadData::None {
            println!("read {} packs ({}), verified {} blobs", s.packs_checked, size(s.bytes_read), s.blobs_checked);
        }
        for i in &s.info {
            println!("info: {i}");
        }
    }
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    if !s.affected.is_empty() {
        eprintln!("damaged by these errors:");
        for f in &s.affected {
            eprintln!("  {f}");
        }
    }
    if s.errors.is_empty() {
        if !g.json && !g.quiet {
            println!("no errors were found");
        }
        Ok(ExitCode::Ok)
    } else {
        eprintln!("cairn: check found {} error(s); `cairn repair` may recover what is not lost", s.errors.len());
        Ok(ExitCode::Fatal)
    }
}
