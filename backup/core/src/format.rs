//! Encodings of the repository's objects (format version 1). See ARCHITECTURE.md.
//!
//! | object            | key                        | bytes                                                   |
//! |-------------------|----------------------------|---------------------------------------------------------|
//! | key record        | `keys/<random id>`         | JSON [`crate::crypto::KeyRecord`] (master key wrapped)  |
//! | config            | `config`                   | envelope(aad "config", JSON [`RepoConfig`])             |
//! | pack              | `data/<id[0..2]>/<id>`     | sealed blobs ‖ envelope(aad "pack header", postcard [`PackHeader`]) ‖ u32 LE header length |
//! | index             | `index/<id>`               | envelope(aad "index", zstd(postcard [`IndexFile`]))     |
//! | snapshot          | `snapshots/<id>`           | envelope(aad "snapshot", JSON [`Snapshot`])             |
//! | lock              | `locks/<random id>`        | JSON [`Lock`] (plaintext)                               |
//!
//! Pack, index and snapshot ids are the BLAKE3 hash of the stored bytes, so any
//! reader can verify an object against its name without the key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobKind, EncodedBlob};
use crate::chunker::ChunkerParams;
use crate::crypto::MasterKey;
use crate::{Error, FORMAT_VERSION, Id, Result};

fn check_version(what: &str, found: u32) -> Result<()> {
    if found == FORMAT_VERSION {
        Ok(())
    } else {
        Err(Error::Version { what: what.into(), found, supported: FORMAT_VERSION })
    }
}

// ---------------------------------------------------------------- config

/// The repository config (`config`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Format version.
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Chunker for files.
    pub chunker_files: ChunkerParams,
    /// Chunker for named streams.
    pub chunker_streams: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
}

impl RepoConfig {
    /// A config with the default parameters.
    pub fn new(created: DateTime<Utc>) -> RepoConfig {
        RepoConfig {
            version: FORMAT_VERSION,
            id: Id::random(),
            created,
            chunker_files: ChunkerParams::MEDIA,
            chunker_streams: ChunkerParams::STREAM,
            pack_size: DEFAULT_PACK_SIZE,
        }
    }
    /// Seal.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        key.seal(b"config", &serde_json::to_vec(self).expect("config serialises"))
    }
    /// Open and check.
    pub fn decode(key: &MasterKey, bytes: &[u8]) -> Result<RepoConfig> {
        let plain = key.open(b"config", bytes, "repository config")?;
        let c: RepoConfig = serde_json::from_slice(&plain).map_err(|e| Error::malformed("repository config", e))?;
        check_version("repository config", c.version)?;
        c.chunker_files.validate()?;
        c.chunker_streams.validate()?;
        Ok(c)
    }
}

/// Default target pack size: 16 MiB (one S3 PUT per 16 MiB of new data).
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

// ---------------------------------------------------------------- packs

/// Where a blob sits in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// Blob id.
    pub id: Id,
    /// Blob kind.
    pub kind: BlobKind,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Uncompressed length of the content.
    pub raw_len: u32,
}

/// The header at the end of a pack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackHeader {
    /// Format version.
    pub version: u32,
    /// Blobs in pack order.
    pub entries: Vec<PackEntry>,
}

/// Accumulates sealed blobs into one pack.
#[derive(Debug, Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`.
    pub id: Id,
    /// The pack file.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> PackBuilder {
        PackBuilder { buf: Vec::with_capacity(capacity), entries: Vec::new() }
    }
    /// An empty pack written into `buf` (cleared): reuses a finished pack's allocation.
    pub fn with_buffer(mut buf: Vec<u8>) -> PackBuilder {
        buf.clear();
        PackBuilder { buf, entries: Vec::new() }
    }
    /// Append a blob.
    pub fn add(&mut self, blob: &EncodedBlob) {
        self.entries.push(PackEntry {
            id: blob.id,
            kind: blob.kind,
            offset: self.buf.len() as u32,
            length: blob.sealed.len() as u32,
            raw_len: blob.raw_len,
        });
        self.buf.extend_from_slice(&blob.sealed);
    }
    /// Append an already sealed blob (used when repacking: no re-encryption).
    pub fn add_sealed(&mut self, id: Id, kind: BlobKind, raw_len: u32, sealed: &[u8]) {
        self.entries.push(PackEntry { id, kind, offset: self.buf.len() as u32, length: sealed.len() as u32, raw_len });
        self.buf.extend_from_slice(sealed);
    }
    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// No blobs yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Seal the header and produce the pack.
    pub fn finish(mut self, key: &MasterKey) -> FinishedPack {
        let header = PackHeader { version: FORMAT_VERSION, entries: self.entries };
        let plain = postcard::to_stdvec(&header).expect("pack header serialises");
        let sealed = key.seal(b"pack header", &plain);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = Id::of_stored(&self.buf);
        FinishedPack { id, bytes: self.buf, entries: header.entries }
    }
}

/// Read the header of a whole pack (used by `check --read-data` and index rebuilds).
pub fn read_pack_header(key: &MasterKey, pack: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    if pack.len() < 4 {
        return Err(Error::malformed(what, "shorter than a pack trailer"));
    }
    let hlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().expect("4 bytes")) as usize;
    if hlen + 4 > pack.len() {
        return Err(Error::malformed(what, format!("header length {hlen} exceeds pack size {}", pack.len())));
    }
    let start = pack.len() - 4 - hlen;
    let plain = key.open(b"pack header", &pack[start..pack.len() - 4], &format!("{what} header"))?;
    let h: PackHeader = postcard::from_bytes(&plain).map_err(|e| Error::malformed(what, e))?;
    check_version(what, h.version)?;
    for e in &h.entries {
        if e.offset as usize + e.length as usize > start {
            return Err(Error::malformed(what, format!("blob {} lies outside the pack", e.id.short())));
        }
    }
    Ok(h.entries)
}

// ---------------------------------------------------------------- index

/// One pack in an index file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Pack size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<PackEntry>,
}

/// An index file: which blobs live in which packs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IndexFile {
    /// Format version.
    pub version: u32,
    /// Packs described.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// Seal (postcard, then zstd, then the envelope).
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let plain = postcard::to_stdvec(self).expect("index serialises");
        let z = zstd::bulk::compress(&plain, 3).expect("zstd of an in-memory buffer");
        key.seal(b"index", &z)
    }
    /// Open and check.
    pub fn decode(key: &MasterKey, bytes: &[u8], what: &str) -> Result<IndexFile> {
        let z = key.open(b"index", bytes, what)?;
        let plain = zstd::stream::decode_all(&z[..]).map_err(|e| Error::malformed(what, e))?;
        let f: IndexFile = postcard::from_bytes(&plain).map_err(|e| Error::malformed(what, e))?;
        check_version(what, f.version)?;
        Ok(f)
    }
}

// ---------------------------------------------------------------- trees

/// Type of a tree node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (not necessarily UTF-8).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Kind.
    pub kind: NodeKind,
    /// Permission bits (st_mode & 0o7777).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds (for change detection only).
    pub ctime_ns: i64,
    /// Inode number (change detection).
    pub inode: u64,
    /// Size in bytes (files).
    pub size: u64,
    /// Data blobs, in order (files).
    pub content: Vec<Id>,
    /// Subtree (directories).
    pub subtree: Option<Id>,
    /// Link target bytes (symlinks).
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    /// The file changed while it was read: its content may be inconsistent.
    pub changed_during_backup: bool,
}

/// A directory: nodes sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    /// Entries sorted by name bytes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encode (postcard); sorts the nodes first so equal directories give equal blobs.
    pub fn encode(mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        postcard::to_stdvec(&self).expect("tree serialises")
    }
    /// Decode.
    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        postcard::from_bytes(bytes).map_err(|e| Error::malformed("tree", e))
    }
    /// Node by name.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

/// Content list of a named stream: its data blob ids in order.
pub fn encode_content_list(ids: &[Id]) -> Vec<u8> {
    postcard::to_stdvec(ids).expect("content list serialises")
}
/// Decode a content list.
pub fn decode_content_list(bytes: &[u8]) -> Result<Vec<Id>> {
    postcard::from_bytes(bytes).map_err(|e| Error::malformed("stream content list", e))
}

// ---------------------------------------------------------------- snapshots

/// A named byte stream (e.g. a database dump) in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamRef {
    /// Name, e.g. `db/ca_1a2b3c4d.sql`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Tree-kind blob holding the content list.
    pub content: Id,
    /// The command whose stdout this is.
    pub command: Vec<String>,
    /// Its exit code (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The stream is whole: the command exited 0 (and any completeness check passed).
    pub complete: bool,
    /// Last lines of the command's stderr (for failed streams).
    #[serde(default)]
    pub stderr_tail: String,
    /// Why the stream is not whole (the command's status, or its completeness check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    /// What the stream says about itself (for a database dump: binlog file and position, GTID).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// Counters of one backup run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Summary {
    /// Files seen for the first time.
    pub files_new: u64,
    /// Files whose metadata changed (re-read).
    pub files_changed: u64,
    /// Files unchanged since the parent (not read).
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes of all files and streams in the snapshot.
    pub total_bytes: u64,
    /// Bytes actually read from disk or streams.
    pub bytes_read: u64,
    /// New blobs stored.
    pub blobs_added: u64,
    /// Uncompressed bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes written to the store (packs, compressed and sealed).
    pub bytes_stored: u64,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Files that changed while read.
    pub files_changed_during_read: u64,
    /// Entries skipped (special files, unreadable).
    pub entries_skipped: u64,
}

/// A snapshot: one restore point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// Host that made it.
    pub hostname: String,
    /// Tags (e.g. `tenant=ca-1a2b3c4d`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Backed-up paths, absolute.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Root tree: one node per backed-up path, named by its full path.
    pub tree: Option<Id>,
    /// Named streams.
    #[serde(default)]
    pub streams: Vec<StreamRef>,
    /// The snapshot this one was made incrementally against.
    pub parent: Option<Id>,
    /// Every stream complete and every path read.
    pub complete: bool,
    /// Counters.
    pub summary: Summary,
    /// What went wrong on the way (skipped files, unreadable files, changed files).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Facts recorded by the caller (tenant, plan, CA schema revision …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl Snapshot {
    /// Seal.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        key.seal(b"snapshot", &serde_json::to_vec(self).expect("snapshot serialises"))
    }
    /// Open and check.
    pub fn decode(key: &MasterKey, bytes: &[u8], what: &str) -> Result<Snapshot> {
        let plain = key.open(b"snapshot", bytes, what)?;
        let s: Snapshot = serde_json::from_slice(&plain).map_err(|e| Error::malformed(what, e))?;
        check_version(what, s.version)?;
        Ok(s)
    }
}

// ---------------------------------------------------------------- locks

/// A lock record (`locks/<id>`), refreshed while its holder runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lock {
    /// Exclusive (prune, key removal) or shared (backup, restore, check).
    pub exclusive: bool,
    /// Holder's host.
    pub hostname: String,
    /// Holder's pid.
    pub pid: u32,
    /// What the holder does.
    pub operation: String,
    /// When taken.
    pub created: DateTime<Utc>,
    /// Last refresh; a lock not refreshed for [`LOCK_STALE_SECS`] is stale.
    pub refreshed: DateTime<Utc>,
}

/// A lock older than this (since its last refresh) no longer counts.
pub const LOCK_STALE_SECS: i64 = 30 * 60;
/// Holders refresh their lock this often.
pub const LOCK_REFRESH_SECS: u64 = 5 * 60;

impl Lock {
    /// Whether the lock still counts at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        (now - self.refreshed).num_seconds() < LOCK_STALE_SECS
    }
}

/// Object key of a pack.
pub fn pack_key(id: &Id) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use proptest::prelude::*;

    #[test]
    fn pack_round_trip_and_damage() {
        let key = MasterKey::generate();
        let mut p = PackBuilder::default();
        let blobs: Vec<_> = (0..5u8).map(|i| blob::encode(&key, BlobKind::Data, &vec![i; 1000 + i as usize])).collect();
        for b in &blobs {
            p.add(b);
        }
        let done = p.finish(&key);
        assert_eq!(done.id, Id::of_stored(&done.bytes));
        let entries = read_pack_header(&key, &done.bytes, "pack").unwrap();
        assert_eq!(entries, done.entries);
        for (e, b) in entries.iter().zip(&blobs) {
            let s = &done.bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(blob::decode(&key, e.kind, &e.id, e.raw_len, s).unwrap(), blob::decode(&key, b.kind, &b.id, b.raw_len, &b.sealed).unwrap());
        }
        // truncated pack: the trailer no longer matches
        assert!(read_pack_header(&key, &done.bytes[..done.bytes.len() - 10], "pack").is_err());
    }

    #[test]
    fn tree_sorted_and_non_utf8_names() {
        let mk = |name: &[u8]| Node {
            name: name.to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime_ns: 3,
            ctime_ns: 4,
            inode: 5,
            size: 6,
            content: vec![Id([9; 32])],
            subtree: None,
            target: vec![],
            changed_during_backup: false,
        };
        let t = Tree { nodes: vec![mk(b"z"), mk(b"\xff\xfe latin1 \xe9"), mk(b"a")] };
        let back = Tree::decode(&t.clone().encode()).unwrap();
        assert_eq!(back.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"z".to_vec(), b"\xff\xfe latin1 \xe9".to_vec()]);
        assert!(back.get(b"\xff\xfe latin1 \xe9").is_some());
        assert!(back.get(b"b").is_none());
    }

    #[test]
    fn snapshot_and_index_round_trip() {
        let key = MasterKey::generate();
        let snap = Snapshot {
            version: 1,
            time: Utc::now(),
            hostname: "h".into(),
            tags: vec!["tenant=ca-1a2b3c4d".into()],
            paths: vec!["/srv/media".into()],
            tree: Some(Id([1; 32])),
            streams: vec![],
            parent: None,
            complete: true,
            summary: Summary::default(),
            warnings: vec![],
            meta: BTreeMap::from([("ca_schema_revision".to_string(), "212".to_string())]),
        };
        assert_eq!(Snapshot::decode(&key, &snap.encode(&key), "s").unwrap(), snap);
        let idx = IndexFile { version: 1, packs: vec![IndexPack { id: Id([2; 32]), size: 10, blobs: vec![] }] };
        assert_eq!(IndexFile::decode(&key, &idx.encode(&key), "i").unwrap(), idx);
        // an index cannot be read as a snapshot
        assert!(Snapshot::decode(&key, &idx.encode(&key), "s").is_err());
    }

    proptest! {
        #[test]
        fn any_flipped_bit_in_a_pack_is_detected(n in 1usize..6, pos in any::<usize>(), bit in 0u8..8) {
            let key = MasterKey::generate();
            let mut p = PackBuilder::default();
            for i in 0..n { p.add(&blob::encode(&key, BlobKind::Data, &vec![i as u8; 300 * (i + 1)])); }
            let done = p.finish(&key);
            let mut bytes = done.bytes.clone();
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            // the pack no longer matches its name ...
            prop_assert_ne!(Id::of_stored(&bytes), done.id);
            // ... and decoding it fails somewhere: header or a blob
            let ok = match read_pack_header(&key, &bytes, "pack") {
                Err(_) => false,
                Ok(entries) => entries.iter().all(|e| {
                    let end = e.offset as usize + e.length as usize;
                    end <= bytes.len() && blob::decode(&key, e.kind, &e.id, e.raw_len, &bytes[e.offset as usize..end]).is_ok()
                }) && entries == done.entries,
            };
            prop_assert!(!ok, "flipped bit {} of byte {} went unnoticed", bit, i);
        }
    }
}
