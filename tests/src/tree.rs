//! Realistic file trees for backup tests, and exact comparison of two trees.
//!
//! [`media_tree`] lays out a Collective Access–like media volume: thousands of small
//! derivative files (JPEG-like, incompressible), a few large incompressible originals,
//! compressible sidecars (XMP/JSON text), nested folders, symlinks (relative, absolute,
//! dangling), empty files and folders, non-UTF-8 names, varied modes and mtimes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Shape of a generated tree.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// Small derivative files (2–40 KiB).
    pub small_files: usize,
    /// Large originals and their size in bytes.
    pub large_files: Vec<u64>,
    /// RNG seed.
    pub seed: u64,
}

impl TreeSpec {
    /// The realistic media tree: 3000 derivatives and two originals over 50 MiB.
    pub fn realistic() -> TreeSpec {
        TreeSpec { small_files: 3000, large_files: vec![52 * 1024 * 1024 + 12_345, 51 * 1024 * 1024 + 7], seed: 7 }
    }

    /// A small tree for tests that run many times (crash loops).
    pub fn small(seed: u64) -> TreeSpec {
        TreeSpec { small_files: 400, large_files: vec![6 * 1024 * 1024 + 1], seed }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct TreeInfo {
    /// Regular files (relative paths).
    pub files: Vec<PathBuf>,
    /// Total bytes of regular files.
    pub bytes: u64,
}

fn random_vec(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Text that compresses like XMP sidecars and CA's JSON/SQL metadata do.
fn sidecar(rng: &mut StdRng, i: usize) -> Vec<u8> {
    let mut s = String::from("<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n");
    for k in 0..rng.gen_range(20..80) {
        s.push_str(&format!(
            "  <rdf:Description dc:identifier=\"obj-{i}-{k}\" exif:ExposureTime=\"1/{}\" tiff:Make=\"Hasselblad\" photoshop:DateCreated=\"2019-0{}-1{}\"/>\n",
            rng.gen_range(30..4000),
            rng.gen_range(1..9),
            rng.gen_range(0..9)
        ));
    }
    s.push_str("</x:xmpmeta>\n");
    s.into_bytes()
}

/// Write `data` to `path`, creating parents.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let mut f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data).unwrap();
}

/// A large incompressible file written in 1 MiB pieces.
fn write_large(path: &Path, size: u64, rng: &mut StdRng) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// Generate a media tree under `root` (created).
pub fn media_tree(root: &Path, spec: &TreeSpec) -> TreeInfo {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut info = TreeInfo::default();
    fs::create_dir_all(root).unwrap();
    let base = 1_600_000_000i64;
    // CA's layout: media/<instance>/images/<bucket>/<file> with derivative names.
    for i in 0..spec.small_files {
        let bucket = i % 37;
        let version = ["thumbnail", "small", "medium", "preview", "iconlarge"][i % 5];
        let rel = PathBuf::from(format!("collectiveaccess/images/{bucket}/{}_ca_object_representations_media_{i}_{version}.jpg", 40_000 + i));
        let size = rng.gen_range(2 * 1024..40 * 1024);
        let data = if i % 10 == 9 { sidecar(&mut rng, i) } else { random_vec(&mut rng, size) };
        let p = root.join(&rel);
        write_file(&p, &data);
        let mtime = filetime::FileTime::from_unix_time(base + rng.gen_range(0..100_000_000), rng.gen_range(0..1_000_000_000));
        filetime::set_file_mtime(&p, mtime).unwrap();
        if i % 13 == 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        }
        info.files.push(rel);
    }
    for (k, size) in spec.large_files.iter().enumerate() {
        let rel = PathBuf::from(format!("collectiveaccess/images/originals/{k}/{}_ca_object_representations_media_{k}_original.tif", 90_000 + k));
        write_large(&root.join(&rel), *size, &mut rng);
        info.files.push(rel);
    }
    // Empty files and folders, deep nesting.
    write_file(&root.join("collectiveaccess/images/0/EMPTY_original.jpg"), b"");
    write_file(&root.join("collectiveaccess/workspace/.keep"), b"");
    info.files.push("collectiveaccess/images/0/EMPTY_original.jpg".into());
    info.files.push("collectiveaccess/workspace/.keep".into());
    fs::create_dir_all(root.join("collectiveaccess/tilepics/empty/deeper/still")).unwrap();
    fs::create_dir_all(root.join("collectiveaccess/import_tmp")).unwrap();
    let deep = root.join("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/deep.txt");
    write_file(&deep, b"nested fifteen levels down\n");
    info.files.push(deep.strip_prefix(root).unwrap().to_path_buf());
    // Non-UTF-8 names (Latin-1 bytes from an old Windows import) and odd UTF-8.
    let latin1 = OsString::from_vec(b"collectiveaccess/import/caf\xe9 cr\xe8me \xa9 1923.jpg".to_vec());
    write_file(&root.join(&latin1), &random_vec(&mut rng, 3000));
    info.files.push(PathBuf::from(latin1));
    let weird = OsString::from_vec(b"collectiveaccess/import/\xff\xfe raw\nnewline & spaces.tif".to_vec());
    write_file(&root.join(&weird), &random_vec(&mut rng, 1234));
    info.files.push(PathBuf::from(weird));
    write_file(&root.join("collectiveaccess/import/Ölgemälde – 油画 🎨.png"), &random_vec(&mut rng, 777));
    info.files.push("collectiveaccess/import/Ölgemälde – 油画 🎨.png".into());
    // Symlinks: relative, absolute, dangling, to a directory.
    std::os::unix::fs::symlink("../images/1", root.join("collectiveaccess/import/link-to-dir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("collectiveaccess/import/abs-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("collectiveaccess/import/dangling")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9"), root.join("collectiveaccess/import/latin1-link")).unwrap();
    // A read-only file and an executable script.
    let ro = root.join("collectiveaccess/setup.php");
    write_file(&ro, b"<?php\ndefine('__CA_DB_HOST__', 'mariadb');\n");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    let ex = root.join("collectiveaccess/support/bin/caUtils");
    write_file(&ex, b"#!/bin/sh\necho ok\n");
    fs::set_permissions(&ex, fs::Permissions::from_mode(0o755)).unwrap();
    info.files.push("collectiveaccess/setup.php".into());
    info.files.push("collectiveaccess/support/bin/caUtils".into());
    // Ownership other than root's (restored when running as root).
    let owned = root.join("collectiveaccess/images/1/owned_by_www-data.jpg");
    write_file(&owned, &random_vec(&mut rng, 5000));
    let _ = std::os::unix::fs::chown(&owned, Some(33), Some(33));
    info.files.push("collectiveaccess/images/1/owned_by_www-data.jpg".into());
    // Directory modes and mtimes last (writing inside changes them).
    fs::set_permissions(root.join("collectiveaccess/import_tmp"), fs::Permissions::from_mode(0o700)).unwrap();
    set_dir_mtimes(root, base);
    // Derived from what is on disk, so every file counts.
    info.bytes = info.files.iter().map(|f| fs::symlink_metadata(root.join(f)).unwrap().len()).sum();
    info
}

use std::ffi::OsStr;

fn set_dir_mtimes(root: &Path, base: i64) {
    let mut dirs = vec![];
    collect_dirs(root, &mut dirs);
    for (i, d) in dirs.iter().enumerate() {
        let t = filetime::FileTime::from_unix_time(base + i as i64 * 977, 123_456_789);
        filetime::set_file_mtime(d, t).unwrap();
    }
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            collect_dirs(&e.path(), out);
        }
    }
    out.push(d.to_path_buf());
}

/// Change about `share` (0..1) of the tree's bytes the way a day of cataloguing does:
/// rewrite some derivatives, add new ones, delete a few, overwrite a region of one original.
/// Returns the number of bytes written.
pub fn change_share(root: &Path, info: &TreeInfo, share: f64, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let budget = (info.bytes as f64 * share) as u64;
    let mut written = 0u64;
    // A quarter of the budget: a region in the middle of the first large original.
    if let Some(big) = info.files.iter().find(|p| p.to_string_lossy().ends_with("_original.tif")) {
        use std::io::{Seek, SeekFrom};
        let p = root.join(big);
        let len = fs::metadata(&p).unwrap().len();
        let n = (budget / 4).min(len / 2);
        let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(len / 3)).unwrap();
        f.write_all(&random_vec(&mut rng, n as usize)).unwrap();
        written += n;
    }
    // Half: new derivatives.
    let mut k = 0;
    while written < budget * 3 / 4 {
        let len = rng.gen_range(8 * 1024..40 * 1024);
        let data = random_vec(&mut rng, len);
        write_file(&root.join(format!("collectiveaccess/images/new/{seed}_{k}_medium.jpg")), &data);
        written += data.len() as u64;
        k += 1;
    }
    // The rest: rewritten derivatives; and a few deletions.
    let small: Vec<&PathBuf> = info.files.iter().filter(|p| p.to_string_lossy().ends_with("_small.jpg")).collect();
    let mut i = 0;
    while written < budget && i < small.len() {
        let p = root.join(small[i]);
        let n = fs::metadata(&p).unwrap().len() as usize;
        write_file(&p, &random_vec(&mut rng, n));
        written += n as u64;
        i += 1;
    }
    for p in info.files.iter().filter(|p| p.to_string_lossy().ends_with("_thumbnail.jpg")).take(5) {
        let _ = fs::remove_file(root.join(p));
    }
    written
}

/// One entry of a tree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file: mode, uid, gid, mtime (s, ns), size, content hash.
    File { mode: u32, uid: u32, gid: u32, mtime: (i64, i64), size: u64, hash: [u8; 32] },
    /// A directory.
    Dir { mode: u32, uid: u32, gid: u32, mtime: (i64, i64) },
    /// A symlink and its target bytes.
    Symlink { target: Vec<u8>, uid: u32, gid: u32 },
}

/// Every entry under `root`, by relative path (bytes), with metadata and a content hash.
pub fn listing(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    list_into(root, root, &mut out);
    out
}

fn list_into(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, Entry>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let entry = if ft.is_symlink() {
            Entry::Symlink { target: fs::read_link(&p).unwrap().into_os_string().into_vec(), uid: m.uid(), gid: m.gid() }
        } else if ft.is_dir() {
            list_into(root, &p, out);
            Entry::Dir { mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid(), mtime: (m.mtime(), m.mtime_nsec()) }
        } else {
            Entry::File {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: m.len(),
                hash: hash_file(&p),
            }
        };
        out.insert(rel, entry);
    }
}

/// BLAKE3 of the file's bytes (unkeyed: independent of the engine's keyed ids).
fn hash_file(p: &Path) -> [u8; 32] {
    *blake3::hash(&fs::read(p).unwrap()).as_bytes()
}

/// Differences of `actual` against `expected`: entries missing, differing, or unexpected
/// (the last ones prefixed `unexpected: `).
pub fn diff(expected: &Path, actual: &Path) -> Vec<String> {
    let a = listing(expected);
    let b = listing(actual);
    let mut problems = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => problems.push(format!("missing: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => problems.push(format!("differs: {}\n  expected {v:?}\n  got      {w:?}", String::from_utf8_lossy(k))),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        problems.push(format!("unexpected: {}", String::from_utf8_lossy(k)));
    }
    problems
}

/// Assert two trees are identical: same entries, content, modes, mtimes, owners, link targets.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let problems = diff(expected, actual);
    assert!(
        problems.is_empty(),
        "{} differs from {} in {} entries:\n{}",
        actual.display(),
        expected.display(),
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
