//! What a run records as it goes: metrics.jsonl (every step, every epoch), and the per-epoch
//! learning monitor (mean loss, Sinkhorn code entropy, prototypes in use, speed).
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};

pub(crate) struct Metrics {
    /// None on the ranks of a data-parallel job other than 0 (only rank 0 writes).
    file: Option<std::fs::File>,
    path: std::path::PathBuf,
    pub(crate) losses: Vec<(usize, f32)>,
    pub(crate) knn: Vec<(usize, f64)>,
    pub(crate) epochs: Vec<EpochPoint>,
}

impl Metrics {
    /// Opens the run's metrics.jsonl: new, or for a run resumed at iteration `resumed_at`,
    /// without the rows written after that checkpoint (a killed run wrote steps it will train
    /// again; a cut-off last line is dropped), so the file keeps one row per iteration.
    pub(crate) fn open(out: &Path, resumed_at: Option<usize>) -> Result<Metrics> {
        let path = out.join("metrics.jsonl");
        let mut m = Metrics { file: None, path: path.clone(), losses: Vec::new(), knn: Vec::new(), epochs: Vec::new() };
        // Only a regular file is read back (a device or a pipe in its place may never end).
        if let Some(done) = resumed_at.filter(|_| path.is_file()) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut kept = String::new();
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                let Some(it) = v["iteration"].as_u64().map(|i| i as usize) else { continue };
                // A step's row (it has "loss") is step `it`; the others count iterations done.
                let is_step = v.get("loss").is_some();
                if (is_step && it >= done) || (!is_step && it > done) {
                    continue;
                }
                kept.push_str(line);
                kept.push('\n');
                // Earlier points of the run, for the plot.
                if let Some(l) = v["loss"].as_f64() {
                    m.losses.push((it, l as f32));
                }
                if let Some(k) = v["knn_top1"].as_f64() {
                    m.knn.push((it, k));
                }
                if let (Some(e), Some(p)) = (v["code_entropy"].as_f64(), v["prototypes_in_use"].as_u64()) {
                    m.epochs.push(EpochPoint { iteration: it, code_entropy: e, prototypes_in_use: p as usize });
                }
            }
            if kept != text {
                crate::io::write_file_atomic(&path, kept.as_bytes())?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed_at.is_some())
            .write(true)
            .truncate(resumed_at.is_none())
            .open(&path)
            .map_err(|e| Error::Invalid(format!("cannot open '{}': {e}", path.display())))?;
        m.file = Some(file);
        Ok(m)
    }
    /// Records nothing (a rank other than 0).
    pub(crate) fn silent() -> Metrics {
        Metrics { file: None, path: Default::default(), losses: Vec::new(), knn: Vec::new(), epochs: Vec::new() }
    }
    /// Appends one row; a row that cannot be written (a full disk) is an error naming the file.
    pub(crate) fn write(&mut self, v: serde_json::Value) -> Result<()> {
        match &mut self.file {
            Some(f) => {
                writeln!(f, "{v}").map_err(|e| Error::Invalid(format!("cannot write '{}': {e}", self.path.display())))
            }
            None => Ok(()),
        }
    }
}

/// One epoch of the learning monitor, as plotted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// Iterations done at the end of the epoch.
    pub iteration: usize,
    /// Mean entropy (nats) of the rows of Sinkhorn's codes: ln K = uniform codes, 0 = hard.
    pub code_entropy: f64,
    /// Prototypes that were the argmax of at least one code row in the epoch.
    pub prototypes_in_use: usize,
}

/// What the monitor gathers over one epoch: losses, codes, and the time of its steps.
pub(crate) struct EpochMonitor {
    pub(crate) loss_sum: f64,
    pub(crate) steps: usize,
    entropy_sum: f64,
    code_rows: usize,
    in_use: Vec<bool>,
    start: Instant,
}

impl EpochMonitor {
    pub(crate) fn new(prototypes: usize) -> EpochMonitor {
        EpochMonitor {
            loss_sum: 0.0,
            steps: 0,
            entropy_sum: 0.0,
            code_rows: 0,
            in_use: vec![false; prototypes],
            start: Instant::now(),
        }
    }

    /// Seconds per step and images per second of the epoch so far.
    pub(crate) fn speed(&self, batch: usize) -> (f64, f64) {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-9);
        let steps = self.steps.max(1) as f64;
        (seconds / steps, steps * batch as f64 / seconds)
    }

    /// One step: its loss and the codes [batch, K] of each assignment crop.
    pub(crate) fn add_step(&mut self, loss: f32, codes: &[Vec<f32>]) {
        self.loss_sum += loss as f64;
        self.steps += 1;
        codes.iter().for_each(|c| self.add_codes(c));
    }

    /// Adds the codes [batch, K] of one assignment crop. Rows are renormalised to sum to 1
    /// (Sinkhorn's Q * B rows do up to rounding).
    fn add_codes(&mut self, codes: &[f32]) {
        let k = self.in_use.len();
        for row in codes.chunks_exact(k) {
            let sum: f64 = row.iter().map(|&q| q as f64).sum();
            if !(sum.is_finite() && sum > 0.0) {
                continue;
            }
            let entropy: f64 = row.iter().map(|&q| q as f64 / sum).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
            self.entropy_sum += entropy;
            self.code_rows += 1;
            let argmax = row.iter().enumerate().fold(0, |best, (i, &q)| if q > row[best] { i } else { best });
            self.in_use[argmax] = true;
        }
    }

    pub(crate) fn code_entropy(&self) -> f64 {
        if self.code_rows == 0 {
            f64::NAN
        } else {
            self.entropy_sum / self.code_rows as f64
        }
    }

    pub(crate) fn prototypes_in_use(&self) -> usize {
        self.in_use.iter().filter(|&&u| u).count()
    }
}

/// 42s, 6m12s, 1h05m.
pub(crate) fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
