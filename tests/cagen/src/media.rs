//! The media volume: real image and PDF files for each upload (the original plus CA's
//! derivatives and a tile pyramid), and the `ca_object_representations.media` column that
//! describes them.
//!
//! Files go where CA puts them:
//! `<media root>/<volume>/<one folder per digit of id/100>/<magic>_ca_object_representations_media_<id>_<version>.<ext>`,
//! with `<media root>` = `<ca root>/media/<app name>`. Versions and sizes follow CA's stock
//! `media_processing.conf` (icon 72×72 … page 1000 wide, `tilepic` in the `tilepics` volume).
//! Pictures are procedural ("photos" of landscapes, scanned document pages), so derivatives
//! compress like real ones; originals carry sensor-like noise so that, like real media, they
//! hardly compress further.

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::tiff::TiffEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::php::{self, Key, Php};

/// Volume of originals and derivatives.
pub const VOLUME_IMAGES: &str = "images";
/// Volume of tile pyramids.
pub const VOLUME_TILEPICS: &str = "tilepics";
/// Largest side of the base layer of a tile pyramid.
const TILEPIC_MAX: u32 = 1600;
const TILE: u32 = 256;

/// The kind of file a user uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum OriginalKind {
    Tiff,
    Jpeg,
    Png,
    Pdf,
}

impl OriginalKind {
    /// Mimetype of the original.
    pub fn mimetype(self) -> &'static str {
        match self {
            OriginalKind::Tiff => "image/tiff",
            OriginalKind::Jpeg => "image/jpeg",
            OriginalKind::Png => "image/png",
            OriginalKind::Pdf => "application/pdf",
        }
    }
    /// CA's `media_class` for it.
    pub fn media_class(self) -> &'static str {
        match self {
            OriginalKind::Pdf => "document",
            _ => "image",
        }
    }
}

/// What one upload will be; decided before any file is made, so that uploads can be made in
/// parallel and still come out the same for the same seed.
#[derive(Clone, Debug)]
pub struct UploadPlan {
    pub representation_id: u32,
    pub kind: OriginalKind,
    /// Target size of the original file in bytes (approximate; derivatives come on top).
    pub original_bytes: u64,
    /// Seed of everything random in this upload.
    pub seed: u64,
    /// Unix time of the upload (file mtimes and `FILE_LAST_MODIFIED`).
    pub uploaded_at: u64,
    /// Object identifier, used in some original file names.
    pub idno: String,
}

/// One file written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WrittenFile {
    /// Path relative to the media root (`images/1/2/12345_ca_object_representations_media_1234_page.jpg`).
    pub path: String,
    pub bytes: u64,
}

/// A finished upload: its files and the column values of its representation row.
#[derive(Clone, Debug)]
pub struct Upload {
    pub representation_id: u32,
    pub kind: OriginalKind,
    pub original_filename: String,
    /// md5 (hex) of the original file.
    pub md5: String,
    /// `ca_object_representations.media`: zlib-compressed PHP-serialized version list.
    pub media: Vec<u8>,
    /// `ca_object_representations.media_metadata`: zlib-compressed PHP-serialized metadata.
    pub media_metadata: Vec<u8>,
    /// `ca_object_representations.media_content`: extracted text (PDFs).
    pub media_content: Option<String>,
    pub width: u32,
    pub height: u32,
    pub files: Vec<WrittenFile>,
}

impl Upload {
    /// Total bytes of all files of this upload.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// One version of a representation, as the media column lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MediaVersion {
    /// Version name (`original`, `page`, `tilepic`, ...).
    pub version: String,
    /// Path of its file relative to the media root `<ca root>/media/<app name>`.
    pub path: String,
    /// md5 (hex) of the file.
    pub md5: String,
    /// File size in bytes.
    pub filesize: u64,
    pub mimetype: String,
    pub width: u64,
    pub height: u64,
}

/// Decodes a `ca_object_representations.media` value (zlib-compressed or plain PHP-serialized)
/// into the versions it lists, in stored order. Entries without a file (`INPUT`, `_undo_`,
/// versions that use a default icon) are skipped.
pub fn decode_media_column(bytes: &[u8]) -> Result<Vec<MediaVersion>> {
    let plain = if bytes.first() == Some(&0x78) {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out).context("media column: zlib data is corrupt")?;
        out
    } else {
        bytes.to_vec()
    };
    let v = php::unserialize(&plain).context("media column: not PHP-serialized")?;
    let items = v.items().context("media column: not an array")?;
    let mut out = Vec::new();
    for (k, info) in items {
        let Key::Str(name) = k else { continue };
        let (Some(volume), Some(hash), Some(magic), Some(filename)) =
            (info.get("VOLUME"), info.get("HASH"), info.get("MAGIC"), info.get("FILENAME"))
        else {
            continue;
        };
        let field = |f: &str| info.get(f).and_then(|p| p.as_string()).unwrap_or_default();
        let prop = |f: &str| info.get("PROPERTIES").and_then(|p| p.get(f)).and_then(|p| p.as_int());
        let (volume, hash, magic, filename) = (
            volume.as_string().unwrap_or_default(),
            hash.as_string().unwrap_or_default(),
            magic.as_string().unwrap_or_default(),
            filename.as_string().unwrap_or_default(),
        );
        out.push(MediaVersion {
            version: name.clone(),
            path: format!("{volume}/{hash}/{magic}_{filename}"),
            md5: field("MD5"),
            filesize: prop("filesize").unwrap_or(0).max(0) as u64,
            mimetype: field("MIMETYPE"),
            width: info.get("WIDTH").and_then(Php::as_int).unwrap_or(0).max(0) as u64,
            height: info.get("HEIGHT").and_then(Php::as_int).unwrap_or(0).max(0) as u64,
        });
    }
    Ok(out)
}

/// zlib-compresses PHP-serialized `v`, as CA's `caSerializeForDatabase($v, true)` does.
pub fn serialize_compressed(v: &Php) -> Result<Vec<u8>> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&php::serialize(v))?;
    Ok(z.finish()?)
}

/// CA's directory hash for a row id: one folder per digit of `id / 100` (`1234` → `1/2`).
pub fn dir_hash(id: u32) -> String {
    let n = (id / 100).to_string();
    let mut out = String::with_capacity(n.len() * 2);
    for (i, c) in n.chars().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push(c);
    }
    out
}

/// Makes the uploads of `plans` under `media_root` on `threads` threads; the result is in
/// plan order. `abort` stops early (the result is then an error).
pub fn make_uploads(plans: &[UploadPlan], media_root: &Path, threads: usize, abort: &AtomicBool) -> Result<Vec<Upload>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Upload>>>> = Mutex::new((0..plans.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(plans.len().max(1)) {
            s.spawn(|| {
                loop {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(plan) = plans.get(i) else { break };
                    let r = make_upload(plan, media_root)
                        .with_context(|| format!("making media for representation {}", plan.representation_id));
                    if r.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().map_err(|_| anyhow::anyhow!("a media thread panicked"))?;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Some(r) => out.push(r?),
            None => bail!("media generation stopped early"),
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Pictures

/// A procedural picture: evaluated at any size, so every derivative shows the same image.
enum Picture {
    Photo(Photo),
    Page(Page),
}

struct Blob {
    cx: f32,
    cy: f32,
    inv_r2: f32,
    color: [f32; 3],
    strength: f32,
}

struct Photo {
    sky_top: [f32; 3],
    sky_bottom: [f32; 3],
    ground_top: [f32; 3],
    ground_bottom: [f32; 3],
    horizon: f32,
    blobs: Vec<Blob>,
    freq: (f32, f32),
    amp: f32,
    /// Fine detail (foliage, fabric, brush strokes).
    fine: (f32, f32),
    fine_amp: f32,
    aspect: f32,
}

struct Page {
    paper: [f32; 3],
    ink: [f32; 3],
    margin: (f32, f32, f32, f32),
    line_h: f32,
    char_w: f32,
    lines: Vec<u16>,
    seed: u64,
}

fn color<R: Rng>(rng: &mut R, lo: f32, hi: f32) -> [f32; 3] {
    [rng.gen_range(lo..hi), rng.gen_range(lo..hi), rng.gen_range(lo..hi)]
}

impl Picture {
    fn photo<R: Rng>(rng: &mut R, aspect: f32) -> Picture {
        let blobs = (0..rng.gen_range(2..6))
            .map(|_| {
                let r: f32 = rng.gen_range(0.05..0.3);
                Blob {
                    cx: rng.gen_range(0.0..1.0),
                    cy: rng.gen_range(0.1..1.0),
                    inv_r2: 1.0 / (r * r),
                    color: color(rng, 10.0, 250.0),
                    strength: rng.gen_range(0.4..1.0),
                }
            })
            .collect();
        Picture::Photo(Photo {
            sky_top: color(rng, 40.0, 140.0),
            sky_bottom: color(rng, 150.0, 250.0),
            ground_top: color(rng, 60.0, 200.0),
            ground_bottom: color(rng, 10.0, 90.0),
            horizon: rng.gen_range(0.3..0.7),
            blobs,
            freq: (rng.gen_range(8.0..60.0), rng.gen_range(8.0..60.0)),
            amp: rng.gen_range(3.0..14.0),
            fine: (rng.gen_range(150.0..400.0), rng.gen_range(150.0..400.0)),
            fine_amp: rng.gen_range(4.0..12.0),
            aspect,
        })
    }

    fn page<R: Rng>(rng: &mut R) -> Picture {
        let line_h = rng.gen_range(0.016..0.024);
        let n = (0.78 / line_h) as usize;
        let mut lines = Vec::with_capacity(n);
        let mut left_in_par = rng.gen_range(3..9);
        for i in 0..n {
            if i < 2 {
                lines.push(if i == 0 { rng.gen_range(20..45) } else { 0 });
                continue;
            }
            if left_in_par == 0 {
                lines.push(0);
                left_in_par = rng.gen_range(3..10);
            } else {
                left_in_par -= 1;
                lines.push(if left_in_par == 0 { rng.gen_range(10..60) } else { rng.gen_range(72..80) });
            }
        }
        let paper = [rng.gen_range(236.0..250.0), rng.gen_range(230.0..245.0), rng.gen_range(212.0..232.0)];
        Picture::Page(Page {
            paper,
            ink: [rng.gen_range(20.0..60.0), rng.gen_range(20.0..55.0), rng.gen_range(25.0..70.0)],
            margin: (rng.gen_range(0.08..0.14), rng.gen_range(0.06..0.1), rng.gen_range(0.86..0.92), rng.gen_range(0.9..0.95)),
            line_h,
            char_w: 0.76 / 80.0,
            lines,
            seed: rng.r#gen(),
        })
    }

    /// Renders the region `vp` (u0, v0, u1, v1 in 0..1) at `w`×`h`, with per-pixel grain of
    /// ±`grain` levels.
    fn render(&self, w: u32, h: u32, vp: (f32, f32, f32, f32), grain: u8, seed: u64) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let (u0, v0, u1, v1) = vp;
        let du = (u1 - u0) / w as f32;
        let dv = (v1 - v0) / h as f32;
        let buf: &mut [u8] = &mut img;
        let row_len = w as usize * 3;
        let mut tex_u = Vec::with_capacity(w as usize);
        if let Picture::Photo(p) = self {
            for x in 0..w {
                let u = u0 + (x as f32 + 0.5) * du;
                tex_u.push((u * p.freq.0).sin() * p.amp + (u * p.fine.0).sin() * p.fine_amp);
            }
        }
        for (y, row) in buf.chunks_exact_mut(row_len).enumerate() {
            let v = v0 + (y as f32 + 0.5) * dv;
            let mut noise = Noise::new(seed ^ (y as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            match self {
                Picture::Photo(p) => p.render_row(row, v, u0, du, &tex_u),
                Picture::Page(p) => p.render_row(row, v, u0, du),
            }
            if grain > 0 {
                add_noise(row, grain, &mut noise);
            }
        }
        img
    }
}

impl Photo {
    fn render_row(&self, row: &mut [u8], v: f32, u0: f32, du: f32, tex_u: &[f32]) {
        let base = if v < self.horizon {
            lerp3(self.sky_top, self.sky_bottom, v / self.horizon)
        } else {
            lerp3(self.ground_top, self.ground_bottom, (v - self.horizon) / (1.0 - self.horizon))
        };
        let tex_v = (v * self.freq.1).sin() * self.amp + (v * self.fine.1).sin() * self.fine_amp;
        let blobs: Vec<&Blob> = self.blobs.iter().filter(|b| (v - b.cy).abs() * (v - b.cy).abs() * b.inv_r2 < 1.0).collect();
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let u = u0 + (x as f32 + 0.5) * du;
            let mut c = base;
            for b in &blobs {
                let dx = (u - b.cx) * self.aspect;
                let dy = v - b.cy;
                let t = 1.0 - (dx * dx + dy * dy) * b.inv_r2;
                if t > 0.0 {
                    let k = t * t * b.strength;
                    c = lerp3(c, b.color, k);
                }
            }
            let t = tex_u.get(x).copied().unwrap_or(0.0) + tex_v;
            px[0] = clamp(c[0] + t);
            px[1] = clamp(c[1] + t * 0.8);
            px[2] = clamp(c[2] + t * 0.6);
        }
    }
}

impl Page {
    fn render_row(&self, row: &mut [u8], v: f32, u0: f32, du: f32) {
        let (left, top, right, bottom) = self.margin;
        let mut ink_line: Option<(usize, f32)> = None;
        if v >= top && v < bottom {
            let rel = (v - top) / self.line_h;
            let line = rel as usize;
            let frac = rel - line as f32;
            let (lo, hi) = if line == 0 { (0.05, 0.95) } else { (0.3, 0.75) };
            let len = self.lines.get(line).copied().unwrap_or(0);
            if frac > lo && frac < hi && len > 0 {
                ink_line = Some((line, len as f32 * if line == 0 { 1.8 } else { 1.0 }));
            }
        }
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let u = u0 + (x as f32 + 0.5) * du;
            let mut c = self.paper;
            if let Some((line, len)) = ink_line {
                let cw = if line == 0 { self.char_w * 1.8 } else { self.char_w };
                let ci = (u - left) / cw;
                if u >= left && u < right && ci < len {
                    let ci = ci as u64;
                    let glyph = mix(self.seed ^ ((line as u64) << 20) ^ ci);
                    let space = mix(self.seed ^ ((line as u64) << 32) ^ (ci / 2)).is_multiple_of(5);
                    if !space && !glyph.is_multiple_of(7) {
                        c = self.ink;
                    }
                }
            }
            px[0] = clamp(c[0]);
            px[1] = clamp(c[1]);
            px[2] = clamp(c[2]);
        }
    }
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

fn clamp(x: f32) -> u8 {
    x.clamp(0.0, 255.0) as u8
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fast PRNG (wyrand) for pixel noise.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(mix(seed))
    }
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let m = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((m >> 64) as u64) ^ (m as u64)
    }
}

/// Adds uniform noise of ±`amp` to every byte of `buf`.
fn add_noise(buf: &mut [u8], amp: u8, noise: &mut Noise) {
    let span = u32::from(amp) * 2 + 1;
    for chunk in buf.chunks_mut(8) {
        let r = noise.next();
        for (j, b) in chunk.iter_mut().enumerate() {
            let n = (((r >> (j * 8)) & 0xff) as u32 * span) >> 8;
            *b = (i32::from(*b) + n as i32 - i32::from(amp)).clamp(0, 255) as u8;
        }
    }
}

/// The original at full size: the picture at half resolution, doubled, plus strong noise.
fn render_original(pic: &Picture, w: u32, h: u32, amp: u8, seed: u64) -> RgbImage {
    let hw = w.div_ceil(2).max(1);
    let hh = h.div_ceil(2).max(1);
    let half = pic.render(hw, hh, (0.0, 0.0, 1.0, 1.0), 0, seed);
    let mut img = RgbImage::new(w, h);
    let src: &[u8] = &half;
    let row_len = w as usize * 3;
    let dst: &mut [u8] = &mut img;
    for (y, row) in dst.chunks_exact_mut(row_len).enumerate() {
        let sy = y / 2;
        let srow = &src[sy * hw as usize * 3..(sy + 1) * hw as usize * 3];
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let s = &srow[(x / 2) * 3..(x / 2) * 3 + 3];
            px.copy_from_slice(s);
        }
        let mut noise = Noise::new(seed ^ 0x5151 ^ (y as u64) << 24);
        add_noise(row, amp, &mut noise);
    }
    img
}

// ------------------------------------------------------------------------------------------
// Versions

#[derive(Clone, Copy)]
enum Fit {
    /// Scaled to cover the box, then cropped to it.
    Fill(u32, u32),
    /// Scaled to fit in the box.
    BBox(u32, u32),
    /// Scaled to the width.
    Width(u32),
}

/// Derivative versions of images, in CA's processing order.
const IMAGE_VERSIONS: &[(&str, Fit)] = &[
    ("icon", Fit::Fill(72, 72)),
    ("iconlarge", Fit::Fill(250, 250)),
    ("tiny", Fit::BBox(72, 72)),
    ("thumbnail", Fit::BBox(120, 120)),
    ("widethumbnail", Fit::Fill(110, 75)),
    ("small", Fit::BBox(240, 240)),
    ("preview", Fit::BBox(180, 180)),
    ("preview170", Fit::BBox(170, 170)),
    ("widepreview", Fit::Fill(200, 120)),
    ("medium", Fit::BBox(400, 400)),
    ("mediumlarge", Fit::BBox(580, 450)),
    ("large", Fit::Width(700)),
    ("page", Fit::Width(1000)),
];

/// Derivative versions of PDFs (rendered from page 1), in CA's processing order.
const PDF_VERSIONS: &[(&str, Fit)] = &[
    ("icon", Fit::Fill(72, 72)),
    ("iconlarge", Fit::Fill(250, 250)),
    ("tiny", Fit::BBox(72, 72)),
    ("thumbnail", Fit::BBox(120, 120)),
    ("widethumbnail", Fit::Fill(110, 75)),
    ("preview", Fit::BBox(180, 180)),
    ("preview170", Fit::BBox(170, 170)),
    ("widepreview", Fit::Fill(200, 120)),
    ("small", Fit::BBox(240, 240)),
    ("medium", Fit::BBox(400, 400)),
    ("mediumlarge", Fit::BBox(580, 450)),
    ("large", Fit::Width(700)),
    ("page", Fit::Width(1000)),
];

/// Output size and source viewport of a derivative of a `w`×`h` source (never upscaled).
fn fit(f: Fit, w: u32, h: u32) -> (u32, u32, (f32, f32, f32, f32)) {
    let full = (0.0, 0.0, 1.0, 1.0);
    let (w, h) = (w.max(1) as f32, h.max(1) as f32);
    let round = |x: f32| (x.round() as u32).max(1);
    match f {
        Fit::Fill(bw, bh) => {
            let (bwf, bhf) = (bw as f32, bh as f32);
            let src_aspect = w / h;
            let dst_aspect = bwf / bhf;
            let vp = if src_aspect > dst_aspect {
                let k = dst_aspect / src_aspect;
                ((1.0 - k) / 2.0, 0.0, (1.0 + k) / 2.0, 1.0)
            } else {
                let k = src_aspect / dst_aspect;
                (0.0, (1.0 - k) / 2.0, 1.0, (1.0 + k) / 2.0)
            };
            // The cropped region must not be upscaled either.
            let s = (w * (vp.2 - vp.0) / bwf).min(h * (vp.3 - vp.1) / bhf).min(1.0);
            (round(bwf * s), round(bhf * s), vp)
        }
        Fit::BBox(bw, bh) => {
            let s = (bw as f32 / w).min(bh as f32 / h).min(1.0);
            (round(w * s), round(h * s), full)
        }
        Fit::Width(bw) => {
            let s = (bw as f32 / w).min(1.0);
            (round(w * s), round(h * s), full)
        }
    }
}

fn jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity((img.width() * img.height()) as usize / 4 + 1024);
    JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).context("encoding JPEG")?;
    Ok(out)
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

/// Where and what one version's file is.
struct Version<'a> {
    name: &'a str,
    volume: &'a str,
    mimetype: &'a str,
    ext: &'a str,
    dims: (u32, u32),
}

/// Collects the files and version entries of one upload.
struct Writer<'a> {
    media_root: &'a Path,
    id: u32,
    hash: String,
    mtime: u64,
    rng: StdRng,
    files: Vec<WrittenFile>,
    versions: Vec<(String, Php)>,
}

impl Writer<'_> {
    /// Writes `data` as version `v.name` and records its entry; returns the file's md5.
    fn version(&mut self, v: Version<'_>, data: &[u8], extra_props: Vec<(&str, Php)>) -> Result<String> {
        let Version { name: version, volume, mimetype, ext, dims } = v;
        let magic: u32 = self.rng.gen_range(0..100_000);
        let filename = format!("ca_object_representations_media_{}_{version}.{ext}", self.id);
        let dir = self.media_root.join(volume).join(&self.hash);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{magic}_{filename}"));
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(self.mtime as i64, 0))
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
        let md5 = md5_hex(data);
        let mut props: Vec<(&str, Php)> = vec![
            ("width", dims.0.into()),
            ("height", dims.1.into()),
            ("mimetype", mimetype.into()),
            ("typename", typename(mimetype).into()),
            ("filesize", (data.len() as u64).into()),
            ("version", version.into()),
            ("mediatype", if mimetype == "application/pdf" { "document" } else { "image" }.into()),
        ];
        props.extend(extra_props);
        let entry = Php::assoc([
            ("VOLUME", volume.into()),
            ("MIMETYPE", mimetype.into()),
            ("WIDTH", dims.0.into()),
            ("HEIGHT", dims.1.into()),
            ("PROPERTIES", Php::assoc(props)),
            ("FILENAME", filename.clone().into()),
            ("HASH", self.hash.clone().into()),
            ("MAGIC", Php::Int(i64::from(magic))),
            ("EXTENSION", ext.into()),
            ("MD5", md5.clone().into()),
            ("FILE_LAST_MODIFIED", self.mtime.into()),
        ]);
        self.versions.push((version.to_string(), entry));
        self.files.push(WrittenFile { path: format!("{volume}/{}/{magic}_{filename}", self.hash), bytes: data.len() as u64 });
        Ok(md5)
    }

    fn derivatives(&mut self, pic: &Picture, list: &[(&str, Fit)], w: u32, h: u32, seed: u64) -> Result<()> {
        for (i, (name, f)) in list.iter().enumerate() {
            let (dw, dh, vp) = fit(*f, w, h);
            let img = pic.render(dw, dh, vp, 5, seed ^ (i as u64 + 1) << 40);
            let data = jpeg(&img, 75)?;
            let extra = vec![("quality", Php::Int(75)), ("colorspace", "RGB".into()), ("bitdepth", Php::Int(8))];
            self.version(Version { name, volume: VOLUME_IMAGES, mimetype: "image/jpeg", ext: "jpg", dims: (dw, dh) }, &data, extra)?;
        }
        Ok(())
    }
}

fn typename(mimetype: &str) -> &'static str {
    match mimetype {
        "image/jpeg" => "JPEG",
        "image/tiff" => "TIFF",
        "image/png" => "PNG",
        "application/pdf" => "PDF",
        "image/tilepic" => "Tilepic",
        _ => "Unknown",
    }
}

/// Picks pixel dimensions with about `px` pixels and a common aspect ratio.
fn dims_for<R: Rng>(rng: &mut R, px: f64) -> (u32, u32) {
    const ASPECTS: &[(f64, f64)] = &[(4.0, 3.0), (3.0, 2.0), (3.0, 4.0), (2.0, 3.0), (1.0, 1.0), (16.0, 9.0), (5.0, 4.0)];
    let (a, b) = ASPECTS[rng.gen_range(0..ASPECTS.len())];
    let w = (px * a / b).sqrt().max(64.0);
    let h = (w * b / a).max(64.0);
    (w.round() as u32, h.round() as u32)
}

/// Estimated bytes of the derivatives (and tile pyramid or compressed PDF) of an upload whose
/// original is about `original_bytes` (measured on these pictures).
pub fn overhead_estimate(kind: OriginalKind, original_bytes: u64, seed: u64) -> u64 {
    let (w, h) = if kind == OriginalKind::Pdf { page_dims(original_bytes) } else { original_dims(kind, original_bytes, seed) };
    let mut px = 0f64;
    for (_, f) in IMAGE_VERSIONS {
        let (dw, dh, _) = fit(*f, w, h);
        px += f64::from(dw) * f64::from(dh) + 7000.0;
    }
    let extra = if kind == OriginalKind::Pdf {
        original_bytes as f64 / 6.0
    } else {
        let (tw, th) = tilepic_base(w, h);
        f64::from(tw) * f64::from(th) * 1.33 * 0.057 + 2000.0
    };
    (px * 0.105 + extra) as u64
}

/// Bytes per pixel of originals, by kind (measured on these pictures).
fn bytes_per_pixel(kind: OriginalKind) -> f64 {
    match kind {
        OriginalKind::Tiff => 3.0,
        OriginalKind::Jpeg => 1.05,
        OriginalKind::Png => 3.0,
        OriginalKind::Pdf => 0.19,
    }
}

/// Pixel dimensions of an original of `kind` that is about `bytes` large.
pub fn original_dims(kind: OriginalKind, bytes: u64, seed: u64) -> (u32, u32) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xd1);
    dims_for(&mut rng, bytes as f64 / bytes_per_pixel(kind))
}

fn tilepic_base(w: u32, h: u32) -> (u32, u32) {
    let s = (TILEPIC_MAX as f32 / w.max(h) as f32).min(1.0);
    (((w as f32 * s).round() as u32).max(1), ((h as f32 * s).round() as u32).max(1))
}

/// CA's Tilepic format: `TPC\n`, a header, tile offsets, JPEG tiles smallest layer first,
/// then `key=value\0` attributes.
fn tilepic(pic: &Picture, w: u32, h: u32, seed: u64) -> Result<(Vec<u8>, u32, u32, usize, u16)> {
    let (bw, bh) = tilepic_base(w, h);
    let mut layers = vec![(bw, bh)];
    while layers.last().map(|&(w, h)| w > TILE || h > TILE).unwrap_or(false) {
        let &(w, h) = layers.last().unwrap_or(&(1, 1));
        layers.push((w.div_ceil(2).max(1), h.div_ceil(2).max(1)));
    }
    layers.reverse();
    let mut tiles: Vec<Vec<u8>> = Vec::new();
    for (li, &(lw, lh)) in layers.iter().enumerate() {
        let img = pic.render(lw, lh, (0.0, 0.0, 1.0, 1.0), 2, seed ^ (li as u64) << 48);
        for ty in 0..lh.div_ceil(TILE) {
            for tx in 0..lw.div_ceil(TILE) {
                let (x0, y0) = (tx * TILE, ty * TILE);
                let (cw, ch) = ((lw - x0).min(TILE), (lh - y0).min(TILE));
                let tile = image::imageops::crop_imm(&img, x0, y0, cw, ch).to_image();
                tiles.push(jpeg(&tile, 40)?);
            }
        }
    }
    let attributes = b"mimetype=image/jpeg\0quality=40\0layer_ratio=2\0".to_vec();
    let header_size: u32 = 40;
    let mut out = Vec::new();
    out.extend_from_slice(b"TPC\n");
    out.extend_from_slice(&header_size.to_be_bytes());
    for v in [bw, bh, TILE, TILE, tiles.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(layers.len() as u16).to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&(attributes.len() as u32).to_be_bytes());
    out.extend_from_slice(&3u32.to_be_bytes());
    let mut offset = header_size as usize + 4 * tiles.len() + 4;
    for t in &tiles {
        out.extend_from_slice(&(offset as u32).to_be_bytes());
        offset += t.len();
    }
    out.extend_from_slice(&(offset as u32).to_be_bytes());
    for t in &tiles {
        out.extend_from_slice(t);
    }
    out.extend_from_slice(&attributes);
    Ok((out, bw, bh, tiles.len(), layers.len() as u16))
}

/// The original file name a user would have uploaded.
fn original_filename<R: Rng>(rng: &mut R, kind: OriginalKind, idno: &str) -> String {
    let slug: String = idno.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    match kind {
        OriginalKind::Tiff => match rng.gen_range(0..3) {
            0 => format!("DSC{:05}.tif", rng.gen_range(1..99_999)),
            1 => format!("{slug}_recto.tif"),
            _ => format!("scan_{:04}_master.tiff", rng.gen_range(1..9999)),
        },
        OriginalKind::Jpeg => match rng.gen_range(0..3) {
            0 => format!("IMG_{:04}.JPG", rng.gen_range(1..9999)),
            1 => format!("P{:07}.jpg", rng.gen_range(1_000_000..9_999_999)),
            _ => format!("{slug}_detail_{}.jpg", rng.gen_range(1..6)),
        },
        OriginalKind::Png => format!("{slug}_digitised_{:02}.png", rng.gen_range(1..40)),
        OriginalKind::Pdf => match rng.gen_range(0..3) {
            0 => format!("condition_report_{slug}.pdf"),
            1 => format!("letter_{}.pdf", rng.gen_range(1850..1990)),
            _ => format!("{slug}_documentation.pdf"),
        },
    }
}

/// Makes the files of one upload and its column values.
pub fn make_upload(plan: &UploadPlan, media_root: &Path) -> Result<Upload> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let original_filename = original_filename(&mut rng, plan.kind, &plan.idno);
    let mut wr = Writer {
        media_root,
        id: plan.representation_id,
        hash: dir_hash(plan.representation_id),
        mtime: plan.uploaded_at,
        rng: StdRng::seed_from_u64(plan.seed ^ 0x77),
        files: Vec::new(),
        versions: Vec::new(),
    };
    let pic_seed: u64 = rng.r#gen();
    let (w, h, md5, media_content, meta);
    if plan.kind == OriginalKind::Pdf {
        let page = Picture::page(&mut rng);
        let (pw, ph) = page_dims(plan.original_bytes);
        let pages = ((plan.original_bytes as f64 / (f64::from(pw) * f64::from(ph) * bytes_per_pixel(OriginalKind::Pdf))).round() as usize).clamp(1, 60);
        let text = pdf_text(&mut rng, pages);
        wr.derivatives(&page, PDF_VERSIONS, pw, ph, pic_seed)?;
        let title = text.first().map(|p| p.lines().next().unwrap_or("")).unwrap_or("").to_string();
        let small = pdf(&page, &text, &title, (pw / 2).max(64), (ph / 2).max(64), 50, pic_seed)?;
        let props = vec![("pages", Php::Int(pages as i64)), ("title", title.clone().into())];
        wr.version(Version { name: "compressed", volume: VOLUME_IMAGES, mimetype: "application/pdf", ext: "pdf", dims: (pw, ph) }, &small, props.clone())?;
        let original = pdf(&page, &text, &title, pw, ph, 80, pic_seed ^ 1)?;
        md5 = wr.version(Version { name: "original", volume: VOLUME_IMAGES, mimetype: "application/pdf", ext: "pdf", dims: (pw, ph) }, &original, props)?;
        (w, h) = (pw, ph);
        media_content = Some(text.join("\n\n"));
        meta = Php::assoc([(
            "PDF",
            Php::assoc([
                ("Title", title.into()),
                ("Producer", "Canon iR-ADV C5535 PDF".into()),
                ("Pages", Php::Int(pages as i64)),
                ("PageSize", "595 x 842 pts (A4)".into()),
            ]),
        )]);
    } else {
        (w, h) = original_dims(plan.kind, plan.original_bytes, plan.seed);
        let pic = Picture::photo(&mut rng, w as f32 / h as f32);
        wr.derivatives(&pic, IMAGE_VERSIONS, w, h, pic_seed)?;
        let img = render_original(&pic, w, h, if plan.kind == OriginalKind::Jpeg { 16 } else { 24 }, pic_seed);
        let (data, ext, extra): (Vec<u8>, &str, Vec<(&str, Php)>) = match plan.kind {
            OriginalKind::Tiff => {
                let mut c = Cursor::new(Vec::with_capacity((w * h * 3) as usize + 4096));
                TiffEncoder::new(&mut c).write_image(&img, w, h, ExtendedColorType::Rgb8).context("encoding TIFF")?;
                (c.into_inner(), "tiff", vec![("compression", "none".into()), ("bitdepth", Php::Int(8))])
            }
            OriginalKind::Png => {
                let mut out = Vec::new();
                PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub)
                    .write_image(&img, w, h, ExtendedColorType::Rgb8)
                    .context("encoding PNG")?;
                (out, "png", vec![("bitdepth", Php::Int(8))])
            }
            _ => (jpeg(&img, 95)?, "jpg", vec![("quality", Php::Int(95)), ("bitdepth", Php::Int(8))]),
        };
        drop(img);
        let mut props = extra;
        props.push(("colorspace", "RGB".into()));
        props.push(("resolution", Php::assoc([("x", Php::Int(300)), ("y", Php::Int(300)), ("units", "pixels per inch".into())])));
        md5 = wr.version(Version { name: "original", volume: VOLUME_IMAGES, mimetype: plan.kind.mimetype(), ext, dims: (w, h) }, &data, props)?;
        drop(data);
        let (tp, tw, th, tiles, layers) = tilepic(&pic, w, h, pic_seed ^ 2)?;
        let tprops = vec![
            ("tiles", Php::Int(tiles as i64)),
            ("layers", Php::Int(i64::from(layers))),
            ("tile_width", Php::Int(i64::from(TILE))),
            ("tile_height", Php::Int(i64::from(TILE))),
            ("layer_ratio", Php::Int(2)),
            ("tile_mimetype", "image/jpeg".into()),
            ("quality", Php::Int(40)),
        ];
        wr.version(Version { name: "tilepic", volume: VOLUME_TILEPICS, mimetype: "image/tilepic", ext: "tpc", dims: (tw, th) }, &tp, tprops)?;
        media_content = None;
        let cameras = ["Canon EOS 5D Mark IV", "NIKON D850", "Phase One IQ4 150MP", "SONY ILCE-7RM4", "Hasselblad X2D 100C"];
        meta = Php::assoc([(
            "EXIF",
            Php::assoc([
                (
                    "IFD0",
                    Php::assoc([
                        ("Model", cameras[rng.gen_range(0..cameras.len())].into()),
                        ("XResolution", "300/1".into()),
                        ("YResolution", "300/1".into()),
                        ("Software", "Adobe Photoshop Lightroom Classic 13.2 (Windows)".into()),
                        ("Artist", "Museum Photography Studio".into()),
                    ]),
                ),
                (
                    "EXIF",
                    Php::assoc([
                        ("ExposureTime", format!("1/{}", [60, 125, 250][rng.gen_range(0..3)]).into()),
                        ("FNumber", format!("{}/1", [8, 11, 16][rng.gen_range(0..3)]).into()),
                        ("ISOSpeedRatings", Php::Int(100)),
                        ("ExifImageWidth", w.into()),
                        ("ExifImageLength", h.into()),
                    ]),
                ),
            ]),
        )]);
    }
    let original_size = wr.files.iter().find(|f| f.path.contains("_original.")).map(|f| f.bytes).unwrap_or(0);
    let mut desc: Vec<(String, Php)> = vec![
        ("ORIGINAL_FILENAME".into(), original_filename.clone().into()),
        (
            "INPUT".into(),
            Php::assoc([
                ("MIMETYPE", plan.kind.mimetype().into()),
                ("WIDTH", w.into()),
                ("HEIGHT", h.into()),
                ("MD5", md5.clone().into()),
                ("FILESIZE", original_size.into()),
                ("FETCHED_FROM", Php::Null),
                ("FETCHED_BY", Php::Null),
            ]),
        ),
        ("_undo_".into(), Php::Array(Vec::new())),
    ];
    desc.extend(std::mem::take(&mut wr.versions));
    let media = serialize_compressed(&Php::assoc(desc))?;
    let media_metadata = serialize_compressed(&meta)?;
    Ok(Upload {
        representation_id: plan.representation_id,
        kind: plan.kind,
        original_filename,
        md5,
        media,
        media_metadata,
        media_content,
        width: w,
        height: h,
        files: wr.files,
    })
}

/// Page scan size for a PDF of about `bytes`: A4 at 150 dpi, less for small documents.
fn page_dims(bytes: u64) -> (u32, u32) {
    let full = 1240u32 * 1754;
    let px = (bytes as f64 / bytes_per_pixel(OriginalKind::Pdf)).min(f64::from(full));
    let s = (px / f64::from(full)).sqrt().max(0.12);
    ((1240.0 * s) as u32, (1754.0 * s) as u32)
}

/// The OCR text of each page.
fn pdf_text<R: Rng>(rng: &mut R, pages: usize) -> Vec<String> {
    (0..pages)
        .map(|i| {
            let year = crate::text::year(rng);
            let mut s = String::new();
            if i == 0 {
                s.push_str(&crate::text::title(rng, year));
                s.push('\n');
            }
            let n = rng.gen_range(6..14);
            s.push_str(&crate::text::description(rng, year, n));
            s
        })
        .collect()
}

/// A PDF of scanned pages (JPEG images) with an invisible OCR text layer.
fn pdf(page: &Picture, text: &[String], title: &str, pw: u32, ph: u32, quality: u8, seed: u64) -> Result<Vec<u8>> {
    use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
    let mut doc = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let info = Ref::new(4);
    let n = text.len() as i32;
    let page_ids: Vec<Ref> = (0..n).map(|i| Ref::new(10 + i * 3)).collect();
    doc.catalog(catalog).pages(tree);
    doc.pages(tree).kids(page_ids.iter().copied()).count(n);
    doc.type1_font(font).base_font(Name(b"Helvetica"));
    doc.document_info(info).title(TextStr(title)).producer(TextStr("Canon iR-ADV C5535 PDF")).creator(TextStr("ScanSnap Manager"));
    for (i, page_text) in text.iter().enumerate() {
        let pid = page_ids[i];
        let img_id = Ref::new(pid.get() + 1);
        let content_id = Ref::new(pid.get() + 2);
        let img = page.render(pw, ph, (0.0, 0.0, 1.0, 1.0), 10, seed ^ (i as u64) << 32);
        let data = jpeg(&img, quality)?;
        let mut x = doc.image_xobject(img_id, &data);
        x.filter(Filter::DctDecode);
        x.width(pw as i32);
        x.height(ph as i32);
        x.color_space().device_rgb();
        x.bits_per_component(8);
        x.finish();
        let mut c = Content::new();
        c.save_state();
        c.transform([595.0, 0.0, 0.0, 842.0, 0.0, 0.0]);
        c.x_object(Name(b"Im1"));
        c.restore_state();
        c.begin_text();
        c.set_text_rendering_mode(pdf_writer::types::TextRenderingMode::Invisible);
        c.set_font(Name(b"F1"), 10.0);
        c.set_leading(13.0);
        c.next_line(64.0, 780.0);
        for line in wrap(page_text, 95) {
            let latin1: Vec<u8> = line.chars().map(|ch| if (ch as u32) < 256 { ch as u8 } else { b'?' }).collect();
            c.show(Str(&latin1));
            c.next_line_using_leading();
        }
        c.end_text();
        let content = c.finish();
        doc.stream(content_id, content.as_slice());
        let mut p = doc.page(pid);
        p.parent(tree);
        p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        p.contents(content_id);
        let mut res = p.resources();
        res.x_objects().pair(Name(b"Im1"), img_id);
        res.fonts().pair(Name(b"F1"), font);
        res.finish();
        p.finish();
    }
    Ok(doc.finish())
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + word.chars().count() + 1 > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_hash_is_one_folder_per_digit() {
        assert_eq!(dir_hash(5), "0");
        assert_eq!(dir_hash(1234), "1/2");
        assert_eq!(dir_hash(123_456), "1/2/3/4");
    }

    #[test]
    fn fits() {
        assert_eq!(fit(Fit::Width(1000), 4000, 3000).0, 1000);
        assert_eq!(fit(Fit::Width(1000), 400, 300).0, 400);
        let (w, h, vp) = fit(Fit::Fill(72, 72), 4000, 3000);
        assert_eq!((w, h), (72, 72));
        assert!((vp.0 - 0.125).abs() < 1e-6);
        assert_eq!(fit(Fit::BBox(120, 120), 4000, 2000), (120, 60, (0.0, 0.0, 1.0, 1.0)));
    }

    #[test]
    fn upload_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for (i, kind) in [OriginalKind::Tiff, OriginalKind::Jpeg, OriginalKind::Png, OriginalKind::Pdf].into_iter().enumerate() {
            let plan = UploadPlan {
                representation_id: 150 + i as u32,
                kind,
                original_bytes: 200_000,
                seed: 9 + i as u64,
                uploaded_at: 1_700_000_000,
                idno: "2019.12.3".into(),
            };
            let up = make_upload(&plan, dir.path()).unwrap();
            let versions = decode_media_column(&up.media).unwrap();
            assert_eq!(versions.len(), up.files.len());
            assert!(versions.len() >= 15, "{kind:?}: {} versions", versions.len());
            for v in &versions {
                let data = std::fs::read(dir.path().join(&v.path)).unwrap();
                assert_eq!(data.len() as u64, v.filesize, "{}", v.path);
                assert_eq!(md5_hex(&data), v.md5);
                assert!(v.path.starts_with("images/1/") || v.path.starts_with("tilepics/1/"), "{}", v.path);
            }
            let orig = versions.iter().find(|v| v.version == "original").unwrap();
            assert_eq!(orig.md5, up.md5);
            assert!(orig.filesize > 50_000, "{kind:?} original {} bytes", orig.filesize);
            // same seed, same bytes
            let again = make_upload(&plan, dir.path()).unwrap();
            assert_eq!(again.media, up.media);
        }
    }
}
