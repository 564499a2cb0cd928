//! Datasets: CIFAR binary batches, ImageFolder trees (or a flat folder of unlabeled images),
//! and a built-in procedural dataset that needs no files. Small datasets are kept decoded in
//! memory as 8-bit RGB; photo folders are decoded once into a dataset cache (`cache`) and read
//! from it sample by sample. Augmentation (`augment`) turns images into normalised multi-crop
//! tensors; `loader` prepares batches ahead of the GPU.
pub mod augment;
#[cfg(not(target_arch = "wasm32"))]
pub mod cache;
#[cfg(not(target_arch = "wasm32"))]
pub mod cifar;
#[cfg(not(target_arch = "wasm32"))]
pub mod decode;
#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
#[cfg(not(target_arch = "wasm32"))]
pub mod loader;
#[cfg(not(target_arch = "wasm32"))]
pub mod photos;
pub mod synthetic;

use std::borrow::Cow;
use std::sync::Arc;

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

/// Where a dataset's pixels are: decoded in memory (CIFAR batches, the built-in data, the
/// browser's own pictures: small by nature), or in a dataset cache file read sample by sample
/// (photo folders of any size).
#[derive(Clone, Debug)]
enum Pixels {
    Memory(Arc<Vec<Image>>),
    #[cfg(not(target_arch = "wasm32"))]
    Cache(Arc<cache::CacheReader>),
}

impl Default for Pixels {
    fn default() -> Self {
        Pixels::Memory(Arc::new(Vec::new()))
    }
}

/// Images with optional labels: the one sample source of training, evaluation and the
/// browser, whatever holds the pixels.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Where it came from, for messages.
    pub source: String,
    pixels: Pixels,
    pub labels: Option<Vec<u32>>,
    pub classes: Vec<String>,
}

impl Dataset {
    /// A dataset of decoded images.
    pub fn from_images(
        source: impl Into<String>,
        images: Vec<Image>,
        labels: Option<Vec<u32>>,
        classes: Vec<String>,
    ) -> Self {
        Dataset { source: source.into(), pixels: Pixels::Memory(Arc::new(images)), labels, classes }
    }

    pub fn len(&self) -> usize {
        match &self.pixels {
            Pixels::Memory(v) => v.len(),
            #[cfg(not(target_arch = "wasm32"))]
            Pixels::Cache(c) => c.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_labelled(&self) -> bool {
        self.labels.is_some()
    }

    /// Image `i` (read from the cache, or borrowed from memory).
    pub fn image(&self, i: usize) -> Result<Cow<'_, Image>> {
        match &self.pixels {
            Pixels::Memory(v) => v
                .get(i)
                .map(Cow::Borrowed)
                .ok_or_else(|| Error::Invalid(format!("image {i} of {} in {}", v.len(), self.source))),
            #[cfg(not(target_arch = "wasm32"))]
            Pixels::Cache(c) => c.image(i).map(Cow::Owned),
        }
    }

    /// A dataset read from an opened cache.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_cache(opened: cache::Opened) -> Dataset {
        let classes = opened.reader.header().classes.clone();
        Dataset {
            source: opened.reader.header().source.clone(),
            labels: (!classes.is_empty()).then_some(opened.labels),
            classes,
            pixels: Pixels::Cache(Arc::new(opened.reader)),
        }
    }

    /// The first `n` images (and labels) of an in-memory dataset, or the whole dataset.
    pub fn head(&self, n: usize) -> Dataset {
        match &self.pixels {
            Pixels::Memory(v) if n < v.len() => Dataset {
                source: self.source.clone(),
                pixels: Pixels::Memory(Arc::new(v[..n].to_vec())),
                labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
                classes: self.classes.clone(),
            },
            _ => self.clone(),
        }
    }

    /// Width and height when every image has the same.
    pub fn uniform_size(&self) -> Option<(usize, usize)> {
        match &self.pixels {
            Pixels::Memory(v) => {
                let first = v.first().map(|i| (i.width, i.height))?;
                v.iter().all(|i| (i.width, i.height) == first).then_some(first)
            }
            #[cfg(not(target_arch = "wasm32"))]
            Pixels::Cache(c) => c.header().uniform_size,
        }
    }

    /// The dataset cache behind it, if any.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn cache(&self) -> Option<&cache::CacheReader> {
        match &self.pixels {
            Pixels::Cache(c) => Some(c),
            Pixels::Memory(_) => None,
        }
    }
}

/// A training set and, when the source has one, a held-out set for evaluation.
#[derive(Clone, Debug, Default)]
pub struct DataSplit {
    pub train: Dataset,
    pub test: Option<Dataset>,
}

impl DataSplit {
    /// `train` with `test` held out, the test labels numbered as the training classes of the
    /// same name (`test_labels_by_name`).
    pub fn new(train: Dataset, test: Option<Dataset>) -> Result<DataSplit> {
        let test = test.map(|t| test_labels_by_name(&train, t)).transpose()?;
        Ok(DataSplit { train, test })
    }
}

/// `test` with its labels numbered as `train`'s classes of the same name, and `train`'s class
/// list: the two ImageFolder trees are matched by class folder name, not by position, so a
/// test tree with some of the training classes is evaluated right. A test class with images
/// that the training data lacks is an error naming it. Where either side has no class names
/// (CIFAR batches without batches.meta.txt), the labels are kept as they are.
pub fn test_labels_by_name(train: &Dataset, mut test: Dataset) -> Result<Dataset> {
    let Some(labels) = test.labels.as_mut() else { return Ok(test) };
    if train.classes.is_empty() || test.classes.is_empty() || train.classes == test.classes {
        return Ok(test);
    }
    let mut to_train = Vec::with_capacity(test.classes.len());
    for name in &test.classes {
        to_train.push(train.classes.iter().position(|c| c == name).map(|i| i as u32));
    }
    for (i, name) in test.classes.iter().enumerate() {
        let images = labels.iter().filter(|&&l| l as usize == i).count();
        if to_train[i].is_none() && images > 0 {
            return Err(Error::Invalid(format!(
                "the test data '{}' has a class '{name}' ({images} images) that the training data '{}' has not (its classes: {}); test classes are matched to training classes by folder name",
                test.source,
                train.source,
                train.classes.join(", ")
            )));
        }
    }
    for l in labels.iter_mut() {
        // Every label in use maps (checked above); a label outside the class list stays put.
        if let Some(Some(t)) = to_train.get(*l as usize) {
            *l = *t;
        }
    }
    test.classes = train.classes.clone();
    Ok(test)
}

/// The random stream of the epochs' sample orders (`Rng::derive(seed, EPOCH_ORDER_STREAM,
/// epoch)`); the augmentation of sample i in epoch e draws from (seed, e + 1, i).
pub const EPOCH_ORDER_STREAM: u64 = 0xE90C;

/// The sample order of an epoch (a seeded shuffle): the same natively, on every rank and in
/// the browser.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    crate::rng::Rng::derive(seed, EPOCH_ORDER_STREAM, epoch as u64).shuffle(&mut order);
    order
}

/// Per-channel normalisation (CIFAR-10 statistics, used for every dataset).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// How photo folders are opened: their working resolution and where their caches live.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Shorter side of the decoded images (0 = full size).
    pub max_side: usize,
    /// Where dataset caches live (`cache::default_dir()` when None).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Print nothing (every rank of a data-parallel job but the first).
    pub quiet: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl OpenOptions {
    pub fn new(max_side: usize) -> OpenOptions {
        OpenOptions { max_side, cache_dir: None, quiet: false }
    }
}

/// Opens `data` (None = the built-in dataset): a CIFAR binary file or folder of batches, a
/// folder with train/ and test/ ImageFolder trees, an ImageFolder tree, or a flat folder of
/// images. Folders are read through their dataset cache (built on first use).
#[cfg(not(target_arch = "wasm32"))]
pub fn open(data: Option<&std::path::Path>, opts: &OpenOptions) -> Result<DataSplit> {
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
        let test = if test.is_dir() { Some(open_folder(&test, opts)?) } else { None };
        return DataSplit::new(open_folder(&train, opts)?, test);
    }
    Ok(DataSplit { train: open_folder(path, opts)?, test: None })
}

/// A photo folder through its dataset cache.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_folder(root: &std::path::Path, opts: &OpenOptions) -> Result<Dataset> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let listing = folder::list(&root)?;
    let copts = cache::CacheOptions {
        dir: opts.cache_dir.clone().unwrap_or_else(cache::default_dir),
        short_side: opts.max_side,
        quiet: opts.quiet,
        encoding: None,
    };
    let opened = cache::open_or_build(&root, &listing, &copts)?;
    let h = opened.reader.header();
    if !opened.reader.was_built() && h.skipped_count > 0 && !opts.quiet {
        eprintln!(
            "dataset cache: {} file(s) of '{}' did not decode and are skipped (listed when the cache was built)",
            h.skipped_count,
            root.display()
        );
    }
    Ok(Dataset::from_cache(opened))
}
