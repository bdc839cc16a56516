//! All CLI-level tests in one binary (as ripgrep does): they run the real `cairn`
//! executable against real repositories in scratch directories.

mod util;

mod append_only;
mod b2;
mod b2cli;
mod backup;
mod browse;
mod concurrency;
mod crash;
mod daily;
mod discard;
mod drill;
mod emulator;
mod errors;
mod golden;
mod hostile;
mod json;
mod keys;
mod locked_repo;
mod maintenance;
mod mount;
mod object_lock;
mod profiles;
mod report;
mod restore;
mod roundtrip;
mod s3;
mod s3_sync;
mod secrets;
mod sftp;
mod ship;
mod sync;
