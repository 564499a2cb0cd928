//! Matrix multiply C = op(A) op(B) (+ bias), op = optional transpose, and its backward rule.
//! The GEMM cores (`shaders/matmul/gemm_*.wgsl`) are shared with conv: a *loader* file supplies
//! how to read A and B and where to store C, so conv is an implicit GEMM with no im2col buffer.
//!
//! Variants (all tested on every adapter that can run them; chosen by adapter class):
//! - `RegisterTiled { tm, tn }`: barrier-free, each invocation owns a tm x tn tile. For
//!   software adapters, where barriers cost coroutine switches (ENVIRONMENT.md numbers).
//! - `SubgroupTiled { tm, tn, sg }`: register tiles whose A values are loaded once per
//!   subgroup of `sg` lanes and broadcast. Software adapters with subgroups (an optional
//!   feature: `RegisterTiled` is the fallback, and both are tested).
//! - `WorkgroupTiled { bm, bn, bk, tm, tn }`: bm x bn tiles of C per workgroup, A and B
//!   staged in workgroup memory in K-slices of bk, tm x tn outputs per invocation. For real
//!   GPUs; several shapes because the best one differs by vendor and problem size.
pub mod cpu;
mod graph;

pub use graph::MatmulOps;

use crate::error::{shape_err, Result};
use crate::gpu::tune::TuneMode;
use crate::gpu::{words, AdapterClass, Dispatch, Gpu, Kernel, Tensor};
use crate::ops::{check_len, compose, reduce, sources, to_u32, KernelSource};

const REGISTER_TILED: &str = include_str!("../../../shaders/matmul/gemm_register_tiled.wgsl");
const SUBGROUP_TILED: &str = include_str!("../../../shaders/matmul/gemm_subgroup_tiled.wgsl");
const WORKGROUP_TILED: &str = include_str!("../../../shaders/matmul/gemm_workgroup_tiled.wgsl");
const WORKGROUP_STAGE_SCALAR: &str = include_str!("../../../shaders/matmul/workgroup_stage_scalar.wgsl");
const WORKGROUP_STAGE_VEC4: &str = include_str!("../../../shaders/matmul/workgroup_stage_vec4.wgsl");
const DENSE: &str = include_str!("../../../shaders/matmul/dense.wgsl");
const DENSE_VEC4: &str = include_str!("../../../shaders/matmul/dense_vec4.wgsl");
const K_LOOP_SCALAR: &str = include_str!("../../../shaders/matmul/k_loop_scalar.wgsl");
const K_LOOP_VEC4: &str = include_str!("../../../shaders/matmul/k_loop_vec4.wgsl");

/// Invocations per workgroup of the subgroup-tiled cores, at least: one subgroup's worth on
/// llvmpipe, so a workgroup's column tile (8 x tn) wastes little on narrow outputs (a conv's
/// weight gradient has N = Cin*KH*KW, e.g. 576; measured in benches/README.md). Wider
/// subgroups (GPUs: 32) get one subgroup per workgroup, so every broadcast finds its lane.
const SUBGROUP_LANES: u32 = 8;

fn subgroup_lanes(sg: u32) -> u32 {
    SUBGROUP_LANES.max(sg)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmVariant {
    RegisterTiled { tm: u32, tn: u32 },
    SubgroupTiled { tm: u32, tn: u32, sg: u32 },
    WorkgroupTiled { bm: u32, bn: u32, bk: u32, tm: u32, tn: u32 },
}

impl GemmVariant {
    /// The workgroup-memory tiles for real GPUs, all within WebGPU's default limits (256
    /// invocations, 16 KiB of workgroup memory): the classic 64x64 / 4x4, a deeper K-slice,
    /// and the larger 128-wide tiles with 8 outputs per invocation along one or both axes
    /// (more FMAs per staged value, for large problems).
    pub const WORKGROUP_TILES: [GemmVariant; 4] = [
        GemmVariant::WorkgroupTiled { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
        GemmVariant::WorkgroupTiled { bm: 64, bn: 64, bk: 32, tm: 4, tn: 4 },
        GemmVariant::WorkgroupTiled { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4 },
        GemmVariant::WorkgroupTiled { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
    ];

    /// The workgroup-tiled default until a plan is tuned on the device: 64x64, the tile that
    /// fills the most workgroups on the small GEMMs of a SwAV step.
    pub const WORKGROUP_DEFAULT: GemmVariant = GemmVariant::WORKGROUP_TILES[0];

    /// The variant for dense matmul on this device class before tuning: on software adapters
    /// the fastest measured at 1024^3 (benches/README.md; larger register tiles outgrow the
    /// instruction cache), on real GPUs the default workgroup tile.
    pub fn for_matmul(gpu: &Gpu) -> Self {
        match (gpu.class, gpu.subgroup_size) {
            (AdapterClass::Cpu, Some(sg)) => GemmVariant::SubgroupTiled { tm: 16.max(sg), tn: 8, sg },
            (AdapterClass::Cpu, None) => GemmVariant::RegisterTiled { tm: 12, tn: 16 },
            (AdapterClass::Gpu, _) => GemmVariant::WORKGROUP_DEFAULT,
        }
    }

    /// The variant for a convolution pass whose implicit GEMM is m x n (pass `usize::MAX` for
    /// n where split-K supplies the parallelism, as in the weight gradient); measured in
    /// benches/README.md.
    /// - With subgroups the rows of a tile are shared, so the tile takes all of M up to 64.
    /// - Without, small outputs take 8x8 tiles so every core gets workgroups, and narrow
    ///   layers (M <= 8, e.g. 8-channel convs) 8x16 so no tile row is wasted.
    pub fn for_conv(gpu: &Gpu, m: usize, n: usize) -> Self {
        match (gpu.class, gpu.subgroup_size) {
            (AdapterClass::Cpu, Some(sg)) => {
                let tm = m.next_power_of_two().clamp(8.max(sg as usize), 64) as u32;
                GemmVariant::SubgroupTiled { tm, tn: 8, sg }
            }
            (AdapterClass::Cpu, None) if m <= 8 => GemmVariant::RegisterTiled { tm: 8, tn: 16 },
            (AdapterClass::Cpu, None) if m.div_ceil(128).saturating_mul(n.div_ceil(128)) < 8 => {
                GemmVariant::RegisterTiled { tm: 8, tn: 8 }
            }
            (AdapterClass::Cpu, None) => GemmVariant::RegisterTiled { tm: 16, tn: 16 },
            (AdapterClass::Gpu, _) => GemmVariant::WORKGROUP_DEFAULT,
        }
    }

    /// The variant for an m x n output: on software adapters without subgroups, outputs too
    /// small to give every core a few full workgroups take 8x8 tiles (64x64 per workgroup).
    pub fn pick(gpu: &Gpu, m: usize, n: usize) -> Self {
        match (gpu.class, gpu.subgroup_size) {
            (AdapterClass::Cpu, None) if m.div_ceil(128) * n.div_ceil(64) < 8 => {
                GemmVariant::RegisterTiled { tm: 8, tn: 8 }
            }
            _ => Self::for_matmul(gpu),
        }
    }

    /// Every variant the library selects somewhere, with subgroup tiles for subgroups of
    /// `subgroup_size` lanes (none for `None`); tests run each.
    pub fn all(subgroup_size: Option<u32>) -> Vec<GemmVariant> {
        let mut v = vec![
            GemmVariant::RegisterTiled { tm: 12, tn: 16 },
            GemmVariant::RegisterTiled { tm: 16, tn: 16 },
            GemmVariant::RegisterTiled { tm: 8, tn: 16 },
            GemmVariant::RegisterTiled { tm: 8, tn: 8 },
        ];
        v.extend(GemmVariant::WORKGROUP_TILES);
        if let Some(sg) = subgroup_size {
            v.extend(GemmVariant::subgroup_tiles(sg));
        }
        v
    }

    /// The subgroup tiles for subgroups of `sg` lanes: 8 to 64 rows (at least one per lane)
    /// by 8 columns per lane, and the smallest by 4 columns too.
    pub fn subgroup_tiles(sg: u32) -> Vec<GemmVariant> {
        let rows: Vec<u32> = [8, 16, 32, 64].into_iter().filter(|&tm| tm >= sg).collect();
        let mut v: Vec<GemmVariant> = rows.iter().map(|&tm| GemmVariant::SubgroupTiled { tm, tn: 8, sg }).collect();
        if let Some(&tm) = rows.first() {
            v.push(GemmVariant::SubgroupTiled { tm, tn: 4, sg });
        }
        v
    }

    /// The subgroup tiles worth timing on a real GPU: at most 128 accumulators per lane (the
    /// larger ones spill registers).
    pub fn gpu_subgroup_tiles(sg: u32) -> Vec<GemmVariant> {
        let small = |v: &GemmVariant| matches!(v, GemmVariant::SubgroupTiled { tm, tn, .. } if tm * tn <= 128);
        GemmVariant::subgroup_tiles(sg).into_iter().filter(small).collect()
    }

    pub fn name(&self) -> String {
        match self {
            GemmVariant::RegisterTiled { tm, tn } => format!("register_tiled_{tm}x{tn}"),
            GemmVariant::SubgroupTiled { tm, tn, sg } => format!("subgroup{sg}_tiled_{tm}x{tn}"),
            GemmVariant::WorkgroupTiled { bm, bn, bk, tm, tn } => format!("workgroup_tiled_{bm}x{bn}x{bk}_{tm}x{tn}"),
        }
    }

    /// Rows and columns of C one workgroup covers.
    pub fn workgroup_tile(&self) -> (u32, u32) {
        match self {
            GemmVariant::RegisterTiled { tm, tn } => (8 * tm, 8 * tn),
            GemmVariant::SubgroupTiled { tm, tn, sg } => (*tm, subgroup_lanes(*sg) * tn),
            GemmVariant::WorkgroupTiled { bm, bn, .. } => (*bm, *bn),
        }
    }

    /// The core with its tile loops unrolled into one statement per tile element.
    fn core(&self) -> String {
        let (tm, tn) = match *self {
            GemmVariant::RegisterTiled { tm, tn } | GemmVariant::SubgroupTiled { tm, tn, .. } => (tm, tn),
            GemmVariant::WorkgroupTiled { bm, bn, bk, tm, tn } => {
                return workgroup_tiled_core(bm, bn, bk, tm, tn, false)
            }
        };
        let (mut rows_cols, mut body) = self
            .a_rows(|i, row| format!("    let r{i} = row_ctx(min({row}, P.m - 1u));\n"), |i| format!("a_at(r{i}, kc)"));
        let (mut acc, mut store) = (String::new(), String::new());
        for j in 0..tn {
            rows_cols += &format!("    let c{j} = col_ctx(min(col0 + {j}u, P.n - 1u));\n");
            body += &format!("        let b{j} = b_at(kc, c{j});\n");
            for i in 0..tm {
                body += &format!("        acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});\n");
            }
        }
        for i in 0..tm {
            for j in 0..tn {
                acc += &format!("    var acc{i}_{j} = 0.0;\n");
                store += &format!(
                    "    if (row0 + {i}u < P.m && col0 + {j}u < P.n) {{ c_store(split, row0 + {i}u, col0 + {j}u, acc{i}_{j}); }}\n"
                );
            }
        }
        self.with_k_loop(
            K_LOOP_SCALAR,
            &[("ROWS_AND_COLS", rows_cols), ("ACC", acc), ("LOAD_AND_FMA", body), ("STORE", store)],
        )
    }

    /// The register or subgroup core with `k_loop` spliced in and every placeholder filled.
    fn with_k_loop(&self, k_loop: &str, subs: &[(&str, String)]) -> String {
        let (core, tm, tn, lanes) = match *self {
            GemmVariant::SubgroupTiled { tm, tn, sg } => (SUBGROUP_TILED, tm, tn, subgroup_lanes(sg)),
            GemmVariant::RegisterTiled { tm, tn } => (REGISTER_TILED, tm, tn, SUBGROUP_LANES),
            GemmVariant::WorkgroupTiled { .. } => unreachable!("the workgroup core has its own loop"),
        };
        let mut all = vec![
            ("K_LOOP", k_loop.to_string()),
            ("TM", tm.to_string()),
            ("TN", tn.to_string()),
            ("LANES", lanes.to_string()),
        ];
        all.extend(subs.iter().cloned());
        compose(&[core], &all)
    }

    /// How a register or subgroup tile gets its tm values of A (`a0`, `a1`, ...) at one step
    /// of K: (setup lines, loop-body lines). Register tiles load row i themselves; subgroup
    /// tiles load rows lane, lane + sg, ... and broadcast, so row i comes from lane i % sg.
    /// `setup(q, row)` prepares load q for the row expression `row`; `load(q)` is its value.
    fn a_rows(&self, setup: impl Fn(u32, &str) -> String, load: impl Fn(u32) -> String) -> (String, String) {
        let (mut set, mut body) = (String::new(), String::new());
        match *self {
            GemmVariant::SubgroupTiled { tm, sg, .. } => {
                for q in 0..tm / sg {
                    set += &setup(q, &format!("row0 + lane + {}u", q * sg));
                    body += &format!("        let own{q} = {};\n", load(q));
                }
                for i in 0..tm {
                    body += &format!("        let a{i} = subgroupBroadcast(own{}, {}u);\n", i / sg, i % sg);
                }
            }
            GemmVariant::RegisterTiled { tm, .. } => {
                for i in 0..tm {
                    set += &setup(i, &format!("row0 + {i}u"));
                    body += &format!("        let a{i} = {};\n", load(i));
                }
            }
            GemmVariant::WorkgroupTiled { .. } => {}
        }
        (set, body)
    }

    /// The full WGSL module for a loader under this core.
    pub(crate) fn source(&self, loader: &str, loader_subs: &[(&str, String)]) -> String {
        compose(&[loader, &self.core()], loader_subs)
    }

    /// Whether the variant has a dense vec4 kernel: register and subgroup tiles whose tn is
    /// a multiple of 4, and every workgroup tile (vec4 staging).
    fn has_vec4(&self) -> bool {
        match *self {
            GemmVariant::RegisterTiled { tn, .. } | GemmVariant::SubgroupTiled { tn, .. } => tn.is_multiple_of(4),
            GemmVariant::WorkgroupTiled { .. } => true,
        }
    }

    /// The dense vec4 kernel (A [M,K] . B [K,N], K and N multiples of 4), for `has_vec4`.
    fn vec4_source(&self) -> String {
        let (tm, tn) = match *self {
            GemmVariant::RegisterTiled { tm, tn } | GemmVariant::SubgroupTiled { tm, tn, .. } => (tm, tn),
            GemmVariant::WorkgroupTiled { bm, bn, bk, tm, tn } => {
                return compose(&[DENSE_VEC4, &workgroup_tiled_core(bm, bn, bk, tm, tn, true)], &[]);
            }
        };
        let tnv = tn / 4;
        let (mut setup, mut body) =
            self.a_rows(|i, row| format!("    let ra{i} = min({row}, P.m - 1u) * k4;\n"), |i| format!("A[ra{i} + k]"));
        let mut store = String::new();
        for j in 0..tnv {
            setup += &format!("    let cb{j} = min(col0 / 4u + {j}u, n4 - 1u);\n");
        }
        for i in 0..tm {
            for j in 0..tnv {
                setup += &format!("    var acc{i}_{j} = vec4<f32>(0.0);\n");
                store += &format!("    store(split, row0 + {i}u, col0 + {}u, acc{i}_{j});\n", 4 * j);
            }
        }
        for kk in 0..4 {
            for j in 0..tnv {
                body += &format!("        let b{kk}_{j} = B[(4u * k + {kk}u) * n4 + cb{j}];\n");
            }
            for i in 0..tm {
                for j in 0..tnv {
                    body += &format!("        acc{i}_{j} = fma(vec4<f32>(a{i}[{kk}]), b{kk}_{j}, acc{i}_{j});\n");
                }
            }
        }
        let kernel = self.with_k_loop(K_LOOP_VEC4, &[("SETUP", setup), ("BODY", body), ("STORE", store)]);
        compose(&[DENSE_VEC4, &kernel], &[])
    }
}

/// The workgroup-memory core for bm x bn tiles, K-slices of bk and tm x tn outputs per
/// invocation, with the staging and the per-invocation tile unrolled; `vec4` stages through
/// vec4 global loads (the dense_vec4.wgsl loader).
fn workgroup_tiled_core(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32, vec4: bool) -> String {
    let (wx, wy) = (bn / tn, bm / tm);
    let invocations = wx * wy;
    debug_assert!(bm.is_multiple_of(tm) && bn.is_multiple_of(tn) && invocations <= 256);
    debug_assert!((bm * bk).is_multiple_of(invocations) && (bn * bk).is_multiple_of(invocations));
    debug_assert!((bm + bn) * bk * 4 <= 16384, "over WebGPU's default workgroup memory");
    let per_load = if vec4 { 4 } else { 1 };
    debug_assert!((bm * bk / per_load).is_multiple_of(invocations) && (bn * bk / per_load).is_multiple_of(invocations));
    let mut stage = String::new();
    for t in 0..bm * bk / per_load / invocations {
        stage += &format!("        stage_a(flat, tile_m, k0, k_end, {t}u);\n");
    }
    for t in 0..bn * bk / per_load / invocations {
        stage += &format!("        stage_b(flat, tile_n, k0, k_end, {t}u);\n");
    }
    let (mut acc, mut body, mut store) = (String::new(), String::new(), String::new());
    for i in 0..tm {
        body += &format!("            let a{i} = a_tile[kk * BM + lid.y + {}u];\n", i * wy);
    }
    for j in 0..tn {
        body += &format!("            let b{j} = b_tile[kk * BN + lid.x + {}u];\n", j * wx);
    }
    for i in 0..tm {
        for j in 0..tn {
            acc += &format!("    var acc{i}_{j} = 0.0;\n");
            body += &format!("            acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});\n");
            store += &format!(
                "    if (tile_m + lid.y + {mi}u < P.m && tile_n + lid.x + {nj}u < P.n) {{ c_store(split, tile_m + lid.y + {mi}u, tile_n + lid.x + {nj}u, acc{i}_{j}); }}\n",
                mi = i * wy,
                nj = j * wx
            );
        }
    }
    let subs = [
        ("BM", bm.to_string()),
        ("BN", bn.to_string()),
        ("BK", bk.to_string()),
        ("WX", wx.to_string()),
        ("WY", wy.to_string()),
        ("A_TILE_LEN", (bm * bk).to_string()),
        ("B_TILE_LEN", (bn * bk).to_string()),
        ("STAGE_FNS", (if vec4 { WORKGROUP_STAGE_VEC4 } else { WORKGROUP_STAGE_SCALAR }).to_string()),
        ("STAGE", stage),
        ("ACC", acc),
        ("LOAD_AND_FMA", body),
        ("STORE", store),
    ];
    compose(&[WORKGROUP_TILED], &subs)
}

/// The GEMM problem one dispatch solves: C is m x n, the reduction is k long, cut into
/// `splits` slabs of `k_chunk` (split-K writes `splits` partial C's).
pub(crate) struct GemmProblem {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub splits: u32,
}

/// The longest reduction one invocation runs: llvmpipe stops an invocation after 65535 loop
/// iterations in total, so longer K is split (split-K slabs summed by a reduce pass). Only
/// loaders that store per-split slabs (dense matmul, conv weight gradient) may be split; the
/// conv forward and backward-input refuse longer reductions (`conv::check_reduction`).
pub const MAX_K_CHUNK: u32 = 32768;

/// The longest run one f32 accumulator sums where the loader can split: past tens of
/// thousands of terms a single accumulator drifts beyond 1e-4 relative (seen: matmul with
/// k = 20000, 2.0e-4), so dense matmul and the weight gradient sum in slabs of at most this
/// many and add the slabs (a two-level sum).
pub const SUM_CHUNK: usize = 4096;

/// The first four words of every GEMM loader's `Params` (m, n, k, k_chunk), which `gemm`
/// fills in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GemmHeader {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub k_chunk: u32,
}

/// `Params` of shaders/matmul/dense.wgsl and dense_vec4.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct DenseParams {
    gemm: GemmHeader,
    has_bias: u32,
    _pad: [u32; 3],
}

/// Builds a GEMM: `params` starts with a `GemmHeader`, filled in here; the loader's
/// tensors are `inputs` followed by the output. With more than one split the loader writes
/// partial C's into an owned slab [splits, m, n] and a reduce pass sums them into `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    gpu: &Gpu,
    kernel: &impl Kernel,
    variant: GemmVariant,
    params: Vec<u32>,
    inputs: &[&Tensor],
    out: &Tensor,
    p: &GemmProblem,
) -> Result<Vec<Dispatch>> {
    let tile = variant.workgroup_tile();
    gemm_with_pipeline(gpu, &kernel.name(), &kernel.pipeline(gpu)?, params, inputs, out, p, tile, 1)
}

/// The identity of a GEMM kernel: op, core variant and the loader's specialisation
/// (`matmul/register_tiled_12x16/TRANS_A=false,TRANS_B=true`, `conv2d_forward/workgroup_...`).
pub(crate) fn gemm_kernel_name(name: &str, variant: GemmVariant, loader_subs: &[(&str, String)]) -> String {
    if loader_subs.is_empty() {
        return format!("{name}/{}", variant.name());
    }
    let subs: Vec<String> = loader_subs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}/{}/{}", variant.name(), subs.join(","))
}

/// Dispatches a GEMM pipeline whose workgroups cover `tile` (rows, cols) of C, with split-K
/// slabs whose length is a multiple of `k_align`.
#[allow(clippy::too_many_arguments)]
fn gemm_with_pipeline(
    gpu: &Gpu,
    key: &str,
    pipeline: &wgpu::ComputePipeline,
    mut params: Vec<u32>,
    inputs: &[&Tensor],
    out: &Tensor,
    p: &GemmProblem,
    (tile_m, tile_n): (u32, u32),
    k_align: u32,
) -> Result<Vec<Dispatch>> {
    let splits = p.splits.max(p.k.div_ceil(MAX_K_CHUNK)).clamp(1, p.k.max(1));
    // K = 0 (a product with nothing to sum) still runs one slab, which stores zeros.
    let k_chunk = (p.k.div_ceil(splits).div_ceil(k_align) * k_align).max(1);
    // Recount so no slab is empty.
    let splits = p.k.div_ceil(k_chunk).max(1);
    params[..4].copy_from_slice(&words(&GemmHeader { m: p.m, n: p.n, k: p.k, k_chunk }));
    let wg = [p.n.div_ceil(tile_n), p.m.div_ceil(tile_m), splits];
    dispatch_split_k(gpu, key, pipeline, &params, inputs, out, wg)
}

/// Dispatches a split-K kernel over `workgroups` (z = the split) with `inputs` bound first:
/// with one split it writes `out` directly; with more, each split writes its own partial
/// copy into an owned slab [splits, out.len()] that a reduce pass sums into `out`.
pub(crate) fn dispatch_split_k(
    gpu: &Gpu,
    key: &str,
    pipeline: &wgpu::ComputePipeline,
    params: &[u32],
    inputs: &[&Tensor],
    out: &Tensor,
    workgroups: [u32; 3],
) -> Result<Vec<Dispatch>> {
    let splits = workgroups[2] as usize;
    let mut tensors = inputs.to_vec();
    if splits == 1 {
        tensors.push(out);
        return Ok(vec![gpu.dispatch(key, pipeline, params, &tensors, workgroups)?]);
    }
    let len = out.len();
    let slab = gpu.tensor(&format!("{key} split-K slab"), &[splits, len])?;
    tensors.push(&slab);
    let partials = gpu.dispatch(key, pipeline, params, &tensors, workgroups)?;
    let mut sum = reduce::reduce_axis(gpu, &slab, out, 1, splits, len, reduce::ReduceOp::Sum)?;
    let last = sum.pop().expect("reduce_axis returns at least one pass").keep(slab);
    let mut passes = vec![partials];
    passes.extend(sum);
    passes.push(last);
    Ok(passes)
}

/// Shape of C = op(A) op(B): C is m x n, reduction length k. A is stored [m,k] (or [k,m] when
/// `trans_a`), B is stored [k,n] (or [n,k] when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// C = op(A) op(B) (+ bias[n]), written into `c` (every element is overwritten).
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: MatmulShape,
    variant: GemmVariant,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "matmul";
    if s.m == 0 || s.n == 0 || s.k == 0 {
        return shape_err(OP, format!("empty matmul {s:?}"));
    }
    check_len(OP, "A", a, s.m * s.k)?;
    check_len(OP, "B", b, s.k * s.n)?;
    check_len(OP, "C", c, s.m * s.n)?;
    if let Some(bias) = bias {
        check_len(OP, "bias", bias, s.n)?;
    }
    let splits = to_u32(OP, s.k.div_ceil(SUM_CHUNK))?;
    let p = GemmProblem { m: to_u32(OP, s.m)?, n: to_u32(OP, s.n)?, k: to_u32(OP, s.k)?, splits };
    // Without a bias, A is bound in its slot (never read) so the layout stays the same.
    let bias_t = bias.unwrap_or(a);
    let params = words(&DenseParams { has_bias: bias.is_some() as u32, ..DenseParams::default() });
    if variant.has_vec4() && !s.trans_a && !s.trans_b && s.k.is_multiple_of(4) && s.n.is_multiple_of(4) {
        let kernel = MatmulKernel::DenseVec4(variant);
        let tile = variant.workgroup_tile();
        return gemm_with_pipeline(
            gpu,
            &kernel.name(),
            &kernel.pipeline(gpu)?,
            params,
            &[a, b, bias_t],
            c,
            &p,
            tile,
            4,
        );
    }
    let kernel = MatmulKernel::Dense { variant, trans_a: s.trans_a, trans_b: s.trans_b };
    gemm(gpu, &kernel, variant, params, &[a, b, bias_t], c, &p)
}

/// Gradients of C = op(A) op(B) + bias: writes dA and dB (stored like A and B) and the bias
/// gradient (column sums of dC), each only where asked.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    dc: &Tensor,
    da: Option<&Tensor>,
    db: Option<&Tensor>,
    dbias: Option<&Tensor>,
    s: MatmulShape,
    variant: GemmVariant,
) -> Result<Vec<Dispatch>> {
    let pick = |o: Operand| match o {
        Operand::A => a,
        Operand::B => b,
        Operand::DC => dc,
    };
    let [(al, ar, a_shape), (bl, br, b_shape)] = backward_products(s);
    let mut out = Vec::new();
    if let Some(da) = da {
        out.extend(matmul(gpu, pick(al), pick(ar), None, da, a_shape, variant)?);
    }
    if let Some(db) = db {
        out.extend(matmul(gpu, pick(bl), pick(br), None, db, b_shape, variant)?);
    }
    if let Some(dbias) = dbias {
        check_len("matmul_backward", "dbias", dbias, s.n)?;
        out.extend(reduce::reduce_axis(gpu, dc, dbias, 1, s.m, s.n, reduce::ReduceOp::Sum)?);
    }
    Ok(out)
}

/// Which stored tensor feeds a backward product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    A,
    B,
    DC,
}

/// The backward rule as two matmuls (lhs, rhs, shape): first dA, then dB, each in the layout
/// its operand is stored in.
pub fn backward_products(s: MatmulShape) -> [(Operand, Operand, MatmulShape); 2] {
    let (m, n, k, ta, tb) = (s.m, s.n, s.k, s.trans_a, s.trans_b);
    let shape = |m, n, k, trans_a, trans_b| MatmulShape { m, n, k, trans_a, trans_b };
    let da = if !ta {
        // dA [m,k] = dC [m,n] . op(B)^T
        (Operand::DC, Operand::B, shape(m, k, n, false, !tb))
    } else {
        // dA stored [k,m] = op(B) [k,n] . dC^T
        (Operand::B, Operand::DC, shape(k, m, n, tb, true))
    };
    let db = if !tb {
        // dB [k,n] = op(A)^T [k,m] . dC [m,n]
        (Operand::A, Operand::DC, shape(k, n, m, !ta, false))
    } else {
        // dB stored [n,k] = dC^T [n,m] . op(A) [m,k]
        (Operand::DC, Operand::A, shape(n, k, m, true, ta))
    };
    [da, db]
}

/// Every variant the kernel lists hold: all of them for llvmpipe's 8-lane subgroups, and the
/// The variants worth timing in `mode` on an adapter of `class` with `subgroup_size`, the
/// chooser's pick `default` first.
pub fn tuning_candidates(
    mode: TuneMode,
    class: AdapterClass,
    subgroup_size: Option<u32>,
    default: GemmVariant,
) -> Vec<GemmVariant> {
    let mut v = vec![default];
    let extra: Vec<GemmVariant> = match (mode, class) {
        (TuneMode::Off, _) | (TuneMode::Quick, AdapterClass::Cpu) => vec![],
        (TuneMode::Quick, AdapterClass::Gpu) => GemmVariant::WORKGROUP_TILES.to_vec(),
        // On real GPUs the subgroup tiles are opt-in: they have run on no GPU yet.
        (TuneMode::Full, AdapterClass::Gpu) => {
            let mut v = GemmVariant::WORKGROUP_TILES.to_vec();
            v.extend(subgroup_size.map(GemmVariant::gpu_subgroup_tiles).unwrap_or_default());
            v
        }
        (TuneMode::Full, AdapterClass::Cpu) => GemmVariant::all(subgroup_size),
    };
    for e in extra {
        if !v.contains(&e) {
            v.push(e);
        }
    }
    v
}

impl crate::gpu::tune::Variant for GemmVariant {
    fn name(&self) -> String {
        GemmVariant::name(self)
    }
}

/// GPU subgroup tiles for 32 lanes (NVIDIA, Apple).
pub(crate) fn listed_variants() -> Vec<GemmVariant> {
    let mut v = GemmVariant::all(Some(8));
    v.extend(GemmVariant::gpu_subgroup_tiles(32));
    v
}

/// The dense product's kernels: each listed GEMM core with the dense loader in its four
/// transpositions, and the vec4 kernel of the cores that have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MatmulKernel {
    Dense { variant: GemmVariant, trans_a: bool, trans_b: bool },
    DenseVec4(GemmVariant),
}

impl MatmulKernel {
    fn subs(trans_a: bool, trans_b: bool) -> [(&'static str, String); 2] {
        [("TRANS_A", trans_a.to_string()), ("TRANS_B", trans_b.to_string())]
    }
}

impl Kernel for MatmulKernel {
    fn params(&self) -> Option<(&'static str, usize)> {
        Some(("Params", std::mem::size_of::<DenseParams>()))
    }

    fn all() -> Vec<Self> {
        let mut v: Vec<Self> =
            listed_variants().into_iter().filter(GemmVariant::has_vec4).map(Self::DenseVec4).collect();
        for variant in listed_variants() {
            for trans_a in [false, true] {
                v.extend([false, true].map(|trans_b| Self::Dense { variant, trans_a, trans_b }));
            }
        }
        v
    }

    fn name(&self) -> String {
        match *self {
            Self::Dense { variant, trans_a, trans_b } => {
                gemm_kernel_name("matmul", variant, &Self::subs(trans_a, trans_b))
            }
            Self::DenseVec4(variant) => format!("matmul_vec4/{}", variant.name()),
        }
    }

    fn source(&self) -> String {
        match *self {
            Self::Dense { variant, trans_a, trans_b } => variant.source(DENSE, &Self::subs(trans_a, trans_b)),
            Self::DenseVec4(variant) => variant.vec4_source(),
        }
    }
}

pub(crate) fn kernel_sources() -> Vec<KernelSource> {
    sources::<MatmulKernel>()
}

/// The dispatches of a GEMM-backed op on the chooser's `default`, or on the tuner's fastest
/// candidate (gpu::tune).
pub(crate) fn tuned(
    gpu: &Gpu,
    op_shape: &str,
    default: GemmVariant,
    build: impl FnMut(GemmVariant) -> Result<Vec<Dispatch>>,
) -> Result<Vec<Dispatch>> {
    let candidates = tuning_candidates(gpu.tuner.mode, gpu.class, gpu.subgroup_size, default);
    gpu.tuner.choose(gpu, op_shape, &candidates, build)
}
