//! `cairn stats`: sizes, deduplication and compression.

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::ExitCode;
use crate::output::{self, size};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatsMode {
    /// What a restore of the snapshots would write
    RestoreSize,
    /// The stored blobs they use, deduplicated, as stored
    RawData,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Snapshots to count (default: all)
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// What to count
    #[arg(long, value_enum, default_value = "restore-size")]
    pub mode: StatsMode,
}

pub fn run(g: &GlobalArgs, a: StatsArgs) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let s = cairn_ops::stats::run(&repo, &a.snapshots)?;
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
