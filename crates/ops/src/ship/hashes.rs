//! `check --remote-hashes`: a ship destination's stored SHA1s against this repository's
//! files, without downloading anything.

use cairn_backend::Backend;
use cairn_repo::FileKind;

use super::listing;
use crate::OpsError;

#[derive(Clone, Debug, Default)]
pub struct HashReport {
    pub files_compared: u64,
    pub bytes_hashed: u64,
    pub problems: Vec<String>,
}

/// Compares the SHA1s a destination stores (B2 keeps one per file) with the source's
/// repository files, hashing the source only: nothing is downloaded. Drill and
/// verification records are left out (each side writes its own).
pub fn compare_hashes(src: &dyn Backend, dst: &dyn Backend) -> Result<HashReport, OpsError> {
    let have = listing(src)?;
    let there = listing(dst)?;
    let mut r = HashReport::default();
    for (name, o) in have
        .iter()
        .filter(|(n, _)| !FileKind::of(n).is_some_and(FileKind::is_record))
    {
        let Some(t) = there.get(name) else {
            r.problems
                .push(format!("{}/{name}: missing", dst.location()));
            continue;
        };
        if t.size != o.size {
            r.problems.push(format!(
                "{}/{name}: size {} differs from the local {}",
                dst.location(),
                t.size,
                o.size
            ));
            continue;
        }
        let Some(remote) = &t.sha1 else {
            r.problems.push(format!(
                "{}/{name}: the destination keeps no SHA1 for it",
                dst.location()
            ));
            continue;
        };
        let local =
            cairn_backend::object_sha1(src, name, o.size).map_err(cairn_repo::RepoError::from)?;
        r.files_compared += 1;
        r.bytes_hashed += o.size;
        if !local.eq_ignore_ascii_case(remote) {
            r.problems.push(format!(
                "{}/{name}: SHA1 {remote} differs from the local file's {local}",
                dst.location()
            ));
        }
    }
    Ok(r)
}
