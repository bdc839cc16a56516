//! Backup then restore, compared byte for byte and metadata for metadata.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::*;

/// Builds the awkward tree the core issue lists: many small files, empty files and
/// directories, odd names, symlinks (one dangling), hardlinks, a fifo, every permission,
/// mtimes before 1970 and with nanoseconds, ownership and extended attributes.
pub fn build_rich_tree(root: &Path) -> bool {
    fs::create_dir_all(root).unwrap();
    // 10,000 small files in 100 directories.
    for d in 0..100 {
        let dir = root.join(format!("many/d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let n = d * 100 + f;
            fs::write(
                dir.join(format!("f{f:03}.txt")),
                format!("file {n}\n").repeat(n % 7 + 1),
            )
            .unwrap();
        }
    }
    fs::create_dir_all(root.join("empty-dir/nested-empty")).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(root.join("name with spaces"), b"spaces").unwrap();
    fs::write(root.join("new\nline"), b"newline").unwrap();
    fs::write(raw_path(root, b"latin1-\xe9t\xe9"), b"not utf-8").unwrap();
    fs::write(raw_path(root, &[b'x'; 255]), b"255 bytes").unwrap();
    fs::write(root.join("unicode-Ωmega-🚀"), b"unicode").unwrap();
    std::os::unix::fs::symlink("name with spaces", root.join("link-ok")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    std::os::unix::fs::symlink("empty-dir", root.join("link-dir")).unwrap();
    fs::write(root.join("hard-a"), b"shared content").unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    fs::create_dir(root.join("hl")).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hl/hard-c")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let perms = root.join("perms");
    fs::create_dir(&perms).unwrap();
    let extra = if is_root() { 0 } else { 0o400 };
    for mode in 0..0o1000u32 {
        let p = perms.join(format!("m{mode:03o}"));
        fs::write(&p, format!("{mode}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode | extra)).unwrap();
    }
    for (name, mode) in [("setuid", 0o4755), ("sticky-dir", 0o1777)] {
        let p = root.join(name);
        if name.ends_with("dir") {
            fs::create_dir(&p).unwrap();
        } else {
            fs::write(&p, b"x").unwrap();
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(root.join("old-1969"), b"pre-epoch").unwrap();
    set_mtime(&root.join("old-1969"), -86_400 * 200, 123_456_789);
    fs::write(root.join("old-1901"), b"very old").unwrap();
    set_mtime(&root.join("old-1901"), -2_000_000_000, 999_999_999);
    fs::write(root.join("nanos"), b"nanos").unwrap();
    set_mtime(&root.join("nanos"), 1_700_000_000, 1);
    set_mtime(&root.join("link-ok"), 1_600_000_000, 500);
    if is_root() {
        fs::write(root.join("owned"), b"owned by someone else").unwrap();
        nix::unistd::chown(&root.join("owned"), Some(1234.into()), Some(5678.into())).unwrap();
        nix::unistd::fchownat(
            None,
            &root.join("link-ok"),
            Some(4321.into()),
            Some(8765.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    let xattrs_ok = xattr::set(
        root.join("name with spaces"),
        "user.cairn.test",
        b"value\0with\xffbytes",
    )
    .is_ok();
    if xattrs_ok {
        xattr::set(root.join("empty-dir"), "user.dir", b"on a dir").unwrap();
    } else {
        eprintln!(
            "note: this filesystem has no user xattrs; extended attributes are not exercised here"
        );
    }
    // Directory mtimes last: creating entries above changed them.
    set_mtime(&root.join("empty-dir"), 1_000_000_000, 42);
    set_mtime(&root.join("many/d007"), 1_100_000_000, 7);
    xattrs_ok
}

#[test]
fn rich_tree_roundtrip() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    let xattrs_ok = build_rich_tree(&src);
    let summary = env.backup(&[&src], &[]);
    assert_eq!(summary["message_type"], "summary");
    assert!(summary["files_new"].as_u64().unwrap() > 10_500, "{summary}");
    assert_eq!(summary["errors"], 0);
    let target = env.path("target");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
        "--json",
    ]);
    let rs = json_last_line(&out);
    assert_eq!(rs["errors"], 0, "{rs}");
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &restored);

    // Without --json the counts add up: the files not read back are named as such.
    let again = env.path("target-text");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        again.to_str().unwrap(),
        "--verify",
    ]);
    let verified = out
        .lines()
        .find(|l| l.starts_with("verified"))
        .unwrap_or_default();
    let others = rs["files_restored"].as_u64().unwrap() - rs["files_verified"].as_u64().unwrap();
    assert!(others > 0, "the rich tree has symlinks: {rs}");
    assert!(
        verified.contains(&format!("the other {others} (symlinks")),
        "{verified}"
    );

    // SNAP:SUBPATH puts the directory's contents directly into the target.
    let sub_target = env.path("sub-target");
    let spec = format!("latest:{}", src.join("many").display());
    env.ok(&["restore", &spec, "--target", sub_target.to_str().unwrap()]);
    assert_same_tree(&src.join("many"), &sub_target);

    // A re-backup takes unchanged entries' extended attributes from the parent
    // snapshot; one changed, added or removed since (ctime moves) is read again.
    if xattrs_ok {
        xattr::set(src.join("name with spaces"), "user.cairn.test", b"changed").unwrap();
        xattr::set(src.join("many/d007/f001.txt"), "user.added", b"new").unwrap();
        xattr::remove(src.join("empty-dir"), "user.dir").unwrap();
        let again = env.backup(&[&src], &[]);
        assert!(
            again["files_unmodified"].as_u64().unwrap() > 10_000,
            "{again}"
        );
        let target2 = env.path("target2");
        env.ok(&["restore", "latest", "--target", target2.to_str().unwrap()]);
        assert_same_tree(&src, &target2.join(src.strip_prefix("/").unwrap()));
    }
}

#[test]
fn large_sparse_file_roundtrip() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("big.bin");
    {
        use std::io::Write;
        let mut f = fs::File::create(&big).unwrap();
        // 300 MiB: random and text runs, a repeated region, and a 64 MiB hole.
        for i in 0..20u64 {
            let chunk = if i % 2 == 0 {
                pseudo_random(i, 8 << 20)
            } else {
                format!("log line {i} ").repeat(800_000).into_bytes()[..8 << 20].to_vec()
            };
            f.write_all(&chunk).unwrap();
        }
        let rep = pseudo_random(99, 16 << 20);
        f.write_all(&rep).unwrap();
        f.write_all(&rep).unwrap();
        f.set_len(f.metadata().unwrap().len() + (64 << 20)).unwrap();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::End(0)).unwrap();
        f.write_all(&pseudo_random(7, 44 << 20)).unwrap();
    }
    assert_eq!(fs::metadata(&big).unwrap().len(), 300 << 20);
    let s = env.backup(&[&src], &[]);
    // The repeated 16 MiB region deduplicates; text compresses.
    assert!(
        s["data_added_packed"].as_u64().unwrap() < (300u64 << 20) - (16 << 20),
        "{s}"
    );
    let target = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    let restored = target.join(big.strip_prefix("/").unwrap());
    assert_same_tree(&src, restored.parent().unwrap());
    use std::os::unix::fs::MetadataExt;
    let blocks = fs::metadata(&restored).unwrap().blocks() * 512;
    assert!(
        blocks < (300u64 << 20) - (32 << 20),
        "hole was not restored sparse: {blocks} bytes allocated"
    );
}

/// Issue 23.3: zeros that share a chunk with data are holes too. A 64 MiB file with
/// data only at both ends restores with under 1 MiB allocated (the first and last
/// chunks each hold a few KiB of data and megabytes of zeros), and reads back equal.
#[test]
fn zeros_inside_a_chunk_with_data_restore_as_holes() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let f = src.join("ends.bin");
    {
        use std::os::unix::fs::FileExt;
        let file = fs::File::create(&f).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(&pseudo_random(3, 10_000), 0).unwrap();
        file.write_all_at(&pseudo_random(4, 10_000), (64 << 20) - 10_000)
            .unwrap();
        // And a little in the middle of a chunk, off any block boundary.
        file.write_all_at(b"middle", (20 << 20) + 123).unwrap();
    }
    env.backup(&[&src], &[]);
    let target = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    let restored = target.join(f.strip_prefix("/").unwrap());
    assert_eq!(fs::read(&restored).unwrap(), fs::read(&f).unwrap());
    use std::os::unix::fs::MetadataExt;
    let allocated = fs::metadata(&restored).unwrap().blocks() * 512;
    assert!(allocated < 1 << 20, "{allocated} bytes allocated");
}

/// The data segments of a file: (offset, length) runs SEEK_DATA/SEEK_HOLE report.
fn data_segments(f: &fs::File) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let size = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < size {
        let d = unsafe { libc::lseek(f.as_raw_fd(), at as libc::off_t, libc::SEEK_DATA) };
        if d < 0 {
            break;
        }
        let h = unsafe { libc::lseek(f.as_raw_fd(), d, libc::SEEK_HOLE) };
        out.push((d as u64, (h - d) as u64));
        at = h as u64;
    }
    out
}

/// A 20 GiB sparse file with a little data in three places: the backup reads only the
/// data (strace counts the bytes read from the file), the restore is sparse, and every
/// data segment of either file holds the same bytes in the other (the rest is holes in
/// both, so zeros). `restore --verify` re-hashes it all.
#[test]
fn sparse_20_gib_file_is_backed_up_without_reading_its_holes_and_restored_sparse() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("disk.img");
    let size = 20u64 << 30;
    {
        let f = fs::File::create(&big).unwrap();
        f.set_len(size).unwrap();
        for (off, seed) in [(0u64, 1u64), (7 << 30, 2), (size - (3 << 20), 3)] {
            f.write_all_at(&pseudo_random(seed, 3 << 20), off).unwrap();
        }
    }
    let have_strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok();
    if have_strace {
        let log = env.path("strace.log");
        let mut c = strace_cairn(
            &env,
            &[
                "-f",
                "-y",
                "-qq",
                "-e",
                "trace=read,pread64",
                "-o",
                log.to_str().unwrap(),
            ],
        );
        c.arg("-r").arg(env.repo()).arg("backup").arg(&src);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let name = big.to_string_lossy().into_owned();
        let read: u64 = fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&name))
            .filter_map(|l| {
                l.rsplit("= ")
                    .next()
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum();
        assert!(
            read < 64 << 20,
            "backup read {read} bytes of a file holding 9 MiB of data"
        );
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "strace is missing: .ci/run must install it"
        );
        env.backup(&[&src], &[]);
    }
    let target = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--verify",
        "--target",
        target.to_str().unwrap(),
    ]);
    let restored = target.join(big.strip_prefix("/").unwrap());
    let (a, b) = (
        fs::File::open(&big).unwrap(),
        fs::File::open(&restored).unwrap(),
    );
    assert_eq!(b.metadata().unwrap().len(), size);
    assert!(
        b.metadata().unwrap().blocks() * 512 < 256 << 20,
        "restored file is not sparse"
    );
    let mut segs = data_segments(&a);
    segs.extend(data_segments(&b));
    for (off, len) in segs {
        let (mut x, mut y) = (vec![0u8; len as usize], vec![0u8; len as usize]);
        a.read_exact_at(&mut x, off).unwrap();
        b.read_exact_at(&mut y, off).unwrap();
        assert!(x == y, "bytes differ in the segment at {off}");
    }
    let (ma, mb) = (a.metadata().unwrap(), b.metadata().unwrap());
    assert_eq!(
        (ma.mtime(), ma.mtime_nsec(), ma.mode()),
        (mb.mtime(), mb.mtime_nsec(), mb.mode())
    );
}
