//! The direct row kernel (`shaders/conv/rows_subgroup.wgsl`) for forward and backward-input
//! convs with unit x-stride, used where the GEMM variant is subgroup-tiled: the same rows of
//! output channels per subgroup, but each lane gathers the input pixels of its segment of an
//! output row once per (channel, kernel row) instead of once per tap.
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::ops::compose;
use crate::ops::matmul::GemmVariant;

use super::Conv2dShape;

const ROWS: &str = include_str!("../../../shaders/conv/rows_subgroup.wgsl");

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

/// Which pass a row conv computes.
#[derive(Clone, Copy)]
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

/// The row kernel's tile for this pass, or `None` where it does not apply: GEMM variants
/// other than subgroup tiles, x-strides other than 1 (and strided backward-input), kernels
/// wider than 7, output rows narrower than 4, or more (channel, kernel row) steps than
/// llvmpipe's loop limit allows.
fn tile(gpu: &Gpu, s: &Conv2dShape, pass: Pass, variant: GemmVariant) -> Option<(u32, u32, u32)> {
    let GemmVariant::SubgroupTiled { tm, sg, .. } = variant else { return None };
    // Each step unrolls tm x tn x kw FMAs: past 32 rows the body outgrows the instruction
    // cache (N64 C=K=64 32x32 3x3 forward, rows of 16 / 32 / 64: 23.8 / 24.4 / 22.3 GFLOP/s).
    let tm = tm.min(32.max(sg));
    let eligible = match pass {
        Pass::Forward => s.stride.1 == 1,
        Pass::BackwardInput => s.stride == (1, 1),
    };
    let c = row_conv(s, pass);
    if !eligible || c.kw > MAX_KW || c.ow < 4 || c.cin * c.kh >= 65_000 {
        return None;
    }
    let tn: u32 = if c.ow >= 8 { 8 } else { 4 };
    let n_seg = c.batch * c.oh * c.ow.div_ceil(tn as usize);
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    (n_seg.div_ceil(sg as usize) <= max && c.m.div_ceil(tm as usize) <= max).then_some((tm, tn, sg))
}

/// The row kernel's name and tile where `conv::forward` (`forward`) or `conv::backward_input`
/// run it for this shape and variant, else `None`.
pub fn kernel_name(gpu: &Gpu, s: &Conv2dShape, forward: bool, variant: GemmVariant) -> Option<String> {
    let (tm, tn, sg) = tile(gpu, s, if forward { Pass::Forward } else { Pass::BackwardInput }, variant)?;
    Some(format!("rows_subgroup{sg}_{tm}x{tn}"))
}

/// The WGSL for a tile (tm rows, tn pixels, subgroups of sg) and kernel width kw.
pub(crate) fn source(tm: u32, tn: u32, sg: u32, kw: u32) -> String {
    let (mut setup, mut body, mut store) = (String::new(), String::new(), String::new());
    let span = tn + kw - 1;
    for j in 0..span {
        setup += &format!("    let ixc{j} = u32(clamp(ix0 + {j}, 0, i32(P.w) - 1));\n");
        setup += &format!("    let col_in{j} = (ix0 + {j} >= 0) & (ix0 + {j} < i32(P.w));\n");
        body += &format!("        let x{j} = select(0.0, X[x_row + ixc{j}], row_in & col_in{j});\n");
    }
    for q in 0..tm / sg {
        setup += &format!("    let wrow{q} = P.w_base + i32(min(row0 + lane + {}u, P.m - 1u)) * P.w_row;\n", q * sg);
    }
    for i in 0..tm {
        for j in 0..tn {
            setup += &format!("    var acc{i}_{j} = 0.0;\n");
            store += &format!(
                "    if (live && row0 + {i}u < P.m && ox0 + {j}u < P.ow) {{ Y[((b * P.m + row0 + {i}u) * P.oh + oy) * P.ow + ox0 + {j}u] = acc{i}_{j}; }}\n"
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
    compose(
        &[ROWS],
        &[
            ("TM", tm.to_string()),
            ("TN", tn.to_string()),
            ("SG", sg.to_string()),
            ("SETUP", setup),
            ("BODY", body),
            ("STORE", store),
        ],
    )
}

/// The row-kernel dispatch for this pass, or `None` where it does not apply (see `tile`).
pub(crate) fn dispatch(
    gpu: &Gpu,
    s: &Conv2dShape,
    pass: Pass,
    variant: GemmVariant,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
) -> Result<Option<Dispatch>> {
    let Some((tm, tn, sg)) = tile(gpu, s, pass, variant) else { return Ok(None) };
    let c = row_conv(s, pass);
    let segs = c.ow.div_ceil(tn as usize);
    let n_seg = c.batch * c.oh * segs;
    // Every value fits: dimensions of a validated shape whose tensors fit one binding.
    let u = |v: usize| v as u32;
    let i = |v: i64| v as i32 as u32;
    let [w_base, w_row, w_chan, w_r, w_s] = c.w_strides;
    let params = vec![
        u(c.m),
        u(c.cin),
        u(c.h),
        u(c.w),
        u(c.oh),
        u(c.ow),
        u(c.sh),
        i(c.ph),
        i(c.pw),
        u(c.kh),
        u(segs),
        u(n_seg),
        i(w_base),
        i(w_row),
        i(w_chan),
        i(w_r),
        i(w_s),
        0,
        0,
        0,
    ];
    let key = format!("conv2d_rows/subgroup{sg}_{tm}x{tn}/kw{}", c.kw);
    let kw = u(c.kw);
    let pipeline = gpu.pipeline(&key, || source(tm, tn, sg, kw), "main");
    let wg = [u(n_seg.div_ceil(sg as usize)), u(c.m.div_ceil(tm as usize)), 1];
    Ok(Some(gpu.dispatch(&key, &pipeline, &params, &[x, w, y], wg)?))
}
