//! The `cairn-b2-emulator` binary: all logic lives in the `cairn-b2-emulator` crate.
fn main() {
    std::process::exit(cairn_b2_emulator::cli::main());
}
