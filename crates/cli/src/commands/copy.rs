use std::path::PathBuf;
use std::sync::Arc;

use cairn_repo::Repository;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::{location, output, password};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source repository location
    #[arg(
        long,
        value_name = "LOCATION",
        env = "CAIRN_FROM_REPOSITORY",
        hide_env_values = true
    )]
    pub from_repo: String,
    /// Password file for the source repository (else CAIRN_FROM_PASSWORD, else prompt)
    #[arg(long, value_name = "F", env = "CAIRN_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Snapshots to copy (default: all)
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: CopyArgs) -> anyhow::Result<ExitCode> {
    let src_backend = location::open_backend(&a.from_repo, g)?;
    let pw = match (
        &a.from_password_file,
        cairn_backend::secret_env::get("CAIRN_FROM_PASSWORD"),
    ) {
        (Some(f), _) => password::read_password_file(f)?,
        (None, Some(p)) => password::non_empty(p, || "CAIRN_FROM_PASSWORD".to_string())?,
        (None, None) => {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(fail(
                    ExitCode::Fatal,
                    "no password for --from-repo: use --from-password-file or CAIRN_FROM_PASSWORD",
                ));
            }
            password::ask_new_or_existing("enter password for the source repository: ", false)?
        }
    };
    let src = Arc::new(Repository::open(src_backend, pw.as_bytes())?);
    let dst = Arc::new(super::open_repo(g)?);
    let s = cairn_ops::copy::run(&src, &dst, &a.snapshots, &output::Bar::new(g))?;
    if g.json {
        let v: Vec<_> = s
            .snapshots_copied
            .iter()
            .map(|(o, n)| json!({"source": o, "copy": n}))
            .collect();
        output::print_json(
            &json!({"message_type": "summary", "copied": v, "skipped": s.snapshots_skipped, "rechunked": s.rechunked, "data_added": s.data_added}),
        );
    } else if !g.quiet {
        for (o, n) in &s.snapshots_copied {
            println!("snapshot {} copied as {}", &o[..8], &n[..8]);
        }
        println!(
            "copied {} snapshots, skipped {} already present, added {}",
            s.snapshots_copied.len(),
            s.snapshots_skipped,
            output::size(s.data_added)
        );
    }
    Ok(ExitCode::Ok)
}
