//! Where a non-finite loss came from.
use std::sync::Arc;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::plan::Plan;
use crate::graph::{Graph, Kind};
use crate::train::{build_graph, Trainer};

/// Re-runs the failed step with every activation kept and names the first tensor, in
/// execution order, that holds a NaN or an infinity.
pub(crate) fn diagnose_nan(trainer: &Trainer, gpu: Arc<Gpu>, crops: &[Vec<f32>]) -> String {
    for (i, c) in crops.iter().enumerate() {
        if let Some(p) = c.iter().position(|v| !v.is_finite()) {
            return format!("input crop{i} (element {p}: {})", c[p]);
        }
    }
    let result = (|| -> Result<String> {
        let mut g: Graph = build_graph(&trainer.cfg)?.graph;
        for t in 0..g.tensors.len() {
            g.tensors[t].keep = true;
        }
        let plan = Plan::compile(&g, gpu)?;
        let state = trainer.state_blocking()?;
        for (name, t) in g.named(Kind::Parameter).into_iter().chain(g.named(Kind::Buffer)) {
            if let Some(v) = state.get(&name) {
                plan.write(t, &v.data)?;
            }
        }
        for (i, c) in crops.iter().enumerate() {
            plan.write_named(&format!("crop{i}"), c)?;
        }
        plan.write_named("optimizer.state", &[0.0; crate::optim::STATE_LEN])?;
        if let Some(seed) = g.by_name("loss.scale") {
            plan.write(seed, &[trainer.scaler.scale])?;
        }
        if let Some(q) = g.by_name("queue.active") {
            plan.write(q, &[0.0])?;
        }
        plan.step()?;
        for (k, info) in g.tensors.iter().enumerate() {
            if info.kind == Kind::Parameter || info.kind == Kind::Buffer {
                let v = plan.read_blocking(crate::graph::TensorId(k))?;
                if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                    return Ok(format!("{:?} '{}' (element {p}: {})", info.kind, info.name, v[p]));
                }
            }
        }
        for (i, op) in g.ops.iter().enumerate() {
            for out in op.outputs() {
                let v = plan.read_blocking(out)?;
                if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                    let named: Vec<String> =
                        op.inputs().iter().map(|t| &g.info(*t).name).filter(|n| n.contains('.')).cloned().collect();
                    let kind = format!("{op:?}");
                    let kind = kind.split([' ', '{']).next().unwrap_or("op");
                    return Ok(format!(
                        "the output '{}' of op #{i} {kind}{} (element {p}: {})",
                        g.info(out).name,
                        if named.is_empty() { String::new() } else { format!(" reading {}", named.join(", ")) },
                        v[p]
                    ));
                }
            }
        }
        Ok("no single tensor (the replay was finite: a transient fault?)".into())
    })();
    result.unwrap_or_else(|e| format!("(diagnosis failed: {e})"))
}
