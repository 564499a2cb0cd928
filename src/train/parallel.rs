//! Whether a data-parallel job computes what one process computes (`swav-wgpu check-parallel`
//! under mpirun, and the tests with in-process ranks): every rank trains `steps` steps on its
//! slice of the same global batches while rank 0 also trains one process on the whole global
//! batch from the same initialisation, and compares.
use std::sync::Arc;

use super::{build_graph_for, TrainConfig, Trainer};
use crate::data::augment::AugmentConfig;
use crate::data::loader::make_batch;
use crate::dist::{Collective, Solo};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Kind;

/// How far a data-parallel job is from one process, each figure the largest over the steps of
/// a tensor's relative error ||got - want|| / max(||want||, 1e-3 ||all of them||) (a gradient
/// that is zero in exact arithmetic, like that of the bias before a batch-norm, is rounding
/// noise on both sides and is held to the whole gradient's scale instead).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParallelReport {
    pub world: usize,
    pub steps: usize,
    /// How many tensors were compared (codes, and with `sync_bn` loss, gradients and
    /// parameters, over the steps): a check that compared nothing does not pass.
    pub comparisons: usize,
    /// Sinkhorn codes of the whole global batch. With `sync_bn` against one process on the
    /// global batch; without, against a one-process Sinkhorn (CPU, f64) on the gathered scores.
    pub codes: f64,
    /// With `sync_bn` (per-rank batch-norm is another model): the job against one process.
    pub job: Option<Errors>,
    /// With `sync_bn`: one process against itself on the same batches with the ranks' slices
    /// in reverse order (the same sums in another order): the float32 floor of the comparison.
    pub floor: Option<Errors>,
    /// Parameters left out of the parameter comparisons: their exact gradient is zero (the
    /// bias before a batch-norm), so LARS and Adam turn rounding noise into full-size steps,
    /// which the batch-norm then removes.
    pub excluded: Vec<String>,
}

/// One comparison's errors (see `ParallelReport`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Errors {
    /// Each step from the same state: the loss, every parameter gradient after the
    /// all-reduce, and the parameters after the update.
    pub loss: f64,
    pub grads: f64,
    pub params: f64,
    /// The parameters after all the steps, each side on its own trajectory.
    pub trajectory: f64,
}

impl Errors {
    fn max(self, o: Errors) -> Errors {
        Errors {
            loss: self.loss.max(o.loss),
            grads: self.grads.max(o.grads),
            params: self.params.max(o.params),
            trajectory: self.trajectory.max(o.trajectory),
        }
    }
}

impl ParallelReport {
    /// Whether the job matches one process: the codes and the loss within `tolerance`; the
    /// gradients and parameters within `tolerance` or, where float32 itself does not get that
    /// close, within twice what one process gets against itself (`floor`).
    pub fn passes(&self, tolerance: f64) -> bool {
        let within = |got: f64, floor: f64| got.is_finite() && got <= tolerance.max(2.0 * floor);
        let codes = self.comparisons > 0 && self.codes.is_finite() && self.codes <= tolerance;
        match (self.job, self.floor) {
            (Some(j), Some(f)) => {
                codes
                    && j.loss <= tolerance
                    && within(j.grads, f.grads)
                    && within(j.params, f.params)
                    && within(j.trajectory, f.trajectory)
            }
            _ => codes,
        }
    }
}

impl std::fmt::Display for ParallelReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ranks vs one process, {} steps, {} tensors compared: codes {:.2e}",
            self.world, self.steps, self.comparisons, self.codes
        )?;
        let e = |e: &Errors| {
            format!(
                "loss {:.2e}, gradients {:.2e}, parameters after each step {:.2e}, after {} steps {:.2e}",
                e.loss, e.grads, e.params, self.steps, e.trajectory
            )
        };
        match (&self.job, &self.floor) {
            (Some(j), Some(fl)) => write!(f, ", {}; one process against itself reordered: {}", e(j), e(fl))?,
            _ => write!(f, " (per-rank batch-norm: codes against one Sinkhorn over all the scores)")?,
        }
        if !self.excluded.is_empty() {
            write!(f, "; zero-gradient parameters left out: {}", self.excluded.join(", "))?;
        }
        Ok(())
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// The report's error over a set of tensors (see `ParallelReport`).
fn rel_err(got: &[Vec<f32>], want: &[Vec<f32>]) -> f64 {
    let all = want.iter().map(|w| norm(w).powi(2)).sum::<f64>().sqrt();
    let floor = (1e-3 * all).max(f64::MIN_POSITIVE);
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.len() != w.len() || g.iter().any(|v| !v.is_finite()) {
                return f64::INFINITY;
            }
            let d: Vec<f32> = g.iter().zip(w).map(|(a, b)| a - b).collect();
            norm(&d) / norm(w).max(floor)
        })
        .fold(0.0, f64::max)
}

/// A trainer whose parameter gradients stay readable (`grad.<name>`), and its scores.
fn checked_trainer(gpu: Arc<Gpu>, cfg: &TrainConfig, iters: usize, c: Arc<dyn Collective>) -> Result<Trainer> {
    let mut tg = build_graph_for(cfg, c.world())?;
    let grads: Vec<_> = tg.graph.grads.iter().map(|(p, g)| (*p, *g)).collect();
    for (p, g) in grads {
        if tg.graph.info(p).kind == Kind::Parameter {
            let name = format!("grad.{}", tg.graph.info(p).name);
            tg.graph.keep(g, &name);
        }
    }
    tg.graph.keep(tg.head.scores, "scores");
    let t = Trainer::from_graph(gpu, cfg.clone(), iters, &tg, c)?;
    t.init_random(cfg.seed)?;
    Ok(t)
}

fn read_all(t: &Trainer, names: &[String]) -> Result<Vec<Vec<f32>>> {
    names.iter().map(|n| t.plan.read_named(n)).collect()
}

/// One process on the global batch, each step from a given state (`fresh`) and on its own
/// trajectory (`path`).
struct Reference {
    fresh: Trainer,
    path: Trainer,
}

impl Reference {
    fn new(gpu: &Arc<Gpu>, cfg: &TrainConfig, steps: usize) -> Result<Reference> {
        Ok(Reference {
            fresh: checked_trainer(gpu.clone(), cfg, steps, Arc::new(Solo))?,
            path: checked_trainer(gpu.clone(), cfg, steps, Arc::new(Solo))?,
        })
    }

    /// Steps both on `batch`, `fresh` from `state` at `iteration`; returns fresh's loss.
    fn step(
        &mut self,
        batch: &[Vec<f32>],
        state: &std::collections::BTreeMap<String, crate::io::NamedTensor>,
        iteration: usize,
    ) -> Result<f32> {
        let refs: Vec<&[f32]> = batch.iter().map(|c| c.as_slice()).collect();
        self.fresh.load_state(state)?;
        self.fresh.iteration = iteration;
        self.path.step(&refs)?;
        self.fresh.step(&refs)
    }
}

/// What one side of a comparison produced in a step.
struct Outcome {
    loss: f32,
    grads: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
}

impl Outcome {
    fn read(t: &Trainer, loss: f32, grads: &[String], params: &[String]) -> Result<Outcome> {
        Ok(Outcome { loss, grads: read_all(t, grads)?, params: read_all(t, params)? })
    }

    /// Errors of `self` against `want`, the parameters restricted to `compared`.
    fn against(&self, want: &Outcome, compared: &[usize]) -> Errors {
        let kept = |v: &[Vec<f32>]| compared.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        Errors {
            loss: rel_err(&[vec![self.loss]], &[vec![want.loss]]),
            grads: rel_err(&self.grads, &want.grads),
            params: rel_err(&kept(&self.params), &kept(&want.params)),
            trajectory: 0.0,
        }
    }
}

/// Runs the check on every rank of `collective` (all must call it); rank 0 gets the report.
/// `cfg.batch_size` is the batch per rank; the data is the built-in dataset.
pub fn check_parallel(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    steps: usize,
    collective: Arc<dyn Collective>,
) -> Result<Option<ParallelReport>> {
    let (rank, world, b) = (collective.rank(), collective.world(), cfg.batch_size);
    if world < 2 || steps == 0 {
        return Err(Error::Invalid(format!(
            "the parallel check would have compared nothing: {steps} step(s) on {}; it compares a job of 2 or more ranks (mpirun -np N / srun, a build with --features mpi) with one process",
            collective.describe()
        )));
    }
    let data = crate::data::synthetic::builtin().train;
    let augment: AugmentConfig = cfg.augment();
    let mut job = checked_trainer(gpu.clone(), cfg, steps, collective.clone())?;
    // Rank 0, with sync_bn: one process on the global batch, and one on the global batch
    // with the ranks' slices in reverse order (the control).
    let whole = TrainConfig { batch_size: b * world, ..cfg.clone() };
    let mut references = match rank == 0 && cfg.sync_bn {
        true => Some((Reference::new(&gpu, &whole, steps)?, Reference::new(&gpu, &whole, steps)?)),
        false => None,
    };
    let params: Vec<String> = job.graph().named(Kind::Parameter).into_iter().map(|(n, _)| n).collect();
    let grads: Vec<String> = params.iter().map(|n| format!("grad.{n}")).collect();
    let mut report = ParallelReport { world, steps, ..Default::default() };
    let (mut job_err, mut floor) = (Errors::default(), Errors::default());
    let mut compared: Vec<usize> = (0..params.len()).collect();
    for step in 0..steps {
        let indices: Vec<usize> = (0..b * world).map(|i| (step * b * world + i) % data.len()).collect();
        let global = make_batch(&data, &indices, &augment, cfg.seed, 0)?;
        // Rank r's images of each crop, and the ranks' slices in reverse order.
        let slice = |c: &[f32], r: usize| c[r * c.len() / world..(r + 1) * c.len() / world].to_vec();
        let mine: Vec<Vec<f32>> = global.iter().map(|c| slice(c, rank)).collect();
        let reversed: Vec<Vec<f32>> =
            global.iter().map(|c| (0..world).rev().flat_map(|r| slice(c, r)).collect()).collect();
        let before = if references.is_some() { Some(job.state_blocking()?) } else { None };
        let loss = job.step(&mine.iter().map(|c| c.as_slice()).collect::<Vec<_>>())?;
        let (codes, assigned_scores) = gather_codes_and_scores(&job, &*collective, cfg)?;
        if rank != 0 {
            continue;
        }
        let (Some((one, control)), Some(before)) = (references.as_mut(), before) else {
            // Per-rank batch-norm: the codes must still be those of one Sinkhorn over all
            // the ranks' scores.
            check_codes_against_one_sinkhorn(&mut report, &codes, &assigned_scores, cfg, b * world);
            continue;
        };
        let iteration = job.iteration - 1;
        let want_loss = one.step(&global, &before, iteration)?;
        let control_loss = control.step(&reversed, &before, iteration)?;
        let want_codes =
            one.fresh.ids.codes.iter().map(|&id| one.fresh.plan.read_blocking(id)).collect::<Result<Vec<_>>>()?;
        report.codes = report.codes.max(rel_err(&codes, &want_codes));
        report.comparisons += want_codes.len().min(codes.len());
        let want = Outcome::read(&one.fresh, want_loss, &grads, &params)?;
        if step == 0 {
            compared = parameters_to_compare(&want, &params, &mut report)?;
        }
        job_err = job_err.max(Outcome::read(&job, loss, &grads, &params)?.against(&want, &compared));
        // The loss, every gradient, and each compared parameter's update.
        report.comparisons += 1 + grads.len() + compared.len();
        floor = floor.max(Outcome::read(&control.fresh, control_loss, &grads, &params)?.against(&want, &compared));
    }
    if rank == 0 && report.comparisons == 0 {
        return Err(Error::Invalid(format!("the parallel check compared nothing: {report}")));
    }
    let Some((one, control)) = references else {
        return Ok((rank == 0).then_some(report));
    };
    let paths = [&job, &one.path, &control.path];
    finish_with_trajectories(report, paths, (job_err, floor), &params, &compared).map(Some)
}

/// The report with the compared parameters' trajectories: the job's and the control's
/// ([job, one process, control]) against one process's.
fn finish_with_trajectories(
    mut report: ParallelReport,
    [job, one, control]: [&Trainer; 3],
    (mut job_err, mut floor): (Errors, Errors),
    params: &[String],
    compared: &[usize],
) -> Result<ParallelReport> {
    let kept = |t: &Trainer| -> Result<Vec<Vec<f32>>> {
        let all = read_all(t, params)?;
        Ok(compared.iter().map(|&i| all[i].clone()).collect())
    };
    job_err.trajectory = rel_err(&kept(job)?, &kept(one)?);
    floor.trajectory = rel_err(&kept(control)?, &kept(one)?);
    report.job = Some(job_err);
    report.floor = Some(floor);
    if !report.codes.is_finite() || !job_err.grads.is_finite() {
        return Err(Error::Invalid(format!("the parallel check produced non-finite values: {report}")));
    }
    Ok(report)
}

/// Per assignment crop, values gathered over the ranks.
type PerCrop = Vec<Vec<f32>>;

/// This rank's codes and the scores of its assignment crops, each gathered over the ranks.
fn gather_codes_and_scores(
    job: &Trainer,
    collective: &dyn Collective,
    cfg: &TrainConfig,
) -> Result<(PerCrop, PerCrop)> {
    let (b, k) = (cfg.batch_size, cfg.prototypes);
    let mut codes = Vec::new();
    for &c in &job.ids.codes {
        codes.push(collective.all_gather(&job.plan.read_blocking(c)?)?);
    }
    let scores = job.plan.read_named("scores")?;
    let mut assigned_scores = Vec::new();
    for &crop in &cfg.crops_for_assign {
        assigned_scores.push(collective.all_gather(&scores[crop * b * k..(crop + 1) * b * k])?);
    }
    Ok((codes, assigned_scores))
}

/// The gathered codes against one CPU Sinkhorn over all the ranks' scores (`rows` of them).
fn check_codes_against_one_sinkhorn(
    report: &mut ParallelReport,
    codes: &[Vec<f32>],
    assigned_scores: &[Vec<f32>],
    cfg: &TrainConfig,
    rows: usize,
) {
    for (got, x) in codes.iter().zip(assigned_scores) {
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (k, eps, iters) = (cfg.prototypes, cfg.epsilon as f64, cfg.sinkhorn_iterations);
        let sk = crate::ops::sinkhorn::cpu::sinkhorn(&x64, 0, 0, rows, k, eps, iters);
        let want: Vec<f32> = sk.iter().map(|&v| v as f32).collect();
        report.codes = report.codes.max(rel_err(std::slice::from_ref(got), &[want]));
        report.comparisons += 1;
    }
}

/// The parameters whose gradient one process finds non-zero (a zero gradient's rounding
/// noise is not compared; those left out go to the report). None is an error.
fn parameters_to_compare(want: &Outcome, params: &[String], report: &mut ParallelReport) -> Result<Vec<usize>> {
    let all = want.grads.iter().map(|w| norm(w).powi(2)).sum::<f64>().sqrt();
    let compared: Vec<usize> = (0..params.len()).filter(|&i| norm(&want.grads[i]) > 1e-6 * all).collect();
    report.excluded = (0..params.len()).filter(|i| !compared.contains(i)).map(|i| params[i].clone()).collect();
    if compared.is_empty() {
        return Err(Error::Invalid(format!(
            "the parallel check would compare no parameter: every gradient of one process is zero ({report})"
        )));
    }
    Ok(compared)
}
