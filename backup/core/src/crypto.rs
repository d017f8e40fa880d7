//! The encryption envelope and the key hierarchy.
//!
//! * Every stored object (and every blob inside a pack) is sealed as
//!   `version(1) = 0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305 ciphertext ‖ tag(16)`,
//!   with a fresh random nonce and a short associated-data string naming the
//!   object kind, so an index cannot be passed off as a snapshot.
//! * The repository's [`MasterKey`] is 64 random bytes: 32 for encryption and 32
//!   for keyed BLAKE3 blob ids (ids reveal nothing without the key).
//! * The master key is stored only wrapped, in `keys/<id>` records ([`KeyRecord`]),
//!   by a key-encryption key derived from a passphrase (Argon2id) or from a
//!   high-entropy key file / environment secret (BLAKE3 `derive_key`).
//!   Deleting every key record destroys the repository (crypto-shredding).

use base64::Engine as _;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, Id, Result};

/// Envelope version byte.
pub const ENVELOPE_V1: u8 = 1;
/// Bytes the envelope adds to a plaintext.
pub const OVERHEAD: usize = 1 + 24 + 16;

/// The repository master key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    enc: [u8; 32],
    id_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> MasterKey {
        MasterKey { enc: rand::random(), id_key: rand::random() }
    }

    /// Keyed BLAKE3 of a plaintext blob: its id.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, data).as_bytes())
    }

    /// Seal `plain` with associated data `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        seal_with(&self.enc, aad, plain)
    }

    /// Seal `prefix ‖ body` (same envelope as [`MasterKey::seal`] of the concatenation).
    pub fn seal_parts(&self, aad: &[u8], prefix: &[u8], body: &[u8]) -> Vec<u8> {
        seal_parts_with(&self.enc, aad, prefix, body)
    }

    /// Open a sealed object; `what` names it in errors.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.enc, aad, sealed, what)
    }


    fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.enc);
        b[32..].copy_from_slice(&self.id_key);
        b
    }

    fn from_bytes(b: &[u8]) -> Option<MasterKey> {
        if b.len() != 64 {
            return None;
        }
        let mut k = MasterKey { enc: [0; 32], id_key: [0; 32] };
        k.enc.copy_from_slice(&b[..32]);
        k.id_key.copy_from_slice(&b[32..]);
        Some(k)
    }
}

fn seal_with(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    seal_parts_with(key, aad, &[], plain)
}

/// Seal `prefix ‖ body` as one plaintext, written once into the envelope buffer and encrypted
/// there in place (no intermediate plaintext or ciphertext copies: blobs are megabytes).
fn seal_parts_with(key: &[u8; 32], aad: &[u8], prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = Vec::with_capacity(OVERHEAD + prefix.len() + body.len());
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(prefix);
    out.extend_from_slice(body);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, aad, &mut out[1 + 24..])
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&tag);
    out
}

/// Open into a buffer holding exactly the plaintext: one copy of the ciphertext, decrypted
/// in place (blobs are megabytes).
fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(Error::Integrity { what: format!("{what} ({} bytes, shorter than an envelope)", sealed.len()) });
    }
    if sealed[0] != ENVELOPE_V1 {
        return Err(Error::Version { what: what.into(), found: sealed[0] as u32, supported: ENVELOPE_V1 as u32 });
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XNonce::from_slice(&sealed[1..25]);
    let (ct, tag) = sealed[25..].split_at(sealed.len() - 25 - 16);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place_detached(nonce, aad, &mut buf, tag.into())
        .map_err(|_| Error::Integrity { what: what.into() })?;
    Ok(buf)
}

/// Where a key-encryption key comes from.
#[derive(Clone)]
pub enum Secret {
    /// A passphrase, stretched with Argon2id.
    Passphrase(String),
    /// 32 or more bytes of high entropy (a key file or an environment variable).
    KeyMaterial(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Passphrase(_) => f.write_str("Secret::Passphrase(<redacted>)"),
            Secret::KeyMaterial(_) => f.write_str("Secret::KeyMaterial(<redacted>)"),
        }
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        match self {
            Secret::Passphrase(p) => p.zeroize(),
            Secret::KeyMaterial(k) => k.zeroize(),
        }
    }
}

/// Text form of a key file: `conservator-key-v1:<64 hex digits>`.
pub const KEY_FILE_PREFIX: &str = "conservator-key-v1:";

impl Secret {
    /// A new random key file body.
    pub fn generate_key_file() -> String {
        format!("{KEY_FILE_PREFIX}{}\n", hex::encode(rand::random::<[u8; 32]>()))
    }

    /// Parse a key file (or the value of `CONSERVATOR_KEY`).
    pub fn parse_key_file(text: &str) -> Result<Secret> {
        let t = text.trim();
        let hexpart = t.strip_prefix(KEY_FILE_PREFIX).ok_or_else(|| {
            Error::malformed("key file", format!("it must start with {KEY_FILE_PREFIX:?}; create one with `conservator repo key generate`"))
        })?;
        let bytes = hex::decode(hexpart).map_err(|e| Error::malformed("key file", e))?;
        if bytes.len() < 32 {
            return Err(Error::malformed("key file", "it holds fewer than 32 bytes of key material"));
        }
        Ok(Secret::KeyMaterial(bytes))
    }
}

/// Argon2id cost parameters, stored in each passphrase key record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's Argon2id recommendation: 64 MiB, 3 passes, 1 lane (~0.1 s here with optimisations).
    fn default() -> Self {
        KdfParams { m_cost: 64 * 1024, t_cost: 3, p_cost: 1 }
    }
}

/// A `keys/<id>` record: the master key wrapped by one secret. Stored as JSON, unencrypted
/// (it holds nothing usable without the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Format version (1).
    pub version: u32,
    /// "passphrase" or "key-material".
    pub kind: String,
    /// A label the operator chose (e.g. "ops-2026", "daemon").
    pub label: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Argon2id parameters (passphrase keys only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// Salt, base64 (16 bytes).
    pub salt: String,
    /// The sealed master key, base64 (envelope over 64 bytes).
    pub wrapped: String,
}

const KEY_AAD: &[u8] = b"conservator key v1";

fn kek(secret: &Secret, salt: &[u8], kdf: Option<KdfParams>) -> Result<[u8; 32]> {
    match secret {
        Secret::Passphrase(p) => {
            let params = kdf.ok_or_else(|| Error::malformed("key record", "passphrase key without kdf parameters"))?;
            let argon = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32))
                    .map_err(|e| Error::Invalid { what: "kdf parameters".into(), detail: e.to_string() })?,
            );
            let mut out = [0u8; 32];
            argon
                .hash_password_into(p.as_bytes(), salt, &mut out)
                .map_err(|e| Error::Invalid { what: "passphrase".into(), detail: e.to_string() })?;
            Ok(out)
        }
        Secret::KeyMaterial(k) => {
            let mut h = blake3::Hasher::new_derive_key("conservator key-material v1");
            h.update(salt);
            h.update(k);
            Ok(*h.finalize().as_bytes())
        }
    }
}

impl KeyRecord {
    /// Wrap `master` with `secret`.
    pub fn wrap(master: &MasterKey, secret: &Secret, label: &str, kdf: KdfParams, created: &str) -> Result<KeyRecord> {
        let salt: [u8; 16] = rand::random();
        let (kind, kdf) = match secret {
            Secret::Passphrase(_) => ("passphrase", Some(kdf)),
            Secret::KeyMaterial(_) => ("key-material", None),
        };
        let mut k = kek(secret, &salt, kdf)?;
        let mut mb = master.to_bytes();
        let wrapped = seal_with(&k, KEY_AAD, &mb);
        k.zeroize();
        mb.zeroize();
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(KeyRecord {
            version: 1,
            kind: kind.into(),
            label: label.into(),
            created: created.into(),
            kdf,
            salt: b64.encode(salt),
            wrapped: b64.encode(wrapped),
        })
    }

    /// Try to unwrap the master key; `None` when the secret does not fit this record.
    pub fn unwrap_key(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        if self.version != 1 {
            return Err(Error::Version { what: "key record".into(), found: self.version, supported: 1 });
        }
        let matches_kind = matches!(
            (secret, self.kind.as_str()),
            (Secret::Passphrase(_), "passphrase") | (Secret::KeyMaterial(_), "key-material")
        );
        if !matches_kind {
            return Ok(None);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode(&self.salt).map_err(|e| Error::malformed("key record salt", e))?;
        let wrapped = b64.decode(&self.wrapped).map_err(|e| Error::malformed("key record", e))?;
        let mut k = kek(secret, &salt, self.kdf)?;
        let opened = open_with(&k, KEY_AAD, &wrapped, "key record");
        k.zeroize();
        match opened {
            Ok(mut bytes) => {
                let key = MasterKey::from_bytes(&bytes);
                bytes.zeroize();
                key.map(Some).ok_or_else(|| Error::malformed("key record", "wrapped key has the wrong length"))
            }
            Err(_) => Ok(None),
        }
    }

    /// Encode as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key records always serialise")
    }

    /// Decode from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<KeyRecord> {
        serde_json::from_slice(bytes).map_err(|e| Error::malformed("key record", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast() -> KdfParams {
        KdfParams { m_cost: 1024, t_cost: 1, p_cost: 1 }
    }

    #[test]
    fn passphrase_wraps_and_unwraps() {
        let mk = MasterKey::generate();
        let rec = KeyRecord::wrap(&mk, &Secret::Passphrase("correct horse".into()), "t", fast(), "now").unwrap();
        let back = KeyRecord::from_json(&rec.to_json()).unwrap();
        let got = back.unwrap_key(&Secret::Passphrase("correct horse".into())).unwrap().unwrap();
        assert_eq!(got.to_bytes(), mk.to_bytes());
        assert!(back.unwrap_key(&Secret::Passphrase("wrong".into())).unwrap().is_none());
        assert!(back.unwrap_key(&Secret::KeyMaterial(vec![7; 32])).unwrap().is_none());
    }

    #[test]
    fn key_file_wraps_and_unwraps() {
        let mk = MasterKey::generate();
        let file = Secret::generate_key_file();
        let s = Secret::parse_key_file(&file).unwrap();
        let rec = KeyRecord::wrap(&mk, &s, "daemon", fast(), "now").unwrap();
        assert_eq!(rec.kind, "key-material");
        assert!(rec.kdf.is_none());
        assert_eq!(rec.unwrap_key(&s).unwrap().unwrap().to_bytes(), mk.to_bytes());
        let other = Secret::parse_key_file(&Secret::generate_key_file()).unwrap();
        assert!(rec.unwrap_key(&other).unwrap().is_none());
        assert!(Secret::parse_key_file("hello").is_err());
    }

    #[test]
    fn secrets_do_not_leak_in_debug() {
        let s = Secret::Passphrase("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let mk = MasterKey::generate();
        assert_eq!(format!("{mk:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn aad_binds_the_object_kind() {
        let mk = MasterKey::generate();
        let sealed = mk.seal(b"index", b"payload");
        assert!(mk.open(b"snapshot", &sealed, "x").is_err());
        assert_eq!(mk.open(b"index", &sealed, "x").unwrap(), b"payload");
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mk = MasterKey::generate();
            let sealed = mk.seal(b"t", &data);
            prop_assert_eq!(sealed.len(), data.len() + OVERHEAD);
            prop_assert_eq!(mk.open(b"t", &sealed, "t").unwrap(), data);
        }

        #[test]
        fn sealing_in_parts_is_sealing_the_concatenation(prefix in proptest::collection::vec(any::<u8>(), 0..8), body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mk = MasterKey::generate();
            let sealed = mk.seal_parts(b"blob", &prefix, &body);
            prop_assert_eq!(sealed.len(), prefix.len() + body.len() + OVERHEAD);
            let mut whole = prefix.clone();
            whole.extend_from_slice(&body);
            prop_assert_eq!(mk.open(b"blob", &sealed, "t").unwrap(), whole);
            prop_assert!(mk.open(b"other", &sealed, "t").is_err());

        }

        #[test]
        fn any_flipped_bit_is_detected(data in proptest::collection::vec(any::<u8>(), 0..2048), pos in any::<usize>(), bit in 0u8..8) {
            let mk = MasterKey::generate();
            let mut sealed = mk.seal(b"t", &data);
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(mk.open(b"t", &sealed, "t").is_err());
        }

        #[test]
        fn truncation_is_detected(data in proptest::collection::vec(any::<u8>(), 1..2048), cut in any::<usize>()) {
            let mk = MasterKey::generate();
            let sealed = mk.seal(b"t", &data);
            let n = cut % sealed.len();
            prop_assert!(mk.open(b"t", &sealed[..n], "t").is_err());
        }
    }
}
