use super::*;

#[test]
fn conformance() {
    let d = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(d.path().join("repo"));
    crate::run_conformance(&b).unwrap();
}

#[test]
fn write_never_creates_missing_root() {
    let d = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(d.path().join("unmounted"));
    let e = b
        .write("data/ab/x", b"1", &WriteOptions::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(!d.path().join("unmounted").exists());
    assert_eq!(b.list("").unwrap_err().kind, ErrorKind::NotFound);
}

/// Kept-open handles never serve what this backend replaced or removed.
#[test]
fn kept_open_files_follow_writes_and_removals() {
    let d = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(d.path());
    b.write("data/ab/p", b"first version", &WriteOptions::default())
        .unwrap();
    assert_eq!(b.read_range("data/ab/p", 0, 5).unwrap(), b"first");
    b.write("data/ab/p", b"SECOND", &WriteOptions::default())
        .unwrap();
    assert_eq!(b.read_range("data/ab/p", 0, 6).unwrap(), b"SECOND");
    assert_eq!(
        b.read_range("data/ab/p", 6, 1).unwrap_err().kind,
        ErrorKind::Corrupt,
        "the new, shorter size counts"
    );
    b.clone().remove("data/ab/p").unwrap();
    assert_eq!(
        b.read_range("data/ab/p", 0, 1).unwrap_err().kind,
        ErrorKind::NotFound,
        "a clone's removal counts too"
    );
    // More files than are kept open: every one still reads right.
    for i in 0..(KEEP_OPEN as u8 + 4) {
        b.write(&format!("data/ab/{i}"), &[i; 4], &WriteOptions::default())
            .unwrap();
    }
    for round in 0..2 {
        for i in 0..(KEEP_OPEN as u8 + 4) {
            assert_eq!(
                b.read_range(&format!("data/ab/{i}"), 1, 2).unwrap(),
                [i; 2],
                "round {round}"
            );
        }
    }
}

#[test]
fn temp_files_are_not_listed() {
    let d = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(d.path());
    fs::write(d.path().join(".x.tmp-0123456789abcdef"), b"half").unwrap();
    fs::write(d.path().join("user.tmp-file"), b"a user's file").unwrap();
    b.write("x", b"whole", &WriteOptions::default()).unwrap();
    let mut l: Vec<String> = b.list("").unwrap().into_iter().map(|o| o.name).collect();
    l.sort();
    assert_eq!(l, vec!["user.tmp-file", "x"]);
    // ...but listed as leftovers, and only those can be removed as such.
    fs::create_dir_all(d.path().join("data/ab")).unwrap();
    fs::write(
        d.path().join("data/ab/.abcd.tmp-fedcba9876543210"),
        b"killed",
    )
    .unwrap();
    let mut p: Vec<(String, u64)> = b
        .list_partial("")
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    p.sort();
    assert_eq!(
        p,
        vec![
            (".x.tmp-0123456789abcdef".to_string(), 4),
            ("data/ab/.abcd.tmp-fedcba9876543210".to_string(), 6)
        ]
    );
    assert_eq!(b.list_partial("data/").unwrap().len(), 1);
    assert_eq!(
        b.remove_partial("x").unwrap_err().kind,
        ErrorKind::InvalidName
    );
    assert_eq!(
        b.remove_partial("user.tmp-file").unwrap_err().kind,
        ErrorKind::InvalidName
    );
    assert_eq!(
        b.remove_partial("../.x.tmp-0123456789abcdef")
            .unwrap_err()
            .kind,
        ErrorKind::InvalidName
    );
    b.remove_partial("data/ab/.abcd.tmp-fedcba9876543210")
        .unwrap();
    assert_eq!(b.list_partial("").unwrap().len(), 1);
    assert!(d.path().join("x").exists() && d.path().join("user.tmp-file").exists());
}
