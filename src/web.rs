//! The browser API (wasm32 + WebGPU): a small SwAV run that a page can configure, step, plot,
//! evaluate and export, on the built-in dataset or on images the user drops on the page; and
//! in-browser checks of the kernels against the CPU references compiled to wasm. Nothing here
//! blocks: every GPU read is awaited.
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::data::augment::{multicrop, thumbnail_rgba, AugmentConfig};
use crate::data::{epoch_order, synthetic, Dataset, Image};
use crate::eval::{knn_top1, FeatureExtractor};
use crate::gpu::{Gpu, GpuOptions, Tensor};
use crate::rng::Rng;
use crate::train::backbone::is_backbone_key;
use crate::train::{CropConfig, TrainConfig, Trainer};

fn js(e: crate::Error) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The demo's model: the built-in data's verified recipe (`small_data_defaults`: Adam, K 256
/// frozen prototypes over D 16, any-hue jitter) at width 0.125 and batch 32, small enough for
/// a software WebGPU adapter, with lr 6e-3 (its k-NN passes the random-init network's within
/// 100-200 steps; 3e-3 needs about 220, 1e-2 about 280). The page's controls override lr,
/// batch size, prototypes, crops and epochs (web/main.js has the same defaults).
pub fn demo_config() -> TrainConfig {
    TrainConfig { width: 0.125, batch_size: 32, epochs: 3, lr: 6e-3, ..crate::train::config::small_data_defaults() }
}

/// The page's k-NN: this many built-in train images as the memory bank, test images scored.
const KNN_BANK: usize = 1000;
const KNN_TEST: usize = 500;
/// Uploaded images are shrunk so their shorter side is at most this (as `--max-side`).
pub const MAX_SIDE: usize = 64;

#[wasm_bindgen]
pub struct WebDemo {
    gpu: Arc<Gpu>,
    trainer: Trainer,
    /// What the run trains on: the built-in train split, or the user's images.
    data: Dataset,
    builtin: bool,
    /// Images the user added (trained on after `train_on_own_images`).
    own: Vec<Image>,
    aug: AugmentConfig,
    order: Vec<usize>,
    batch_indices: Vec<usize>,
    seed: u64,
    extractor: Option<FeatureExtractor>,
    knn_sets: Option<(Dataset, Dataset)>,
}

#[wasm_bindgen]
impl WebDemo {
    /// Opens WebGPU (an error string when the browser has none) and compiles the step with
    /// the demo's config and these settings; `crops` as COUNTxSIZE groups ("2x32,2x16").
    pub async fn create(
        seed: u32,
        lr: f64,
        batch_size: u32,
        prototypes: u32,
        crops: String,
        epochs: u32,
    ) -> Result<WebDemo, JsValue> {
        let mut cfg = demo_config();
        cfg.lr = lr;
        cfg.batch_size = batch_size as usize;
        cfg.prototypes = prototypes as usize;
        // Counts and sizes from the page; each group keeps the recipe's scale range where the
        // recipe has that group (its large crops are 0.3-1 of the image, not the official 0.14).
        let recipe = cfg.crops.clone();
        cfg.crops = CropConfig::parse_groups(&crops).map_err(js)?;
        for (c, r) in cfg.crops.iter_mut().zip(&recipe) {
            (c.min_scale, c.max_scale) = (r.min_scale, r.max_scale);
        }
        let n = cfg.n_crops();
        cfg.crops_for_assign.retain(|&c| c < n);
        cfg.epochs = epochs.max(1) as usize;
        cfg.seed = seed as u64;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(JsValue::from_str(&format!("the learning rate must be a positive number, not {lr}")));
        }
        cfg.validate().map_err(js)?;
        let gpu = Gpu::new(&GpuOptions::default()).await.map_err(js)?;
        // f16 activations where the page's adapter has shader-f16 (half the memory).
        cfg.precision = crate::train::config::Precision::Auto;
        crate::train::precision::resolve(&mut cfg, &gpu).map_err(js)?;
        let data = synthetic::builtin().train;
        let trainer = Trainer::new(gpu.clone(), cfg.clone(), data.len() / cfg.batch_size).map_err(js)?;
        trainer.init_random(seed as u64).map_err(js)?;
        let mut demo = WebDemo {
            gpu,
            trainer,
            data,
            builtin: true,
            own: Vec::new(),
            aug: cfg.augment(),
            order: Vec::new(),
            batch_indices: Vec::new(),
            seed: seed as u64,
            extractor: None,
            knn_sets: None,
        };
        demo.shuffle();
        Ok(demo)
    }

    /// The current epoch's sample order (`data::epoch_order`, as a native run).
    fn shuffle(&mut self) {
        let per_epoch = (self.data.len() / self.trainer.cfg.batch_size).max(1);
        self.order = epoch_order(self.data.len(), self.seed, self.trainer.iteration / per_epoch);
    }

    /// "name (backend, device type); f16|f32 activations; limits ..."
    pub fn adapter(&self) -> String {
        let l = &self.gpu.limits;
        format!(
            "{}; {} activations; storage binding {} MiB, workgroup memory {} KiB, {} invocations/workgroup, {} storage buffers/stage",
            self.gpu.describe(),
            self.trainer.cfg.precision,
            l.max_storage_buffer_binding_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage
        )
    }

    /// Why the GPU device was lost, if it was.
    pub fn device_lost(&self) -> Option<String> {
        self.gpu.lost()
    }

    pub fn iteration(&self) -> u32 {
        self.trainer.iteration as u32
    }

    pub fn batch_size(&self) -> u32 {
        self.trainer.cfg.batch_size as u32
    }

    /// Total steps of the configured epochs on the current data.
    pub fn total_steps(&self) -> u32 {
        let steps = self.trainer.cfg.epochs.saturating_mul((self.data.len() / self.trainer.cfg.batch_size).max(1));
        steps.min(u32::MAX as usize) as u32
    }

    /// The run's config as TOML (the export's config.toml).
    pub fn config_toml(&self) -> String {
        self.trainer.cfg.to_toml()
    }

    /// Adds one of the user's images (RGBA as a canvas gives it, already shrunk so its shorter
    /// side is at most `MAX_SIDE`); returns how many there are.
    pub fn add_image(&mut self, width: u32, height: u32, rgba: Vec<u8>) -> Result<u32, JsValue> {
        let img = Image::from_rgba(width as usize, height as usize, &rgba).map_err(js)?;
        self.own.push(img);
        Ok(self.own.len() as u32)
    }

    pub fn own_images(&self) -> u32 {
        self.own.len() as u32
    }

    /// Whether the run trains on the built-in data (and can be scored by k-NN).
    pub fn on_builtin_data(&self) -> bool {
        self.builtin
    }

    /// From now on trains on the user's images (at least one batch of them).
    pub fn train_on_own_images(&mut self) -> Result<(), JsValue> {
        let b = self.trainer.cfg.batch_size;
        if self.own.len() < b {
            return Err(JsValue::from_str(&format!(
                "{} images decoded; the batch size is {b}: add more images or lower the batch size",
                self.own.len()
            )));
        }
        self.data = Dataset::from_images("your images", self.own.clone(), None, Vec::new());
        self.builtin = false;
        self.trainer.set_iters_per_epoch(self.data.len() / b);
        self.shuffle();
        Ok(())
    }

    /// One training step on the next batch; resolves to its loss.
    pub async fn step(&mut self) -> Result<f32, JsValue> {
        if let Some(why) = self.gpu.lost() {
            return Err(JsValue::from_str(&format!("the GPU device was lost ({why}); reload the page")));
        }
        let b = self.trainer.cfg.batch_size;
        let per_epoch = (self.order.len() / b).max(1);
        let (epoch, pos) = (self.trainer.iteration / per_epoch, (self.trainer.iteration % per_epoch) * b);
        if pos == 0 && epoch > 0 {
            self.order = epoch_order(self.data.len(), self.seed, epoch);
        }
        self.batch_indices = self.order[pos..pos + b].to_vec();
        let per_sample: Vec<Vec<Vec<f32>>> = self
            .batch_indices
            .iter()
            .map(|&i| {
                let img = self.data.image(i).map_err(js)?;
                Ok(multicrop(&img, &self.aug, &mut Rng::derive(self.seed, epoch as u64 + 1, i as u64)))
            })
            .collect::<Result<_, JsValue>>()?;
        let crops: Vec<Vec<f32>> =
            (0..per_sample[0].len()).map(|c| per_sample.iter().flat_map(|s| s[c].iter().copied()).collect()).collect();
        let refs: Vec<&[f32]> = crops.iter().map(|c| c.as_slice()).collect();
        self.trainer.submit(&refs).map_err(js)?;
        let loss = self.trainer.read_loss().await.map_err(js)?;
        match self.gpu.lost() {
            Some(why) => Err(JsValue::from_str(&format!("the GPU device was lost ({why}); reload the page"))),
            None => Ok(loss),
        }
    }

    /// Weighted k-NN top-1 (%, k 20, T 0.1) of the current backbone on the built-in data:
    /// `KNN_TEST` test images against `KNN_BANK` train images. Called before the first step it
    /// scores the random-init network the run starts from.
    pub async fn knn(&mut self) -> Result<f64, JsValue> {
        if self.extractor.is_none() {
            let bb = self.trainer.cfg.backbone().map_err(js)?;
            self.extractor = Some(FeatureExtractor::new(self.gpu.clone(), &bb, 100, 32).map_err(js)?);
            let split = synthetic::builtin();
            let test = split.test.as_ref().map(|t| t.head(KNN_TEST)).unwrap_or_default();
            self.knn_sets = Some((split.train.head(KNN_BANK), test));
        }
        let (Some(fx), Some((bank, test))) = (&self.extractor, &self.knn_sets) else { return Ok(0.0) };
        let state = self.trainer.state().await.map_err(js)?;
        fx.load(&state.into_iter().filter(|(k, _)| is_backbone_key(k)).collect()).map_err(js)?;
        let fb = fx.extract_dataset(bank).await.map_err(js)?;
        let ft = fx.extract_dataset(test).await.map_err(js)?;
        let (Some(lb), Some(lt)) = (&bank.labels, &test.labels) else { return Ok(0.0) };
        Ok(knn_top1(&fb, lb, &ft, lt, fx.dim, 20, 0.1, 10))
    }

    /// The trained backbone as safetensors (torchvision key names; the config in its
    /// metadata), for download; `swav-wgpu eval knn --checkpoint` and `embed` read it.
    pub async fn backbone(&self) -> Result<Vec<u8>, JsValue> {
        self.trainer.backbone_safetensors().await.map_err(js)
    }

    /// For the last batch: [image index, prototype] pairs (the prototype each image's first
    /// crop is assigned to by Sinkhorn), flattened.
    pub async fn assignments(&self) -> Result<Vec<u32>, JsValue> {
        let codes = self.trainer.plan.read(self.trainer.ids.codes[0]).await.map_err(js)?;
        let k = self.trainer.cfg.prototypes;
        let mut out = Vec::new();
        for (row, &img) in codes.chunks(k).zip(&self.batch_indices) {
            let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            out.push(img as u32);
            out.push(best as u32);
        }
        Ok(out)
    }

    /// The `k` images of the last batch nearest to `image` (which must be in it) in feature
    /// space: cosine similarity of the first crop's embeddings, most similar first.
    pub async fn neighbours(&self, image: u32, k: u32) -> Result<Vec<u32>, JsValue> {
        let Some(row) = self.batch_indices.iter().position(|&i| i == image as usize) else {
            return Ok(Vec::new());
        };
        let emb = self.trainer.plan.read(self.trainer.ids.emb).await.map_err(js)?;
        let d = self.trainer.cfg.feat_dim;
        let b = self.batch_indices.len();
        let q = &emb[row * d..(row + 1) * d];
        let mut sims: Vec<(f32, u32)> = (0..b)
            .filter(|&r| r != row)
            .map(|r| {
                (emb[r * d..(r + 1) * d].iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), self.batch_indices[r] as u32)
            })
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(sims.into_iter().take(k as usize).map(|(_, i)| i).collect())
    }

    /// 32x32 RGBA pixels of an image of the current data, for a canvas.
    pub fn image_rgba(&self, index: u32) -> Vec<u8> {
        match self.data.image(index as usize) {
            Ok(img) => thumbnail_rgba(&img, 32),
            Err(_) => vec![0; 32 * 32 * 4],
        }
    }

    /// Runs a subset of the kernel checks in the browser; resolves to a JSON array of
    /// {name, max_rel_err, pass}.
    pub async fn kernel_checks(&self) -> Result<String, JsValue> {
        let results = kernel_checks(&self.gpu).await.map_err(js)?;
        // JSON has no infinity: a non-finite error (NaN output) is reported as 1e300.
        let items: Vec<String> = results
            .iter()
            .map(|(n, e, ok)| {
                format!(
                    "{{\"name\":\"{n}\",\"max_rel_err\":{:e},\"pass\":{ok}}}",
                    if e.is_finite() { *e } else { 1e300 }
                )
            })
            .collect();
        Ok(format!("[{}]", items.join(",")))
    }
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    crate::testing::max_rel_err_f32(got, want)
}

fn upload(gpu: &Gpu, v: &[f64]) -> crate::Result<Tensor> {
    crate::testing::upload(gpu, "check", v)
}

/// GPU vs CPU reference on small random inputs (ragged sizes), run where the library runs.
pub async fn kernel_checks(gpu: &Gpu) -> crate::Result<Vec<(String, f64, bool)>> {
    use crate::ops::*;
    use crate::testing::TestData;
    let mut rng = Rng::new(7);
    let mut vecf = |n: usize| rng.vec_f32(n);
    let mut out = Vec::new();
    let tol = crate::testing::GPU_TOL;
    for variant in matmul::GemmVariant::all(gpu.subgroup_size) {
        let s = matmul::MatmulShape { m: 17, n: 33, k: 9, trans_a: false, trans_b: true };
        let (a, b) = (vecf(s.m * s.k), vecf(s.k * s.n));
        let c = gpu.tensor_filled("c", &[s.m * s.n], f32::NAN)?;
        gpu.run(&matmul::matmul(gpu, &upload(gpu, &a)?, &upload(gpu, &b)?, None, &c, s, variant)?);
        let e = rel_err(&gpu.read(&c).await?, &matmul::cpu::matmul(&a, &b, None, s));
        out.push((format!("matmul 17x33x9 {}", variant.name()), e, e <= tol));
    }
    let s = conv::Conv2dShape::square(2, 3, 9, 5, 3, 2, 1);
    let (x, w) = (vecf(s.input_len()), vecf(s.weight_len()));
    let y = gpu.tensor_filled("y", &[s.output_len()], f32::NAN)?;
    gpu.run(&conv::forward(
        gpu,
        &upload(gpu, &x)?,
        &upload(gpu, &w)?,
        &y,
        s,
        conv::ConvKernel::choose(gpu, &s, conv::ConvPass::Forward),
    )?);
    let e = rel_err(&gpu.read(&y).await?, &conv::cpu::forward(&x, &w, s));
    out.push(("conv2d forward 3x3/2".into(), e, e <= tol));
    // The strided backward-input runs as one GEMM per phase of the input pixels.
    let dy = vecf(s.output_len());
    let dx = gpu.tensor_filled("dx", &[s.input_len()], f32::NAN)?;
    let kernel = conv::ConvKernel::choose(gpu, &s, conv::ConvPass::BackwardInput);
    gpu.run(&conv::backward_input(gpu, &upload(gpu, &dy)?, &upload(gpu, &w)?, &dx, s, kernel)?);
    let e = rel_err(&gpu.read(&dx).await?, &conv::cpu::backward(&x, &w, &dy, s).0);
    out.push(("conv2d backward-input 3x3/2".into(), e, e <= tol));
    let bs = batchnorm::BatchNormShape::new(3, 5, 7);
    let xb = vecf(bs.len());
    let (g1, b1) = (vecf(5), vecf(5));
    let (want, _, _) = batchnorm::cpu::forward_train(&xb, &g1, &b1, &bs);
    let t = |v: &[f64]| upload(gpu, v);
    let (rm, rv) = (t(&[0.0; 5])?, t(&[1.0; 5])?);
    let (mean, var, yb) =
        (gpu.tensor("m", &[5])?, gpu.tensor("v", &[5])?, gpu.tensor_filled("y", &[bs.len()], f32::NAN)?);
    let (xb_t, g1_t, b1_t) = (t(&xb)?, t(&g1)?, t(&b1)?);
    let tensors = batchnorm::BatchNormTensors {
        x: &xb_t,
        gamma: &g1_t,
        beta: &b1_t,
        running_mean: &rm,
        running_var: &rv,
        y: &yb,
    };
    gpu.run(&batchnorm::forward_train(gpu, &tensors, (&mean, &var), bs, true)?);
    let e = rel_err(&gpu.read(&yb).await?, &want);
    out.push(("batch-norm train".into(), e, e <= tol));
    let (r, c) = (7, 33);
    let xs = vecf(r * c);
    let ys = gpu.tensor_filled("y", &[r * c], f32::NAN)?;
    gpu.run(&[rows::log_softmax_forward(gpu, &t(&xs)?, &ys, r, c, 10.0)?]);
    let e = rel_err(&gpu.read(&ys).await?, &rows::cpu::log_softmax_forward(&xs, c, 10.0));
    out.push(("log-softmax".into(), e, e <= tol));
    let sk =
        crate::ops::sinkhorn::SinkhornShape { queue_rows: 0, batch: 16, k: 20, epsilon: 0.05, iterations: 3, world: 1 };
    let xk = vecf(16 * 20);
    let codes = gpu.tensor_filled("q", &[16 * 20], f32::NAN)?;
    gpu.run(&crate::ops::sinkhorn::sinkhorn(gpu, &t(&xk)?, &t(&[0.0])?, &codes, sk)?);
    let e = rel_err(&gpu.read(&codes).await?, &crate::ops::sinkhorn::cpu::sinkhorn(&xk, 0, 0, 16, 20, 0.05, 3));
    out.push(("sinkhorn".into(), e, e <= tol));
    Ok(out)
}
