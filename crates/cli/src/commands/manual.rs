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
    let write = |name: &str, page: Vec<u8>| -> anyhow::Result<()> {
        let path = a.dir.join(format!("{name}.1"));
        std::fs::write(&path, page).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(())
    };
    let mut n = 0;
    for sub in cmd.get_subcommands() {
        write(&format!("cairn-{}", sub.get_name()), page(Some(sub))?)?;
        n += 1;
    }
    write("cairn", page(None)?)?;
    println!("wrote {} man pages to {}", n + 1, a.dir.display());
    Ok(ExitCode::Ok)
}

/// One page: clap_mangen's sections, with a synopsis a reader can type (`cairn [GLOBAL
/// OPTIONS] restore [OPTIONS] --target <DIR> <SNAPSHOT>`, where clap_mangen listed
/// every flag of a program named `cairn-restore`), and on a command's page where the
/// global options are described.
fn page(sub: Option<&clap::Command>) -> std::io::Result<Vec<u8>> {
    let top = Cli::command();
    let (c, usage) = match sub {
        Some(s) => {
            let name = format!("cairn-{}", s.get_name());
            let usage = s
                .clone()
                .bin_name(format!("cairn [GLOBAL OPTIONS] {}", s.get_name()))
                .render_usage()
                .to_string();
            (s.clone().name(name), usage)
        }
        None => (
            top.clone(),
            top.clone().bin_name("cairn").render_usage().to_string(),
        ),
    };
    let man = clap_mangen::Man::new(c.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    let usage = usage.trim_start_matches("Usage:").trim();
    let (program, rest) = usage.split_once(' ').unwrap_or((usage, ""));
    out.extend(format!(".SH SYNOPSIS\n\\fB{}\\fR {}\n", roff(program), roff(rest)).bytes());
    man.render_description_section(&mut out)?;
    if c.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if c.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    if sub.is_some() {
        out.extend(
            ".SH \"GLOBAL OPTIONS\"\nThe repository, password, cache, bandwidth, lock-wait and output options of \\fBcairn\\fR(1) apply to every command, before or after its name.\n"
                .bytes(),
        );
    }
    Ok(out)
}

/// Text for roff: backslashes and hyphens escaped (a bare `-` may print as a dash).
fn roff(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_pages_have_a_synopsis_a_reader_can_type() {
        let cmd = Cli::command();
        let restore = cmd.find_subcommand("restore").unwrap();
        let text = String::from_utf8(page(Some(restore)).unwrap()).unwrap();
        assert!(
            text.contains(".SH SYNOPSIS\n\\fBcairn\\fR [GLOBAL OPTIONS] restore [OPTIONS] \\-\\-target <DIR> <SNAPSHOT>"),
            "{text}"
        );
        assert!(text.contains(".SH \"GLOBAL OPTIONS\""), "{text}");
        assert!(text.contains("cairn\\-restore"), "{text}");
        let top = String::from_utf8(page(None).unwrap()).unwrap();
        assert!(
            top.contains(".SH SYNOPSIS\n\\fBcairn\\fR [OPTIONS] <COMMAND>"),
            "{top}"
        );
        assert!(!top.contains("GLOBAL OPTIONS\"\nThe"), "{top}");
    }
}
