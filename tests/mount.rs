//! `cairn mount` against the real kernel: the mounted snapshot equals a restore of it
//! byte for byte and metadata for metadata, random ranges read exactly, new snapshots
//! appear without remounting, SIGINT unmounts. Skipped (saying why) where the machine
//! has no /dev/fuse or no fusermount3; CI installs fuse3 and has /dev/fuse.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn fuse_available() -> bool {
    let has_bin = std::process::Command::new("fusermount3")
        .arg("-V")
        .output()
        .is_ok();
    if !Path::new("/dev/fuse").exists() || !has_bin {
        let why = if has_bin {
            "this machine has no /dev/fuse"
        } else {
            "fusermount3 is not installed (Debian package fuse3)"
        };
        assert!(
            std::env::var("CI").is_err() || Path::new("/dev/fuse").exists() && has_bin,
            "{why}: .ci/run must provide it"
        );
        eprintln!("skipped: {why}");
        return false;
    }
    true
}

fn is_mounted(p: &Path) -> bool {
    let p = fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*p.to_string_lossy()))
}

/// Starts `cmd mount MNT` (cmd: cairn with its repository) and waits until the kernel
/// shows the mount.
fn start(cmd: std::process::Command, mnt: &Path) -> Child {
    start_with(cmd, mnt, &[])
}

/// [`start`] with options after the mountpoint.
fn start_with(mut cmd: std::process::Command, mnt: &Path, extra: &[&str]) -> Child {
    fs::create_dir_all(mnt).unwrap();
    let child = cmd
        .arg("mount")
        .arg(mnt)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !is_mounted(mnt) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "not mounted after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A repository holding one snapshot of `src/a.txt` with `content`; returns `src`.
fn one_file_backed_up(env: &Env, content: &[u8]) -> std::path::PathBuf {
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), content).unwrap();
    env.backup(&[&src], &[]);
    src
}

/// Ctrl-C, as a terminal sends it.
fn sigint(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// SIGINT, then the process exits 0 and the mount is gone.
fn stop(mut child: Child, mnt: &Path) {
    sigint(&child);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "mount did not exit on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!is_mounted(mnt), "still mounted after SIGINT");
}

#[test]
fn mounted_snapshots_equal_restores_and_new_snapshots_appear() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    crate::roundtrip::build_rich_tree(&src.join("rich"));
    let big = pseudo_random(77, 24 << 20);
    fs::write(src.join("big.bin"), &big).unwrap();
    env.backup(&[&src], &["--tag", "first"]);
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    let mnt = env.path("mnt");
    let mut json = env.repo_cmd();
    json.arg("--json");
    let mut child = start(json, &mnt);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let mounted: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(mounted["message_type"], "mounted", "{line}");
    let mut top: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["hosts", "ids", "snapshots", "tags"]);
    let rel = src.strip_prefix("/").unwrap();
    // Byte for byte and metadata for metadata, hardlink structure included.
    assert_same_tree(&target.join(rel), &mnt.join("snapshots/latest").join(rel));
    // The same snapshot under ids/, hosts/ and tags/.
    let id = fs::read_dir(mnt.join("ids"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let time = fs::read_link(mnt.join("snapshots/latest")).unwrap();
    for dir in [
        mnt.join("ids").join(&id),
        mnt.join("tags/first").join(&time),
    ] {
        assert_eq!(
            fs::read(dir.join(rel).join("big.bin")).unwrap(),
            big,
            "{}",
            dir.display()
        );
    }
    // (Counted, not kept: a kept DirEntry holds the directory open and the mount busy.)
    assert_eq!(fs::read_dir(mnt.join("hosts")).unwrap().count(), 1);
    // Random ranges, crossing blob boundaries and the end of the file.
    let f = fs::File::open(mnt.join("snapshots/latest").join(rel).join("big.bin")).unwrap();
    let mut rng = 12345u64;
    for _ in 0..300 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (rng >> 16) % (big.len() as u64 + 1000);
        let len = 1 + ((rng >> 8) % 3_000_000) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).unwrap();
        let want = &big[(off as usize).min(big.len())..(off as usize + len).min(big.len())];
        assert!(n <= len);
        // A read may return less than asked; what it returns is exact.
        assert_eq!(&buf[..n], &want[..n], "range at {off}");
    }
    drop(f);

    // A new backup shows up while mounted.
    fs::write(src.join("later.txt"), b"added while mounted").unwrap();
    env.backup(&[&src], &[]);
    let t = Instant::now();
    loop {
        let n = fs::read_dir(mnt.join("snapshots")).unwrap().count();
        if n == 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the new snapshot did not appear ({n} entries)"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        fs::read(mnt.join("snapshots/latest").join(rel).join("later.txt")).unwrap(),
        b"added while mounted"
    );
    stop(child, &mnt);
}

#[test]
fn mount_without_fusermount_is_one_clear_line() {
    let env = Env::new();
    env.init();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let empty = env.path("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let out = env
        .repo_cmd()
        .env("PATH", &empty)
        .arg("mount")
        .arg(&mnt)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    if Path::new("/dev/fuse").exists() {
        assert!(
            err.contains("fusermount3") && err.contains("fuse3"),
            "{err}"
        );
    } else {
        assert!(err.contains("/dev/fuse"), "{err}");
    }
}

/// The same from a B2 repository (the emulator): trees and blobs come over HTTP.
#[test]
fn mount_a_b2_repository() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let b2 = |env: &Env| {
        let mut c = env.cmd();
        emu.credentials(&mut c).args(["-r", "b2:mount-bucket/r"]);
        c
    };
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/file.bin"), pseudo_random(5, 3_000_000)).unwrap();
    std::os::unix::fs::symlink("d/file.bin", src.join("link")).unwrap();
    assert!(b2(&env)
        .arg("init")
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    assert!(b2(&env)
        .arg("backup")
        .arg(&src)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let mnt = env.path("mnt");
    let child = start(b2(&env), &mnt);
    let target = env.path("restored");
    assert!(b2(&env)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let rel = src.strip_prefix("/").unwrap();
    assert_same_tree(&target.join(rel), &mnt.join("snapshots/latest").join(rel));
    stop(child, &mnt);
}

/// `mount --host`: only that host's snapshots are shown (restic's mount filters).
#[test]
fn mount_shows_only_the_snapshots_the_filters_accept() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src], &["--host", "laptop"]);
    env.backup(&[&src], &["--host", "desktop"]);
    let mnt = env.path("mnt");
    let child = start_with(env.repo_cmd(), &mnt, &["--host", "laptop"]);
    let hosts: Vec<String> = fs::read_dir(mnt.join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let ids = fs::read_dir(mnt.join("ids")).unwrap().count();
    stop(child, &mnt);
    assert_eq!(hosts, vec!["laptop".to_string()]);
    assert_eq!(ids, 1);
}

/// Issue 24: an ordinary user. Where the user may open /dev/fuse (distributions make
/// it crw-rw-rw-) the mount works through the setuid fusermount3, as with libfuse;
/// where not, one line names /dev/fuse and the fix (it used to be a bare "Permission
/// denied (os error 13)"). Runs as `nobody`, so only as root.
#[test]
fn mount_as_an_ordinary_user() {
    if !fuse_available() || !nix::unistd::geteuid().is_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let src = one_file_backed_up(&env, b"mine");
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // Everything the test made, open to nobody.
    let mut stack = vec![env.dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        let dir = p.is_dir();
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if dir { 0o777 } else { 0o666 }),
        )
        .unwrap();
        if dir {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    let as_nobody = || {
        let mut c = env.repo_cmd();
        c.uid(65534).gid(65534).env("HOME", env.dir.path());
        c
    };
    let device_opens = std::process::Command::new("test")
        .args(["-r", "/dev/fuse", "-a", "-w", "/dev/fuse"])
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap()
        .success();
    if device_opens {
        let child = start(as_nobody(), &mnt);
        let latest = mnt
            .join("snapshots/latest")
            .join(src.strip_prefix("/").unwrap());
        // Only the user who mounted it may look (no allow_other): read it as nobody.
        let read = std::process::Command::new("cat")
            .arg(latest.join("a.txt"))
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(read.stdout, b"mine", "{}", stderr(&read));
        stop(child, &mnt);
    } else {
        let out = as_nobody().arg("mount").arg(&mnt).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("may not open /dev/fuse") && err.contains("chmod 0666 /dev/fuse"),
            "{err}"
        );
        assert!(!is_mounted(&mnt));
    }
}

/// Ctrl-C while a program has a file open: a holder that lets go within a few seconds
/// (a file manager's look) no longer fails the unmount; one that keeps it open gets the
/// one line saying what to do, exit 1.
#[test]
fn ctrl_c_waits_a_moment_for_a_busy_mount() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let src = one_file_backed_up(&env, b"held");
    let mnt = env.path("mnt");
    let file = mnt
        .join("snapshots/latest")
        .join(src.strip_prefix("/").unwrap())
        .join("a.txt");
    // Let go after a second: the unmount is tried again and succeeds.
    let child = start(env.repo_cmd(), &mnt);
    let held = fs::File::open(&file).unwrap();
    sigint(&child);
    std::thread::sleep(Duration::from_secs(1));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!is_mounted(&mnt));
    // Kept open: a clear line and exit 1.
    let child = start(env.repo_cmd(), &mnt);
    let held = fs::File::open(&file).unwrap();
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a program still has it open"), "{err}");
    drop(held);
    let _ = std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&mnt)
        .status();
}
