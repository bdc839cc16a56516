//! Cryptography for cairn, kept apart from I/O so it can be reviewed on one screen.
//!
//! Design decisions:
//! - One random [`MasterKey`] per repository, made of two independent 256-bit keys: one
//!   seals every stored byte (XChaCha20-Poly1305), the other keys BLAKE3 for blob IDs.
//!   Keeping them apart means a blob ID never leaks anything usable against the cipher.
//! - XChaCha20-Poly1305 takes a random 24-byte nonce per seal: with 192 bits, random
//!   nonces never collide in practice, so no nonce state has to be kept or synchronised.
//! - Every seal binds a short "purpose" string as associated data, so a ciphertext made
//!   for one role (a tree blob, an index file) cannot be passed off as another.
//! - Passwords never encrypt data; they wrap the master key through Argon2id, so a
//!   password change rewrites one small key file, never the repository.
//! - All key material lives in zeroizing containers and prints as `***`.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Bytes added to every sealed message: the nonce in front, the Poly1305 tag behind.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext was altered, truncated, sealed under another key or for another purpose.
    #[error("authentication failed: data is corrupt or was sealed with another key")]
    Authentication,
    #[error("sealed data too short ({0} bytes)")]
    TooShort(usize),
    #[error("invalid key derivation parameters: {0}")]
    KdfParams(String),
    #[error("operating system random number generator failed: {0}")]
    Random(String),
    #[error("key material has wrong length {0}")]
    KeyLength(usize),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::getrandom(buf).map_err(|e| CryptoError::Random(e.to_string()))
}

/// A 256-bit secret key, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    pub fn random() -> Result<Key, CryptoError> {
        let mut k = [0u8; KEY_LEN];
        fill_random(&mut k)?;
        Ok(Key(k))
    }

    pub fn from_slice(b: &[u8]) -> Result<Key, CryptoError> {
        let arr: [u8; KEY_LEN] = b.try_into().map_err(|_| CryptoError::KeyLength(b.len()))?;
        Ok(Key(arr))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Seals `plaintext` under this key: `nonce || ciphertext || tag`.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_parts(purpose, &[plaintext])
    }

    /// [`Key::seal`] of the concatenation of `parts`.
    pub fn seal_parts(&self, purpose: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CryptoError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut buf = Vec::with_capacity(len + SEAL_OVERHEAD);
        self.seal_parts_append(purpose, parts, &mut buf)?;
        Ok(buf)
    }

    /// [`Key::seal_parts`] appended to `out`: a pack's blobs are sealed straight into
    /// the pack's buffer, with one copy of the plaintext and no buffer of their own.
    pub fn seal_parts_append(
        &self,
        purpose: &[u8],
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let start = out.len();
        out.reserve(len + SEAL_OVERHEAD);
        out.resize(start + NONCE_LEN, 0);
        for p in parts {
            out.extend_from_slice(p);
        }
        self.seal_in_place(purpose, out, start)
    }

    /// Seals `buf[start + NONCE_LEN..]` where it lies, appending the tag: `NONCE_LEN`
    /// bytes of room for the nonce are at `start`. Lets a compressor write straight into
    /// the buffer that holds the sealed blob.
    pub fn seal_in_place(
        &self,
        purpose: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        if buf.len() < start + NONCE_LEN {
            return Err(CryptoError::TooShort(buf.len().saturating_sub(start)));
        }
        fill_random(&mut buf[start..start + NONCE_LEN])?;
        self.encrypt_behind_nonce(purpose, buf, start);
        Ok(())
    }

    /// Deterministic sealing for golden test vectors only; real callers use [`Key::seal`].
    pub fn seal_with_nonce(
        &self,
        purpose: &[u8],
        plaintext: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut buf = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        buf.extend_from_slice(nonce);
        buf.extend_from_slice(plaintext);
        self.encrypt_behind_nonce(purpose, &mut buf, 0);
        buf
    }

    /// `buf[start..]` is `nonce || plaintext`; becomes `nonce || ciphertext || tag`.
    fn encrypt_behind_nonce(&self, purpose: &[u8], buf: &mut Vec<u8>, start: usize) {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let (nonce, body) = buf[start..].split_at_mut(NONCE_LEN);
        // Encryption cannot fail for in-memory buffers below 256 GiB.
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(nonce), purpose, body)
            .unwrap_or_default();
        buf.extend_from_slice(&tag);
    }

    /// Opens what [`Key::seal`] produced for the same `purpose`.
    pub fn open(&self, purpose: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: purpose,
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }

    /// [`Key::open`] where the sealed bytes lie: returns the plaintext's range in
    /// `sealed`, which then holds it decrypted. Saves a buffer per blob when restoring.
    /// On failure `sealed` is left as it was.
    pub fn open_in_place(
        &self,
        purpose: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let end = sealed.len() - TAG_LEN;
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(end - NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                purpose,
                body,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(NONCE_LEN..end)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

/// The repository's secret: never stored in the clear, only wrapped by key files.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    encryption: Key,
    blob_id: Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Context string for deriving the chunker's gear table (BLAKE3 derive_key mode).
const GEAR_CONTEXT: &str = "cairn 2026-11 chunker gear table v1";

impl MasterKey {
    pub fn generate() -> Result<MasterKey, CryptoError> {
        Ok(MasterKey {
            encryption: Key::random()?,
            blob_id: Key::random()?,
        })
    }

    /// Serialized form wrapped inside key files: encryption key then blob-ID key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN));
        v.extend_from_slice(self.encryption.as_bytes());
        v.extend_from_slice(self.blob_id.as_bytes());
        v
    }

    pub fn from_bytes(b: &[u8]) -> Result<MasterKey, CryptoError> {
        if b.len() != 2 * KEY_LEN {
            return Err(CryptoError::KeyLength(b.len()));
        }
        Ok(MasterKey {
            encryption: Key::from_slice(&b[..KEY_LEN])?,
            blob_id: Key::from_slice(&b[KEY_LEN..])?,
        })
    }

    pub fn encryption(&self) -> &Key {
        &self.encryption
    }

    /// Keyed BLAKE3 of a blob's plaintext: equal plaintexts deduplicate, yet the storage
    /// provider cannot confirm a guess about what a blob holds.
    pub fn blob_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.blob_id.as_bytes(), plaintext).as_bytes()
    }

    /// [`MasterKey::blob_id`] of the concatenation of `parts`.
    pub fn blob_id_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(self.blob_id.as_bytes());
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }

    /// A key for authenticating files this machine keeps for itself (the index cache),
    /// one per `context`: a file another repository, or anyone without the key, wrote
    /// does not verify.
    pub fn local_mac_key(&self, context: &str) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(self.blob_id.as_bytes());
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// 256 secret 64-bit gear values for FastCDC, so chunk boundaries (and hence blob
    /// sizes the provider can see) depend on the repository's key, not only on content.
    pub fn gear_table(&self) -> Vec<u64> {
        let mut hasher = blake3::Hasher::new_derive_key(GEAR_CONTEXT);
        hasher.update(self.blob_id.as_bytes());
        let mut bytes = Zeroizing::new([0u8; 256 * 8]);
        hasher.finalize_xof().fill(bytes.as_mut());
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    }

    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.encryption.seal(purpose, plaintext)
    }

    pub fn seal_parts(&self, purpose: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CryptoError> {
        self.encryption.seal_parts(purpose, parts)
    }

    pub fn seal_parts_append(
        &self,
        purpose: &[u8],
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        self.encryption.seal_parts_append(purpose, parts, out)
    }

    pub fn seal_in_place(
        &self,
        purpose: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        self.encryption.seal_in_place(purpose, buf, start)
    }

    pub fn open(&self, purpose: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.encryption.open(purpose, sealed)
    }

    pub fn open_in_place(
        &self,
        purpose: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, CryptoError> {
        self.encryption.open_in_place(purpose, sealed)
    }
}

/// Argon2id cost parameters; stored in each key file so they can be raised later
/// without breaking old key files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// 32 MiB and 8 passes: about a quarter of a second on a laptop core, which is the
    /// price of every guess for an attacker with the storage. Keys made before 2026-11-22
    /// used 64 MiB and 3 passes; 32 MiB is restic's scrypt memory and keeps every
    /// command's peak memory below restic's, and 8 passes move more memory per guess
    /// (256 MiB against 192 MiB), which is what bounds a GPU attacker; one with less
    /// memory per guess can run twice as many guesses at once, so the two settings
    /// cost an attacker about the same. Old key files keep their stored parameters.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 32 * 1024,
        iterations: 8,
        parallelism: 1,
    };
    /// Only for test suites, which create hundreds of repositories.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
}

/// Stretches a password into a key-wrapping key with Argon2id.
pub fn derive_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Key, CryptoError> {
    let p = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| CryptoError::KdfParams(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; KEY_LEN];
    argon
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| CryptoError::KdfParams(e.to_string()))?;
    let key = Key(out);
    out.zeroize();
    Ok(key)
}

/// Unkeyed BLAKE3 of stored bytes: the name of every repository file, so anyone can
/// verify storage integrity without the password.
pub fn storage_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// [`storage_hash`] of the concatenation of `parts`, without concatenating them.
pub fn storage_hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixed_key() -> Key {
        Key::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn golden_seal_vector() {
        let sealed = fixed_key().seal_with_nonce(b"cairn test", b"hello cairn", &[9u8; 24]);
        assert_eq!(
            hex::encode(&sealed),
            GOLDEN_SEAL,
            "XChaCha20-Poly1305 output changed: the on-disk format would break"
        );
        assert_eq!(
            fixed_key().open(b"cairn test", &sealed).unwrap(),
            b"hello cairn"
        );
    }
    const GOLDEN_SEAL: &str =
        "090909090909090909090909090909090909090909090909d6178ee6138a1a039d60667038bc66f798b4d2bc005117f102304a";

    /// Opening in place gives what `open` gives; a flipped byte, a wrong purpose or a
    /// short input fail and leave the bytes untouched; seals appended behind other bytes
    /// open on their own.
    #[test]
    fn open_in_place_matches_open_and_fails_cleanly() {
        let k = fixed_key();
        let mut buf = b"prefix".to_vec();
        k.seal_parts_append(b"p", &[b"hello ", b"in place"], &mut buf)
            .unwrap();
        let mut sealed = buf[6..].to_vec();
        assert_eq!(k.open(b"p", &sealed).unwrap(), b"hello in place");
        for (purpose, flip) in [(&b"q"[..], None), (&b"p"[..], Some(30))] {
            let mut bad = sealed.clone();
            if let Some(i) = flip {
                bad[i] ^= 1;
            }
            let before = bad.clone();
            assert!(matches!(
                k.open_in_place(purpose, &mut bad),
                Err(CryptoError::Authentication)
            ));
            assert_eq!(bad, before);
        }
        assert!(matches!(
            k.open_in_place(b"p", &mut [0u8; 39]),
            Err(CryptoError::TooShort(39))
        ));
        let r = k.open_in_place(b"p", &mut sealed).unwrap();
        assert_eq!(&sealed[r], b"hello in place");
    }

    #[test]
    fn wrong_purpose_is_rejected() {
        let sealed = fixed_key().seal(b"a", b"data").unwrap();
        assert!(matches!(
            fixed_key().open(b"b", &sealed),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn master_key_roundtrip_and_debug_hides_secret() {
        let mk = MasterKey::generate().unwrap();
        let back = MasterKey::from_bytes(&mk.to_bytes()).unwrap();
        assert_eq!(mk, back);
        assert_eq!(format!("{mk:?}"), "MasterKey(***)");
        assert_eq!(mk.gear_table().len(), 256);
    }

    #[test]
    fn derive_key_depends_on_password_and_salt() {
        let p = KdfParams::INSECURE_FOR_TESTS;
        let a = derive_key(b"pw", b"saltsaltsaltsalt", p).unwrap();
        let b = derive_key(b"pw2", b"saltsaltsaltsalt", p).unwrap();
        let c = derive_key(b"pw", b"saltsaltsaltsal2", p).unwrap();
        assert!(a != b && a != c);
        assert!(a == derive_key(b"pw", b"saltsaltsaltsalt", p).unwrap());
    }

    proptest! {
        #[test]
        fn flipped_byte_is_rejected(data in proptest::collection::vec(any::<u8>(), 0..512), pos in any::<usize>(), bit in 0u8..8) {
            let k = fixed_key();
            let mut sealed = k.seal(b"p", &data).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(k.open(b"p", &sealed).is_err());
        }

        #[test]
        fn seal_open_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let k = fixed_key();
            prop_assert_eq!(k.open(b"p", &k.seal(b"p", &data).unwrap()).unwrap(), data);
        }
    }
}
