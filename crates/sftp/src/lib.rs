//! `sftp:[USER@]HOST:PATH` repositories: a NAS, a friend's server, anything that
//! runs OpenSSH.
//!
//! Why the ssh binary and not a Rust SSH stack (or OpenDAL's sftp service, built on
//! the same client as here): the user's `~/.ssh/config` (ports, jump hosts, aliases),
//! agent, keys and known hosts work as they do for `ssh` itself, as with restic and
//! rclone; and cairn speaks SFTP itself over ssh's stdin and stdout, so it chooses how
//! a file is written. OpenDAL's service writes in place; here every file goes to a
//! temporary name, is flushed to the disk (`fsync@openssh.com`) and is renamed into
//! place atomically (`posix-rename@openssh.com`), or hard-linked where it must not
//! replace anything (`hardlink@openssh.com`, for locks): an interruption leaves a
//! leftover, never half a file under a repository name.

mod backend;
mod location;
pub mod testing;

pub use backend::SftpBackend;
pub use location::SftpLocation;
