//! Restore options and hostile snapshots.

use std::fs;
use std::sync::Arc;

use cairn_format::{BlobType, Node, NodeType, Snapshot, Tree};

use crate::util::*;

fn tree_with_files(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("docs/deep")).unwrap();
    fs::create_dir_all(src.join("music")).unwrap();
    fs::write(src.join("docs/a.txt"), b"a").unwrap();
    fs::write(src.join("docs/deep/b.txt"), b"b").unwrap();
    fs::write(src.join("docs/c.log"), b"c").unwrap();
    fs::write(src.join("music/song.mp3"), b"la").unwrap();
    src
}

#[test]
fn include_and_exclude() {
    let env = Env::new();
    env.init();
    let src = tree_with_files(&env);
    env.backup(&[&src], &[]);
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        &format!("{}/docs", src.display()),
        "--exclude",
        "*.log",
    ]);
    let r = t.join(src.strip_prefix("/").unwrap());
    assert!(r.join("docs/a.txt").exists());
    assert!(r.join("docs/deep/b.txt").exists());
    assert!(!r.join("docs/c.log").exists());
    assert!(!r.join("music").exists());
}

#[test]
fn overwrite_modes_and_delete() {
    let env = Env::new();
    env.init();
    let src = tree_with_files(&env);
    env.backup(&[&src], &[]);
    let t = env.path("t");
    let spec = format!("latest:{}", src.display());
    env.ok(&["restore", &spec, "--target", t.to_str().unwrap()]);
    fs::write(t.join("docs/a.txt"), b"local edit").unwrap();
    fs::write(t.join("extra"), b"not in snapshot").unwrap();

    env.ok(&[
        "restore",
        &spec,
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "never",
    ]);
    assert_eq!(fs::read(t.join("docs/a.txt")).unwrap(), b"local edit");

    let out = env.ok(&[
        "restore",
        &spec,
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
        "--json",
    ]);
    let s = json_last_line(&out);
    assert_eq!(
        s["files_restored"], 1,
        "only the edited file is rewritten: {s}"
    );
    assert_eq!(fs::read(t.join("docs/a.txt")).unwrap(), b"a");
    assert!(t.join("extra").exists());

    env.ok(&[
        "restore",
        &spec,
        "--target",
        t.to_str().unwrap(),
        "--delete",
    ]);
    assert!(!t.join("extra").exists());
    assert_same_tree(&src, &t);
}

#[test]
fn dry_run_restores_nothing() {
    let env = Env::new();
    env.init();
    let src = tree_with_files(&env);
    env.backup(&[&src], &[]);
    let t = env.path("t");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(out.contains("would restore 4 files"), "{out}");
    assert!(!t.exists());
}

#[test]
fn ls_json_and_long() {
    let env = Env::new();
    env.init();
    let src = tree_with_files(&env);
    env.backup(&[&src], &[]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["ls", "latest", "--json"])).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let a = nodes
        .iter()
        .find(|n| n["path"].as_str().unwrap().ends_with("/docs/a.txt"))
        .unwrap();
    assert_eq!(a["type"], "file");
    assert_eq!(a["size"], 1);
    assert_eq!(v["snapshot"]["paths"][0], src.to_str().unwrap());
    let docs = format!("{}/docs", src.display());
    let listing = env.ok(&["ls", "latest", &docs]);
    assert_eq!(
        listing.lines().count(),
        3,
        "direct children only: {listing}"
    );
    let long = env.ok(&["ls", "--long", "latest", &format!("{docs}/a.txt")]);
    assert!(long.starts_with("-rw"), "{long}");
}

/// A repository written by an attacker who has the key (or a buggy client) must not make
/// restore write outside the target.
#[test]
fn hostile_names_are_refused() {
    let env = Env::new();
    env.init();
    std::env::set_var("CAIRN_INSECURE_TEST_KDF", "1");
    let backend: Arc<dyn cairn_backend::Backend> =
        Arc::new(cairn_backend::LocalBackend::new(env.repo()));
    let repo = cairn_repo::Repository::open(backend, PASSWORD.as_bytes()).unwrap();
    for evil in ["..", "a/../../escaped", "/abs"] {
        let mut f = Node::new("escaped".into(), NodeType::File);
        f.mode = 0o644;
        f.size = 4;
        let (blob, _) = repo.save_blob(BlobType::Data, b"evil").unwrap();
        f.content = vec![blob];
        let (inner, _) = repo
            .save_tree(&Tree {
                nodes: vec![f.clone()],
            })
            .unwrap();
        let mut d = Node::new(evil.into(), NodeType::Dir);
        d.mode = 0o755;
        d.subtree = Some(inner);
        let mut ok = Node::new("fine".into(), NodeType::File);
        ok.mode = 0o644;
        let (root, _) = repo.save_tree(&Tree { nodes: vec![d, ok] }).unwrap();
        repo.flush().unwrap();
        repo.save_index().unwrap();
        repo.save_snapshot(&Snapshot::new(
            chrono::Local::now().fixed_offset(),
            root,
            vec!["/x".into()],
            "evil".into(),
        ))
        .unwrap();
        let t = env.path("inner/target");
        let out = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
        assert_ne!(out.status.code(), Some(0), "{evil}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unsafe name"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !env.path("inner/escaped").exists()
                && !env.path("escaped").exists()
                && !std::path::Path::new("/abs").exists()
        );
        let ls = env.run(&["ls", "latest"]);
        assert_ne!(ls.status.code(), Some(0));
    }
}

/// Issue 19.5: a file already in the target that is a hardlink to a file outside it.
/// Restore truncated it in place, so the outside name was overwritten too; now the file
/// in the target is replaced and the outside one keeps its content.
#[test]
fn restore_over_a_hardlink_leaves_the_other_name_alone() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"from the snapshot").unwrap();
    env.backup(&[&src], &[]);
    let t = env.path("t");
    let inside = t.join(src.strip_prefix("/").unwrap()).join("f");
    fs::create_dir_all(inside.parent().unwrap()).unwrap();
    let outside = env.path("outside-the-target");
    fs::write(&outside, b"precious, elsewhere").unwrap();
    fs::hard_link(&outside, &inside).unwrap();
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(&inside).unwrap(), b"from the snapshot");
    assert_eq!(fs::read(&outside).unwrap(), b"precious, elsewhere");
}

/// Issue 19.5: below the target, restore names nothing by path. Every directory is
/// opened from its parent (`O_NOFOLLOW|O_DIRECTORY`) and every file, link, node and
/// metadata change goes through a descriptor, so a directory swapped for a symlink
/// mid-restore cannot carry writes elsewhere (read off the kernel with strace: no call
/// gets a path below the target). A symlink already in a directory's place is
/// replaced, and what it pointed at is untouched.
#[test]
fn restore_reaches_the_target_only_through_directory_descriptors() {
    let env = Env::new();
    env.init();
    let src = tree_with_files(&env);
    fs::write(src.join("docs/deep/linked"), b"two names").unwrap();
    fs::hard_link(src.join("docs/deep/linked"), src.join("music/linked-too")).unwrap();
    std::os::unix::fs::symlink("../docs/a.txt", src.join("music/link")).unwrap();
    nix::unistd::mkfifo(
        &src.join("music/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    fs::set_permissions(
        src.join("docs/deep"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    env.backup(&[&src], &[]);
    let t = env.path("t");
    let r = t.join(src.strip_prefix("/").unwrap());
    // A symlink where a directory goes, pointing at a directory outside the target.
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("a.txt"), b"outside, precious").unwrap();
    fs::create_dir_all(&r).unwrap();
    std::os::unix::fs::symlink(&outside, r.join("docs")).unwrap();
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIP the strace half: strace is not installed (CI installs it)");
        env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    } else {
        let log = env.path("restore.strace");
        let t_str = t.to_str().unwrap();
        for extra in [
            &[][..],
            &["--overwrite", "if-changed", "--verify", "--delete"][..],
        ] {
            let out = strace_cairn(
                &env,
                &[
                    "-f",
                    "-qq",
                    "-s",
                    "4096",
                    "-e",
                    "trace=%file",
                    "-o",
                    log.to_str().unwrap(),
                ],
            )
            .args([
                "-r",
                env.repo().to_str().unwrap(),
                "restore",
                "latest",
                "--target",
                t_str,
            ])
            .args(extra)
            .output()
            .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let trace = fs::read_to_string(&log).unwrap();
            let below: Vec<&str> = trace
                .lines()
                .filter(|l| l.contains(&format!("\"{t_str}/")))
                .collect();
            assert!(
                below.is_empty(),
                "paths below the target named to the kernel ({extra:?}):\n{}",
                below.join("\n")
            );
            assert!(
                trace.contains("O_NOFOLLOW"),
                "directories are opened without following links"
            );
        }
    }
    assert_eq!(
        fs::read(outside.join("a.txt")).unwrap(),
        b"outside, precious"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was written through the symlink"
    );
    assert!(fs::symlink_metadata(r.join("docs")).unwrap().is_dir());
    assert_eq!(fs::read(r.join("docs/a.txt")).unwrap(), b"a");
    assert_same_tree(&src, &r);
}

fn restore_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "restore"];
    all.extend_from_slice(args);
    json_last_line(&env.ok(&all))
}

/// Issue 20.3: `restore --delete` into the tree that holds the repository (a repository
/// in `~`, left out of the backup of `~`) deletes what the snapshot lacks, never the
/// repository or the cache, with or without `--exclude` naming it.
#[test]
fn restore_delete_never_removes_the_repository_it_reads() {
    let env = Env::new();
    let home = env.path("home");
    fs::create_dir_all(home.join("docs")).unwrap();
    fs::write(home.join("docs/a.txt"), b"a").unwrap();
    let repo = home.join("cairn-repo");
    let cache = home.join(".cache");
    let cairn = |args: &[&str]| {
        let mut c = env.cmd();
        c.arg("-r")
            .arg(&repo)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cairn(&["init"]);
    fs::create_dir_all(cache.join("keep")).unwrap();
    cairn(&[
        "backup",
        home.to_str().unwrap(),
        "--exclude",
        repo.to_str().unwrap(),
        "--exclude",
        cache.to_str().unwrap(),
    ]);
    fs::write(home.join("docs/new.txt"), b"not in the snapshot").unwrap();
    let spec = format!("latest:{}", home.display());
    for extra in [&[][..], &["--exclude", "cairn-repo"][..]] {
        let mut args = vec![
            "--json",
            "restore",
            &spec,
            "--target",
            home.to_str().unwrap(),
            "--delete",
        ];
        args.extend_from_slice(extra);
        let s = json_last_line(&cairn(&args));
        assert!(
            repo.join("config").exists(),
            "{extra:?}: the repository survives: {s}"
        );
        assert!(
            cache.join("keep").exists(),
            "{extra:?}: the cache survives: {s}"
        );
    }
    assert!(
        !home.join("docs/new.txt").exists(),
        "what the snapshot lacks is deleted"
    );
    assert_eq!(
        json_last_line(&cairn(&["--json", "snapshots"]))
            .as_array()
            .unwrap()
            .len(),
        1,
        "the repository still opens"
    );
    cairn(&["check"]);
}

/// Issue 20.3: `--delete` removes only below the backed-up paths and only what the
/// filters select; a dry run lists each deletion and counts files and directories apart.
#[test]
fn restore_delete_stays_inside_the_restored_paths_and_the_filters() {
    let env = Env::new();
    env.init();
    let live = env.path("data/live");
    fs::create_dir_all(live.join("docs")).unwrap();
    fs::write(live.join("docs/a.txt"), b"a").unwrap();
    fs::write(live.join("top.txt"), b"t").unwrap();
    env.backup(&[&live], &[]);
    let t = env.path("t");
    let r = t.join(live.strip_prefix("/").unwrap());
    let plant = || {
        for d in ["etc", "tmp/x"] {
            fs::create_dir_all(t.join(d)).unwrap();
            fs::write(t.join(d).join("keep"), b"outside the backed-up paths").unwrap();
        }
        fs::create_dir_all(r.parent().unwrap().join("beside")).unwrap();
        fs::write(r.parent().unwrap().join("beside/keep"), b"beside data/live").unwrap();
        fs::create_dir_all(r.join("newproject/src")).unwrap();
        fs::write(r.join("newproject/src/main.rs"), b"a week of work").unwrap();
        fs::write(r.join("newproject/notes"), b"n").unwrap();
        fs::create_dir_all(r.join("docs")).unwrap();
        fs::write(r.join("docs/extra.txt"), b"x").unwrap();
    };
    plant();
    let ts = t.to_str().unwrap();
    let outside_kept = |what: &str| {
        for p in ["etc/keep", "tmp/x/keep"] {
            assert!(
                t.join(p).exists(),
                "{what}: {p} is above the backed-up paths"
            );
        }
        assert!(
            r.parent().unwrap().join("beside/keep").exists(),
            "{what}: beside/keep is outside data/live"
        );
    };

    // --include docs: only among docs; newproject/ is not selected.
    let s = restore_json(
        &env,
        &["latest", "--target", ts, "--delete", "--include", "docs"],
    );
    outside_kept("--include docs");
    assert!(
        r.join("newproject/src/main.rs").exists(),
        "--include docs keeps newproject: {s}"
    );
    assert!(!r.join("docs/extra.txt").exists(), "{s}");
    assert_eq!(
        (s["files_deleted"].as_u64(), s["dirs_deleted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );

    // --exclude newproject keeps it too.
    plant();
    let s = restore_json(
        &env,
        &[
            "latest",
            "--target",
            ts,
            "--delete",
            "--exclude",
            "newproject",
        ],
    );
    outside_kept("--exclude newproject");
    assert!(r.join("newproject/src/main.rs").exists(), "{s}");
    assert!(!r.join("docs/extra.txt").exists(), "{s}");

    // A dry run lists every deletion, counts files and directories apart, deletes nothing.
    plant();
    let out = env.ok(&["restore", "latest", "--target", ts, "--delete", "--dry-run"]);
    assert!(
        out.contains(&format!(
            "would delete {}/ (2 files, 2 directories)",
            r.join("newproject").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "would delete {}",
            r.join("docs/extra.txt").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("would delete 3 files and 2 directories"),
        "{out}"
    );
    assert!(
        r.join("newproject/src/main.rs").exists() && r.join("docs/extra.txt").exists(),
        "a dry run deletes nothing"
    );

    // Without filters: everything below data/live the snapshot lacks, nothing above it.
    let s = restore_json(&env, &["latest", "--target", ts, "--delete"]);
    outside_kept("no filters");
    assert!(
        !r.join("newproject").exists() && !r.join("docs/extra.txt").exists(),
        "{s}"
    );
    assert_eq!(
        (s["files_deleted"].as_u64(), s["dirs_deleted"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    assert_eq!(s["deleted"].as_array().unwrap().len(), 2, "{s}");
    assert_same_tree(&live, &r);
}
