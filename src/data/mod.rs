//! Datasets: CIFAR binary batches, ImageFolder trees (or a flat folder of unlabeled images),
//! and a built-in procedural dataset that needs no files. Images are kept decoded in memory as
//! 8-bit RGB; augmentation (`augment`) turns them into normalised multi-crop tensors.
pub mod augment;
#[cfg(not(target_arch = "wasm32"))]
pub mod cifar;
#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
#[cfg(not(target_arch = "wasm32"))]
pub mod loader;
pub mod synthetic;

use crate::error::{Error, Result};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn new(width: usize, height: usize, rgb: Vec<u8>) -> Result<Image> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(Error::Invalid(format!("image {width}x{height} with {} bytes", rgb.len())));
        }
        Ok(Image { width, height, rgb })
    }

    /// From RGBA bytes (a canvas's pixels); alpha is dropped.
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Result<Image> {
        if rgba.len() != width * height * 4 {
            return Err(Error::Invalid(format!("image {width}x{height} with {} RGBA bytes", rgba.len())));
        }
        Image::new(width, height, rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect())
    }

    /// Channel value in [0, 1].
    pub fn at(&self, x: usize, y: usize, c: usize) -> f32 {
        self.rgb[(y * self.width + x) * 3 + c] as f32 / 255.0
    }

    /// CHW floats in [0, 1] at the image's own size.
    pub fn to_chw(&self) -> Vec<f32> {
        let n = self.width * self.height;
        let mut out = vec![0.0; 3 * n];
        for i in 0..n {
            for c in 0..3 {
                out[c * n + i] = self.rgb[i * 3 + c] as f32 / 255.0;
            }
        }
        out
    }
}

/// Images with optional labels.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Where it came from, for messages.
    pub source: String,
    pub images: Vec<Image>,
    pub labels: Option<Vec<u32>>,
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
    pub fn is_labelled(&self) -> bool {
        self.labels.is_some()
    }
}

/// A training set and, when the source has one, a held-out set for evaluation.
#[derive(Clone, Debug, Default)]
pub struct DataSplit {
    pub train: Dataset,
    pub test: Option<Dataset>,
}

/// Per-channel normalisation (CIFAR-10 statistics, used for every dataset).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Opens `data` (None = the built-in dataset): a CIFAR binary file or folder of batches, a
/// folder with train/ and test/ ImageFolder trees, an ImageFolder tree, or a flat folder of
/// images. `max_side` bounds the stored size of decoded images (their shorter side).
#[cfg(not(target_arch = "wasm32"))]
pub fn open(data: Option<&std::path::Path>, max_side: usize) -> Result<DataSplit> {
    let Some(path) = data else {
        return Ok(synthetic::builtin());
    };
    if !path.exists() {
        return Err(Error::Invalid(format!("--data '{}' does not exist", path.display())));
    }
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "bin") {
            return Ok(DataSplit { train: cifar::load_file(path)?, test: None });
        }
        return Err(Error::Invalid(format!(
            "--data '{}' is a file but not a CIFAR .bin batch: pass a .bin file or a folder",
            path.display()
        )));
    }
    if cifar::is_cifar_dir(path) {
        return cifar::load_dir(path);
    }
    let (train, test) = (path.join("train"), path.join("test"));
    if train.is_dir() {
        let test = if test.is_dir() { Some(folder::load(&test, max_side)?) } else { None };
        return Ok(DataSplit { train: folder::load(&train, max_side)?, test });
    }
    Ok(DataSplit { train: folder::load(path, max_side)?, test: None })
}
