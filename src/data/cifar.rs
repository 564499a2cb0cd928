//! CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (1024 R, 1024 G, 1024 B,
//! row-major 32x32).
use std::path::Path;

use super::{DataSplit, Dataset, Image};
use crate::error::{Error, Result};

pub const RECORD: usize = 3073;

pub fn is_cifar_dir(dir: &Path) -> bool {
    batch_files(dir).map(|v| !v.is_empty()).unwrap_or(false) || dir.join("test_batch.bin").is_file()
}

fn batch_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
        })
        .collect();
    v.sort();
    Ok(v)
}

fn class_names(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("batches.meta.txt"))
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_else(|_| (0..10).map(|i| format!("class{i}")).collect())
}

/// Decodes one batch file's bytes; `name` is used in errors.
pub fn parse(bytes: &[u8], name: &str) -> Result<(Vec<Image>, Vec<u32>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::Invalid(format!(
            "'{name}' is {} bytes, not a whole number of 3073-byte CIFAR records (truncated or not a CIFAR batch?)",
            bytes.len()
        )));
    }
    let mut images = Vec::with_capacity(bytes.len() / RECORD);
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    for rec in bytes.chunks_exact(RECORD) {
        if rec[0] > 9 {
            return Err(Error::Invalid(format!("'{name}' has label {} (CIFAR-10 labels are 0..9)", rec[0])));
        }
        labels.push(rec[0] as u32);
        let mut rgb = vec![0u8; 3072];
        for i in 0..1024 {
            for c in 0..3 {
                rgb[i * 3 + c] = rec[1 + c * 1024 + i];
            }
        }
        images.push(Image { width: 32, height: 32, rgb });
    }
    Ok((images, labels))
}

pub fn load_file(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", path.display())))?;
    let (images, labels) = parse(&bytes, &path.display().to_string())?;
    let classes = path.parent().map(class_names).unwrap_or_default();
    Ok(Dataset::from_images(path.display().to_string(), images, Some(labels), classes))
}

/// data_batch_*.bin as the training set, test_batch.bin as the test set.
pub fn load_dir(dir: &Path) -> Result<DataSplit> {
    let files = batch_files(dir)?;
    if files.is_empty() {
        return Err(Error::Invalid(format!("'{}' has no data_batch_*.bin files", dir.display())));
    }
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| Error::Invalid(format!("cannot read '{}': {e}", f.display())))?;
        let (i, l) = parse(&bytes, &f.display().to_string())?;
        images.extend(i);
        labels.extend(l);
    }
    let train = Dataset::from_images(dir.display().to_string(), images, Some(labels), class_names(dir));
    let test_path = dir.join("test_batch.bin");
    let test = if test_path.is_file() { Some(load_file(&test_path)?) } else { None };
    Ok(DataSplit { train, test })
}
