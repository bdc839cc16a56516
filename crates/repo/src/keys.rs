//! Key files: one per password, each wrapping the same master key with Argon2id.

use zeroize::Zeroizing;

use cairn_backend::{Backend, WriteOptions};
use cairn_crypto::{derive_key, fill_random, KdfParams, MasterKey};
use cairn_format::{KeyFile, KeyId};

use crate::layout::{id_from_name, FileKind};
use crate::{sys, RepoError};

/// Set to `1` only by test suites: new key files then use trivial Argon2id costs so
/// hundreds of test repositories can be made quickly. Only builds with debug assertions
/// (`cargo test`, `cargo build`) honour it; a release build ignores it, so a stray
/// variable in a user's shell cannot weaken their key files.
pub const KDF_ENV: &str = "CAIRN_INSECURE_TEST_KDF";

const KEY_PURPOSE: &[u8] = b"cairn v1 master key";

#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: KeyId,
    pub created: String,
    pub hostname: String,
    pub username: String,
}

fn kdf_params() -> KdfParams {
    kdf_params_for(
        std::env::var(KDF_ENV).ok().as_deref(),
        cfg!(debug_assertions),
    )
}

fn kdf_params_for(env: Option<&str>, test_build: bool) -> KdfParams {
    if test_build && env == Some("1") {
        KdfParams::INSECURE_FOR_TESTS
    } else {
        KdfParams::DEFAULT
    }
}

fn crypto_err(e: cairn_crypto::CryptoError) -> RepoError {
    RepoError::Crypto(e)
}

/// Wraps `master` under `password` and stores the new key file.
pub(crate) fn add_key(
    backend: &dyn Backend,
    master: &MasterKey,
    password: &[u8],
) -> Result<KeyId, RepoError> {
    let params = kdf_params();
    let mut salt = [0u8; 16];
    fill_random(&mut salt).map_err(crypto_err)?;
    let wrapping = derive_key(password, &salt, params).map_err(crypto_err)?;
    let sealed = wrapping
        .seal(KEY_PURPOSE, &master.to_bytes())
        .map_err(crypto_err)?;
    let kf = KeyFile {
        version: 1,
        created: sys::now(),
        hostname: sys::hostname(),
        username: sys::username(),
        kdf: "argon2id".into(),
        memory_kib: params.memory_kib,
        iterations: params.iterations,
        parallelism: params.parallelism,
        salt: hex::encode(salt),
        data: hex::encode(sealed),
    };
    let bytes = kf.encode();
    let id = KeyId(cairn_crypto::storage_hash(&bytes));
    backend.write(
        &FileKind::Key.name(&id.to_hex()),
        &bytes,
        &WriteOptions::default(),
    )?;
    Ok(id)
}

fn load_key_file(backend: &dyn Backend, name: &str) -> Result<(KeyId, KeyFile), RepoError> {
    let bytes = backend.read(name)?;
    let id = KeyId(cairn_crypto::storage_hash(&bytes));
    if id_from_name(name) != Some(id.to_hex().as_str()) {
        return Err(RepoError::corrupt(
            name,
            "content does not match its name (hash mismatch)",
        ));
    }
    let kf = KeyFile::decode(&bytes).map_err(|e| RepoError::format(name, e))?;
    Ok((id, kf))
}

fn try_key(kf: &KeyFile, password: &[u8]) -> Option<MasterKey> {
    let salt = hex::decode(&kf.salt).ok()?;
    let sealed = Zeroizing::new(hex::decode(&kf.data).ok()?);
    let params = KdfParams {
        memory_kib: kf.memory_kib,
        iterations: kf.iterations,
        parallelism: kf.parallelism,
    };
    let wrapping = derive_key(password, &salt, params).ok()?;
    let raw = Zeroizing::new(wrapping.open(KEY_PURPOSE, &sealed).ok()?);
    MasterKey::from_bytes(&raw).ok()
}

/// Key files cairn itself writes or wrote: tried before any other.
fn written_by_cairn(kf: &KeyFile) -> bool {
    let p = (kf.memory_kib, kf.iterations, kf.parallelism);
    [
        KdfParams::DEFAULT,
        KdfParams::INSECURE_FOR_TESTS,
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        },
    ]
    .iter()
    .any(|d| (d.memory_kib, d.iterations, d.parallelism) == p)
}

/// Finds the key file this password opens. Anyone who can write to `keys/` can add key
/// files, so the order is chosen against a planted one: the key that opened this
/// location last time (`preferred`), then key files with the parameters cairn writes,
/// then the rest, cheapest first. Corrupt or out-of-range key files are skipped, named
/// in a warning (another key may still fit), and only reported if none does.
/// The master key of the first key file `password` opens whose master key `fits`
/// (opens this repository's config), trying keys in the order above.
pub(crate) fn open_master(
    backend: &dyn Backend,
    password: &[u8],
    preferred: Option<KeyId>,
    fits: &dyn Fn(&MasterKey) -> bool,
) -> Result<(MasterKey, KeyId), RepoError> {
    let names = backend.list(FileKind::Key.dir())?;
    let mut tried = 0;
    let mut corrupt = None;
    let mut keys = Vec::new();
    for obj in &names {
        match load_key_file(backend, &obj.name) {
            Ok(k) => keys.push(k),
            Err(e) => {
                tracing::warn!("skipping key file {}: {e}", obj.name);
                corrupt = Some(e);
            }
        }
    }
    keys.sort_by_key(|(id, kf)| {
        (
            Some(*id) != preferred,
            !written_by_cairn(kf),
            u64::from(kf.memory_kib) * u64::from(kf.iterations),
        )
    });
    let mut misfits = 0;
    for (id, kf) in &keys {
        tried += 1;
        if let Some(mk) = try_key(kf, password) {
            if fits(&mk) {
                return Ok((mk, *id));
            }
            tracing::warn!(
                "key file {} opens with this password but not this repository's config: skipped",
                FileKind::Key.name(&id.to_hex())
            );
            misfits += 1;
        }
    }
    if misfits > 0 {
        return Err(RepoError::corrupt(
            crate::layout::CONFIG,
            format!("does not open with any of the {misfits} key(s) this password opens"),
        ));
    }
    match (tried, corrupt) {
        (0, Some(e)) => Err(e),
        (0, None) => Err(RepoError::corrupt(
            FileKind::Key.dir(),
            "repository has no key files",
        )),
        _ => Err(RepoError::WrongPassword { tried }),
    }
}

pub(crate) fn list_keys(backend: &dyn Backend) -> Result<Vec<KeyInfo>, RepoError> {
    let mut out = Vec::new();
    for obj in backend.list(FileKind::Key.dir())? {
        match load_key_file(backend, &obj.name) {
            Ok((id, kf)) => out.push(KeyInfo {
                id,
                created: kf.created.to_rfc3339(),
                hostname: kf.hostname,
                username: kf.username,
            }),
            // A planted or damaged key file must not hide the others.
            Err(e) => tracing::warn!("skipping key file {}: {e}", obj.name),
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19.5: only test builds honour CAIRN_INSECURE_TEST_KDF; a release `cairn
    /// init` with it set still writes key files with the real costs.
    #[test]
    fn the_test_kdf_is_for_test_builds_only() {
        assert_eq!(
            kdf_params_for(Some("1"), true),
            KdfParams::INSECURE_FOR_TESTS
        );
        assert_eq!(kdf_params_for(Some("1"), false), KdfParams::DEFAULT);
        assert_eq!(kdf_params_for(Some("yes"), true), KdfParams::DEFAULT);
        assert_eq!(kdf_params_for(None, true), KdfParams::DEFAULT);
    }
}
