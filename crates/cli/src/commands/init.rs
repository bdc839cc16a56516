use cairn_format::CompressionMode;
use cairn_repo::{InitOptions, Repository};
use serde_json::json;

use crate::args::{GlobalArgs, InitArgs};
use crate::exit::{fail, ExitCode};
use crate::{location, output, password};

pub fn run(g: &GlobalArgs, a: InitArgs) -> anyhow::Result<ExitCode> {
    let compression = CompressionMode::parse(&a.compression).map_err(|e| fail(ExitCode::Fatal, e))?;
    let backend = location::open_backend(g.repo.as_deref().unwrap_or(""), g)?;
    let pw = password::get(g, true)?;
    let mut opts = InitOptions { compression, pack_size_mib: a.pack_size, ..InitOptions::default() };
    if let Some(sizes) = &a.chunker_sizes {
        let v: Vec<u32> = sizes.split(',').filter_map(|x| x.trim().parse::<u32>().ok()).collect();
        let [min, avg, max] = v[..] else {
            return Err(fail(ExitCode::Fatal, format!("invalid --chunker-sizes {sizes:?}: expected MIN,AVG,MAX in KiB")));
        };
        let p = cairn_ops::chunker_params(min * 1024, avg * 1024, max * 1024).map_err(|e| fail(ExitCode::Fatal, e))?;
        (opts.chunker_min_size, opts.chunker_avg_size, opts.chunker_max_size) = p;
    }
    let repo = Repository::init(backend.clone(), pw.as_bytes(), &opts)?;
    if g.json {
        output::print_json(&json!({
            "message_type": "initialized",
            "id": repo.config().id,
            "repository": backend.location(),
        }));
    } else if !g.quiet {
        println!("created cairn repository {} at {}", &repo.config().id[..10], backend.location());
        println!("Please note that knowledge of your password is required to access the repository.");
        println!("Losing your password means that your data is irrecoverably lost.");
    }
    Ok(ExitCode::Ok)
}
