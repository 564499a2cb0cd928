//! conv2d, NCHW, weights [Cout, Cin, KH, KW], any kernel size / stride / padding, no bias
//! (ResNet convs are followed by batch-norm). All three passes are implicit GEMMs on the
//! matmul cores (`shaders/conv/*.wgsl` are the loaders), so they inherit every GEMM variant:
//! - forward:          M = Cout, N = batch*OH*OW, K = Cin*KH*KW
//! - backward (input): M = Cin,  N = batch*H*W,   K = Cout*KH*KW (a gather: no atomics);
//!   strided convs as stride_h*stride_w GEMMs, one per phase of the input pixels, each with
//!   only the taps that reach it (no gathers wasted on the zeros between strided outputs)
//! - backward (weight): M = Cout, N = Cin*KH*KW,  K = batch*OH*OW, split-K into partial slabs
//!   summed by the reduce kernel, because N*M is small and K is long.
//!
//! With a subgroup-tiled variant, convs with unit x-stride run direct row kernels instead
//! (`rows.rs`: forward, stride-1 backward-input, weight gradient), which gather fewer input
//! pixels. `ConvKernel::choose` (and `with_variant`, for the tuner) is the one place that
//! decides which kernel a pass runs; the pass functions run what they are given.
pub mod cpu;
mod graph;

pub use graph::ConvOps;
pub mod rows;

use crate::error::{shape_err, Result};
use crate::gpu::{words, AdapterClass, DType, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::matmul::{
    gemm, gemm_kernel_name, listed_variants, GemmHeader, GemmProblem, GemmVariant, MAX_K_CHUNK, SUM_CHUNK,
};
use crate::ops::{
    activation_type, check_len, check_typed, sources, to_u32, type_suffix, wgsl_scalar, KernelSource, ACTIVATION_TYPES,
};

const PARAMS: &str = include_str!("../../../shaders/conv/params.wgsl");

/// The implicit GEMMs' loaders (how A and B are read from the convolution's tensors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loader {
    Forward,
    BackwardWeight,
    BackwardInput,
    /// One stride phase of a strided backward-input.
    BackwardInputStrided,
}

impl Loader {
    const ALL: [Loader; 4] =
        [Loader::Forward, Loader::BackwardWeight, Loader::BackwardInput, Loader::BackwardInputStrided];

    fn name_and_body(self) -> (&'static str, &'static str) {
        match self {
            Loader::Forward => ("forward", include_str!("../../../shaders/conv/forward.wgsl")),
            Loader::BackwardWeight => ("backward_weight", include_str!("../../../shaders/conv/backward_weight.wgsl")),
            Loader::BackwardInput => ("backward_input", include_str!("../../../shaders/conv/backward_input.wgsl")),
            Loader::BackwardInputStrided => {
                ("backward_input_strided", include_str!("../../../shaders/conv/backward_input_strided.wgsl"))
            }
        }
    }
}

/// An implicit-GEMM convolution kernel: a loader on a GEMM core, over activations stored as
/// `act` (f32 or f16; weights, their gradient and the accumulation are f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGemmKernel {
    pub loader: Loader,
    pub variant: GemmVariant,
    pub act: DType,
}

impl Kernel for ConvGemmKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<ConvParams>()))
    }

    fn all() -> Vec<Self> {
        let mut v = Vec::new();
        for act in ACTIVATION_TYPES {
            for variant in listed_variants() {
                v.extend(Loader::ALL.map(|loader| ConvGemmKernel { loader, variant, act }));
            }
        }
        v
    }

    fn name(&self) -> String {
        let name = gemm_kernel_name(&format!("conv2d_{}", self.loader.name_and_body().0), self.variant, &[]);
        format!("{name}{}", type_suffix(self.act))
    }

    fn source(&self) -> String {
        let act = [("ACT", wgsl_scalar(self.act).to_string())];
        crate::ops::enable_for(self.act, self.variant.source(&loader(self.loader.name_and_body().1), &act))
    }
}

fn conv_gemm(
    gpu: &Gpu,
    loader: Loader,
    variant: GemmVariant,
    params: Vec<u32>,
    inputs: &[&Tensor],
    out: &Tensor,
    p: &GemmProblem,
) -> Result<Vec<Dispatch>> {
    let act = activation_type("conv2d", inputs[0])?;
    gemm(gpu, &ConvGemmKernel { loader, variant, act }, variant, params, inputs, out, p)
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

/// What one convolution pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// The implicit GEMM on this GEMM core.
    Gemm(GemmVariant),
    /// The direct row kernel (forward, stride-1 backward-input): tm output channels, tn
    /// pixels of an output row, subgroups of sg lanes.
    Rows { tm: u32, tn: u32, sg: u32 },
    /// The weight-gradient row kernel: tm output channels, tp pixels per segment.
    WeightRows { tm: u32, tp: u32, sg: u32 },
}

impl ConvKernel {
    /// The GEMM variant the chooser gives a pass before tuning: its implicit GEMM is M x N.
    pub fn default_variant(gpu: &Gpu, s: &Conv2dShape, pass: ConvPass) -> GemmVariant {
        let (oh, ow) = s.out_hw();
        match pass {
            ConvPass::Forward => GemmVariant::for_conv(gpu, s.cout, s.batch * oh * ow),
            ConvPass::BackwardInput => GemmVariant::for_conv(gpu, s.cin, s.batch * s.h * s.w),
            // Split-K supplies the parallelism here, so the large tiles are kept.
            ConvPass::BackwardWeight => GemmVariant::for_conv(gpu, s.cout, usize::MAX),
        }
    }

    /// What a pass runs on `variant` (the chooser's, or a tuning candidate): the direct row
    /// kernel where one applies to a subgroup variant, else the implicit GEMM.
    pub fn with_variant(gpu: &Gpu, s: &Conv2dShape, pass: ConvPass, variant: GemmVariant) -> ConvKernel {
        let GemmVariant::SubgroupTiled { tm, sg, .. } = variant else { return ConvKernel::Gemm(variant) };
        let rows = match pass {
            ConvPass::Forward => rows::tile(gpu, s, rows::Pass::Forward, tm, sg),
            ConvPass::BackwardInput => rows::tile(gpu, s, rows::Pass::BackwardInput, tm, sg),
            ConvPass::BackwardWeight => {
                return rows::weight_tile(s, tm, sg)
                    .map_or(ConvKernel::Gemm(variant), |(tm, tp, sg)| ConvKernel::WeightRows { tm, tp, sg })
            }
        };
        rows.map_or(ConvKernel::Gemm(variant), |(tm, tn, sg)| ConvKernel::Rows { tm, tn, sg })
    }

    /// The kernel for a pass without tuning.
    pub fn choose(gpu: &Gpu, s: &Conv2dShape, pass: ConvPass) -> ConvKernel {
        ConvKernel::with_variant(gpu, s, pass, ConvKernel::default_variant(gpu, s, pass))
    }

    pub fn name(&self) -> String {
        match self {
            ConvKernel::Gemm(v) => v.name(),
            ConvKernel::Rows { tm, tn, sg } => format!("rows_subgroup{sg}_{tm}x{tn}"),
            ConvKernel::WeightRows { tm, tp, sg } => format!("weight_rows_subgroup{sg}_{tm}x{tp}"),
        }
    }
}

impl From<GemmVariant> for ConvKernel {
    fn from(v: GemmVariant) -> ConvKernel {
        ConvKernel::Gemm(v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize),
}

impl Conv2dShape {
    /// A square kernel with equal stride and padding on both axes.
    pub fn square(batch: usize, cin: usize, hw: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Self {
        Conv2dShape { batch, cin, h: hw, w: hw, cout, kh: k, kw: k, stride: (stride, stride), pad: (pad, pad) }
    }
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad.0 - self.kh) / self.stride.0 + 1,
            (self.w + 2 * self.pad.1 - self.kw) / self.stride.1 + 1,
        )
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.cin * self.h * self.w
    }
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }
    pub fn output_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.batch * self.cout * oh * ow
    }
    /// Multiply-adds x 2 of one pass (forward, backward-input and backward-weight are equal).
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.cin * self.kh * self.kw) as f64
    }

    fn validate(&self) -> Result<()> {
        let s = self;
        if [s.batch, s.cin, s.h, s.w, s.cout, s.kh, s.kw, s.stride.0, s.stride.1].contains(&0) {
            return shape_err("conv2d", format!("zero dimension or stride in {s:?}"));
        }
        if s.h + 2 * s.pad.0 < s.kh || s.w + 2 * s.pad.1 < s.kw {
            return shape_err("conv2d", format!("kernel larger than the padded input in {s:?}"));
        }
        Ok(())
    }

    /// The loaders' parameters; the GEMM header (m, n, k, k_chunk) is filled by `gemm`, the
    /// phase by `phase`.
    fn params(&self) -> Result<ConvParams> {
        let u = |x: usize| to_u32("conv2d", x);
        let (oh, ow) = self.out_hw();
        Ok(ConvParams {
            batch: u(self.batch)?,
            cin: u(self.cin)?,
            h: u(self.h)?,
            w: u(self.w)?,
            cout: u(self.cout)?,
            kh: u(self.kh)?,
            kw: u(self.kw)?,
            sh: u(self.stride.0)?,
            sw: u(self.stride.1)?,
            ph: u(self.pad.0)?,
            pw: u(self.pad.1)?,
            oh: u(oh)?,
            ow: u(ow)?,
            ..ConvParams::default()
        })
    }
}

/// `Params` of shaders/conv/params.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    gemm: GemmHeader,
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    oh: u32,
    ow: u32,
    phase: PhaseParams,
    _pad: u32,
}

/// The strided backward-input's phase (py, px): taps r = r0 + sh*t (t < ty), s = s0 + sw*u
/// (u < tx), hy x wx pixels, output offsets qy, qx.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PhaseParams {
    ty: u32,
    tx: u32,
    hy: u32,
    wx: u32,
    py: u32,
    px: u32,
    r0: u32,
    s0: u32,
    qy: u32,
    qx: u32,
}

/// The forward and backward-input loaders store no split-K slabs, so one invocation must run
/// the whole reduction (channels x taps) within llvmpipe's loop limit.
fn check_reduction(op: &'static str, k: usize) -> Result<()> {
    if k > MAX_K_CHUNK as usize {
        return shape_err(op, format!("a reduction over {k} channel-taps exceeds {MAX_K_CHUNK}"));
    }
    Ok(())
}

/// One phase (py, px) of a strided backward-input: its taps and pixels (see
/// shaders/conv/backward_input_strided.wgsl). Fills the phase fields of `params`.
struct Phase {
    pixels: usize,
    taps: usize,
}

fn phase(s: &Conv2dShape, py: usize, px: usize, params: &mut ConvParams) -> Phase {
    let axis = |p: usize, stride: usize, pad: usize, k: usize, len: usize| {
        let r0 = (p + pad) % stride;
        let taps = if k > r0 { (k - r0).div_ceil(stride) } else { 0 };
        let pixels = if len > p { (len - p).div_ceil(stride) } else { 0 };
        (r0, taps, pixels, (p + pad - r0) / stride)
    };
    let (r0, ty, hy, qy) = axis(py, s.stride.0, s.pad.0, s.kh, s.h);
    let (s0, tx, wx, qx) = axis(px, s.stride.1, s.pad.1, s.kw, s.w);
    // Every value here is at most a dimension of the (validated, u32-sized) shape.
    let [ty, tx, hy, wx, py, px, r0, s0, qy, qx] = [ty, tx, hy, wx, py, px, r0, s0, qy, qx].map(|v| v as u32);
    params.phase = PhaseParams { ty, tx, hy, wx, py, px, r0, s0, qy, qx };
    Phase { pixels: (hy * wx) as usize, taps: (ty * tx) as usize }
}

fn wrong_pass<T>(op: &'static str, k: ConvKernel) -> Result<T> {
    shape_err(op, format!("{} is not a kernel for this pass", k.name()))
}

fn loader(body: &str) -> String {
    format!("{PARAMS}\n{body}")
}

/// Y = conv2d(X, W).
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    s: Conv2dShape,
    kernel: impl Into<ConvKernel>,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    check_reduction("conv2d", s.cin * s.kh * s.kw)?;
    let act = activation_type("conv2d", x)?;
    check_typed("conv2d", "input", x, s.input_len(), act)?;
    check_len("conv2d", "weight", w, s.weight_len())?;
    check_typed("conv2d", "output", y, s.output_len(), act)?;
    let variant = match kernel.into() {
        ConvKernel::Gemm(v) => v,
        ConvKernel::Rows { tm, tn, sg } => {
            return Ok(vec![rows::dispatch(gpu, &s, rows::Pass::Forward, (tm, tn, sg), x, w, y)?])
        }
        k @ ConvKernel::WeightRows { .. } => return wrong_pass("conv2d", k),
    };
    let (oh, ow) = s.out_hw();
    let p = GemmProblem {
        m: to_u32("conv2d", s.cout)?,
        n: to_u32("conv2d", s.batch * oh * ow)?,
        k: to_u32("conv2d", s.cin * s.kh * s.kw)?,
        splits: 1,
    };
    conv_gemm(gpu, Loader::Forward, variant, words(&s.params()?), &[x, w], y, &p)
}

/// dX from dY and W.
pub fn backward_input(
    gpu: &Gpu,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    s: Conv2dShape,
    kernel: impl Into<ConvKernel>,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    check_reduction("conv2d_backward_input", s.cout * s.kh * s.kw)?;
    let act = activation_type("conv2d_backward_input", dy)?;
    check_typed("conv2d_backward_input", "grad output", dy, s.output_len(), act)?;
    check_len("conv2d_backward_input", "weight", w, s.weight_len())?;
    check_typed("conv2d_backward_input", "grad input", dx, s.input_len(), act)?;
    let variant = match kernel.into() {
        ConvKernel::Gemm(v) => v,
        ConvKernel::Rows { tm, tn, sg } => {
            return Ok(vec![rows::dispatch(gpu, &s, rows::Pass::BackwardInput, (tm, tn, sg), dy, w, dx)?])
        }
        k @ ConvKernel::WeightRows { .. } => return wrong_pass("conv2d_backward_input", k),
    };
    if s.stride == (1, 1) {
        let p = GemmProblem {
            m: to_u32("conv2d", s.cin)?,
            n: to_u32("conv2d", s.batch * s.h * s.w)?,
            k: to_u32("conv2d", s.cout * s.kh * s.kw)?,
            splits: 1,
        };
        return conv_gemm(gpu, Loader::BackwardInput, variant, words(&s.params()?), &[dy, w], dx, &p);
    }
    // One GEMM per phase; a phase no tap reaches (e.g. odd pixels of a 1x1 stride-2 conv)
    // is a GEMM with K = 0, which writes its zeros.
    let mut out = Vec::new();
    for py in 0..s.stride.0 {
        for px in 0..s.stride.1 {
            let mut params = s.params()?;
            let ph = phase(&s, py, px, &mut params);
            if ph.pixels == 0 {
                continue;
            }
            let p = GemmProblem {
                m: to_u32("conv2d", s.cin)?,
                n: to_u32("conv2d", s.batch * ph.pixels)?,
                k: to_u32("conv2d", s.cout * ph.taps)?,
                splits: 1,
            };
            let params = words(&params);
            out.extend(conv_gemm(gpu, Loader::BackwardInputStrided, variant, params, &[dy, w], dx, &p)?);
        }
    }
    Ok(out)
}

/// How many split-K slabs the weight gradient uses: enough workgroups to fill the device,
/// slabs of at least 256 reduction steps and at most `SUM_CHUNK`.
pub fn weight_grad_splits(s: Conv2dShape, kernel: impl Into<ConvKernel>, class: AdapterClass) -> u32 {
    let (oh, ow) = s.out_hw();
    let k = s.batch * oh * ow;
    let tiles = match kernel.into() {
        ConvKernel::WeightRows { tm, tp, sg } => rows::weight_tiles(&s, (tm, tp, sg)),
        ConvKernel::Gemm(v) => {
            let (tile_m, tile_n) = v.workgroup_tile();
            s.cout.div_ceil(tile_m as usize) * (s.cin * s.kh * s.kw).div_ceil(tile_n as usize)
        }
        // Not a weight-gradient kernel (backward_weight refuses it): any count will do.
        ConvKernel::Rows { .. } => 1,
    };
    let want_workgroups: usize = match class {
        AdapterClass::Cpu => 32,
        AdapterClass::Gpu => 256,
    };
    let splits = want_workgroups.div_ceil(tiles).min(k / 256).clamp(1, 64);
    splits.max(k.div_ceil(SUM_CHUNK)) as u32
}

/// dW from X and dY. With `splits` > 1 the partial sums go to an owned slab and a reduce pass.
pub fn backward_weight(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    s: Conv2dShape,
    kernel: impl Into<ConvKernel>,
    splits: u32,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    let act = activation_type("conv2d_backward_weight", x)?;
    check_typed("conv2d_backward_weight", "input", x, s.input_len(), act)?;
    check_typed("conv2d_backward_weight", "grad output", dy, s.output_len(), act)?;
    check_len("conv2d_backward_weight", "grad weight", dw, s.weight_len())?;
    let variant = match kernel.into() {
        ConvKernel::Gemm(v) => v,
        ConvKernel::WeightRows { tm, tp, sg } => {
            return rows::weight_dispatch(gpu, &s, (tm, tp, sg), splits, x, dy, dw)
        }
        k @ ConvKernel::Rows { .. } => return wrong_pass("conv2d_backward_weight", k),
    };
    let (oh, ow) = s.out_hw();
    let p = GemmProblem {
        m: to_u32("conv2d", s.cout)?,
        n: to_u32("conv2d", s.cin * s.kh * s.kw)?,
        k: to_u32("conv2d", s.batch * oh * ow)?,
        splits,
    };
    conv_gemm(gpu, Loader::BackwardWeight, variant, words(&s.params()?), &[x, dy], dw, &p)
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    let mut v = sources::<rows::DirectKernel>();
    v.extend(sources::<ConvGemmKernel>());
    v
}
