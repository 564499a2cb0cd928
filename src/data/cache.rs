//! The dataset cache: a photo folder decoded once, on every core, into one file that later
//! runs (`--resume`, `eval`, `embed`) open in milliseconds and read sample by sample, so no
//! copy of the dataset is ever held in memory (after FFCV's dataset files).
//!
//! Layout (little-endian): `MAGIC`, then the records (each image at the working resolution,
//! raw RGB bytes or a JPEG), then the index (`ENTRY_BYTES` per image: offset, length, width,
//! height, label, CRC-32 of the record), then the header (JSON: the folder, the identity of
//! its listing, the resolution, the encoding, classes, skipped files), then the footer
//! (where the index and header lie, a CRC-32 of both, the format version, `MAGIC`). A file is
//! written under a temporary name and renamed into place when complete, so a cache is whole
//! or absent; a truncated or damaged one fails its footer or checksums and is rebuilt.
//!
//! One builder at a time: whoever creates `<cache>.lock` builds (a data-parallel job's first
//! rank, `prepare` on a login node), everyone else waits for the finished file. A lock whose
//! builder died (its process is gone, or it has not written for `STALE_LOCK`) is taken over.
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::decode::{decode_bytes, decode_jpeg_record, encode_jpeg};
use super::folder::{ListedFile, Listing};
use super::Image;
use crate::error::{Error, Result};

/// Bumped whenever the layout or the decoding changes: older caches are rebuilt.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SWAVDSC\x01";
const ENTRY_BYTES: usize = 24;
const FOOTER_BYTES: usize = 48;
/// JPEG quality of `Encoding::Jpeg` records (FFCV's ImageNet files use 90).
pub const JPEG_QUALITY: u8 = 90;
/// Resolutions up to this keep raw pixels: small images are cheap to store and a JPEG decode
/// would cost as much as their crops (benches/README.md has the measurements).
pub const RAW_UP_TO: usize = 96;
/// A lock not written to for this long belongs to a builder that died.
const STALE_LOCK: Duration = Duration::from_secs(120);
/// Error messages of undecodable files kept in the header (the count is always kept).
const SKIPPED_KEPT: usize = 100;

/// How a record stores its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Width x height x 3 bytes.
    Raw,
    /// A JPEG (quality `JPEG_QUALITY`, 4:2:0).
    Jpeg,
}

impl Encoding {
    /// The encoding for images whose shorter side is `short_side` (0 = full size).
    pub fn for_side(short_side: usize) -> Encoding {
        if short_side > 0 && short_side <= RAW_UP_TO {
            Encoding::Raw
        } else {
            Encoding::Jpeg
        }
    }
}

/// What a cache holds, stored in it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub format_version: u32,
    /// The folder it was built from (absolute).
    pub source: String,
    /// `Listing::identity` of the folder when it was built.
    pub listing: String,
    /// Files listed, and records (the files that decoded).
    pub listed: usize,
    pub images: usize,
    /// Shorter side of every record (0 = full size).
    pub short_side: usize,
    pub encoding: Encoding,
    pub classes: Vec<String>,
    /// Undecodable files: the first `SKIPPED_KEPT` messages and the count.
    pub skipped: Vec<String>,
    pub skipped_count: usize,
    /// Width and height when every image has the same.
    pub uniform_size: Option<(usize, usize)>,
}

/// Where caches go: `$XDG_CACHE_HOME/swav-wgpu/datasets`, else `~/.cache/swav-wgpu/datasets`
/// (`%LOCALAPPDATA%` on Windows), else the temporary folder.
pub fn default_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .or_else(|| env("LOCALAPPDATA"))
        .unwrap_or_else(std::env::temp_dir);
    base.join("swav-wgpu").join("datasets")
}

/// The cache file of `root` (absolute) at `short_side` in `dir`: named after the folder, the
/// resolution and a hash of the folder's path and the format version.
pub fn path_for(dir: &Path, root: &Path, short_side: usize, encoding: Encoding) -> PathBuf {
    let mut h = crate::rng::Fnv::new();
    h.eat(root.to_string_lossy().as_bytes());
    h.eat(&FORMAT_VERSION.to_le_bytes());
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect())
        .unwrap_or_else(|| "data".into());
    let enc = match encoding {
        Encoding::Raw => "raw",
        Encoding::Jpeg => "jpg",
    };
    dir.join(format!("{name}-{short_side}px-{enc}-{:016x}.swavdata", h.finish()))
}

/// One index entry: where the record lies and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    offset: u64,
    len: u32,
    width: u16,
    height: u16,
    label: u32,
    crc: u32,
}

impl Entry {
    fn to_bytes(self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.width.to_le_bytes());
        b[14..16].copy_from_slice(&self.height.to_le_bytes());
        b[16..20].copy_from_slice(&self.label.to_le_bytes());
        b[20..24].copy_from_slice(&self.crc.to_le_bytes());
        b
    }
    fn from_bytes(b: &[u8]) -> Entry {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        Entry {
            offset: u64_at(0),
            len: u32_at(8),
            width: u16_at(12),
            height: u16_at(14),
            label: u32_at(16),
            crc: u32_at(20),
        }
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut buf) = (0u64, buf);
        while !buf.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset + done)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// An open cache: records are read (and checked) one at a time, from any thread.
pub struct CacheReader {
    file: File,
    path: PathBuf,
    header: Header,
    index_offset: u64,
    reads: AtomicU64,
    built_now: bool,
}

impl std::fmt::Debug for CacheReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheReader({}, {} images)", self.path.display(), self.header.images)
    }
}

impl CacheReader {
    /// Opens and checks a cache (footer, header and index checksums; not the records, which
    /// are checked as they are read). Returns it with every image's label.
    pub fn open(path: &Path) -> Result<(CacheReader, Vec<u32>)> {
        let damaged =
            |what: String| Error::Invalid(format!("the dataset cache '{}' is damaged: {what}", path.display()));
        let file = File::open(path).map_err(|e| Error::Invalid(format!("cannot open '{}': {e}", path.display())))?;
        let len = file.metadata().map_err(|e| damaged(e.to_string()))?.len();
        if len < (MAGIC.len() + FOOTER_BYTES) as u64 {
            return Err(damaged(format!("{len} bytes, shorter than its footer (truncated)")));
        }
        let mut footer = [0u8; FOOTER_BYTES];
        read_exact_at(&file, &mut footer, len - FOOTER_BYTES as u64).map_err(|e| damaged(e.to_string()))?;
        let u64_at = |i: usize| u64::from_le_bytes(footer[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(footer[i..i + 4].try_into().expect("4 bytes"));
        if &footer[40..48] != MAGIC {
            return Err(damaged("no footer (truncated, or not a dataset cache)".into()));
        }
        let (index_offset, count, header_offset, header_len) = (u64_at(0), u64_at(8), u64_at(16), u64_at(24));
        let (want_crc, version) = (u32_at(32), u32_at(36));
        if version != FORMAT_VERSION {
            return Err(damaged(format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        let index_bytes = count.checked_mul(ENTRY_BYTES as u64);
        let consistent = index_bytes.is_some_and(|b| index_offset.checked_add(b) == Some(header_offset))
            && header_offset.checked_add(header_len) == Some(len - FOOTER_BYTES as u64)
            && header_len < (64 << 20);
        if !consistent {
            return Err(damaged("its footer does not match its size (truncated?)".into()));
        }
        // The index and header, streamed through the checksum; the labels kept.
        let mut crc = crc32fast::Hasher::new();
        let mut labels = Vec::with_capacity(count as usize);
        let mut chunk = vec![0u8; ENTRY_BYTES * 4096];
        let mut at = index_offset;
        while at < header_offset {
            let n = ((header_offset - at) as usize).min(chunk.len());
            read_exact_at(&file, &mut chunk[..n], at).map_err(|e| damaged(e.to_string()))?;
            crc.update(&chunk[..n]);
            labels.extend(chunk[..n].chunks_exact(ENTRY_BYTES).map(|b| Entry::from_bytes(b).label));
            at += n as u64;
        }
        let mut header_bytes = vec![0u8; header_len as usize];
        read_exact_at(&file, &mut header_bytes, header_offset).map_err(|e| damaged(e.to_string()))?;
        crc.update(&header_bytes);
        if crc.finalize() != want_crc {
            return Err(damaged("its index or header fails its checksum".into()));
        }
        let header: Header = serde_json::from_slice(&header_bytes).map_err(|e| damaged(format!("its header: {e}")))?;
        if header.images as u64 != count {
            return Err(damaged("its header and index disagree".into()));
        }
        let reader = CacheReader {
            file,
            path: path.to_path_buf(),
            header,
            index_offset,
            reads: AtomicU64::new(0),
            built_now: false,
        };
        Ok((reader, labels))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.header.images
    }

    pub fn is_empty(&self) -> bool {
        self.header.images == 0
    }

    /// Whether this process built it (else it was found up to date).
    pub fn was_built(&self) -> bool {
        self.built_now
    }

    /// Records read so far (every thread).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn damaged(&self, what: String) -> Error {
        // Never train on it again: the next start rebuilds it.
        let _ = std::fs::remove_file(&self.path);
        Error::Invalid(format!(
            "the dataset cache '{}' is damaged ({what}); it has been removed, and the next start rebuilds it (or run `swav-wgpu prepare`)",
            self.path.display()
        ))
    }

    /// Image `i`, its record checked against its checksum.
    pub fn image(&self, i: usize) -> Result<Image> {
        if i >= self.header.images {
            return Err(Error::Invalid(format!("image {i} of a cache of {}", self.header.images)));
        }
        let mut eb = [0u8; ENTRY_BYTES];
        read_exact_at(&self.file, &mut eb, self.index_offset + (i * ENTRY_BYTES) as u64)
            .map_err(|e| self.damaged(format!("index entry {i}: {e}")))?;
        let e = Entry::from_bytes(&eb);
        let mut buf = vec![0u8; e.len as usize];
        read_exact_at(&self.file, &mut buf, e.offset).map_err(|err| self.damaged(format!("record {i}: {err}")))?;
        if crc32fast::hash(&buf) != e.crc {
            return Err(self.damaged(format!("record {i} fails its checksum")));
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (w, h) = (e.width as usize, e.height as usize);
        let img = match self.header.encoding {
            Encoding::Raw => Image::new(w, h, buf),
            Encoding::Jpeg => decode_jpeg_record(&buf),
        }
        .map_err(|err| self.damaged(format!("record {i}: {err}")))?;
        if (img.width, img.height) != (w, h) {
            return Err(self.damaged(format!("record {i} is {}x{}, its index says {w}x{h}", img.width, img.height)));
        }
        Ok(img)
    }
}

/// How `open_or_build` finds or makes a cache.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// The folder caches live in (`default_dir()` unless `--cache-dir`).
    pub dir: PathBuf,
    /// Shorter side of the stored images (0 = full size).
    pub short_side: usize,
    /// Print nothing (the ranks of a data-parallel job but the first).
    pub quiet: bool,
    /// The records' encoding; None: `Encoding::for_side` (the benchmark compares both).
    pub encoding: Option<Encoding>,
}

/// A cache ready to read (`reader.was_built()` says whether this call built it), with every
/// image's label.
pub struct Opened {
    pub reader: CacheReader,
    pub labels: Vec<u32>,
}

/// The cache of folder `root` (absolute) at `opts.short_side`: opened when it matches the
/// folder as it is now, else (re)built, once, whoever else is asking at the same time.
pub fn open_or_build(root: &Path, listing: &Listing, opts: &CacheOptions) -> Result<Opened> {
    let encoding = opts.encoding.unwrap_or_else(|| Encoding::for_side(opts.short_side));
    let path = path_for(&opts.dir, root, opts.short_side, encoding);
    let identity = format!("{:016x}", listing.identity());
    let say = |s: String| {
        if !opts.quiet {
            eprintln!("{s}")
        }
    };
    let lock = path.with_extension("swavdata.lock");
    let mut waiting_said = false;
    let mut rebuild_said = false;
    loop {
        if path.exists() {
            match CacheReader::open(&path) {
                Ok((reader, labels)) if reader.header.listing == identity => return Ok(Opened { reader, labels }),
                Ok((reader, _)) if !rebuild_said => {
                    let h = &reader.header;
                    say(format!(
                        "dataset cache: '{}' changed since its cache was built ({} files then, {} now): rebuilding",
                        root.display(),
                        h.listed,
                        listing.files.len()
                    ));
                    rebuild_said = true;
                }
                Err(e) if !rebuild_said => {
                    say(format!("dataset cache: {e}: rebuilding"));
                    rebuild_said = true;
                }
                _ => {}
            }
        }
        std::fs::create_dir_all(&opts.dir).map_err(|e| unwritable(&opts.dir, &e))?;
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut f) => {
                let _ = write!(f, "{}", lock_owner());
                // Another builder may have finished between the look above and the lock.
                if let Ok((reader, labels)) = CacheReader::open(&path) {
                    if reader.header.listing == identity {
                        let _ = std::fs::remove_file(&lock);
                        return Ok(Opened { reader, labels });
                    }
                }
                let result = build_locked(root, listing, &identity, encoding, &path, &lock, opts);
                let _ = std::fs::remove_file(&lock);
                result?;
                let (mut reader, labels) = CacheReader::open(&path)?;
                reader.built_now = true;
                return Ok(Opened { reader, labels });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if lock_is_stale(&lock) {
                    say(format!("dataset cache: taking over '{}' from a build that stopped", lock.display()));
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                if !waiting_said {
                    let owner = std::fs::read_to_string(&lock).unwrap_or_default();
                    say(format!(
                        "dataset cache: waiting for {} to finish building '{}'",
                        owner.lines().next().filter(|l| !l.is_empty()).unwrap_or("another process"),
                        path.display()
                    ));
                    waiting_said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(unwritable(&opts.dir, &e)),
        }
    }
}

fn unwritable(dir: &Path, e: &std::io::Error) -> Error {
    Error::Invalid(format!(
        "cannot write the dataset cache in '{}': {e}; pass --cache-dir with a writable folder",
        dir.display()
    ))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default()
}

/// "host pid N" of this process: who holds a lock or wrote a temporary file.
fn lock_owner() -> String {
    format!("{} pid {}", hostname(), std::process::id())
}

/// Whether the process named by an owner string ("host pid N") is known to be gone: on this
/// host, where /proc tells (Linux).
fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.split_whitespace();
    let (Some(host), Some("pid"), Some(pid)) = (parts.next(), parts.next(), parts.next()) else { return false };
    host == hostname() && crate::io::process_is_gone(pid)
}

fn lock_is_stale(lock: &Path) -> bool {
    let owner = std::fs::read_to_string(lock).unwrap_or_default();
    let idle = std::fs::metadata(lock).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    owner_is_gone(owner.trim()) || idle.is_some_and(|d| d > STALE_LOCK)
}

/// Removes temporary files of builds of `path` whose process is gone (a killed build).
fn remove_dead_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().map(|n| n.to_string_lossy().into_owned())) else {
        return;
    };
    let prefix = format!("{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(owner) = file.strip_prefix(&prefix) {
            // "<host>-<pid>[.index]"
            let owner = owner.trim_end_matches(".index");
            if let Some((host, pid)) = owner.rsplit_once('-') {
                if owner_is_gone(&format!("{host} pid {pid}")) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// One file, decoded at the working resolution and encoded as a record.
fn record(root: &Path, f: &ListedFile, short_side: usize, encoding: Encoding) -> Result<(Vec<u8>, usize, usize)> {
    let path = root.join(&f.path);
    let bytes = std::fs::read(&path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let img = decode_bytes(&bytes, &path.display().to_string(), short_side)?;
    let (w, h) = (img.width, img.height);
    if w > u16::MAX as usize || h > u16::MAX as usize {
        return Err(Error::Invalid(format!("'{}' is {w}x{h}, too large for a cache record", path.display())));
    }
    let data = match encoding {
        Encoding::Raw => img.rgb,
        Encoding::Jpeg => encode_jpeg(&img, JPEG_QUALITY)?,
    };
    Ok((data, w, h))
}

/// Progress of a build: a bar on a terminal, else a line every ~10 s.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    start: Instant,
    last_line: Instant,
    quiet: bool,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("decoding {bar:30} {pos}/{len} images  {per_sec}  eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress { bar, total, done: 0, start: Instant::now(), last_line: Instant::now(), quiet }
    }

    fn rate(&self) -> f64 {
        self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.set_position(self.done as u64);
        } else if !self.quiet && self.last_line.elapsed() > Duration::from_secs(10) {
            let eta = (self.total - self.done) as f64 / self.rate().max(1e-9);
            eprintln!(
                "dataset cache: {}/{} images decoded, {:.0} images/s, eta {}",
                self.done,
                self.total,
                self.rate(),
                crate::run::format_duration(eta)
            );
            self.last_line = Instant::now();
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Builds the cache under a temporary name, holding the lock (touched as it goes), and
/// renames it into place.
fn build_locked(
    root: &Path,
    listing: &Listing,
    identity: &str,
    encoding: Encoding,
    path: &Path,
    lock: &Path,
    opts: &CacheOptions,
) -> Result<()> {
    remove_dead_temporaries(path);
    let owner = format!("{}-{}", hostname(), std::process::id());
    let tmp = PathBuf::from(format!("{}.tmp-{owner}", path.display()));
    let tmp_index = PathBuf::from(format!("{}.tmp-{owner}.index", path.display()));
    let result = write_cache(root, listing, identity, encoding, &tmp, &tmp_index, lock, opts);
    let _ = std::fs::remove_file(&tmp_index);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Invalid(format!("cannot move the dataset cache into '{}': {e}", path.display()))
    })
}

/// The file being written: records and index entries as they come, then the trailer.
struct CacheWriter {
    out: BufWriter<File>,
    index: BufWriter<File>,
    index_path: PathBuf,
    path: PathBuf,
    offset: u64,
    images: usize,
    skipped: Vec<String>,
    skipped_count: usize,
    /// None before the first image; then the size every image so far has, if they agree.
    uniform: Option<Option<(usize, usize)>>,
}

impl CacheWriter {
    fn io(&self, e: std::io::Error) -> Error {
        Error::Invalid(format!("cannot write the dataset cache '{}': {e}", self.path.display()))
    }

    fn create(path: &Path, index_path: &Path) -> Result<CacheWriter> {
        let io =
            |e: std::io::Error| Error::Invalid(format!("cannot write the dataset cache '{}': {e}", path.display()));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        let index = BufWriter::new(File::create(index_path).map_err(io)?);
        out.write_all(MAGIC).map_err(io)?;
        Ok(CacheWriter {
            out,
            index,
            index_path: index_path.to_path_buf(),
            path: path.to_path_buf(),
            offset: MAGIC.len() as u64,
            images: 0,
            skipped: Vec::new(),
            skipped_count: 0,
            uniform: None,
        })
    }

    /// Appends one file's record, or counts it as skipped.
    fn push(&mut self, label: Option<u32>, record: Result<(Vec<u8>, usize, usize)>) -> Result<()> {
        let (data, w, h) = match record {
            Ok(r) => r,
            Err(e) => {
                self.skipped_count += 1;
                if self.skipped.len() < SKIPPED_KEPT {
                    self.skipped.push(e.to_string());
                }
                return Ok(());
            }
        };
        let entry = Entry {
            offset: self.offset,
            len: data.len() as u32,
            width: w as u16,
            height: h as u16,
            label: label.unwrap_or(u32::MAX),
            crc: crc32fast::hash(&data),
        };
        self.out.write_all(&data).map_err(|e| self.io(e))?;
        self.index.write_all(&entry.to_bytes()).map_err(|e| self.io(e))?;
        self.offset += data.len() as u64;
        self.images += 1;
        self.uniform = Some(match self.uniform {
            None => Some((w, h)),
            Some(u) => u.filter(|&s| s == (w, h)),
        });
        Ok(())
    }

    /// The index (copied in after the records), the header (`header` with what was counted)
    /// and the footer, then an fsync. Returns the header and the file's size.
    fn finish(mut self, mut header: Header) -> Result<(Header, u64)> {
        self.index.flush().map_err(|e| self.io(e))?;
        let mut index_file = File::open(&self.index_path).map_err(|e| self.io(e))?;
        let index_offset = self.offset;
        let mut crc = crc32fast::Hasher::new();
        let copied = std::io::copy(&mut index_file, &mut HashingWriter { inner: &mut self.out, crc: &mut crc })
            .map_err(|e| self.io(e))?;
        header.images = self.images;
        header.skipped = std::mem::take(&mut self.skipped);
        header.skipped_count = self.skipped_count;
        header.uniform_size = self.uniform.flatten();
        let header_bytes = serde_json::to_vec(&header).map_err(|e| Error::Invalid(e.to_string()))?;
        crc.update(&header_bytes);
        let header_offset = index_offset + copied;
        let mut tail = header_bytes.clone();
        for v in [index_offset, self.images as u64, header_offset, header_bytes.len() as u64] {
            tail.extend_from_slice(&v.to_le_bytes());
        }
        tail.extend_from_slice(&crc.finalize().to_le_bytes());
        tail.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        tail.extend_from_slice(MAGIC);
        self.out.write_all(&tail).map_err(|e| self.io(e))?;
        let size = header_offset + tail.len() as u64;
        let path = self.path.clone();
        let file = self.out.into_inner().map_err(|e| {
            Error::Invalid(format!("cannot write the dataset cache '{}': {}", path.display(), e.error()))
        })?;
        file.sync_all().map_err(|e| Error::Invalid(format!("cannot sync '{}': {e}", path.display())))?;
        Ok((header, size))
    }
}

#[allow(clippy::too_many_arguments)]
fn write_cache(
    root: &Path,
    listing: &Listing,
    identity: &str,
    encoding: Encoding,
    tmp: &Path,
    tmp_index: &Path,
    lock: &Path,
    opts: &CacheOptions,
) -> Result<()> {
    let n = listing.files.len();
    // Said by whichever process builds, also a quiet rank: a job shows it was built once.
    let side = match opts.short_side {
        0 => "full size".to_string(),
        s => format!("{s} px (shorter side)"),
    };
    eprintln!(
        "dataset cache: decoding {n} images of '{}' once at {side} on {} threads into {}",
        root.display(),
        rayon::current_num_threads(),
        tmp.parent().unwrap_or(Path::new(".")).display()
    );
    let mut writer = CacheWriter::create(tmp, tmp_index)?;
    let mut progress = Progress::new(n, opts.quiet);
    let mut last_touch = Instant::now();
    // Chunks decoded in parallel, written in listing order: the file does not depend on the
    // thread count, and only a chunk's records are in memory at once.
    let chunk = (rayon::current_num_threads() * 4).max(8);
    for files in listing.files.chunks(chunk) {
        let records: Vec<_> = files.par_iter().map(|f| record(root, f, opts.short_side, encoding)).collect();
        for (f, r) in files.iter().zip(records) {
            writer.push(f.label, r)?;
        }
        progress.advance(files.len());
        if last_touch.elapsed() > Duration::from_secs(2) {
            // The lock's heartbeat: waiting processes see the build is alive.
            let _ = std::fs::write(lock, format!("{}\n{}/{n} images", lock_owner(), progress.done));
            last_touch = Instant::now();
        }
    }
    progress.finish();
    if writer.images == 0 {
        return Err(Error::Invalid(format!(
            "no image in '{}' could be decoded ({} failed; first: {})",
            root.display(),
            writer.skipped_count,
            writer.skipped.first().map_or("", String::as_str)
        )));
    }
    let header = Header {
        format_version: FORMAT_VERSION,
        source: root.display().to_string(),
        listing: identity.to_string(),
        listed: n,
        images: 0,
        short_side: opts.short_side,
        encoding,
        classes: listing.classes.clone(),
        skipped: Vec::new(),
        skipped_count: 0,
        uniform_size: None,
    };
    let (header, size) = writer.finish(header)?;
    if !opts.quiet {
        report_build(&header, &progress, size);
    }
    Ok(())
}

/// The build's last lines: the files skipped, the rate and the size.
fn report_build(header: &Header, progress: &Progress, size: u64) {
    if header.skipped_count > 0 {
        eprintln!("dataset cache: skipped {} undecodable file(s):", header.skipped_count);
        for e in header.skipped.iter().take(20) {
            eprintln!("  {e}");
        }
        if header.skipped_count > 20 {
            eprintln!("  ... and {} more (all listed in the cache's header)", header.skipped_count - 20);
        }
    }
    eprintln!(
        "dataset cache: {} images in {:.1} s ({:.0} images/s), {:.1} MB",
        header.images,
        progress.start.elapsed().as_secs_f64(),
        progress.rate(),
        size as f64 / 1e6
    );
}

/// Copies while updating a checksum.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    crc: &'a mut crc32fast::Hasher,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
