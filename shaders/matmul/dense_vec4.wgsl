// Loader for the vec4 K loop (k_loop_vec4.wgsl): dense C = A B (+ bias), A [M,K] and
// B [K,N] row-major with K and N multiples of 4. Why vec4: llvmpipe runs every storage load
// lane by lane, so one vec4 load costs about what one scalar load does; each invocation loads
// a vec4 of A per row and a vec4 of B per 4 columns for every 4 steps of K: 4x fewer loads.
struct Params {
    m: u32, n: u32, k: u32, k_chunk: u32,
    has_bias: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

fn store(split: u32, m: u32, n: u32, v: vec4<f32>) {
    for (var l = 0u; l < 4u; l++) {
        if (m < P.m && n + l < P.n) {
            var r = v[l];
            if (P.has_bias != 0u && split == 0u) {
                r += BIAS[n + l];
            }
            C[(split * P.m + m) * P.n + n + l] = r;
        }
    }
}
