//! Profiles as rustic users write them, and B2 credentials from the profile.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::*;

fn profile_cmd(env: &Env, conf: &std::path::Path, name: &str) -> std::process::Command {
    let mut c = env.cmd();
    c.env_remove("CAIRN_PASSWORD")
        .env("CAIRN_CONFIG_DIR", conf)
        .args(["--profile", name]);
    c
}

/// Issue 24: rustic's own example profile (`[repository]`, kebab-case keys, sources in
/// `[[backup.snapshots]]`) with only its paths changed drives backup and forget; what
/// cairn cannot carry over is an error naming it, never dropped.
#[test]
fn a_rustic_profile_needs_only_its_paths_changed() {
    let env = Env::new();
    let conf = env.path("conf");
    fs::create_dir_all(&conf).unwrap();
    let (home, etc) = (env.path("home"), env.path("etc"));
    fs::create_dir_all(home.join("skip")).unwrap();
    fs::create_dir_all(&etc).unwrap();
    fs::write(home.join("a.txt"), b"home file").unwrap();
    fs::write(home.join("skip/.nobackup"), b"").unwrap();
    fs::write(home.join("skip/b.txt"), b"excluded").unwrap();
    fs::write(etc.join("c.conf"), b"etc file").unwrap();
    fs::write(env.path("key-rustic"), PASSWORD).unwrap();
    fs::write(
        conf.join("local.toml"),
        format!(
            r#"[repository]
repository = {:?}
password-file = {:?}
no-cache = true

[forget]
keep-daily = 14
keep-weekly = 8
keep-tags = ["precious"]

[backup]
exclude-if-present = [".nobackup", "CACHEDIR.TAG"]
one-file-system = true

[[backup.snapshots]]
sources = [{:?}]

[[backup.snapshots]]
sources = [{:?}]
"#,
            env.repo(),
            env.path("key-rustic"),
            home,
            etc
        ),
    )
    .unwrap();
    env.init();
    let run = |args: &[&str]| {
        profile_cmd(&env, &conf, "local")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["backup", "--tag", "precious"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ls = String::from_utf8_lossy(&run(&["ls", "latest"]).stdout).into_owned();
    assert!(ls.contains("a.txt") && ls.contains("c.conf"), "{ls}");
    assert!(
        !ls.contains("b.txt"),
        "exclude-if-present was applied: {ls}"
    );
    let out = run(&["forget", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A rustic key cairn has no equivalent for: one line naming it.
    let text = fs::read_to_string(conf.join("local.toml")).unwrap();
    fs::write(
        conf.join("local.toml"),
        text.replace(
            "[[backup.snapshots]]\nsources",
            "[[backup.snapshots]]\ngit-ignore = true\nsources",
        ),
    )
    .unwrap();
    let out = run(&["backup"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("local.toml") && err.contains("git_ignore"),
        "{err}"
    );
    // An inline password is refused, pointing at password-file.
    fs::write(
        conf.join("local.toml"),
        format!(
            "[repository]\nrepository = {:?}\npassword = \"x\"\n",
            env.repo()
        ),
    )
    .unwrap();
    let out = run(&["snapshots"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("password-file"), "{err}");
    assert!(!err.contains("\"x\""), "{err}");
}

/// Issue 24: `[b2]` in the profile gives the key ID and the key (from key_file, or
/// inline in a profile only its owner may read), so `cairn --profile home ship` works
/// by hand without the environment file the systemd unit uses.
#[test]
fn b2_credentials_come_from_the_profile() {
    let env = Env::new();
    let emu = Emulator::start(&env.path("emu"), &[]);
    let conf = env.path("conf");
    fs::create_dir_all(&conf).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"offsite me").unwrap();
    fs::write(env.path("pw"), PASSWORD).unwrap();
    fs::write(env.path("b2.key"), "testkey\n").unwrap();
    let head = format!(
        "repository = {:?}\npassword_file = {:?}\n\n[ship]\ndestination = \"b2:profile-bucket/home\"\n\n",
        env.repo(),
        env.path("pw")
    );
    let write = |b2: &str, mode: u32| {
        let p = conf.join("home.toml");
        fs::write(&p, format!("{head}{b2}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    env.init();
    env.backup(&[&src], &[]);
    let run = |args: &[&str]| {
        profile_cmd(&env, &conf, "home")
            .args(args)
            .output()
            .unwrap()
    };
    write(
        &format!(
            "[b2]\nkey_id = \"testkeyid\"\nkey_file = {:?}\nendpoint = {:?}\n",
            env.path("b2.key"),
            emu.url
        ),
        0o644,
    );
    let out = run(&["ship", "--create-bucket"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = emu
        .cairn_at(&env, "b2:profile-bucket/home")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));

    // The key inline: refused while others may read the profile, used once it is 0600.
    let inline = format!(
        "[b2]\nkey_id = \"testkeyid\"\nkey = \"testkey\"\nendpoint = {:?}\n",
        emu.url
    );
    write(&inline, 0o644);
    let out = run(&["ship"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("chmod 600") && !err.contains("testkey\""),
        "{err}"
    );
    write(&inline, 0o600);
    let out = run(&["ship"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A wrong key from the profile is B2's refusal, named, not a fallback elsewhere.
    write(
        &inline.replace("key = \"testkey\"", "key = \"K00notthekey\""),
        0o600,
    );
    let out = run(&["ship"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("K00notthekey"), "{}", stderr(&out));
}
