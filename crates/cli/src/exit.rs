//! The one place where errors become exit codes (see SPEC.md, "Exit codes").

use cairn_ops::OpsError;
use cairn_repo::RepoError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Fatal = 1,
    /// Backup saved a snapshot but some files could not be read.
    PartialBackup = 3,
    NoRepository = 10,
    Locked = 11,
    WrongPassword = 12,
    Interrupted = 130,
}

/// An error the CLI raises itself with a chosen exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn fail(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CliError {
        code,
        message: message.into(),
    })
}

fn repo_code(e: &RepoError) -> ExitCode {
    match e {
        RepoError::NoRepository(_) => ExitCode::NoRepository,
        RepoError::Locked(_) => ExitCode::Locked,
        RepoError::WrongPassword { .. } => ExitCode::WrongPassword,
        _ => ExitCode::Fatal,
    }
}

/// Exit code and a one-line message for an error chain.
pub fn classify(e: &anyhow::Error) -> (ExitCode, String) {
    let mut code = ExitCode::Fatal;
    // Where a missing repository was looked for: a drive only where it is a path.
    let mut missing_at: Option<&str> = None;
    for cause in e.chain() {
        if let Some(RepoError::NoRepository(at)) = cause.downcast_ref::<RepoError>() {
            missing_at = Some(at);
        }
        if let Some(c) = cause.downcast_ref::<CliError>() {
            code = c.code;
            break;
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            code = repo_code(r);
            break;
        }
        if let Some(OpsError::Repo(r)) = cause.downcast_ref::<OpsError>() {
            code = repo_code(r);
            break;
        }
    }
    let msg = e
        .chain()
        .map(|c| c.to_string())
        .fold(String::new(), |acc, m| {
            if acc.is_empty() {
                m
            } else if acc.contains(&m) {
                acc
            } else {
                format!("{acc}: {m}")
            }
        });
    let msg = msg.replace('\n', " ");
    let msg = match code {
        ExitCode::WrongPassword => {
            format!("{msg} (check CAIRN_PASSWORD, --password-file or --password-command)")
        }
        ExitCode::NoRepository if missing_at.is_some_and(crate::location::is_remote) => {
            format!("{msg} (check the bucket and path; create one with `cairn init`)")
        }
        ExitCode::NoRepository => {
            format!("{msg} (is the drive mounted? create one with `cairn init`)")
        }
        _ => msg,
    };
    (code, msg)
}
