use crate::common::*;
use swav_wgpu::ops::conv::{self, Conv2dShape};
use swav_wgpu::ops::matmul::GemmVariant;
use swav_wgpu::Error;

#[test]
fn tensor_over_the_binding_limit_is_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu.max_binding_bytes();
    let elems = (limit / 4 + 1) as usize;
    match gpu.tensor("activations", &[elems]) {
        Err(Error::TensorTooLarge { name, bytes, limit: l }) => {
            assert_eq!(name, "activations");
            assert_eq!(bytes, elems as u64 * 4);
            assert_eq!(l, limit);
        }
        other => panic!("expected TensorTooLarge, got {other:?}"),
    }
    // The largest legal tensor is accepted.
    assert!(gpu.tensor("max", &[(limit / 4) as usize]).is_ok());
}

#[test]
fn device_uses_webgpu_default_limits() {
    let Some(gpu) = gpu() else { return };
    if std::env::var_os("SWAV_WGPU_FULL_LIMITS").is_none() {
        assert_eq!(gpu.limits, wgpu::Limits::defaults());
    }
}

#[test]
fn shape_mismatch_is_an_error_not_a_panic() {
    let Some(gpu) = gpu() else { return };
    let s = Conv2dShape::square(2, 3, 8, 4, 3, 1, 1);
    let x = gpu.tensor_filled("x", &[s.input_len() - 1], 0.0).unwrap();
    let w = gpu.tensor_filled("w", &[s.weight_len()], 0.0).unwrap();
    let y = gpu.tensor_filled("y", &[s.output_len()], 0.0).unwrap();
    let err = conv::forward(&gpu, &x, &w, &y, s, GemmVariant::WORKGROUP_DEFAULT).unwrap_err();
    assert!(err.to_string().contains("input has"), "{err}");
    let bad = Conv2dShape::square(1, 1, 2, 1, 7, 1, 0);
    assert!(conv::forward(&gpu, &x, &w, &y, bad, GemmVariant::WORKGROUP_DEFAULT).is_err());
    // A reduction longer than one invocation may run (3700 channels x 9 taps) is refused,
    // never split into slabs the forward loader cannot store.
    let long = Conv2dShape::square(1, 3700, 3, 1, 3, 1, 1);
    let x = gpu.tensor_filled("x", &[long.input_len()], 0.0).unwrap();
    let w = gpu.tensor_filled("w", &[long.weight_len()], 0.0).unwrap();
    let y = gpu.tensor_filled("y", &[long.output_len()], 0.0).unwrap();
    let err = conv::forward(&gpu, &x, &w, &y, long, GemmVariant::RegisterTiled { tm: 8, tn: 8 }).unwrap_err();
    assert!(err.to_string().contains("channel-taps"), "{err}");
    let err = conv::backward_input(
        &gpu,
        &y,
        &w,
        &x,
        Conv2dShape { cin: 1, cout: 3700, ..long },
        GemmVariant::WORKGROUP_DEFAULT,
    );
    assert!(err.is_err());
}

/// A kernel the device rejects is a clear error naming it, not a panic, and nothing is cached.
#[test]
fn a_rejected_kernel_is_a_validation_error() {
    // A device of its own: the shared one's pipeline count moves with the tests running beside.
    if gpu().is_none() {
        return;
    }
    let gpu = swav_wgpu::gpu::Gpu::from_env_blocking().unwrap();
    let broken = || "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }".to_string();
    let before = gpu.counters().pipelines;
    let err = gpu.pipeline("test/broken", broken, "main").unwrap_err().to_string();
    assert!(err.contains("kernel test/broken") && err.contains("validation"), "{err}");
    assert_eq!(gpu.counters().pipelines, before);
    assert!(gpu.pipeline("test/broken", broken, "main").is_err(), "a rejected kernel is not cached");
}
