//! Secret environment variables (passwords, B2 application keys), moved out of the
//! process environment when cairn starts.
//!
//! Why: every child inherits the environment. `sh` for `--password-command`,
//! `fusermount3` for `mount`, and whatever comes later would all receive the repository
//! password and the B2 key, and a child's environment is readable by any process of the
//! same user. Taking the values out once, at start-up, covers every child without each
//! spawn site having to remember a list.

use std::collections::HashMap;
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// The variables cairn treats as secret.
pub const NAMES: &[&str] = &[
    "CAIRN_PASSWORD",
    "CAIRN_FROM_PASSWORD",
    "B2_APPLICATION_KEY",
    "B2_ACCOUNT_KEY",
];

static TAKEN: OnceLock<HashMap<&'static str, Zeroizing<String>>> = OnceLock::new();

/// Moves [`NAMES`] out of the environment into this process's memory. Call it first
/// thing in `main`, while the process has one thread: changing the environment races
/// with any other thread reading it. A value that is not UTF-8 counts as not set, as
/// it did when read with `std::env::var`.
pub fn take_from_environment() {
    let mut taken = HashMap::new();
    for &name in NAMES {
        if let Some(v) = std::env::var_os(name) {
            std::env::remove_var(name);
            if let Ok(s) = v.into_string() {
                taken.insert(name, Zeroizing::new(s));
            }
        }
    }
    let _ = TAKEN.set(taken);
}

/// The value of the secret variable `name`: from what [`take_from_environment`] took,
/// or, in a process that never called it (a library user, a unit test), from the
/// environment itself.
pub fn get(name: &str) -> Option<Zeroizing<String>> {
    match TAKEN.get() {
        Some(taken) => taken.get(name).cloned(),
        None => std::env::var(name).ok().map(Zeroizing::new),
    }
}
