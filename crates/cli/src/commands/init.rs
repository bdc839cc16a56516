use cairn_format::CompressionMode;
use cairn_repo::{InitOptions, Repository};
use serde_json::json;

use crate::args::{GlobalArgs, InitArgs};
use crate::exit::{fail, ExitCode};
use crate::{location, output, password};

pub fn run(g: &GlobalArgs, a: InitArgs) -> anyhow::Result<ExitCode> {
    let compression = CompressionMode::parse(&a.compression).map_err(|e| fail(ExitCode::Fatal, e))?;
    let backend = location::open_backend(g.repo.as_deref().unwrap_or(""))?;
    let pw = password::get(g, true)?;
    let opts = InitOptions { compression, pack_size_mib: a.pack_size, ..InitOptions::default() };
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
