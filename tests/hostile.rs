//! Storage is hostile: edited, replayed, planted, deleted or replaced files are
//! detected, and garbage does not brick the repository.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Someone with the storage but not the key edits the repository: flipped bits and
/// truncations in every kind of file, packs swapped between names, a renamed snapshot.
/// The first command that reads the damaged file fails with a clear error (or, for a
/// damaged data pack, restores the rest and names the file); nothing panics, nothing is
/// written outside the restore target.
#[test]
fn hostile_edits_of_every_kind_of_file_are_detected() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 50, 700_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    let pristine = env.path("pristine");
    copy_tree(&env.repo(), &pristine);
    let files: Vec<PathBuf> = env.repo_listing().into_keys().collect();
    let rel = |p: &Path| p.strip_prefix(env.repo()).unwrap().to_path_buf();
    let of_kind = |k: &str| {
        files
            .iter()
            .filter(|p| rel(p).starts_with(k))
            .cloned()
            .collect::<Vec<_>>()
    };
    let packs = of_kind("data");
    let mut cases: Vec<(String, Box<dyn Fn(&Path)>)> = Vec::new();
    for kind in ["config", "keys", "index", "snapshots", "data"] {
        let victim = rel(&of_kind(kind)[0]);
        let v = victim.clone();
        cases.push((
            format!("flipped bit in {}", v.display()),
            Box::new(move |r: &Path| {
                let p = r.join(&v);
                let mut b = fs::read(&p).unwrap();
                let i = b.len() / 3;
                b[i] ^= 0x10;
                fs::write(&p, b).unwrap();
            }),
        ));
        let v = victim.clone();
        cases.push((
            format!("truncated {}", v.display()),
            Box::new(move |r: &Path| {
                let p = r.join(&v);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
        ));
    }
    let (a, b) = (rel(&packs[0]), rel(&packs[1]));
    cases.push((
        "two packs swapped".into(),
        Box::new(move |r: &Path| {
            let (pa, pb) = (r.join(&a), r.join(&b));
            let (da, db) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
            fs::write(&pa, db).unwrap();
            fs::write(&pb, da).unwrap();
        }),
    ));
    let s = rel(&of_kind("snapshots")[0]);
    cases.push((
        "snapshot renamed".into(),
        Box::new(move |r: &Path| {
            let p = r.join(&s);
            fs::rename(&p, p.with_file_name("00".repeat(32))).unwrap();
        }),
    ));

    for (what, edit) in &cases {
        let repo = env.path("hostile");
        let _ = fs::remove_dir_all(&repo);
        copy_tree(&pristine, &repo);
        edit(&repo);
        let target = env.path("target");
        let _ = fs::remove_dir_all(&target);
        let restore = env
            .cmd()
            .arg("-r")
            .arg(&repo)
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        let check = env
            .cmd()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data"])
            .output()
            .unwrap();
        for (cmd, out) in [("restore", &restore), ("check", &check)] {
            let err = stderr(out);
            assert!(!err.contains("panicked"), "{what}: {cmd} panicked: {err}");
            assert_ne!(
                out.status.code(),
                Some(0),
                "{what}: {cmd} did not notice: {err}"
            );
            assert!(
                err.lines()
                    .any(|l| l.starts_with("cairn: ") || l.starts_with("error: ")),
                "{what}: {cmd} gave no clear error: {err}"
            );
        }
        // Nothing outside the target: the environment holds only what the test made.
        let mut top: Vec<String> = fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        top.retain(|n| {
            ![
                "cache-default",
                "hostile",
                "pristine",
                "repo",
                "src",
                "target",
            ]
            .contains(&n.as_str())
        });
        assert!(top.is_empty(), "{what}: unexpected files {top:?}");
    }
}

/// An attacker replays an old index (the newer index file deleted): the snapshot that
/// needs the newer data fails to restore with a clear error, `check` names what is
/// missing, and `repair index` rebuilds the index from the packs themselves.
#[test]
fn a_replayed_old_index_is_detected_and_repaired() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("old"), pseudo_random(61, 600_000)).unwrap();
    env.backup(&[&src], &[]);
    let old_index: Vec<PathBuf> = env
        .repo_listing()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/index/"))
        .collect();
    fs::write(src.join("new"), pseudo_random(62, 600_000)).unwrap();
    env.backup(&[&src], &[]);
    for p in env
        .repo_listing()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("/index/") && !old_index.contains(p))
    {
        fs::remove_file(p).unwrap();
    }
    let target = env.path("t");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in the index") && stderr(&out).contains("repair index"),
        "says what and what to do: {}",
        stderr(&out)
    );
    env.ok(&["repair", "index"]);
    env.ok(&["check", "--read-data"]);
    let _ = fs::remove_dir_all(&target);
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// An attacker without the key swaps the sealed bytes of two tree blobs of the same
/// length inside a pack: each still decrypts, so only the blob ID (a keyed hash of the
/// plaintext) can tell. `ls`, `restore` and `check` each refuse with a clear error.
#[test]
fn a_tree_blob_replaced_by_another_valid_blob_is_detected() {
    use cairn_backend::Backend;
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    // Twenty directories whose trees differ only in a content ID: same plaintext length.
    for i in 0..20u64 {
        let d = src.join(format!("dir{i:02}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("x"), pseudo_random(i + 700, 1000)).unwrap();
        set_mtime(&d.join("x"), 1_700_000_000, 0);
        set_mtime(&d, 1_700_000_000, 0);
    }
    env.backup(&[&src], &[]);
    let backend: std::sync::Arc<dyn Backend> =
        std::sync::Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = cairn_repo::Repository::open(backend.clone(), PASSWORD.as_bytes()).unwrap();
    let mut swapped = false;
    for obj in backend.list("data/").unwrap() {
        let Some(pack) = cairn_repo::pack_id_from_name(&obj.name) else {
            continue;
        };
        let entries = repo.load_pack_header(&pack).unwrap();
        let trees: Vec<_> = entries
            .iter()
            .filter(|e| e.blob_type == cairn_format::BlobType::Tree)
            .collect();
        // Equal stored and plaintext lengths, so only the ID check can tell (trees are
        // JSON, so an inode or ctime with one more digit makes one a byte longer).
        let same = |a: &cairn_format::PackEntry, b: &cairn_format::PackEntry| {
            a.length == b.length && a.raw_length == b.raw_length && a.id != b.id
        };
        let pair = trees
            .iter()
            .enumerate()
            .find_map(|(i, a)| trees[i + 1..].iter().find(|b| same(a, b)).map(|b| (*a, *b)));
        if let Some((a, b)) = pair {
            let path = env.repo().join(&obj.name);
            let mut bytes = fs::read(&path).unwrap();
            let (ra, rb) = (
                a.offset as usize..(a.offset + a.length) as usize,
                b.offset as usize..(b.offset + b.length) as usize,
            );
            let (da, db) = (bytes[ra.clone()].to_vec(), bytes[rb.clone()].to_vec());
            bytes[ra].copy_from_slice(&db);
            bytes[rb].copy_from_slice(&da);
            fs::write(&path, bytes).unwrap();
            swapped = true;
            break;
        }
    }
    assert!(swapped, "no two tree blobs of one length in one pack");
    let target = env.path("t");
    for args in [
        vec!["ls", "-l", "latest"],
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["check"],
    ] {
        let out = env.run(&args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?} did not notice");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("does not match its id"),
            "{args:?} says what is wrong: {err}"
        );
    }
}

/// Someone with the storage deletes a snapshot file. Nothing in the repository can
/// show it, so this machine's list of snapshots it has seen does: every command warns
/// naming it, `check` fails, and `forget ID` acknowledges it. Snapshots removed by
/// `forget` and `tag` (on any machine: sealed `forgotten/` records) raise nothing.
#[test]
fn a_deleted_snapshot_is_noticed_and_can_be_acknowledged() {
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"one").unwrap();
    let first = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(src.join("a"), b"two").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("a"), b"three").unwrap();
    let third = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Removed on purpose: forget, and tag (which replaces a snapshot): no warning.
    env.ok(&["forget", &third[..8]]);
    env.ok(&["tag", "--add", "kept", &first[..8]]);
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
    env.ok(&["check"]);
    // Deleted behind cairn's back.
    let listed: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&env.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(listed.len(), 2);
    let victim = &listed[1];
    fs::remove_file(env.repo().join("snapshots").join(victim)).unwrap();
    for args in [vec!["snapshots"], vec!["ls", "latest"]] {
        let out = env.run(&args);
        assert!(
            stderr(&out).contains(&format!("snapshot {} was in", &victim[..8]))
                && stderr(&out).contains("cairn forget"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("vanished"), "{}", stderr(&out));
    // Acknowledged: quiet again, check passes.
    env.ok(&["forget", &victim[..8]]);
    let out = env.run(&["snapshots"]);
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
    env.ok(&["check"]);
    // A new repository where this one was (a reformatted drive) is another repository:
    // the old one's snapshots are not reported missing from it.
    fs::remove_dir_all(env.repo()).unwrap();
    env.ok(&["init"]);
    env.backup(&[&src], &[]);
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("was in"), "{}", stderr(&out));
}

/// A key file as someone with write access to `keys/` would plant it, named by its hash
/// and, by trying `created` values, listed before every other key file.
fn plant_key_file(env: &Env, memory_kib: u32, iterations: u32, salt_bytes: usize) -> String {
    let first_real = fs::read_dir(env.repo().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .min()
        .unwrap();
    for n in 0..10_000u32 {
        let body = serde_json::json!({
            "version": 1, "created": format!("2026-01-01T00:00:{:02}.{n:09}Z", n % 60), "hostname": "h", "username": "u",
            "kdf": "argon2id", "memory_kib": memory_kib, "iterations": iterations, "parallelism": 1,
            "salt": "ab".repeat(salt_bytes), "data": "cd".repeat(72),
        })
        .to_string();
        let hex = hex::encode(cairn_crypto::storage_hash(body.as_bytes()));
        if hex < first_real {
            fs::write(env.repo().join("keys").join(&hex), body).unwrap();
            return hex;
        }
    }
    panic!("no name sorted first");
}

/// Issue 19.2: a planted key file must not make every command slow and huge (1 GiB,
/// 40 passes made `snapshots` take 45.5 s at 1.03 GiB). Out-of-range ones are refused
/// by name; an expensive one within range is tried after the keys cairn writes.
#[test]
fn planted_key_files_cost_nothing() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.init();
    env.backup(&[&src], &[]);
    let huge = plant_key_file(&env, 1024 * 1024, 40, 16);
    let short_salt = plant_key_file(&env, 256, 1, 8);
    let dear = plant_key_file(&env, 512 * 1024, 4, 16);
    let start = std::time::Instant::now();
    let out = env.run(&["snapshots"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&huge) && e.contains("out of range"),
        "the huge key file is named: {e}"
    );
    assert!(e.contains(&short_salt) && e.contains("salt"), "{e}");
    assert!(
        took < std::time::Duration::from_millis(1000),
        "{took:?}: the 512 MiB key file was tried first ({dear})"
    );
    // `key list` still lists the real key and the one within range, naming the others.
    let out = env.run(&["key", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let keys = json_last_line(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
}

/// Issue 19.5: garbage in `forgotten/` or `locks/` does not brick the repository: every
/// command goes on (warning with the file's name), prune still takes its lock, and
/// `check` reports both files as errors.
#[test]
fn garbage_in_forgotten_and_locks_does_not_brick_the_repository() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.backup(&[&src], &[]);
    for dir in ["forgotten", "locks"] {
        fs::create_dir_all(env.repo().join(dir)).unwrap();
        fs::write(env.repo().join(dir).join("ab".repeat(32)), b"garbage").unwrap();
    }
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.backup(&[&src], &[]);
    // Prune's exclusive lock is not refused by the garbage lock; the file is named.
    let out = env.run(&["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("locks/{}", "ab".repeat(32))),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("unreadable lock") && e.contains("unreadable forgotten record"),
        "{e}"
    );
    env.ok(&["unlock", "--remove-all"]);
    fs::remove_file(env.repo().join("forgotten").join("ab".repeat(32))).unwrap();
    env.ok(&["check"]);
}

/// Issue 19.5: the local backend reads only regular files: a pack replaced by a symlink
/// to /dev/zero, or by a fifo nobody writes to, fails at once naming the file, in
/// bounded memory (before, reading the link never ended and the fifo blocked forever).
#[test]
fn a_pack_replaced_by_a_device_link_or_a_fifo_fails_at_once() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(i + 60, 700_000)).unwrap();
    }
    env.backup(&[&src], &[]);
    let packs = env.packs_largest_first();
    fs::remove_file(&packs[0]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &packs[0]).unwrap();
    fs::remove_file(&packs[1]).unwrap();
    nix::unistd::mkfifo(&packs[1], nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for args in [
        vec!["check", "--read-data"],
        vec!["restore", "latest", "--target", "t"],
    ] {
        let start = std::time::Instant::now();
        let mut c = wrapping_cairn(&env, "timeout");
        c.args(["60", env!("CARGO_BIN_EXE_cairn"), "-r"])
            .arg(env.repo())
            .args(&args);
        let out = c.output().unwrap();
        assert_ne!(out.status.code(), Some(124), "{args:?} hung");
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let e = stderr(&out);
        // check's listing leaves out what is not a regular file ("missing"); a read of
        // it says what is there instead.
        assert!(
            e.contains("symbolic link")
                || e.contains("not a regular file")
                || e.contains("missing (listed in the index)"),
            "{args:?}: {e}"
        );
        let name = packs[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            e.contains(&name[..16]) || args[0] == "restore",
            "{args:?}: {e}"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{args:?}"
        );
    }
}
