//! `--precision`: how a run stores its activations, resolved on the adapter before the graph
//! is built. f16 needs the adapter's shader-f16; `auto` takes f16 only where it measures
//! faster than f32 on this adapter (a convolution's three passes at a mid-ResNet shape), and
//! says what it chose and why. The resolved value is what the run records.
use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::DType;
use crate::gpu::Gpu;
use crate::optim::LossScale;
use crate::train::config::Precision;
use crate::train::TrainConfig;

/// Replaces `auto` in `cfg` by f32 or f16 and checks that f16 can run here; f16 without a
/// loss scale gets the dynamic one (small gradients would underflow f16 otherwise; a fixed
/// `--loss-scale 1` is f16 without scaling). Returns the lines to tell the user (what auto
/// chose and why, the loss scale f16 turned on).
pub fn resolve(cfg: &mut TrainConfig, gpu: &Gpu) -> Result<Option<String>> {
    let mut said = choose_precision(cfg, gpu)?;
    if cfg.precision == Precision::F16 && cfg.loss_scale == LossScale::Off {
        cfg.loss_scale = LossScale::Dynamic;
        let line = "f16 activations: dynamic loss scaling (--loss-scale S for a fixed scale, 1 for none)".to_string();
        said = Some(said.map_or(line.clone(), |s| format!("{s}\n{line}")));
    }
    Ok(said)
}

fn choose_precision(cfg: &mut TrainConfig, gpu: &Gpu) -> Result<Option<String>> {
    match cfg.precision {
        Precision::F32 => Ok(None),
        Precision::F16 if gpu.f16 => Ok(None),
        Precision::F16 => Err(Error::Invalid(format!(
            "--precision f16 needs an adapter with shader-f16, and {} has none (use --precision f32, or auto to take f16 where it is available)",
            gpu.info.name
        ))),
        Precision::Auto => {
            let (choice, why) = choose(gpu)?;
            cfg.precision = choice;
            Ok(Some(format!("precision auto: {choice} ({why})")))
        }
    }
}

/// A resolved precision that this adapter can run (what a trainer is built with).
pub fn check(cfg: &TrainConfig, gpu: &Gpu) -> Result<()> {
    match cfg.precision {
        Precision::F16 => resolve(&mut cfg.clone(), gpu).map(|_| ()),
        Precision::F32 => Ok(()),
        Precision::Auto => cfg.precision.storage().map(|_| ()),
    }
}

/// What `auto` picks on this adapter, and the reason in words.
fn choose(gpu: &Gpu) -> Result<(Precision, String)> {
    if !gpu.f16 {
        return Ok((Precision::F32, format!("{} has no shader-f16", gpu.info.name)));
    }
    #[cfg(target_arch = "wasm32")]
    {
        // No synchronous timing in a page: f16 halves the memory and the bandwidth.
        Ok((Precision::F16, "the adapter has shader-f16".into()))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let f32_s = conv_seconds(gpu, DType::F32)?;
        let f16_s = conv_seconds(gpu, DType::F16)?;
        let pick = if f16_s < f32_s { Precision::F16 } else { Precision::F32 };
        Ok((pick, format!("a 3x3 conv's three passes: f16 {:.2} ms, f32 {:.2} ms", f16_s * 1e3, f32_s * 1e3)))
    }
}

/// Seconds of a 3x3 convolution's forward, backward-input and backward-weight passes (batch
/// 16, 64 -> 64 channels, 16 x 16) with activations stored as `act`: the median of 3 runs.
#[cfg(not(target_arch = "wasm32"))]
fn conv_seconds(gpu: &Gpu, act: DType) -> Result<f64> {
    use crate::ops::conv::{self, Conv2dShape, ConvKernel, ConvPass};
    let s = Conv2dShape::square(16, 64, 16, 64, 3, 1, 1);
    let (oh, ow) = s.out_hw();
    let x = gpu.tensor_of("precision probe x", &[s.batch, s.cin, s.h, s.w], act)?;
    let w = gpu.tensor("precision probe w", &[s.cout, s.cin, s.kh, s.kw])?;
    let y = gpu.tensor_of("precision probe y", &[s.batch, s.cout, oh, ow], act)?;
    let dx = gpu.tensor_of("precision probe dx", &[s.batch, s.cin, s.h, s.w], act)?;
    let dw = gpu.tensor("precision probe dw", &[s.cout, s.cin, s.kh, s.kw])?;
    let mut d = conv::forward(gpu, &x, &w, &y, s, ConvKernel::choose(gpu, &s, ConvPass::Forward))?;
    d.extend(conv::backward_input(gpu, &y, &w, &dx, s, ConvKernel::choose(gpu, &s, ConvPass::BackwardInput))?);
    let k = ConvKernel::choose(gpu, &s, ConvPass::BackwardWeight);
    let splits = conv::weight_grad_splits(s, k, gpu.class);
    d.extend(conv::backward_weight(gpu, &x, &y, &dw, s, k, splits)?);
    Ok(gpu.time_dispatches(&d, 3)?.0)
}
