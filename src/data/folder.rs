//! Photo folders: an ImageFolder tree (`root/<class>/*.jpg|jpeg|png|bmp|webp`, classes sorted
//! by name) or a flat folder of unlabeled images. `list` reads what is there (names, sizes,
//! modification times: the folder's identity for the dataset cache); decoding is `decode`'s.
//! Hidden files and folders (`.ipynb_checkpoints`, `.DS_Store`) are not data.
use std::path::{Path, PathBuf};

pub use super::decode::{decode_bytes, MAX_DECODE_BYTES, MAX_DECODE_SIDE};
use super::Image;
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// One image file of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// Relative to the listing's root (`class/name.jpg`, or `name.jpg`).
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 where the OS has none).
    pub mtime_ns: i128,
    /// Index into `Listing::classes` (ImageFolder trees).
    pub label: Option<u32>,
}

/// What a photo folder holds, in a fixed order.
#[derive(Clone, Debug)]
pub struct Listing {
    pub root: PathBuf,
    pub files: Vec<ListedFile>,
    pub classes: Vec<String>,
}

impl Listing {
    /// A hash of every file's relative path, size and modification time, and the classes:
    /// any added, removed, renamed, resized or rewritten file changes it.
    pub fn identity(&self) -> u64 {
        let mut h = crate::rng::Fnv::new();
        for c in &self.classes {
            h.eat(c.as_bytes());
            h.eat(&[0]);
        }
        for f in &self.files {
            h.eat(f.path.to_string_lossy().as_bytes());
            h.eat(&[0]);
            h.eat(&f.size.to_le_bytes());
            h.eat(&f.mtime_ns.to_le_bytes());
            h.eat(&f.label.map_or(u32::MAX, |l| l).to_le_bytes());
        }
        h.finish()
    }

    pub fn is_labelled(&self) -> bool {
        !self.classes.is_empty()
    }
}

fn listed(root: &Path, path: &Path, label: Option<u32>) -> Result<ListedFile> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    Ok(ListedFile { path: rel, size: meta.len(), mtime_ns, label })
}

/// Lists `root`: class folders (sorted) of images, else the images directly in it.
pub fn list(root: &Path) -> Result<Listing> {
    let all = entries(root)?;
    let class_dirs: Vec<&PathBuf> = all.iter().filter(|p| p.is_dir()).collect();
    let mut files = Vec::new();
    let mut classes = Vec::new();
    if class_dirs.is_empty() {
        for p in all.iter().filter(|p| p.is_file() && is_image(p)) {
            files.push(listed(root, p, None)?);
        }
    } else {
        for (i, d) in class_dirs.iter().enumerate() {
            classes.push(d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            for p in entries(d)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
                files.push(listed(root, &p, Some(i as u32))?);
            }
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "'{}' contains no images (.jpg, .jpeg, .png, .bmp, .webp), directly or in class folders",
            root.display()
        )));
    }
    Ok(Listing { root: root.to_path_buf(), files, classes })
}

/// Decodes one file to RGB, shrinking it so its shorter side is at most `max_side` (0 = full
/// size); refuses images beyond `MAX_DECODE_SIDE` or `MAX_DECODE_BYTES`.
pub fn decode(path: &Path, max_side: usize) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    decode_bytes(&bytes, &path.display().to_string(), max_side)
}
