//! Content-defined chunking (FastCDC 2020, normalised chunking level 1).
//!
//! Two parameter sets, chosen for what a Collective Access tenant stores:
//!
//! * [`ChunkerParams::MEDIA`] (512 KiB / 1 MiB / 8 MiB): media files are large,
//!   already compressed and rarely edited; most derivative files are smaller than
//!   the minimum and become a single chunk, so a file is one index entry. Bigger
//!   chunks keep the index small (1 TiB of media ≈ 1 M entries ≈ 80 MiB of index).
//! * [`ChunkerParams::STREAM`] (16 KiB / 64 KiB / 256 KiB): SQL dumps are text that
//!   changes a little every day at scattered places (updated rows, new rows at the
//!   end of each table); small chunks confine a changed row to ~64 KiB of new data.
//!
//! `bench/README.md` and ARCHITECTURE.md record the dedup each set achieves.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// FastCDC parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min: u32,
    /// Average (target) chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
}

impl ChunkerParams {
    /// For files (media trees).
    pub const MEDIA: ChunkerParams = ChunkerParams { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };
    /// For named streams (database dumps).
    pub const STREAM: ChunkerParams = ChunkerParams { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

    /// Check the parameters are usable by FastCDC.
    pub fn validate(&self) -> Result<()> {
        let ok = self.min >= 64 && self.min <= self.avg && self.avg <= self.max && self.avg >= 256 && self.max >= 1024;
        if ok && self.max <= 64 * 1024 * 1024 {
            Ok(())
        } else {
            Err(Error::Invalid {
                what: "chunker parameters".into(),
                detail: format!("need 64 <= min <= avg <= max <= 64 MiB, avg >= 256, max >= 1024; got {self:?}"),
            })
        }
    }
}

/// Split `reader` into content-defined chunks, calling `f` with each chunk in order.
/// Concatenating the chunks gives back exactly the bytes read.
pub fn chunk_reader<R: Read>(
    reader: R,
    params: ChunkerParams,
    mut f: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let mut total = 0u64;
    let cdc = fastcdc::v2020::StreamCDC::new(reader, params.min, params.avg, params.max);
    for chunk in cdc {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(source) => Error::Read { what: "chunk source".into(), source },
            other => Error::Read { what: "chunk source".into(), source: std::io::Error::other(other.to_string()) },
        })?;
        total += chunk.data.len() as u64;
        f(chunk.data)?;
    }
    Ok(total)
}

/// Chunk boundaries of an in-memory buffer, as `(offset, length)` pairs.
pub fn chunk_slice(data: &[u8], params: ChunkerParams) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    fastcdc::v2020::FastCDC::new(data, params.min, params.avg, params.max).map(|c| (c.offset, c.length)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: ChunkerParams = ChunkerParams { min: 64, avg: 256, max: 1024 };

    fn pseudo(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn params_are_valid() {
        ChunkerParams::MEDIA.validate().unwrap();
        ChunkerParams::STREAM.validate().unwrap();
        assert!(ChunkerParams { min: 10, avg: 5, max: 1 }.validate().is_err());
    }

    #[test]
    fn insertion_only_changes_nearby_chunks() {
        let data = pseudo(2 * 1024 * 1024, 9);
        let mut edited = data.clone();
        edited.splice(1_000_000..1_000_000, b"an inserted row".iter().copied());
        let ids = |d: &[u8]| {
            chunk_slice(d, ChunkerParams::STREAM).into_iter().map(|(o, l)| blake3::hash(&d[o..o + l])).collect::<Vec<_>>()
        };
        let a = ids(&data);
        let b = ids(&edited);
        let common = b.iter().filter(|h| a.contains(h)).count();
        assert!(b.len() - common <= 3, "only the chunks around the edit may change: {} of {} new", b.len() - common, b.len());
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_input(len in 0usize..20_000, seed in any::<u64>()) {
            let data = pseudo(len, seed);
            let mut out = Vec::new();
            let mut sizes = Vec::new();
            let total = chunk_reader(&data[..], SMALL, |c| { sizes.push(c.len()); out.extend_from_slice(&c); Ok(()) }).unwrap();
            prop_assert_eq!(total as usize, data.len());
            prop_assert_eq!(&out, &data);
            for (i, s) in sizes.iter().enumerate() {
                prop_assert!(*s <= SMALL.max as usize);
                if i + 1 < sizes.len() { prop_assert!(*s >= SMALL.min as usize); }
            }
            let slices = chunk_slice(&data, SMALL);
            let cat: Vec<u8> = slices.iter().flat_map(|&(o, l)| data[o..o + l].iter().copied()).collect();
            prop_assert_eq!(cat, data);
        }
    }
}
