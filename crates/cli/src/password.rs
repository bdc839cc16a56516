//! Where the password comes from: flag, environment, command, or a terminal prompt.
//! The password is held in zeroizing memory and never printed.

use std::io::IsTerminal;
use std::process::Command;

use anyhow::Context;
use cairn_backend::secret_env;
use zeroize::Zeroizing;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};

pub type Password = Zeroizing<String>;

fn first_line(s: &str) -> Password {
    Zeroizing::new(s.lines().next().unwrap_or("").to_string())
}

/// An empty password protects nothing: refused from every source, naming it, before
/// anything is created or opened (`init` with `CAIRN_PASSWORD=` made a repository).
pub fn non_empty(p: Password, source: impl FnOnce() -> String) -> anyhow::Result<Password> {
    if p.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            format!("empty password from {} refused", source()),
        ));
    }
    Ok(p)
}

pub fn read_password_file(path: &std::path::Path) -> anyhow::Result<Password> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading password file {}", path.display()))?,
    );
    non_empty(first_line(&raw), || {
        format!("password file {}", path.display())
    })
}

fn run_password_command(cmd: &str) -> anyhow::Result<Password> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("sh");
    // SAFETY: between fork and exec only async-signal-safe calls are allowed;
    // pthread_sigmask is one. The child must not inherit cairn's blocked signals.
    unsafe {
        command.pre_exec(|| {
            let empty = nix::sys::signal::SigSet::empty();
            nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
    // The command inherits none of cairn's secrets: `main` took them out of the
    // environment (cairn_backend::secret_env).
    let out = command
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| "running --password-command")?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(fail(
            ExitCode::Fatal,
            format!("--password-command exited with {}", out.status),
        ));
    }
    let text = Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
    non_empty(first_line(&text), || {
        "--password-command (it printed nothing)".to_string()
    })
}

fn prompt(text: &str) -> anyhow::Result<Password> {
    Ok(Zeroizing::new(
        rpassword::prompt_password(text).context("reading password from terminal")?,
    ))
}

fn has_terminal() -> bool {
    std::io::stdin().is_terminal()
        || std::fs::File::open("/dev/tty").is_ok() && std::io::stderr().is_terminal()
}

/// The repository password, from the first source given.
pub fn get(g: &GlobalArgs, confirm: bool) -> anyhow::Result<Password> {
    if let Some(f) = &g.password_file {
        return read_password_file(f);
    }
    if let Some(c) = &g.password_command {
        return run_password_command(c);
    }
    if let Some(p) = secret_env::get("CAIRN_PASSWORD") {
        return non_empty(p, || "CAIRN_PASSWORD".to_string());
    }
    if !has_terminal() {
        return Err(fail(
            ExitCode::Fatal,
            "no password given and no terminal to ask on: set CAIRN_PASSWORD, --password-file or --password-command",
        ));
    }
    ask_new_or_existing("enter password for repository: ", confirm)
}

/// The password when a source gives it without asking (a file, a command, the
/// environment): for a second repository a command may look at, never a reason to prompt.
pub fn given(g: &GlobalArgs) -> Option<Password> {
    let any = g.password_file.is_some()
        || g.password_command.is_some()
        || secret_env::get("CAIRN_PASSWORD").is_some();
    any.then(|| get(g, false).ok()).flatten()
}

/// Asks on the terminal; with `confirm`, twice, and they must match.
pub fn ask_new_or_existing(text: &str, confirm: bool) -> anyhow::Result<Password> {
    let p = prompt(text)?;
    if confirm {
        let again = prompt("enter password again: ")?;
        if *again != *p {
            return Err(fail(ExitCode::Fatal, "passwords do not match"));
        }
    }
    if p.is_empty() {
        return Err(fail(ExitCode::Fatal, "empty password refused"));
    }
    Ok(p)
}
