//! Where each kind of file lives in the backend.

use cairn_format::{FileId, PackId};

/// Where lock files live: the one kind a locked repository stores unlocked.
pub const LOCK_DIR: &str = "locks/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `config`: the one fixed name; it proves which repository a location holds.
    Config,
    /// `data/XX/<id>`: pack files.
    Pack,
    Key,
    Index,
    Snapshot,
    Lock,
    /// `drills/`: one record per `cairn drill`.
    Drill,
    /// `verified/`: when packs were last read back intact (rolling verification).
    Verified,
    Forgotten,
}

impl FileKind {
    /// Upload order for a copy of the repository (`ship`): everything a file points at
    /// is stored before it, so the copy is a readable repository at every moment. Deletions
    /// run it backwards ([`FileKind::ship_delete_order`]): snapshots go before the index
    /// files and packs they use. Locks are never copied.
    pub const SHIP_ORDER: [FileKind; 8] = [
        FileKind::Pack,
        FileKind::Index,
        FileKind::Key,
        FileKind::Config,
        FileKind::Forgotten,
        FileKind::Snapshot,
        FileKind::Drill,
        FileKind::Verified,
    ];

    /// The kinds a copy may delete, in the order it must: [`FileKind::SHIP_ORDER`]
    /// reversed, without the records (drills and verifications are merged, never
    /// deleted, since a drill or check run at the destination writes its own).
    pub fn ship_delete_order() -> impl Iterator<Item = FileKind> {
        FileKind::SHIP_ORDER
            .into_iter()
            .rev()
            .filter(|k| !k.is_record())
    }

    /// Drill and verification records: each copy keeps its own as well as those it is sent.
    pub fn is_record(self) -> bool {
        matches!(self, FileKind::Drill | FileKind::Verified)
    }

    /// The kind a storage name belongs to (by its directory; `config` by its name).
    pub fn of(name: &str) -> Option<FileKind> {
        if name == CONFIG {
            return Some(FileKind::Config);
        }
        const ALL: [FileKind; 8] = [
            FileKind::Pack,
            FileKind::Key,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
            FileKind::Drill,
            FileKind::Verified,
            FileKind::Forgotten,
        ];
        ALL.into_iter().find(|k| name.starts_with(k.dir()))
    }

    /// The listing prefix of the kind: its directory, or `config` itself.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => CONFIG,
            FileKind::Pack => DATA_DIR,
            FileKind::Key => "keys/",
            FileKind::Index => "index/",
            FileKind::Snapshot => "snapshots/",
            FileKind::Lock => LOCK_DIR,
            FileKind::Drill => "drills/",
            FileKind::Verified => "verified/",
            FileKind::Forgotten => "forgotten/",
        }
    }

    /// Associated data bound into each file's seal, so one kind cannot pose as another.
    pub fn seal_purpose(self) -> &'static [u8] {
        match self {
            FileKind::Config => CONFIG_PURPOSE,
            FileKind::Pack => PACK_HEADER_PURPOSE,
            FileKind::Key => b"cairn v1 key",
            FileKind::Index => b"cairn v1 index",
            FileKind::Snapshot => b"cairn v1 snapshot",
            FileKind::Lock => b"cairn v1 lock",
            FileKind::Drill => b"cairn v1 drill",
            FileKind::Verified => b"cairn v1 verified",
            FileKind::Forgotten => b"cairn v1 forgotten",
        }
    }

    /// The storage name of the file of this kind with this ID.
    pub fn file_name(self, id: &FileId) -> String {
        self.name(&id.to_hex())
    }

    /// The storage name of the file of this kind with this hex ID (packs fan out by
    /// their first two digits; `config` has no ID).
    pub fn name(self, hex: &str) -> String {
        match self {
            FileKind::Config => CONFIG.to_string(),
            FileKind::Pack => format!("{DATA_DIR}{}/{hex}", hex.get(..2).unwrap_or("")),
            _ => format!("{}{hex}", self.dir()),
        }
    }
}

/// Whether the metadata cache keeps `name`: files that never change once written and
/// that most commands read (config, keys, index files, snapshots). Packs are too big,
/// locks and records change.
pub fn cacheable(name: &str) -> bool {
    matches!(
        FileKind::of(name),
        Some(FileKind::Config | FileKind::Key | FileKind::Index | FileKind::Snapshot)
    )
}

pub const CONFIG: &str = "config";
pub const CONFIG_PURPOSE: &[u8] = b"cairn v1 config";
pub const PACK_HEADER_PURPOSE: &[u8] = b"cairn v1 pack header";
pub const DATA_DIR: &str = "data/";

/// `data/XX/<id>`: two hex digits of fan-out keep directories small on any filesystem.
pub fn pack_name(id: &PackId) -> String {
    FileKind::Pack.name(&id.to_hex())
}

/// The hex id at the end of a storage name, if it is one.
pub fn id_from_name(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next()?;
    (last.len() == 64 && last.bytes().all(|c| c.is_ascii_hexdigit())).then_some(last)
}

/// The hex ID of a file of `kind` whose name is exactly what this layout writes for it
/// (`locks/<id>`, `data/<id[..2]>/<id>`); anything else in a listing (a name planted
/// in a bucket, `locks/../../<id>`) is not a repository file and gets no ID.
pub fn canonical_id(kind: FileKind, name: &str) -> Option<&str> {
    let hex = id_from_name(name)?;
    (kind.name(hex) == name).then_some(hex)
}

/// The pack ID of a `data/XX/<id>` name.
pub fn pack_id_from_name(name: &str) -> Option<PackId> {
    name.strip_prefix(DATA_DIR)?;
    id_from_name(name)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_names() {
        for k in FileKind::SHIP_ORDER.into_iter().chain([FileKind::Lock]) {
            let name = k.name(&"ab".repeat(32));
            assert_eq!(FileKind::of(&name), Some(k), "{name}");
        }
        assert_eq!(FileKind::of("configx"), None);
        assert_eq!(FileKind::of("RECOVERY.txt"), None);
    }

    /// The order issue 18 found broken: a ship interrupted among its deletions must
    /// never leave a snapshot whose index files or packs are gone.
    #[test]
    fn deletions_take_snapshots_before_index_before_packs() {
        let order: Vec<FileKind> = FileKind::ship_delete_order().collect();
        let at = |k| order.iter().position(|x| *x == k).unwrap();
        assert!(at(FileKind::Snapshot) < at(FileKind::Index));
        assert!(at(FileKind::Forgotten) < at(FileKind::Index));
        assert!(at(FileKind::Index) < at(FileKind::Pack));
        assert!(
            !order.contains(&FileKind::Drill)
                && !order.contains(&FileKind::Verified)
                && !order.contains(&FileKind::Lock)
        );
        let up = FileKind::SHIP_ORDER;
        let at = |k| up.iter().position(|x| *x == k).unwrap();
        assert!(
            at(FileKind::Pack) < at(FileKind::Index)
                && at(FileKind::Index) < at(FileKind::Snapshot)
        );
        assert!(at(FileKind::Key) < at(FileKind::Config));
    }

    /// Issue 21.1: the layout is the one source of file names. A directory of the layout
    /// spelled in a string anywhere else in the code (tests aside) fails here; derive it
    /// from `FileKind` instead. The backend's conformance suite uses sample names.
    #[test]
    fn no_layout_literal_outside_the_layout_module() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dirs: Vec<&str> = [
            FileKind::Pack,
            FileKind::Key,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
            FileKind::Drill,
            FileKind::Verified,
            FileKind::Forgotten,
        ]
        .iter()
        .map(|k| k.dir())
        .collect();
        let mut sources = Vec::new();
        let mut stack = vec![root.join("crates"), root.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() && p.file_name().is_some_and(|n| n != "tests" && n != "target") {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push(p);
                }
            }
        }
        assert!(sources.len() > 20, "found the sources: {}", sources.len());
        let mut found = Vec::new();
        for p in sources {
            let shown = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            // Test modules of their own (`mod tests;`) hold sample names too.
            if shown.ends_with("repo/src/layout.rs")
                || shown.ends_with("backend/src/conformance.rs")
                || shown.ends_with("/tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules sit at the end of a file; their sample names are fine.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (i, literal) in line.split('"').enumerate() {
                    let inside = i % 2 == 1;
                    let hit = dirs.iter().any(|d| {
                        literal.starts_with(d)
                            || literal.contains(&format!(" {d}"))
                            || literal.contains(&format!("/{d}"))
                    });
                    if inside && hit {
                        found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "layout names outside layout.rs:\n{}",
            found.join("\n")
        );
    }
}
