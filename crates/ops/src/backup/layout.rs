//! The directories above the backed-up paths.
//!
//! `backup /home/me/docs /etc` stores a root tree holding `home` and `etc`, with `home`
//! holding `me` holding the real `docs`. Restore then recreates full paths, as restic
//! does. Intermediate directories carry their real metadata.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub enum Entry {
    /// A path the user named: archived in full.
    Real(PathBuf),
    /// A directory above named paths: only the listed children are archived.
    Above(PathBuf, Layout),
}

#[derive(Default)]
pub struct Layout {
    pub children: BTreeMap<OsString, Entry>,
    /// Set when `/` itself is backed up.
    pub root_is_real: bool,
}

impl Layout {
    /// `paths` are absolute and clean.
    pub fn new(paths: &[PathBuf]) -> Layout {
        let mut root = Layout::default();
        for p in paths {
            let comps: Vec<OsString> = p
                .components()
                .skip(1)
                .map(|c| c.as_os_str().to_owned())
                .collect();
            if comps.is_empty() {
                root.root_is_real = true;
                continue;
            }
            root.insert(Path::new("/"), &comps, p);
        }
        root
    }

    fn insert(&mut self, parent: &Path, comps: &[OsString], full: &Path) {
        let here = parent.join(&comps[0]);
        if comps.len() == 1 {
            // A named path replaces any intermediate entry: it is archived whole.
            self.children
                .insert(comps[0].clone(), Entry::Real(full.to_path_buf()));
            return;
        }
        let entry = self
            .children
            .entry(comps[0].clone())
            .or_insert_with(|| Entry::Above(here.clone(), Layout::default()));
        match entry {
            Entry::Real(_) => {} // already inside a named path
            Entry::Above(_, sub) => sub.insert(&here, &comps[1..], full),
        }
    }
}
