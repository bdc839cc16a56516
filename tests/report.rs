//! `cairn report`: one self-contained page, checked as written and as a real browser
//! (Debian's chromium, headless) loads it: no console errors, nothing fetched, and as
//! many chart points as the repository's known history has snapshots.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn count(html: &str, class: &str) -> usize {
    html.matches(&format!(r#"class="{class}""#)).count()
}

/// Headless chromium, or `None` (saying why) where it is not installed; CI installs it.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].into_iter().find_map(|b| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(b))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "chromium is not installed: .ci/run must provide it"
        );
        eprintln!("skipped the browser half: chromium is not installed (Debian package chromium)");
    }
    found
}

fn browser(bin: &Path, env: &Env, args: &[&str], page: &Path) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!(
            "--user-data-dir={}",
            env.path("chromium").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

#[test]
fn the_report_shows_a_known_history_in_a_real_browser() {
    let env = Env::new();
    env.init();
    let (a, b) = (env.path("laptop-home"), env.path("desk-docs"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    for i in 0..3u64 {
        fs::write(a.join(format!("f{i}")), pseudo_random(i, 50_000)).unwrap();
        env.backup(&[&a], &["--host", "laptop", "--tag", "<daily>"]);
    }
    for i in 0..2u64 {
        fs::write(b.join(format!("g{i}")), pseudo_random(10 + i, 70_000)).unwrap();
        env.backup(&[&b], &["--host", "desk"]);
    }
    let dest = env.path("usb-offsite");
    env.ok(&["ship", dest.to_str().unwrap(), "--create-bucket"]);
    env.ok(&["drill"]);
    env.ok(&["check", "--read-data"]);
    let page = env.path("report.html");
    env.ok(&["report", "--output", page.to_str().unwrap()]);
    let html = fs::read_to_string(&page).unwrap();

    // As written: five snapshots in two rows, every chart with a point per snapshot,
    // the ship, the drill and the check; nothing from elsewhere; names escaped.
    assert_eq!(count(&html, "snap"), 5, "timeline points");
    assert_eq!(count(&html, "size-point"), 5, "size points");
    assert_eq!(count(&html, "ratio-point"), 5, "ratio points");
    assert_eq!(count(&html, "added"), 5, "table rows");
    assert_eq!(count(&html, "ship"), 1);
    assert!(
        html.contains("laptop: ") && html.contains("desk: "),
        "rows by host"
    );
    assert!(html.contains("usb-offsite"));
    assert!(html.contains("Last passing drill"));
    assert!(html.contains("no errors"));
    assert!(html.contains("&lt;daily&gt;") && !html.contains("<daily>"));
    assert_eq!(count(&html, "verified"), 1, "the check's verified packs");
    for outside in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
    assert!(!html.contains(PASSWORD));

    let Some(bin) = chromium() else { return };
    // Loaded: no console message at all (errors, CSP violations), and the DOM as the
    // browser built it has the same points; the script ran (times made local).
    let out = browser(&bin, &env, &["--dump-dom"], &page);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console: {console:#?}");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(count(&dom, "snap"), 5, "timeline points in the DOM");
    assert_eq!(count(&dom, "size-point"), 5);
    assert_eq!(count(&dom, "ratio-point"), 5);
    assert!(dom.contains(r#"data-local="1""#), "the page's script ran");
    // A screenshot for people to look at, kept by CI under target/.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let out = browser(
        &bin,
        &env,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1800",
            "--hide-scrollbars",
        ],
        &page,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        fs::metadata(&shot).unwrap().len() > 10_000,
        "an empty screenshot"
    );
}

/// A repository on B2 is itself the offsite copy: the page says so rather than
/// warning that it was never shipped.
#[test]
fn the_report_of_a_b2_repository() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let b2 = |args: &[&str]| {
        let out = emu
            .cairn_at(&env, "b2:report-bucket/r")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    };
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"offsite").unwrap();
    b2(&["init"]);
    b2(&["backup", src.to_str().unwrap()]);
    let page = env.path("b2.html");
    b2(&["report", "-o", page.to_str().unwrap()]);
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("itself an offsite copy"), "{html}");
    assert!(!html.contains("Never shipped"));
    assert_eq!(count(&html, "snap"), 1);
}
