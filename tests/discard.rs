//! The emulator's `--discard-above`, which `benches/ship_vs_rclone.sh` runs it with so
//! the benchmark measures the clients, not this machine's memory: large uploads are
//! checked and recorded but their bytes dropped, and what was dropped is never served
//! as if it were there.

use crate::util::*;

#[test]
fn discarded_uploads_are_recorded_checked_and_never_served() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &["--discard-above", "100000"]);
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), pseudo_random(5, 900_000)).unwrap();
    env.backup(&[&src], &[]);
    let dest = "b2:discard-bucket/r";
    let mut ship = emu.cairn_at(&env, env.repo().to_str().unwrap());
    let out = ship
        .args(["ship", dest, "--create-bucket"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Uploads were checked as usual: the destination's SHA1s are the local files'.
    let mut check = emu.cairn_at(&env, env.repo().to_str().unwrap());
    let out = check
        .args(["check", "--remote-hashes", dest])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Small files (config, keys, index, snapshot) are kept and read back...
    let out = emu.cairn_at(&env, dest).arg("snapshots").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ...a pack's bytes were dropped: reading one fails, naming why.
    let out = emu
        .cairn_at(&env, dest)
        .args(["dump", "latest", src.join("big").to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("not kept"), "{}", stderr(&out));
    assert!(out.stdout.len() < 900_000);
}
