//! find, diff, dump and stats on real snapshots.

use std::fs;

use crate::util::*;

fn two_snapshots(env: &Env) -> (std::path::PathBuf, String, String) {
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("docs/sub")).unwrap();
    fs::write(src.join("docs/report.pdf"), pseudo_random(1, 300_000)).unwrap();
    fs::write(src.join("docs/notes.txt"), b"notes").unwrap();
    fs::write(src.join("docs/sub/deep.txt"), b"deep").unwrap();
    fs::write(src.join("gone.txt"), b"bye").unwrap();
    std::os::unix::fs::symlink("docs/notes.txt", src.join("link")).unwrap();
    let a = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(src.join("gone.txt")).unwrap();
    fs::write(src.join("docs/notes.txt"), b"notes, edited").unwrap();
    fs::write(src.join("added.txt"), b"hello").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        src.join("docs/sub/deep.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let b = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    (src, a, b)
}

#[test]
fn find_diff_dump_stats() {
    let env = Env::new();
    let (src, a, b) = two_snapshots(&env);
    let s = src.display().to_string();

    let found: serde_json::Value =
        serde_json::from_str(&env.ok(&["find", "*.txt", "--json"])).unwrap();
    let first: Vec<&str> = found[0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        first,
        vec![
            format!("{s}/docs/notes.txt"),
            format!("{s}/docs/sub/deep.txt"),
            format!("{s}/gone.txt")
        ]
    );
    assert_eq!(found.as_array().unwrap().len(), 2);
    let only_b: serde_json::Value =
        serde_json::from_str(&env.ok(&["find", "gone.txt", "--snapshot", &b[..8], "--json"]))
            .unwrap();
    assert!(only_b.as_array().unwrap().is_empty());

    let d = json_last_line(&env.ok(&["diff", &a[..8], &b[..8], "--json"]));
    let mut changes: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        // Directories above the source (the test's own directory, which holds the cache)
        // change between the backups too; only the source's changes are asserted.
        .filter_map(|c| {
            Some((
                c["path"].as_str().unwrap().strip_prefix(&s)?.to_string(),
                c["change"].as_str().unwrap().to_string(),
            ))
        })
        .filter(|(p, _)| !p.is_empty() && p != "/")
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            ("/added.txt".into(), "added".into()),
            ("/docs/notes.txt".into(), "modified".into()),
            ("/docs/sub/deep.txt".into(), "metadata".into()),
            ("/gone.txt".into(), "removed".into()),
        ]
    );
    assert_eq!(d["files_added"], 1);
    assert_eq!(d["files_removed"], 1);

    let out = env
        .cmd()
        .arg("-r")
        .arg(env.repo())
        .args(["dump", "latest", &format!("{s}/docs/report.pdf")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, pseudo_random(1, 300_000));
    let tar = env
        .cmd()
        .arg("-r")
        .arg(env.repo())
        .args(["dump", "latest", &format!("{s}/docs")])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let x = env.path("x");
    fs::create_dir(&x).unwrap();
    let mut untar = std::process::Command::new("tar")
        .arg("-xf")
        .arg("-")
        .current_dir(&x)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        untar.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    }
    assert!(untar.wait().unwrap().success());
    assert_eq!(
        fs::read(x.join("report.pdf")).unwrap(),
        pseudo_random(1, 300_000)
    );
    assert_eq!(fs::read(x.join("sub/deep.txt")).unwrap(), b"deep");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(x.join("sub/deep.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = env.run(&["dump", "latest", &format!("{s}/link")]);
    assert_eq!(out.status.code(), Some(1));

    let st = json_last_line(&env.ok(&["stats", "--json"]));
    assert_eq!(st["snapshots"], 2);
    assert_eq!(st["total_file_count"], 8, "4 files in each snapshot");
    assert!(st["deduplication_ratio"].as_f64().unwrap() > 1.5, "{st}");
    let raw = json_last_line(&env.ok(&["stats", "--mode", "raw-data", "--json", &b[..8]]));
    assert_eq!(raw["mode"], "raw-data");
    assert!(raw["stored_size"].as_u64().unwrap() > 300_000);
    // -i: the case of the pattern does not matter; -O/-N: modification times.
    let paths = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["matches"].as_array().unwrap().iter())
            .map(|m| m["path"].as_str().unwrap().to_string())
            .collect()
    };
    let upper = json_last_line(&env.ok(&["find", "NOTES.TXT", "--json"]));
    assert!(paths(&upper).is_empty(), "case matters by default");
    let any_case =
        json_last_line(&env.ok(&["find", "-i", "NOTES.TXT", "--json", "--snapshot", &a[..8]]));
    assert_eq!(paths(&any_case), vec![format!("{s}/docs/notes.txt")]);
    set_mtime(&src.join("added.txt"), 1_000_000_000, 0);
    set_mtime(&src.join("docs/notes.txt"), 1_700_000_000, 0);
    let c = env.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = json_last_line(&env.ok(&[
        "find",
        "*.txt",
        "--snapshot",
        &c[..8],
        "--newest",
        "2010-01-01",
        "--json",
    ]));
    assert_eq!(paths(&old), vec![format!("{s}/added.txt")]);
    let mid = json_last_line(&env.ok(&[
        "find",
        "*.txt",
        "--snapshot",
        &c[..8],
        "--oldest",
        "2002-01-01",
        "--newest",
        "2024-01-01T00:00:00Z",
        "--json",
    ]));
    assert_eq!(paths(&mid), vec![format!("{s}/docs/notes.txt")]);
    let out = env.run(&["find", "x", "--oldest", "someday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid moment"), "{}", stderr(&out));
}

/// Completions as a user gets them: bash loads the script and completes `cairn ba` to
/// `backup`; zsh and fish scripts are produced; man pages for every command render.
#[test]
fn shell_completions_and_man_pages() {
    let env = Env::new();
    let bin = env!("CARGO_BIN_EXE_cairn");
    let script = format!(
        "source <({bin} completions bash) && complete -p cairn >/dev/null && COMP_WORDS=(cairn ba) && COMP_CWORD=1 && _cairn cairn ba cairn && printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.lines().any(|l| l == "backup"),
        "bash completed `cairn ba` to: {got:?} {}",
        stderr(&out)
    );
    for shell in ["zsh", "fish"] {
        let s = env.ok(&["completions", shell]);
        assert!(s.contains("backup") && s.contains("restore"), "{shell}");
    }
    let dir = env.path("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for page in [
        "cairn.1",
        "cairn-backup.1",
        "cairn-restore.1",
        "cairn-mount.1",
        "cairn-ship.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is a man page"
        );
    }
    let backup = fs::read_to_string(dir.join("cairn-backup.1")).unwrap();
    assert!(backup.contains("exclude"), "options are documented");
}

/// `latest` narrowed by --host, --tag and --path, as in restic: restore, ls, dump,
/// diff and find pick the latest snapshot of what the filters accept; a filter nothing
/// matches names itself in the error.
#[test]
fn latest_narrowed_by_host_tag_and_path() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("f");
    let s = src.to_str().unwrap();
    fs::write(&file, b"laptop, tagged").unwrap();
    env.backup(&[&src], &["--host", "laptop", "--tag", "daily"]);
    fs::write(&file, b"laptop, later").unwrap();
    env.backup(&[&src], &["--host", "laptop"]);
    fs::write(&file, b"desktop, last").unwrap();
    env.backup(&[&src], &["--host", "desktop"]);
    let f = file.to_str().unwrap();

    let dump = |extra: &[&str]| {
        let mut args = vec!["dump", "latest", f];
        args.extend_from_slice(extra);
        env.ok(&args)
    };
    assert_eq!(dump(&[]), "desktop, last");
    assert_eq!(dump(&["--host", "laptop"]), "laptop, later");
    assert_eq!(
        dump(&["--host", "laptop", "--tag", "daily"]),
        "laptop, tagged"
    );
    assert_eq!(dump(&["--path", s, "--host", "desktop"]), "desktop, last");

    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--host",
        "laptop",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(t.join(f.trim_start_matches('/'))).unwrap(),
        b"laptop, later"
    );
    let sub = env.path("sub");
    let spec = format!("latest:{s}");
    env.ok(&[
        "restore",
        &spec,
        "--tag",
        "daily",
        "--target",
        sub.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(sub.join("f")).unwrap(), b"laptop, tagged");

    let listing = env.ok(&["ls", "latest", "--host", "laptop", "--json"]);
    assert!(
        listing.contains("\"f\"") || listing.contains("/f"),
        "{listing}"
    );
    let d = env.ok(&["diff", "latest", "latest", "--host", "laptop"]);
    assert!(!d.contains("M "), "the same snapshot twice: {d}");
    let found = json_last_line(&env.ok(&["find", "f", "--host", "laptop", "--json"]));
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    // A filter no snapshot passes finds nothing, and still says so as JSON.
    let none = json_last_line(&env.ok(&["find", "f", "--host", "server", "--json"]));
    assert_eq!(none, serde_json::json!([]));

    let out = env.run(&["dump", "latest", f, "--host", "server"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("latest (host server)"),
        "{}",
        stderr(&out)
    );
}

/// A relative path (a restic habit) is resolved against the snapshot's backed-up
/// paths when that names one path; otherwise the error says paths are absolute and
/// which ones it tried.
#[test]
fn relative_paths_resolve_against_the_backed_up_paths() {
    let env = Env::new();
    let (src, _, _) = two_snapshots(&env);
    let s = src.display().to_string();
    assert_eq!(
        env.ok(&["dump", "latest", "docs/notes.txt"]),
        "notes, edited"
    );
    assert_eq!(
        env.ok(&["dump", "latest", "src/docs/notes.txt"]),
        "notes, edited"
    );
    let listing = env.ok(&["ls", "latest", "docs"]);
    assert!(
        listing.contains(&format!("{s}/docs/notes.txt")),
        "{listing}"
    );
    let t = env.path("t");
    env.ok(&["restore", "latest:docs", "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(t.join("sub/deep.txt")).unwrap(), b"deep");
    for args in [
        vec!["dump", "latest", "Documents"],
        vec!["ls", "latest", "Documents"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = stderr(&out);
        assert!(
            e.contains("paths inside a snapshot are absolute")
                && e.contains(&format!("{s}/Documents")),
            "{e}"
        );
    }
}
