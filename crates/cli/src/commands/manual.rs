//! Shell completions and man pages, generated from the parser's own definitions.

use clap::Args;
use clap::CommandFactory;

use crate::args::Cli;
use crate::exit::ExitCode;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics on a write error (`| head`), cairn must not.
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "cairn", &mut buf);
    match std::io::Write::write_all(&mut std::io::stdout(), &buf) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::Ok),
    }
}

/// `cairn.1` plus `cairn-<command>.1` for every command (as git and restic ship them).
pub fn man_pages(a: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)?;
    let cmd = Cli::command();
    let write = |name: &str, c: clap::Command| -> anyhow::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        let path = a.dir.join(format!("{name}.1"));
        std::fs::write(&path, buf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(())
    };
    let mut n = 0;
    for sub in cmd.get_subcommands() {
        let name = format!("cairn-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
        n += 1;
    }
    write("cairn", cmd)?;
    println!("wrote {} man pages to {}", n + 1, a.dir.display());
    Ok(ExitCode::Ok)
}
