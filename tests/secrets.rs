//! Passwords and secrets: every password source, the prompt on a terminal, empty
//! passwords refused, and no secret in output, files or children.

use std::fs;
use std::path::Path;

use crate::util::*;

#[test]
fn no_password_source_without_terminal_exits_1() {
    let env = Env::new();
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .arg("-r")
        .arg(env.repo())
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
    assert!(!env.repo().exists());
}

#[test]
fn password_file_and_command_sources() {
    let env = Env::new();
    let pwf = env.path("pw.txt");
    fs::write(&pwf, "from-file\nsecond line ignored\n").unwrap();
    // cairn with no CAIRN_PASSWORD: the password comes from where each call says.
    let without_password = || {
        let mut c = env.cmd();
        c.env_remove("CAIRN_PASSWORD").arg("-r").arg(env.repo());
        c
    };
    let out = without_password()
        .arg("--password-file")
        .arg(&pwf)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = without_password()
        .args(["--password-command", "echo from-file", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = without_password()
        .env("CAIRN_PASSWORD_FILE", &pwf)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = without_password()
        .args(["--password-command", "false", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Runs cairn under a pseudo-terminal (util-linux `script`), typing `lines` at its prompts.
fn on_terminal(env: &Env, args: &str, lines: &[&str]) -> std::process::Output {
    use std::io::Write;
    let cmd = format!(
        "{} -r {} {args}",
        env!("CARGO_BIN_EXE_cairn"),
        env.repo().display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .current_dir(env.dir.path())
        .env("CAIRN_INSECURE_TEST_KDF", "1");
    for k in [
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "CAIRN_PASSWORD_COMMAND",
        "CAIRN_REPOSITORY",
    ] {
        c.env_remove(k);
    }
    let mut p = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    for l in lines {
        std::thread::sleep(std::time::Duration::from_millis(400));
        let _ = writeln!(stdin, "{l}");
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    drop(stdin);
    p.wait_with_output().unwrap()
}

#[test]
fn password_prompt_on_a_terminal() {
    let env = Env::new();
    let out = on_terminal(&env, "init", &["typed secret", "typed secret"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enter password"));
    let out = on_terminal(&env, "snapshots", &["typed secret"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = on_terminal(&env, "snapshots", &["not it"]);
    assert_eq!(out.status.code(), Some(12));
    let env2 = Env::new();
    let out = on_terminal(&env2, "init", &["one", "two"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("do not match"));
    assert!(!env2.repo().exists());
}

/// Secrets never reach the output: a B2 run at `-vvv` that authorizes, uploads, fails on
/// a wrong password and on a bad key prints no password, no application key and no
/// auth token. Repository files and directories are the owner's only.
#[test]
fn secrets_stay_out_of_the_output_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let (key_id, key) = ("0051secretkeyid", "K005TopSecretApplicationKeyValue");
    let emu = Emulator::start(&env.path("emu"), &["--key-id", key_id, "--key", key]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let run = |creds: (&str, &str), password: &str, args: &[&str]| {
        let out = env
            .cmd()
            .env("B2_APPLICATION_KEY_ID", creds.0)
            .env("B2_APPLICATION_KEY", creds.1)
            .env("CAIRN_B2_ENDPOINT", &emu.url)
            .env("CAIRN_PASSWORD", password)
            .args(["-vvv", "-r", "b2:secret-bucket/r"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let mut all = String::new();
    for (creds, pw, args, code) in [
        ((key_id, key), PASSWORD, vec!["init"], Some(0)),
        (
            (key_id, key),
            PASSWORD,
            vec!["backup", src.to_str().unwrap()],
            Some(0),
        ),
        (
            (key_id, key),
            "the wrong password",
            vec!["snapshots"],
            Some(12),
        ),
        (
            (key_id, "K005NotTheKeyAtAllButSecretToo"),
            PASSWORD,
            vec!["snapshots"],
            Some(1),
        ),
    ] {
        let (got, out) = run(creds, pw, &args);
        assert_eq!(got, code, "{args:?}: {out}");
        all.push_str(&out);
    }
    assert!(
        all.len() > 1000,
        "-vvv printed the trace: {} bytes",
        all.len()
    );
    for secret in [
        PASSWORD,
        "the wrong password",
        key,
        "K005NotTheKeyAtAllButSecretToo",
        "emu_",
    ] {
        assert!(!all.contains(secret), "{secret:?} appears in the output");
    }

    env.init();
    env.backup(&[&src], &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The metadata cache of the B2 repository above: directories 0700, files 0600, no
    // temporary file left (issue 19.5).
    let cache = env.path("cache-default");
    for p in all_paths(&cache) {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
        assert!(!p.to_string_lossy().contains(".tmp-"), "{}", p.display());
    }
    assert!(all_paths(&cache).len() > 3, "the cache was used");
    assert_eq!(mode(&env.repo()), 0o700);
    for (p, _) in env.repo_listing() {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        assert_eq!(mode(p.parent().unwrap()), 0o700, "{}", p.display());
    }
}

/// Issue 19.5: an empty password is refused from every source, naming it, and nothing
/// is created (before, `init` with `CAIRN_PASSWORD=` made a repository; an empty one from
/// a command was reported as a wrong password).
#[test]
fn empty_passwords_are_refused_from_every_source() {
    let env = Env::new();
    let empty = env.path("empty.pw");
    fs::write(&empty, b"\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["init"], vec![("CAIRN_PASSWORD", "")], "CAIRN_PASSWORD"),
        (
            vec!["--password-file", empty.to_str().unwrap(), "init"],
            vec![],
            "password file",
        ),
        (
            vec!["--password-command", "true", "init"],
            vec![],
            "--password-command",
        ),
    ];
    for (args, vars, source) in cases {
        let mut c = env.cmd();
        c.env_remove("CAIRN_PASSWORD");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.arg("-r").arg(env.repo()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains("empty password") && e.contains(source), "{e}");
        assert!(!env.repo().exists(), "{args:?}: nothing created");
    }
    env.init();
    let out = env.run(&["key", "add", "--new-password-file", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty password"), "{}", stderr(&out));
    assert_eq!(
        json_last_line(&env.ok(&["key", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1,
        "no key was added"
    );
}

/// Issue 19.5: children inherit none of cairn's secrets. `main` takes the password and
/// B2 keys out of the environment before anything runs, so every child (the password
/// command's `sh` here; `fusermount3` when not root) starts without them.
#[test]
fn children_inherit_no_secrets() {
    let env = Env::new();
    env.init();
    let seen = env.path("child-env");
    let cmd = format!("env > '{}'; echo '{PASSWORD}'", seen.display());
    let out = env
        .cmd()
        .env("CAIRN_FROM_PASSWORD", "from-secret")
        .env("B2_APPLICATION_KEY", "b2-key-secret")
        .env("B2_ACCOUNT_KEY", "b2-account-secret")
        .arg("-r")
        .arg(env.repo())
        .args(["--password-command", &cmd, "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let child = fs::read_to_string(&seen).unwrap();
    assert!(
        child.contains("CAIRN_INSECURE_TEST_KDF=1"),
        "the child keeps the rest of the environment: {child}"
    );
    for secret in [
        "CAIRN_PASSWORD=",
        "CAIRN_FROM_PASSWORD=",
        "B2_APPLICATION_KEY=",
        "B2_ACCOUNT_KEY=",
        PASSWORD,
        "from-secret",
        "b2-key-secret",
        "b2-account-secret",
    ] {
        assert!(
            !child.contains(secret),
            "the password command inherited {secret}"
        );
    }
}
