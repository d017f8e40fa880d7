//! Blobs: chunks of file/stream data and tree nodes, compressed when it pays and sealed.
//!
//! Plaintext of a sealed blob: `flag(1) ‖ payload`, flag 0 = stored raw, 1 = zstd frame.
//! Associated data: `b"blob" ‖ kind(1)`. The blob id is the keyed BLAKE3 of the
//! *uncompressed* content, so identical content dedups whatever its compression.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::{Error, Id, Result};

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// File or stream content.
    Data = 0,
    /// An encoded tree (directory listing) or stream content list.
    Tree = 1,
}

impl BlobKind {
    fn aad(self) -> [u8; 5] {
        [b'b', b'l', b'o', b'b', self as u8]
    }
}

/// zstd level used for compressible blobs.
pub const ZSTD_LEVEL: i32 = 3;

const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;

/// A blob ready to be appended to a pack.
#[derive(Debug)]
pub struct EncodedBlob {
    /// Keyed id of the plaintext.
    pub id: Id,
    /// Kind.
    pub kind: BlobKind,
    /// Envelope bytes.
    pub sealed: Vec<u8>,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Whether zstd was applied.
    pub compressed: bool,
}

/// Whether `data` looks worth compressing: zstd level 1 on a 16 KiB sample from the
/// middle must save at least 5 %. JPEG/TIFF/MP4 originals fail this at once, so we
/// never spend a full compression on them.
pub fn looks_compressible(data: &[u8]) -> bool {
    if data.len() < 64 {
        return false;
    }
    let n = data.len().min(16 * 1024);
    let start = (data.len() - n) / 2;
    let sample = &data[start..start + n];
    match zstd::bulk::compress(sample, 1) {
        Ok(c) => (c.len() as f64) < 0.95 * n as f64,
        Err(_) => false,
    }
}

/// Compress (when it pays) and seal `data`, whose id `id` the caller computed with
/// [`MasterKey::blob_id`].
pub fn encode_with_id(key: &MasterKey, kind: BlobKind, id: Id, data: &[u8]) -> EncodedBlob {
    if looks_compressible(data)
        && let Ok(c) = zstd::bulk::compress(data, ZSTD_LEVEL)
        && c.len() < data.len() - data.len() / 32
    {
        let sealed = key.seal_parts(&kind.aad(), &[FLAG_ZSTD], &c);
        return EncodedBlob { id, kind, sealed, raw_len: data.len() as u32, compressed: true };
    }
    let sealed = key.seal_parts(&kind.aad(), &[FLAG_RAW], data);
    EncodedBlob { id, kind, sealed, raw_len: data.len() as u32, compressed: false }
}

/// Hash, compress and seal `data`.
pub fn encode(key: &MasterKey, kind: BlobKind, data: &[u8]) -> EncodedBlob {
    encode_with_id(key, kind, key.blob_id(data), data)
}

/// Open a sealed blob, decompress it and check it hashes to `id`.
pub fn decode(key: &MasterKey, kind: BlobKind, id: &Id, raw_len: u32, sealed: &[u8]) -> Result<Vec<u8>> {
    let what = format!("blob {}", id.short());
    let mut plain = key.open(&kind.aad(), sealed, &what)?;
    let data = match plain.first() {
        Some(&FLAG_RAW) => {
            plain.drain(..1); // a move within the buffer: no second allocation
            plain
        }
        Some(&FLAG_ZSTD) => zstd::bulk::decompress(&plain[1..], raw_len as usize)
            .map_err(|e| Error::malformed(what.clone(), format!("zstd: {e}")))?,
        _ => return Err(Error::malformed(what, "unknown compression flag")),
    };
    let actual = key.blob_id(&data);
    if actual != *id || data.len() != raw_len as usize {
        return Err(Error::IdMismatch { what, expected: id.to_hex(), actual: actual.to_hex() });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_is_compressed_noise_is_not() {
        let key = MasterKey::generate();
        let text = b"INSERT INTO `ca_objects` VALUES (1,'2026.1.1','painting');\n".repeat(2000);
        let b = encode(&key, BlobKind::Data, &text);
        assert!(b.compressed);
        assert!(b.sealed.len() < text.len() / 10);
        let noise: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ rand::random::<u8>()).collect();
        let n = encode(&key, BlobKind::Data, &noise);
        assert!(!n.compressed);
        assert_eq!(decode(&key, BlobKind::Data, &n.id, n.raw_len, &n.sealed).unwrap(), noise);
        assert_eq!(decode(&key, BlobKind::Data, &b.id, b.raw_len, &b.sealed).unwrap(), text);
    }

    #[test]
    fn ids_are_keyed() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), Id(*blake3::hash(b"same").as_bytes()));
    }

    #[test]
    fn kind_is_bound() {
        let key = MasterKey::generate();
        let b = encode(&key, BlobKind::Tree, b"tree bytes");
        assert!(decode(&key, BlobKind::Data, &b.id, b.raw_len, &b.sealed).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(data in proptest::collection::vec(any::<u8>(), 0..8192), rep in 1usize..4) {
            let key = MasterKey::generate();
            let data = data.repeat(rep);
            let b = encode(&key, BlobKind::Data, &data);
            prop_assert_eq!(decode(&key, BlobKind::Data, &b.id, b.raw_len, &b.sealed).unwrap(), data);
        }

        #[test]
        fn flipped_bit_never_decodes(data in proptest::collection::vec(any::<u8>(), 1..4096), pos in any::<usize>(), bit in 0u8..8) {
            let key = MasterKey::generate();
            let b = encode(&key, BlobKind::Data, &data);
            let mut s = b.sealed.clone();
            let i = pos % s.len();
            s[i] ^= 1 << bit;
            prop_assert!(decode(&key, BlobKind::Data, &b.id, b.raw_len, &s).is_err());
        }
    }
}
