// Batch-norm over X viewed as [batch, channels, spatial] (spatial = H*W, or 1 for BN1d).
struct Params {
    batch: u32, channels: u32, spatial: u32, training: u32,
    eps: f32, momentum: f32, update_running: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> P: Params;

// Offset of the idx-th element (over batch x spatial) of channel c.
fn channel_offset(c: u32, idx: u32) -> u32 {
    let b = idx / P.spatial;
    return (b * P.channels + c) * P.spatial + (idx - b * P.spatial);
}
