//! ResNet-18/34 (BasicBlock) and ResNet-50 (Bottleneck), torchvision layout and parameter names
//! (`conv1.weight`, `layer2.0.downsample.1.running_var`, ...), with a width multiplier and an
//! choice of stem (see [`Stem`]); ends in global average pool.
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::ops::elementwise::ElementwiseOps;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
        })
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Arch> {
        match s {
            "resnet18" => Ok(Arch::ResNet18),
            "resnet34" => Ok(Arch::ResNet34),
            "resnet50" => Ok(Arch::ResNet50),
            other => Err(Error::Invalid(format!("unknown architecture '{other}': use resnet18, resnet34 or resnet50"))),
        }
    }
}

/// How the network first meets the image. The stem sets the resolution every later stage runs
/// at, and so most of the FLOPs: each stage of a ResNet costs about the same at a given input
/// size, and halving the resolution quarters it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 3x3 conv, stride 1, no pool: stages at full resolution (CIFAR ResNets).
    Cifar,
    /// 3x3 conv, stride 1, then 3x3/2 max-pool: stages at half resolution. For 32-64 px
    /// images, where the ImageNet stem leaves the last stage at 1x1.
    CifarPool,
    /// 7x7 conv, stride 2, then 3x3/2 max-pool: stages at a quarter resolution (torchvision).
    #[serde(rename = "imagenet")]
    ImageNet,
}

impl Stem {
    /// The names the config file uses.
    pub const NAMES: &'static str = "cifar, cifar_pool or imagenet";
}

impl std::fmt::Display for Stem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stem::Cifar => "cifar",
            Stem::CifarPool => "cifar_pool",
            Stem::ImageNet => "imagenet",
        })
    }
}

impl std::str::FromStr for Stem {
    type Err = Error;
    fn from_str(s: &str) -> Result<Stem> {
        match s {
            "cifar" => Ok(Stem::Cifar),
            "cifar_pool" => Ok(Stem::CifarPool),
            "imagenet" => Ok(Stem::ImageNet),
            other => Err(Error::Invalid(format!("unknown stem '{other}': use {}", Stem::NAMES))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackboneConfig {
    pub arch: Arch,
    /// Multiplies every width (64, 128, 256, 512 and the stem's 64).
    pub width: f32,
    pub stem: Stem,
    /// How activations (and their gradients) are stored: f32, or f16 between a cast of the
    /// input and a cast of the last feature map back to f32 (kernels compute in f32).
    pub storage: crate::gpu::DType,
}

pub const BN_EPS: f32 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

impl BackboneConfig {
    fn blocks(&self) -> [usize; 4] {
        match self.arch {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
        }
    }
    pub fn expansion(&self) -> usize {
        if self.arch == Arch::ResNet50 {
            4
        } else {
            1
        }
    }
    pub fn scaled(&self, c: usize) -> usize {
        ((c as f32 * self.width).round() as usize).max(1)
    }
    /// Features after global average pooling.
    pub fn feature_dim(&self) -> usize {
        self.scaled(512) * self.expansion()
    }
}

/// conv (no bias) -> BN (train or eval), parameters named `{conv}.weight` and `{bn}.*`.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    g: &mut Graph,
    conv: &str,
    bn: &str,
    x: TensorId,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    training: bool,
) -> Result<TensorId> {
    let cin = g.shape(x)[1];
    let w = g.parameter(&format!("{conv}.weight"), &[cout, cin, k, k])?;
    let y = g.conv2d(x, w, stride, pad)?;
    batch_norm(g, bn, y, training)
}

/// Batch-norm with parameters `{name}.weight`, `{name}.bias` and buffers
/// `{name}.running_mean`, `{name}.running_var`.
pub fn batch_norm(g: &mut Graph, name: &str, x: TensorId, training: bool) -> Result<TensorId> {
    let c = g.shape(x)[1];
    let gamma = g.parameter(&format!("{name}.weight"), &[c])?;
    let beta = g.parameter(&format!("{name}.bias"), &[c])?;
    let rm = g.buffer(&format!("{name}.running_mean"), &[c])?;
    let rv = g.buffer(&format!("{name}.running_var"), &[c])?;
    g.batch_norm(x, gamma, beta, rm, rv, training, BN_EPS, BN_MOMENTUM)
}

fn basic_block(g: &mut Graph, p: &str, x: TensorId, planes: usize, stride: usize, training: bool) -> Result<TensorId> {
    let cin = g.shape(x)[1];
    let out = conv_bn(g, &format!("{p}.conv1"), &format!("{p}.bn1"), x, planes, 3, stride, 1, training)?;
    let out = g.relu(out)?;
    let out = conv_bn(g, &format!("{p}.conv2"), &format!("{p}.bn2"), out, planes, 3, 1, 1, training)?;
    let identity = if stride != 1 || cin != planes {
        conv_bn(g, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), x, planes, 1, stride, 0, training)?
    } else {
        x
    };
    let sum = g.add(out, identity)?;
    g.relu(sum)
}

fn bottleneck(g: &mut Graph, p: &str, x: TensorId, planes: usize, stride: usize, training: bool) -> Result<TensorId> {
    let cin = g.shape(x)[1];
    let cout = planes * 4;
    let out = conv_bn(g, &format!("{p}.conv1"), &format!("{p}.bn1"), x, planes, 1, 1, 0, training)?;
    let out = g.relu(out)?;
    // torchvision (v1.5) puts the stride on the 3x3 conv.
    let out = conv_bn(g, &format!("{p}.conv2"), &format!("{p}.bn2"), out, planes, 3, stride, 1, training)?;
    let out = g.relu(out)?;
    let out = conv_bn(g, &format!("{p}.conv3"), &format!("{p}.bn3"), out, cout, 1, 1, 0, training)?;
    let identity = if stride != 1 || cin != cout {
        conv_bn(g, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), x, cout, 1, stride, 0, training)?
    } else {
        x
    };
    let sum = g.add(out, identity)?;
    g.relu(sum)
}

/// Backbone on x [N, 3, H, W] -> features [N, feature_dim].
pub fn backbone(g: &mut Graph, cfg: &BackboneConfig, x: TensorId, training: bool) -> Result<TensorId> {
    let stem = cfg.scaled(64);
    let x = if cfg.storage == g.info(x).dtype { x } else { ElementwiseOps::cast(g, x, cfg.storage)? };
    let mut h = match cfg.stem {
        Stem::Cifar | Stem::CifarPool => conv_bn(g, "conv1", "bn1", x, stem, 3, 1, 1, training)?,
        Stem::ImageNet => conv_bn(g, "conv1", "bn1", x, stem, 7, 2, 3, training)?,
    };
    h = g.relu(h)?;
    if cfg.stem != Stem::Cifar {
        h = g.max_pool(h, 3, 2, 1)?;
    }
    for (layer, (&n, base)) in cfg.blocks().iter().zip([64, 128, 256, 512]).enumerate() {
        let planes = cfg.scaled(base);
        for b in 0..n {
            let stride = if b == 0 && layer > 0 { 2 } else { 1 };
            let p = format!("layer{}.{b}", layer + 1);
            h = match cfg.arch {
                Arch::ResNet50 => bottleneck(g, &p, h, planes, stride, training)?,
                _ => basic_block(g, &p, h, planes, stride, training)?,
            };
        }
    }
    // The pooled features feed the f32 head (and the reduce kernels are f32).
    if g.info(h).dtype != crate::gpu::DType::F32 {
        h = ElementwiseOps::cast(g, h, crate::gpu::DType::F32)?;
    }
    g.global_avg_pool(h)
}
