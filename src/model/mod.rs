//! Models built on the graph: the ResNet backbones (torchvision parameter names) and the
//! official SwAV head (`projection_head.*`, `prototypes.weight`).
pub mod head;
pub mod resnet;

pub use head::{head, HeadConfig, HeadOutputs};
pub use resnet::{backbone, Arch, BackboneConfig, Stem};

use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// Multi-crop forward as in the official code: consecutive crops of equal resolution are
/// concatenated and pass through the backbone together (so batch-norm statistics are per
/// resolution group); the head sees all crops at once. Rows are crop-major.
pub fn multicrop_forward(
    g: &mut Graph,
    backbone_cfg: &BackboneConfig,
    head_cfg: &HeadConfig,
    crops: &[TensorId],
    training: bool,
) -> Result<HeadOutputs> {
    let mut groups: Vec<Vec<TensorId>> = Vec::new();
    for &c in crops {
        let same = groups.last().is_some_and(|grp| g.shape(grp[0])[2..] == g.shape(c)[2..]);
        if same {
            groups.last_mut().expect("checked").push(c);
        } else {
            groups.push(vec![c]);
        }
    }
    let mut feats = Vec::new();
    for grp in groups {
        let x = if grp.len() == 1 { grp[0] } else { g.concat(&grp)? };
        feats.push(backbone(g, backbone_cfg, x, training)?);
    }
    let feat = if feats.len() == 1 { feats[0] } else { g.concat(&feats)? };
    head(g, head_cfg, feat, training)
}

/// Forward multiply-adds x 2 per image of the whole model (backbone, head, prototypes) over the
/// given crops `(count, size)`: the work a training recipe costs, independent of the adapter.
/// Counts convolutions and matrix products; the element-wise ops are a few percent more.
pub fn forward_flops_per_image(
    backbone_cfg: &BackboneConfig,
    head_cfg: &HeadConfig,
    crops: &[(usize, usize)],
) -> Result<f64> {
    let mut g = Graph::new();
    let mut inputs = Vec::new();
    for (i, &(count, size)) in crops.iter().enumerate() {
        for j in 0..count {
            inputs.push(g.input(&format!("crop{i}.{j}"), &[1, 3, size, size])?);
        }
    }
    multicrop_forward(&mut g, backbone_cfg, head_cfg, &inputs, false)?;
    Ok(g.ops.iter().map(op_flops).sum())
}

fn op_flops(op: &crate::graph::Op) -> f64 {
    use crate::graph::Op;
    match op {
        Op::Conv(crate::ops::conv::ConvOps::Forward { s, .. }) => s.flops(),
        Op::Matmul(crate::ops::matmul::MatmulOps { s, .. }) => 2.0 * (s.m * s.n * s.k) as f64,
        _ => 0.0,
    }
}
