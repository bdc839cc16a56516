//! The `cairn` binary: all logic lives in `cairn-cli`; this file only hands over the process.
fn main() {
    std::process::exit(cairn_cli::main());
}
