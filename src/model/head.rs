//! The official SwAV head: projection `Linear(F, hidden) - BN1d - ReLU - Linear(hidden, D)`
//! (hidden 0 = a single `Linear(F, D)`), L2-normalise, then scores against the prototypes
//! `Linear(D, K, bias=False)`. Parameter names as in facebookresearch/swav.
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::model::resnet::batch_norm;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadConfig {
    pub hidden: usize,
    pub dim: usize,
    pub prototypes: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct HeadOutputs {
    /// Backbone features [rows, F].
    pub feat: TensorId,
    /// Projection output before normalisation [rows, D].
    pub z: TensorId,
    /// L2-normalised z (the official 'embedding').
    pub emb: TensorId,
    /// emb @ prototypes^T [rows, K] (the official 'output').
    pub scores: TensorId,
    /// The prototypes parameter [K, D] (unit rows after the in-step renormalisation).
    pub prototypes: TensorId,
}

pub fn head(g: &mut Graph, cfg: &HeadConfig, feat: TensorId, training: bool) -> Result<HeadOutputs> {
    let f = g.shape(feat)[1];
    let z = if cfg.hidden == 0 {
        let w = g.parameter("projection_head.weight", &[cfg.dim, f])?;
        let b = g.parameter("projection_head.bias", &[cfg.dim])?;
        g.linear(feat, w, Some(b))?
    } else {
        let w0 = g.parameter("projection_head.0.weight", &[cfg.hidden, f])?;
        let b0 = g.parameter("projection_head.0.bias", &[cfg.hidden])?;
        let h = g.linear(feat, w0, Some(b0))?;
        let h = batch_norm(g, "projection_head.1", h, training)?;
        let h = g.relu(h)?;
        let w3 = g.parameter("projection_head.3.weight", &[cfg.dim, cfg.hidden])?;
        let b3 = g.parameter("projection_head.3.bias", &[cfg.dim])?;
        g.linear(h, w3, Some(b3))?
    };
    let emb = g.l2_normalize(z)?;
    let protos = g.parameter("prototypes.weight", &[cfg.prototypes, cfg.dim])?;
    // The official step re-normalises the prototypes (no grad) before the forward uses them.
    g.renorm_rows(protos)?;
    let scores = g.linear(emb, protos, None)?;
    Ok(HeadOutputs { feat, z, emb, scores, prototypes: protos })
}
