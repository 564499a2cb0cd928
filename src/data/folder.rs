//! ImageFolder trees (`root/<class>/*.jpg|jpeg|png|bmp|webp`, classes sorted by name) and flat
//! folders of unlabeled images, decoded with the `image` crate in parallel. Undecodable files
//! are skipped with a warning while valid images remain; none at all is an error.
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Dataset, Image};
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Largest width or height decoded: a bigger image (a decompression bomb: a few KB of PNG
/// that claims 12000x12000) is skipped before anything is allocated for it.
pub const MAX_DECODE_SIDE: u32 = 10_000;
/// Most memory one decode may allocate.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Decodes one file to RGB, shrinking it so its shorter side is at most `max_side`; refuses
/// images beyond `MAX_DECODE_SIDE` or `MAX_DECODE_BYTES`.
pub fn decode(path: &Path, max_side: usize) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    decode_bytes(&bytes, &path.display().to_string(), max_side)
}

/// `decode` of a file's bytes; `name` for messages.
pub fn decode_bytes(bytes: &[u8], name: &str, max_side: usize) -> Result<Image> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("cannot decode '{name}': {e}"));
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::Invalid(format!(
            "'{name}' is larger than the decoding limit ({MAX_DECODE_SIDE} px per side, {} MiB): {e}",
            MAX_DECODE_BYTES >> 20
        )),
        e => bad(&e),
    })?;
    let img = img.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let short = w.min(h);
    let img = if max_side > 0 && short > max_side {
        let s = max_side as f64 / short as f64;
        image::imageops::resize(
            &img,
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    Image::new(img.width() as usize, img.height() as usize, img.into_raw())
}

pub fn load(root: &Path, max_side: usize) -> Result<Dataset> {
    let entries = list(root)?;
    let class_dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let mut files: Vec<(PathBuf, Option<u32>)> = Vec::new();
    let mut classes = Vec::new();
    if class_dirs.is_empty() {
        files.extend(entries.iter().filter(|p| p.is_file() && is_image(p)).map(|p| (p.clone(), None)));
    } else {
        for (i, d) in class_dirs.iter().enumerate() {
            classes.push(d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            files.extend(list(d)?.into_iter().filter(|p| p.is_file() && is_image(p)).map(|p| (p, Some(i as u32))));
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "'{}' contains no images (.jpg, .jpeg, .png, .bmp, .webp), directly or in class folders",
            root.display()
        )));
    }
    let decoded: Vec<(Result<Image>, Option<u32>)> = files.par_iter().map(|(p, l)| (decode(p, max_side), *l)).collect();
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut bad = Vec::new();
    for (r, l) in decoded {
        match r {
            Ok(img) => {
                images.push(img);
                labels.push(l.unwrap_or(0));
            }
            Err(e) => bad.push(e.to_string()),
        }
    }
    if images.is_empty() {
        return Err(Error::Invalid(format!(
            "no image in '{}' could be decoded ({} failed; first: {})",
            root.display(),
            bad.len(),
            bad[0]
        )));
    }
    for e in bad.iter().take(5) {
        eprintln!("warning: skipping {e}");
    }
    if bad.len() > 5 {
        eprintln!("warning: skipped {} more undecodable files", bad.len() - 5);
    }
    let labelled = !classes.is_empty();
    Ok(Dataset { source: root.display().to_string(), images, labels: labelled.then_some(labels), classes })
}
