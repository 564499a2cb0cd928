// Batch-norm over X viewed as [batch, channels, spatial] (spatial = H*W, or 1 for BN1d).
// world: ranks whose batches are normalised together (synchronised batch-norm; 1 otherwise);
// stage: which part of the statistics kernel runs (see stats.wgsl).
struct Params {
    batch: u32, channels: u32, spatial: u32, training: u32,
    eps: f32, momentum: f32, update_running: u32, relu: u32,
    world: u32, stage: u32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

// V is vec4<f32> when spatial is a multiple of 4 (then no V straddles two channels): one
// channel index (a division) and one set of per-channel loads serve 4 elements, and the
// per-channel loops run a quarter of the iterations (llvmpipe loads lane by lane and caps
// an invocation at 65535 loop iterations). f32 otherwise. S is V as stored (vec4<f16> or f16
// for f16 activations): reads convert to V, writes back to S; statistics stay f32.
alias V = {{V}};
alias S = {{S}};
const WIDTH: u32 = {{WIDTH}}u;

fn hsum(v: V) -> f32 {
    {{HSUM}}
}

// Offset (in V's) of the idx-th V (over batch x spatial) of channel c.
fn channel_offset(c: u32, idx: u32) -> u32 {
    let sv = P.spatial / WIDTH;
    let b = idx / sv;
    return (b * P.channels + c) * sv + (idx - b * sv);
}
