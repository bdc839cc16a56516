//! The mapped index cache: used when it matches the index files, extended beside them
//! when files are added, rebuilt when they are replaced, and never trusted when it
//! does not verify.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_backend::{Backend, LocalBackend};
use cairn_format::{BlobId, BlobType, FileId, IndexFile, IndexPack, MarkedPack, PackEntry, PackId};
use cairn_repo::{FileKind, InitOptions, OpenOptions, Repository};

fn entry(id: [u8; 32], offset: u32) -> PackEntry {
    PackEntry {
        blob_type: BlobType::Data,
        compressed: true,
        id: BlobId(id),
        offset,
        length: 10,
        raw_length: 20,
    }
}

/// A pack numbered `n` with `blobs` blobs whose IDs derive from `n`.
fn pack(n: u32, blobs: u32) -> IndexPack {
    IndexPack {
        id: PackId(*blake3::hash(&n.to_le_bytes()).as_bytes()),
        size: 1000 + 10 * u64::from(blobs) + u64::from(n),
        blobs: (0..blobs).map(|i| entry(blob_id(n, i), i * 10)).collect(),
    }
}

fn blob_id(pack: u32, i: u32) -> [u8; 32] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&pack.to_le_bytes());
    b[4..].copy_from_slice(&i.to_le_bytes());
    *blake3::hash(&b).as_bytes()
}

fn save(repo: &Repository, f: &IndexFile) -> FileId {
    repo.save_file(FileKind::Index, &f.encode()).unwrap()
}

fn file(packs: Vec<IndexPack>) -> IndexFile {
    IndexFile {
        marked: Vec::new(),
        supersedes: vec![],
        packs,
    }
}

fn open(b: &Arc<dyn Backend>, pw: &[u8], cache: &Path) -> Repository {
    let opts = OpenOptions {
        index_cache: Some(cache.to_path_buf()),
        ..Default::default()
    };
    let repo = Repository::open_with(b.clone(), pw, &opts).unwrap();
    repo.load_index().unwrap();
    repo
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

/// Every blob of `packs` is found where its pack says, and nothing else is.
fn assert_finds(repo: &Repository, packs: &[IndexPack], absent: &[IndexPack]) {
    let ix = repo.index();
    for p in packs {
        for e in &p.blobs {
            let got = ix
                .get(&e.id)
                .unwrap_or_else(|| panic!("{} missing", e.id.to_hex()));
            assert_eq!((got.pack, got.entry), (p.id, *e));
        }
    }
    for p in absent {
        assert!(
            !ix.contains(&p.blobs[0].id),
            "a replaced file's blob is found"
        );
    }
    let mut ids: Vec<[u8; 32]> = ix.blobs().map(|b| b.entry.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        packs.iter().map(|p| p.blobs.len()).sum::<usize>()
    );
}

/// Positions for bitmaps over the index agree with the order of `blobs()`.
fn assert_positions(repo: &Repository) {
    let ix = repo.index();
    let mut n = 0;
    for (pos, first, b) in ix.blobs_with_first() {
        assert_eq!(pos, n);
        assert_eq!(ix.position(&b.entry.id), Some(first));
        assert_eq!(ix.blob_at(pos), Some(b));
        n += 1;
    }
    assert_eq!(n, ix.len());
}

struct Setup {
    _dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
    cache: PathBuf,
}

fn setup() -> Setup {
    std::env::set_var(cairn_repo::KDF_ENV, "1");
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let cache = dir.path().join("cache/index-cache");
    Setup {
        _dir: dir,
        backend,
        cache,
    }
}

#[test]
fn the_cache_is_used_extended_and_rebuilt_as_the_index_files_change() {
    let s = setup();
    let repo = Repository::init(s.backend.clone(), b"pw", &InitOptions::default()).unwrap();
    let mut packs: Vec<IndexPack> = (0..60).map(|n| pack(n, 40)).collect();
    let mut files = Vec::new();
    for chunk in packs.chunks(6) {
        files.push(save(&repo, &file(chunk.to_vec())));
    }
    // A marked pack, as prune leaves one: read, but never deduplicated against.
    let marked = pack(1000, 3);
    save(
        &repo,
        &IndexFile {
            marked: vec![MarkedPack {
                pack: marked.clone(),
                marked_millis: 1234,
            }],
            supersedes: vec![],
            packs: vec![],
        },
    );

    // First open builds the cache.
    let r = open(&s.backend, b"pw", &s.cache);
    assert!(r.index().is_mapped());
    assert_finds(&r, &[packs.clone(), vec![marked.clone()]].concat(), &[]);
    assert_eq!(r.index().marked(&marked.id), Some(1234));
    assert!(!r.index().stores(&marked.blobs[0].id));
    assert!(r.index().stores(&packs[0].blobs[0].id));
    let built = inode(&s.cache);
    assert_eq!(
        std::fs::metadata(&s.cache).unwrap().mode() & 0o777,
        0o600,
        "the cache is private"
    );

    // Unchanged: the same file serves, nothing is beside it.
    let r = open(&s.backend, b"pw", &s.cache);
    assert_eq!((inode(&s.cache), r.index().overlay_len()), (built, 0));

    // A backup adds an index file: it is loaded beside the cache, which stays.
    let added = pack(500, 7);
    save(&repo, &file(vec![added.clone()]));
    packs.push(added);
    let r = open(&s.backend, b"pw", &s.cache);
    assert_eq!((inode(&s.cache), r.index().overlay_len()), (built, 7));
    assert_finds(&r, &[packs.clone(), vec![marked.clone()]].concat(), &[]);
    assert_positions(&r);

    // A blob stored again in another pack (as beside a marked copy): its first
    // position is the mapped table's, for the copy beside the table too.
    let mut again = pack(501, 1);
    again.blobs[0].id = packs[3].blobs[5].id;
    let again_file = save(&repo, &file(vec![again.clone()]));
    let r = open(&s.backend, b"pw", &s.cache);
    assert_eq!(r.index().overlay_len(), 8);
    assert_positions(&r);
    let ix = r.index();
    let twice: Vec<(usize, usize)> = ix
        .blobs_with_first()
        .filter(|(_, _, b)| b.entry.id == again.blobs[0].id)
        .map(|(pos, first, _)| (pos, first))
        .collect();
    assert_eq!(twice.len(), 2);
    assert_eq!(twice[0].1, twice[0].0, "the table's copy comes first");
    assert_eq!(twice[1].1, twice[0].0);
    drop(ix);
    repo.remove_file(FileKind::Index, &again_file).unwrap();

    // Prune replaces files: the cache is built again without what they listed.
    let gone = packs.drain(..6).collect::<Vec<_>>();
    repo.remove_file(FileKind::Index, &files[0]).unwrap();
    let r = open(&s.backend, b"pw", &s.cache);
    assert_ne!(inode(&s.cache), built);
    assert_eq!(r.index().overlay_len(), 0);
    assert_finds(&r, &[packs.clone(), vec![marked.clone()]].concat(), &gone);
    assert_eq!(r.loaded_index_files().len(), 11);

    // Blobs this command stores are found beside the mapped table, and after merging.
    let (id, new) = r.save_blob(BlobType::Data, b"fresh").unwrap();
    assert!(new);
    r.flush().unwrap();
    r.save_index().unwrap();
    assert!(r.index().contains(&id));
    assert_eq!(r.load_blob(&id).unwrap(), b"fresh");
}

#[test]
fn a_cache_that_does_not_verify_is_rebuilt_never_used() {
    let s = setup();
    let repo = Repository::init(s.backend.clone(), b"pw", &InitOptions::default()).unwrap();
    let packs: Vec<IndexPack> = (0..20).map(|n| pack(n, 30)).collect();
    save(&repo, &file(packs.clone()));
    open(&s.backend, b"pw", &s.cache);
    let good = std::fs::read(&s.cache).unwrap();

    // Damage anywhere: header counts, an entry, the file list; and a truncated file.
    let len = good.len();
    for at in [20, 4096 + 40, len - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&s.cache, &bad).unwrap();
        let r = open(&s.backend, b"pw", &s.cache);
        assert_finds(&r, &packs, &[]);
        assert_eq!(std::fs::read(&s.cache).unwrap().len(), len, "rebuilt");
    }
    std::fs::write(&s.cache, &good[..len / 2]).unwrap();
    assert_finds(&open(&s.backend, b"pw", &s.cache), &packs, &[]);

    // Another repository's cache at the same place (a reused location): its entries
    // are not this repository's, and its MAC key is not this one's.
    let other_dir = tempfile::tempdir().unwrap();
    let other: Arc<dyn Backend> = Arc::new(LocalBackend::new(other_dir.path().join("repo")));
    let theirs = Repository::init(other.clone(), b"pw", &InitOptions::default()).unwrap();
    let their_packs = vec![pack(77, 5)];
    save(&theirs, &file(their_packs.clone()));
    assert_finds(&open(&other, b"pw", &s.cache), &their_packs, &packs);
    assert_finds(&open(&s.backend, b"pw", &s.cache), &packs, &their_packs);
}

/// A load that meets a damaged index file reports it and does not remember the result,
/// so the next load looks at the files again.
#[test]
fn a_damaged_index_file_is_reported_and_not_cached() {
    let s = setup();
    let repo = Repository::init(s.backend.clone(), b"pw", &InitOptions::default()).unwrap();
    let packs: Vec<IndexPack> = (0..4).map(|n| pack(n, 5)).collect();
    let files: Vec<FileId> = packs
        .iter()
        .map(|p| save(&repo, &file(vec![p.clone()])))
        .collect();
    let victim = FileKind::Index.file_name(&files[2]);
    let good = s.backend.read(&victim).unwrap();
    let mut bad = good.clone();
    bad[40] ^= 1;
    s.backend.remove(&victim).unwrap();
    s.backend.write(&victim, &bad, &Default::default()).unwrap();

    let opts = OpenOptions {
        index_cache: Some(s.cache.clone()),
        ..Default::default()
    };
    let r = Repository::open_with(s.backend.clone(), b"pw", &opts).unwrap();
    let errors = r.load_index_tolerant().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(r.index().is_mapped());
    assert_eq!(r.index().len(), 15);
    assert!(!s.cache.exists(), "a load with damage is not cached");
    assert!(r.load_index().is_err());

    s.backend.remove(&victim).unwrap();
    s.backend
        .write(&victim, &good, &Default::default())
        .unwrap();
    assert_finds(&open(&s.backend, b"pw", &s.cache), &packs, &[]);
    assert!(s.cache.exists());
}

/// Once the files beside the cache hold many entries, the cache is written again.
#[test]
fn many_entries_beside_the_cache_fold_into_it() {
    let s = setup();
    let repo = Repository::init(s.backend.clone(), b"pw", &InitOptions::default()).unwrap();
    let mut packs = vec![pack(0, 10)];
    save(&repo, &file(packs.clone()));
    open(&s.backend, b"pw", &s.cache);
    let built = inode(&s.cache);
    let big: Vec<IndexPack> = (1..=60).map(|n| pack(n, 3500)).collect();
    save(&repo, &file(big.clone()));
    packs.extend(big);
    let r = open(&s.backend, b"pw", &s.cache);
    assert_ne!(inode(&s.cache), built, "written again");
    assert_eq!(r.index().overlay_len(), 0);
    assert_finds(&r, &packs, &[]);
    let r = open(&s.backend, b"pw", &s.cache);
    assert_eq!(r.index().overlay_len(), 0);
}
