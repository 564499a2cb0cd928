//! The browser API (wasm32 + WebGPU): a small SwAV run on the built-in dataset that a page can
//! step, plot and inspect, and in-browser checks of the kernels against the CPU references
//! compiled to wasm. Nothing here blocks: every GPU read is awaited.
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::data::augment::{multicrop, AugmentConfig};
use crate::data::{synthetic, Dataset};
use crate::gpu::{Gpu, GpuOptions, Tensor};
use crate::rng::Rng;
use crate::train::{CropConfig, TrainConfig, Trainer};

fn js(e: crate::Error) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The demo's model: small enough for a software WebGPU adapter. Plain SGD without warm-up
/// (so the first steps visibly learn) and the CIFAR stem, pinned here rather than taken from
/// the `train` defaults, which the headless browser test does not re-tune.
pub fn demo_config() -> TrainConfig {
    TrainConfig {
        width: 0.0625,
        stem: crate::model::Stem::Cifar,
        optimizer: crate::optim::OptimizerKind::Sgd,
        weight_decay: 1e-4,
        batch_size: 32,
        hidden_mlp: 64,
        feat_dim: 16,
        prototypes: 32,
        crops: vec![CropConfig { count: 2, size: 32, min_scale: 0.3, max_scale: 1.0 }],
        warmup_epochs: 0.0,
        lr: 0.1,
        final_lr: 0.0005,
        epochs: 3,
        color_jitter: 1.0,
        hue: 0.25,
        gray_probability: 0.5,
        blur_probability: 0.5,
        ..crate::train::config::small_data_defaults()
    }
}

#[wasm_bindgen]
pub struct WebDemo {
    gpu: Arc<Gpu>,
    trainer: Trainer,
    data: Dataset,
    aug: AugmentConfig,
    order: Vec<usize>,
    batch_indices: Vec<usize>,
    seed: u64,
}

#[wasm_bindgen]
impl WebDemo {
    /// Opens WebGPU (an error string when the browser has none) and compiles the step.
    pub async fn create(seed: u32) -> Result<WebDemo, JsValue> {
        let gpu = Gpu::new(&GpuOptions::default()).await.map_err(js)?;
        let cfg = demo_config();
        let data = synthetic::builtin().train;
        let per_epoch = data.len() / cfg.batch_size;
        let trainer = Trainer::new(gpu.clone(), cfg.clone(), per_epoch).map_err(js)?;
        trainer.init_random(seed as u64).map_err(js)?;
        let aug = cfg.augment();
        let mut order: Vec<usize> = (0..data.len()).collect();
        Rng::new(seed as u64).shuffle(&mut order);
        Ok(WebDemo { gpu, trainer, data, aug, order, batch_indices: Vec::new(), seed: seed as u64 })
    }

    /// "name (backend, device type); limits ..."
    pub fn adapter(&self) -> String {
        let l = &self.gpu.limits;
        format!(
            "{}; storage binding {} MiB, workgroup memory {} KiB, {} invocations/workgroup, {} storage buffers/stage",
            self.gpu.describe(),
            l.max_storage_buffer_binding_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            l.max_storage_buffers_per_shader_stage
        )
    }

    pub fn iteration(&self) -> u32 {
        self.trainer.iteration as u32
    }

    pub fn batch_size(&self) -> u32 {
        self.trainer.cfg.batch_size as u32
    }

    /// One training step on the next batch; resolves to its loss.
    pub async fn step(&mut self) -> Result<f32, JsValue> {
        let b = self.trainer.cfg.batch_size;
        let start = (self.trainer.iteration * b) % (self.order.len() - b + 1);
        self.batch_indices = self.order[start..start + b].to_vec();
        let epoch = self.trainer.iteration * b / self.order.len();
        let per_sample: Vec<Vec<Vec<f32>>> = self
            .batch_indices
            .iter()
            .map(|&i| {
                multicrop(&self.data.images[i], &self.aug, &mut Rng::derive(self.seed, epoch as u64 + 1, i as u64))
            })
            .collect();
        let crops: Vec<Vec<f32>> =
            (0..per_sample[0].len()).map(|c| per_sample.iter().flat_map(|s| s[c].iter().copied()).collect()).collect();
        let refs: Vec<&[f32]> = crops.iter().map(|c| c.as_slice()).collect();
        self.trainer.submit(&refs).map_err(js)?;
        self.trainer.read_loss().await.map_err(js)
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

    /// 32x32 RGBA pixels of a dataset image, for a canvas.
    pub fn image_rgba(&self, index: u32) -> Vec<u8> {
        let img = &self.data.images[index as usize % self.data.len()];
        img.rgb.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
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
