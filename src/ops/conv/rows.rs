//! The direct row kernels for convs with unit x-stride, used where the GEMM variant is
//! subgroup-tiled: the same rows of output channels per subgroup as the GEMM, but each lane
//! gathers the input pixels of a segment of an output row once and uses each for every tap.
//! `shaders/conv/rows_subgroup.wgsl`: forward and stride-1 backward-input;
//! `shaders/conv/weight_rows_subgroup.wgsl`: the weight gradient.
use crate::error::{shape_err, Result};
use crate::gpu::{words, DType, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::matmul::{dispatch_split_k, listed_variants, GemmVariant, SUM_CHUNK};
use crate::ops::{activation_type, compose_typed, type_suffix, wgsl_scalar, ACTIVATION_TYPES};

use super::Conv2dShape;

const ROWS: &str = include_str!("../../../shaders/conv/rows_subgroup.wgsl");
const WEIGHT_ROWS: &str = include_str!("../../../shaders/conv/weight_rows_subgroup.wgsl");

/// Widest kernel the row kernel unrolls (ResNet's stem is 7 wide).
const MAX_KW: usize = 7;

/// One direct convolution in the row kernel's terms: `m` output channels of `oh x ow` from
/// `cin` channels of `h x w`, taps `kh x kw`, row stride `sh`, padding (ph, pw) (negative
/// allowed), and how the weight of (output o, channel c, tap r, s) is found.
struct RowConv {
    batch: usize,
    m: usize,
    cin: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    ph: i64,
    pw: i64,
    kh: usize,
    kw: usize,
    /// w_base + o*w_row + c*w_chan + r*w_r + s*w_s
    w_strides: [i64; 5],
}

/// `Params` of shaders/conv/rows_subgroup.wgsl: the weight of (o, c, r, s) is at
/// w_base + o*w_row + c*w_chan + r*w_r + s*w_s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RowsParams {
    m: u32,
    cin: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    ph: i32,
    pw: i32,
    kh: u32,
    segs: u32,
    n_seg: u32,
    w_base: i32,
    w_row: i32,
    w_chan: i32,
    w_r: i32,
    w_s: i32,
    _pad: [u32; 3],
}

/// `Params` of shaders/conv/weight_rows_subgroup.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct WeightRowsParams {
    cout: u32,
    cin: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    ph: i32,
    pw: i32,
    segs: u32,
    n_seg: u32,
    seg_chunk: u32,
}

/// Which pass a row conv computes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    BackwardInput,
}

fn row_conv(s: &Conv2dShape, pass: Pass) -> RowConv {
    let (oh, ow) = s.out_hw();
    let (kh, kw) = (s.kh as i64, s.kw as i64);
    match pass {
        Pass::Forward => RowConv {
            batch: s.batch,
            m: s.cout,
            cin: s.cin,
            h: s.h,
            w: s.w,
            oh,
            ow,
            sh: s.stride.0,
            ph: s.pad.0 as i64,
            pw: s.pad.1 as i64,
            kh: s.kh,
            kw: s.kw,
            w_strides: [0, s.cin as i64 * kh * kw, kh * kw, kw, 1],
        },
        // dX = the stride-1 conv of dY with the kernel transposed (cin <-> cout) and flipped.
        Pass::BackwardInput => RowConv {
            batch: s.batch,
            m: s.cin,
            cin: s.cout,
            h: oh,
            w: ow,
            oh: s.h,
            ow: s.w,
            sh: 1,
            ph: kh - 1 - s.pad.0 as i64,
            pw: kw - 1 - s.pad.1 as i64,
            kh: s.kh,
            kw: s.kw,
            w_strides: [kh * kw - 1, kh * kw, s.cin as i64 * kh * kw, -kw, -1],
        },
    }
}

/// The rows of the row kernel's tile for a subgroup variant's `tm`: each step unrolls
/// tm x tn x kw FMAs, and past 32 rows the body outgrows the instruction cache
/// (benches/README.md).
pub(crate) fn row_tm(tm: u32, sg: u32) -> u32 {
    tm.min(32.max(sg))
}

/// The rows of the weight-gradient row kernel's tile: each step unrolls tm x tp x taps
/// FMAs, and past 16 rows the body outgrows the instruction cache (benches/README.md).
pub(crate) fn weight_tm(tm: u32, sg: u32) -> u32 {
    tm.min(16.max(sg))
}

/// The row kernel's tile (tm, tn, sg) for this pass on a subgroup variant of `tm` rows and
/// `sg` lanes, or `None` where it does not apply: x-strides other than 1 (and strided
/// backward-input), kernels wider than 7, output rows narrower than 4. (Its loop over
/// channel x kernel row stays within llvmpipe's loop limit: `conv::check_reduction` caps
/// channels x taps.)
pub(crate) fn tile(gpu: &Gpu, s: &Conv2dShape, pass: Pass, tm: u32, sg: u32) -> Option<(u32, u32, u32)> {
    let tm = row_tm(tm, sg);
    let eligible = match pass {
        Pass::Forward => s.stride.1 == 1,
        Pass::BackwardInput => s.stride == (1, 1),
    };
    let c = row_conv(s, pass);
    if !eligible || c.kw > MAX_KW || c.ow < 4 {
        return None;
    }
    let tn: u32 = if c.ow >= 8 { 8 } else { 4 };
    let n_seg = c.batch * c.oh * c.ow.div_ceil(tn as usize);
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    (n_seg.div_ceil(sg as usize) <= max && c.m.div_ceil(tm as usize) <= max).then_some((tm, tn, sg))
}

/// The WGSL for a tile (tm rows, tn pixels, subgroups of sg) and kernel width kw, over
/// activations stored as `act`.
pub(crate) fn source(tm: u32, tn: u32, sg: u32, kw: u32, act: DType) -> String {
    let (mut setup, mut body, mut store) = (String::new(), String::new(), String::new());
    let span = tn + kw - 1;
    for j in 0..span {
        setup += &format!("    let ixc{j} = u32(clamp(ix0 + {j}, 0, i32(P.w) - 1));\n");
        setup += &format!("    let col_in{j} = (ix0 + {j} >= 0) & (ix0 + {j} < i32(P.w));\n");
        body += &format!("        let x{j} = select(0.0, f32(X[x_row + ixc{j}]), row_in & col_in{j});\n");
    }
    for q in 0..tm / sg {
        setup += &format!("    let wrow{q} = P.w_base + i32(min(row0 + lane + {}u, P.m - 1u)) * P.w_row;\n", q * sg);
    }
    for i in 0..tm {
        for j in 0..tn {
            setup += &format!("    var acc{i}_{j} = 0.0;\n");
            store += &format!(
                "    if (live && row0 + {i}u < P.m && ox0 + {j}u < P.ow) {{ Y[((b * P.m + row0 + {i}u) * P.oh + oy) * P.ow + ox0 + {j}u] = ACT(acc{i}_{j}); }}\n"
            );
        }
    }
    for s in 0..kw {
        for q in 0..tm / sg {
            body += &format!("        let own{q}_{s} = W[u32(wrow{q} + w_cr + {s} * P.w_s)];\n");
        }
        for i in 0..tm {
            body += &format!("        let a{i}_{s} = subgroupBroadcast(own{}_{s}, {}u);\n", i / sg, i % sg);
            for j in 0..tn {
                body += &format!("        acc{i}_{j} = fma(a{i}_{s}, x{}, acc{i}_{j});\n", j + s);
            }
        }
    }
    compose_typed(
        act,
        &[ROWS],
        &[
            ("ACT", wgsl_scalar(act).to_string()),
            ("TM", tm.to_string()),
            ("TN", tn.to_string()),
            ("SG", sg.to_string()),
            ("SETUP", setup),
            ("BODY", body),
            ("STORE", store),
        ],
    )
}

/// The row-kernel dispatch for this pass with tile (tm, tn, sg); an error where that tile
/// is not the one `tile` gives this shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    gpu: &Gpu,
    s: &Conv2dShape,
    pass: Pass,
    (tm, tn, sg): (u32, u32, u32),
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    if tile(gpu, s, pass, tm, sg) != Some((tm, tn, sg)) {
        return shape_err(
            "conv2d_rows",
            format!("the row kernel {tm}x{tn} (subgroups of {sg}) does not apply to {s:?}"),
        );
    }
    let c = row_conv(s, pass);
    let segs = c.ow.div_ceil(tn as usize);
    let n_seg = c.batch * c.oh * segs;
    // Every value fits: dimensions of a validated shape whose tensors fit one binding.
    let u = |v: usize| v as u32;
    let [w_base, w_row, w_chan, w_r, w_s] = c.w_strides.map(|v| v as i32);
    let params = words(&RowsParams {
        m: u(c.m),
        cin: u(c.cin),
        h: u(c.h),
        w: u(c.w),
        oh: u(c.oh),
        ow: u(c.ow),
        sh: u(c.sh),
        ph: c.ph as i32,
        pw: c.pw as i32,
        kh: u(c.kh),
        segs: u(segs),
        n_seg: u(n_seg),
        w_base,
        w_row,
        w_chan,
        w_r,
        w_s,
        _pad: [0; 3],
    });
    let wg = [u(n_seg.div_ceil(sg as usize)), u(c.m.div_ceil(tm as usize)), 1];
    let act = activation_type("conv2d_rows", x)?;
    DirectKernel::Rows { tm, tn, sg, kw: u(c.kw), act }.dispatch(gpu, &params, &[x, w, y], wg)
}

/// Most taps the weight-gradient row kernel unrolls per lane (3x3; 1x1 convs too).
const MAX_WEIGHT_TAPS: usize = 9;

/// The weight-gradient row kernel's (tm rows, tp pixels per segment, sg) on a subgroup
/// variant of `tm` rows and `sg` lanes, or `None` where it does not apply: x-strides other
/// than 1, kernels of more than 9 taps, output rows not a multiple of 4 wide (dY is read as
/// vec4s).
pub(crate) fn weight_tile(s: &Conv2dShape, tm: u32, sg: u32) -> Option<(u32, u32, u32)> {
    let ow = s.out_hw().1;
    let tp = match ow {
        _ if ow.is_multiple_of(8) => 8,
        _ if ow.is_multiple_of(4) => 4,
        _ => return None,
    };
    (s.stride.1 == 1 && s.kh * s.kw <= MAX_WEIGHT_TAPS).then_some((weight_tm(tm, sg), tp, sg))
}

/// Workgroups of one split of the weight-gradient row kernel (for choosing the split count).
pub(crate) fn weight_tiles(s: &Conv2dShape, (tm, _, sg): (u32, u32, u32)) -> usize {
    s.cin.div_ceil(sg as usize) * s.cout.div_ceil(tm as usize)
}

/// The WGSL of the weight-gradient row kernel for a tile and a kh x kw kernel, over
/// activations stored as `act`.
pub(crate) fn weight_source(tm: u32, tp: u32, sg: u32, kh: u32, kw: u32, act: DType) -> String {
    let (mut setup, mut body, mut store) = (String::new(), String::new(), String::new());
    for q in 0..tm / sg {
        setup += &format!("    let dyrow{q} = min(row0 + lane + {}u, P.cout - 1u) * P.oh * ow4;\n", q * sg);
    }
    for i in 0..tm {
        for r in 0..kh {
            for s in 0..kw {
                setup += &format!("    var acc{i}_{r}_{s} = 0.0;\n");
                store += &format!(
                    "    if (c_id < P.cin && row0 + {i}u < P.cout) {{ DW[((split * P.cout + row0 + {i}u) * P.cin + c) * {}u + {}u] = acc{i}_{r}_{s}; }}\n",
                    kh * kw,
                    r * kw + s
                );
            }
        }
    }
    let span = tp + kw - 1;
    for j in 0..span {
        body += &format!("        let ixc{j} = u32(clamp(ix0 + {j}, 0, i32(P.w) - 1));\n");
        body += &format!("        let col_in{j} = (ix0 + {j} >= 0) & (ix0 + {j} < i32(P.w));\n");
    }
    for r in 0..kh {
        body += &format!("        let tap_y{r} = iy0 + {r};\n");
        body += &format!("        let row_in{r} = (tap_y{r} >= 0) & (tap_y{r} < i32(P.h));\n");
        body += &format!("        let xr{r} = (x_chan + u32(clamp(tap_y{r}, 0, i32(P.h) - 1))) * P.w;\n");
        for j in 0..span {
            body += &format!("        let x{r}_{j} = select(0.0, f32(X[xr{r} + ixc{j}]), row_in{r} & col_in{j});\n");
        }
    }
    for q in 0..tm / sg {
        for h in 0..tp / 4 {
            body += &format!("        let own{q}_{h} = vec4<f32>(DY[dyrow{q} + dy_img + {h}u]);\n");
        }
    }
    for p in 0..tp {
        for i in 0..tm {
            body += &format!(
                "        let d{i}_{p} = subgroupBroadcast(own{}_{}[{}], {}u);\n",
                i / sg,
                p / 4,
                p % 4,
                i % sg
            );
            for r in 0..kh {
                for s in 0..kw {
                    body += &format!("        acc{i}_{r}_{s} = fma(d{i}_{p}, x{r}_{}, acc{i}_{r}_{s});\n", p + s);
                }
            }
        }
    }
    compose_typed(
        act,
        &[WEIGHT_ROWS],
        &[
            ("ACT", wgsl_scalar(act).to_string()),
            ("TM", tm.to_string()),
            ("TP", tp.to_string()),
            ("SG", sg.to_string()),
            ("SETUP", setup),
            ("BODY", body),
            ("STORE", store),
        ],
    )
}

/// The weight-gradient row-kernel dispatches (split-K partial slabs, then their sum) with
/// tile (tm, tp, sg); an error where that is not the tile `weight_tile` gives this shape. At
/// least `splits` slabs, and enough that no accumulator sums more than `SUM_CHUNK` pixels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_dispatch(
    gpu: &Gpu,
    s: &Conv2dShape,
    (tm, tp, sg): (u32, u32, u32),
    splits: u32,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
) -> Result<Vec<Dispatch>> {
    if weight_tile(s, tm, sg) != Some((tm, tp, sg)) {
        return shape_err(
            "conv2d_weight_rows",
            format!("the weight row kernel {tm}x{tp} (subgroups of {sg}) does not apply to {s:?}"),
        );
    }
    let (oh, ow) = s.out_hw();
    let segs = ow / tp as usize;
    let n_seg = s.batch * oh * segs;
    let want = (splits as usize).max(n_seg.div_ceil(SUM_CHUNK / tp as usize)).clamp(1, n_seg);
    let seg_chunk = n_seg.div_ceil(want);
    let splits = n_seg.div_ceil(seg_chunk);
    // Every value fits: dimensions of a validated shape whose tensors fit one binding.
    let u = |v: usize| v as u32;
    let params = words(&WeightRowsParams {
        cout: u(s.cout),
        cin: u(s.cin),
        h: u(s.h),
        w: u(s.w),
        oh: u(oh),
        ow: u(ow),
        sh: u(s.stride.0),
        ph: s.pad.0 as i32,
        pw: s.pad.1 as i32,
        segs: u(segs),
        n_seg: u(n_seg),
        seg_chunk: u(seg_chunk),
    });
    let (kh, kw) = (u(s.kh), u(s.kw));
    let act = activation_type("conv2d_weight_rows", x)?;
    let kernel = DirectKernel::WeightRows { tm, tp, sg, kh, kw, act };
    let wg = [u(s.cin.div_ceil(sg as usize)), u(s.cout.div_ceil(tm as usize)), u(splits)];
    dispatch_split_k(gpu, &kernel.name(), &kernel.pipeline(gpu)?, &params, &[x, dy], dw, wg)
}

/// The direct convolution kernels, by tile: `Rows` (forward, stride-1 backward-input) for a
/// kernel width, `WeightRows` (weight gradient) for a kernel size; each over activations
/// stored as `act` (f32 or f16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectKernel {
    Rows { tm: u32, tn: u32, sg: u32, kw: u32, act: DType },
    WeightRows { tm: u32, tp: u32, sg: u32, kh: u32, kw: u32, act: DType },
}

impl Kernel for DirectKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some((
            "Params",
            match self {
                Self::Rows { .. } => std::mem::size_of::<RowsParams>(),
                Self::WeightRows { .. } => std::mem::size_of::<WeightRowsParams>(),
            },
        ))
    }

    /// The tiles the listed subgroup variants lead to (`row_tm` / `weight_tm` cap their rows)
    /// for the kernel sizes of the ResNets.
    fn all() -> Vec<Self> {
        let mut row_tms: Vec<(u32, u32)> = Vec::new();
        let mut weight_tms: Vec<(u32, u32)> = Vec::new();
        for variant in listed_variants() {
            if let GemmVariant::SubgroupTiled { tm, sg, .. } = variant {
                row_tms.push((row_tm(tm, sg), sg));
                weight_tms.push((weight_tm(tm, sg), sg));
            }
        }
        row_tms.sort();
        row_tms.dedup();
        weight_tms.sort();
        weight_tms.dedup();
        let mut v = Vec::new();
        for act in ACTIVATION_TYPES {
            for &(tm, sg) in &row_tms {
                v.extend([(8, 1), (8, 3), (4, 3), (8, 7)].map(|(tn, kw)| Self::Rows { tm, tn, sg, kw, act }));
            }
            for &(tm, sg) in &weight_tms {
                v.extend([(8, 1), (8, 3), (4, 3)].map(|(tp, k)| Self::WeightRows { tm, tp, sg, kh: k, kw: k, act }));
            }
        }
        v
    }

    fn name(&self) -> String {
        match *self {
            Self::Rows { tm, tn, sg, kw, act } => {
                format!("conv2d_rows/subgroup{sg}_{tm}x{tn}/kw{kw}{}", type_suffix(act))
            }
            Self::WeightRows { tm, tp, sg, kh, kw, act } => {
                format!("conv2d_weight_rows/subgroup{sg}_{tm}x{tp}/k{kh}x{kw}{}", type_suffix(act))
            }
        }
    }

    fn source(&self) -> String {
        match *self {
            Self::Rows { tm, tn, sg, kw, act } => source(tm, tn, sg, kw, act),
            Self::WeightRows { tm, tp, sg, kh, kw, act } => weight_source(tm, tp, sg, kh, kw, act),
        }
    }
}
