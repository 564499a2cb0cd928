//! Models built on the graph: the ResNet backbones (torchvision parameter names) and the
//! official SwAV head (`projection_head.*`, `prototypes.weight`).
pub mod head;
pub mod resnet;

pub use head::{head, HeadConfig, HeadOutputs};
pub use resnet::{backbone, Arch, BackboneConfig};

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
