// Shared by the optimizer's kernels: the finiteness test, and when an element is left untouched.

// Not NaN and not infinite, read from the bits (WGSL has no isnan / isinf).
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Out of range, a gated parameter (the prototypes) while frozen, or a step whose loss (with
// loss scaling: whose found_inf) is NaN or infinite (a diverged step leaves the parameters as
// they were, for the trainer to diagnose and stop; an overflowing scaled one is skipped).
fn skip_update(i: u32, len: u32, gated: u32, enabled: f32, loss: f32) -> bool {
    return i >= len || (gated != 0u && enabled == 0.0) || !is_finite(loss);
}
