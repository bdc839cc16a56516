//! cairn's command line: clap definitions, password sources, output and exit codes.
//!
//! Everything a command does lives in `cairn-ops`; this crate parses, opens the
//! repository, calls one function and prints its summary, human or JSON. Errors are
//! mapped to the contract's exit codes in one place ([`exit`]).

mod args;
mod checked;
mod commands;
mod exit;
mod location;
mod output;
mod password;
mod profile;
mod repaired;
mod report;
mod seen;
mod shipped;
mod state;

pub use exit::ExitCode;

/// Runs cairn with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    // First, while this is the only thread: no child (a password command, fusermount3)
    // may inherit the password or the B2 key.
    cairn_backend::secret_env::take_from_environment();
    one_malloc_arena();
    let parsed = <args::Cli as clap::CommandFactory>::command()
        .try_get_matches()
        .and_then(|m| <args::Cli as clap::FromArgMatches>::from_arg_matches(&m).map(|c| (c, m)));
    let cli = match parsed {
        Ok((mut cli, m)) => match profile::apply(&mut cli, &m) {
            Ok(()) => cli,
            Err(e) => {
                eprintln!("cairn: {}", exit::classify(&e).1);
                return 1;
            }
        },
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
        }
    };
    init_tracing(&cli.global);
    handle_signals();
    match commands::run(cli) {
        Ok(code) => code as i32,
        Err(e) => {
            let (code, msg) = exit::classify(&e);
            eprintln!("cairn: {msg}");
            code as i32
        }
    }
}

fn init_tracing(g: &args::GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    // Libraries below cairn (OpenDAL's retries, rustls's handshake errors) speak only
    // from -v on: cairn reports what failed in its own one line, and their messages
    // carry request URLs a user did not ask to see.
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error,opendal=off,reqsign=off,rustls=off,rustls_platform_verifier=off",
        (_, 0) => "warn,opendal=off,reqsign=off,rustls=off,rustls_platform_verifier=off",
        (_, 1) => "info,opendal=warn,reqsign=warn,rustls=off,rustls_platform_verifier=off",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .try_init();
}

/// SIGINT, SIGTERM and SIGHUP are handled by one thread: every write to a repository is
/// atomic and ordered, so the only thing to tidy is this process's lock files; then
/// exit with 128 + the signal number (130 for Ctrl-C). The signals are blocked in all
/// other threads (the mask is inherited by threads spawned later).
fn handle_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            // A mount ends here: unmounted, it is the normal way out, not an interruption.
            if let Some(code) = commands::unmount_on_signal() {
                cairn_repo::release_held_locks();
                std::process::exit(code);
            }
            eprintln!("cairn: interrupted by {sig}; the repository stays consistent");
            cairn_repo::release_held_locks();
            std::process::exit(128 + sig as i32);
        }
    });
}

/// One glibc malloc arena for the whole process. Backup and restore allocate and free a
/// megabyte-sized buffer per chunk on every core; with glibc's default of up to eight
/// arenas per core each thread kept its own freed pages resident, so peak memory grew
/// with the run (512 MiB mixed first backup: 160 MiB peak, one arena: 130 MiB, no
/// slower; the big allocations pay for page copies, not for the lock).
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists; mallopt only
    // adjusts allocator tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
