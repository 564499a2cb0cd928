//! Autotuning of the GEMM core per (op, shape): tile shapes that are best on one GPU are not
//! on another (ggml's WebGPU backend measured one fixed choice at 44 % of a GPU's own best at
//! worst), so when a plan is compiled each distinct convolution or matmul times its candidate
//! variants on the device and keeps the fastest. Choices are cached in memory and, natively,
//! in a JSON file keyed by adapter, driver, op and shape, so a second run starts at once.
//!
//! Modes: `off` (the chooser's pick, no timing), `quick` (real GPUs time the workgroup tiles;
//! software adapters keep the chooser's pick, so lavapipe and CI pay nothing), `full` (real
//! GPUs add the subgroup tiles where the adapter has subgroups of one fixed size; software
//! adapters time every variant). The candidate lists are `ops::matmul::tuning_candidates`.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};

/// A kernel variant the tuner chooses between; its name keys the cache.
pub trait Variant: Copy + PartialEq {
    fn name(&self) -> String;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TuneMode {
    #[default]
    Off,
    Quick,
    Full,
}

impl std::str::FromStr for TuneMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<TuneMode> {
        match s {
            "off" => Ok(TuneMode::Off),
            "quick" => Ok(TuneMode::Quick),
            "full" => Ok(TuneMode::Full),
            other => Err(Error::Invalid(format!("unknown --tune '{other}': use off, quick or full"))),
        }
    }
}

/// Seconds one candidate takes; the default runs the dispatches once to warm up, then takes
/// the median of three runs timed by GPU timestamps (or wall time without them). Tests
/// inject their own.
pub type Timer = Arc<dyn Fn(&Gpu, &[Dispatch]) -> f64 + Send + Sync>;

/// What tuning cost so far: (op, shape) pairs timed, pairs answered from the cache, and the
/// seconds spent timing (the cold-start cost).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TuneStats {
    pub tuned: usize,
    pub cached: usize,
    pub seconds: f64,
}

pub struct Tuner {
    pub mode: TuneMode,
    cache_path: Option<PathBuf>,
    state: Mutex<State>,
    timer: Mutex<Option<Timer>>,
}

#[derive(Default)]
struct State {
    /// "adapter | driver | op shape" -> variant name.
    choices: BTreeMap<String, String>,
    loaded: bool,
    stats: TuneStats,
}

impl Tuner {
    pub fn new(mode: TuneMode, cache_path: Option<PathBuf>) -> Tuner {
        Tuner { mode, cache_path, state: Mutex::new(State::default()), timer: Mutex::new(None) }
    }

    /// Replaces the wall-clock timer (tests).
    pub fn set_timer(&self, timer: Timer) {
        *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(timer);
    }

    pub fn stats(&self) -> TuneStats {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// Every choice made or loaded: (key, variant name).
    pub fn choices(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).choices.clone()
    }

    /// The dispatches of the fastest of `candidates` (the chooser's pick first) for
    /// `op_shape` (e.g. "conv2d_forward N64 ..."), `build` lowering the op with one variant.
    /// With one candidate nothing is timed.
    pub fn choose<V: Variant>(
        &self,
        gpu: &Gpu,
        op_shape: &str,
        candidates: &[V],
        mut build: impl FnMut(V) -> Result<Vec<Dispatch>>,
    ) -> Result<Vec<Dispatch>> {
        let Some(&first) = candidates.first() else {
            return Err(Error::Invalid(format!("no kernel variant to choose from for {op_shape}")));
        };
        if candidates.len() == 1 {
            return build(first);
        }
        let key = format!("{} | {} {} | {op_shape}", gpu.info.name, gpu.info.driver, gpu.info.driver_info);
        let cached = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.loaded {
                st.loaded = true;
                st.choices.extend(self.load());
            }
            st.choices.get(&key).cloned()
        };
        if let Some(name) = cached {
            if let Some(&v) = candidates.iter().find(|c| c.name() == name) {
                self.state.lock().unwrap_or_else(|e| e.into_inner()).stats.cached += 1;
                return build(v);
            }
        }
        let timer = self.timer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let started = now();
        let mut best: Option<(f64, V, Vec<Dispatch>)> = None;
        for &v in candidates {
            let d = build(v)?;
            let secs = match &timer {
                Some(t) => t(gpu, &d),
                None => default_time(gpu, &d),
            };
            // Ties keep the earlier candidate (the chooser's pick first), so equal timings
            // give the same plan every time.
            if best.as_ref().is_none_or(|(b, _, _)| secs < *b) {
                best = Some((secs, v, d));
            }
        }
        let (_, v, d) = best.expect("at least one candidate");
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.choices.insert(key, v.name());
            st.stats.tuned += 1;
            st.stats.seconds += elapsed(started);
            self.save(&st.choices);
        }
        Ok(d)
    }

    fn load(&self) -> BTreeMap<String, String> {
        let Some(path) = &self.cache_path else { return BTreeMap::new() };
        // A missing or unreadable cache only means tuning again.
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    fn save(&self, choices: &BTreeMap<String, String>) {
        let Some(path) = &self.cache_path else { return };
        let Ok(text) = serde_json::to_string_pretty(choices) else { return };
        // Atomic (temporary file + rename); a failure to cache is not a failure to run.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// `$SWAV_WGPU_TUNE_CACHE`, else `$XDG_CACHE_HOME/swav-wgpu/tune.json`, else
/// `~/.cache/swav-wgpu/tune.json`; none on the web.
pub fn default_cache_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("SWAV_WGPU_TUNE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("swav-wgpu/tune.json")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/swav-wgpu/tune.json")))
}

#[cfg(not(target_arch = "wasm32"))]
fn now() -> Option<std::time::Instant> {
    Some(std::time::Instant::now())
}
#[cfg(target_arch = "wasm32")]
fn now() -> Option<()> {
    None
}
#[cfg(not(target_arch = "wasm32"))]
fn elapsed(t: Option<std::time::Instant>) -> f64 {
    t.map_or(0.0, |t| t.elapsed().as_secs_f64())
}
#[cfg(target_arch = "wasm32")]
fn elapsed(_: Option<()>) -> f64 {
    0.0
}

/// GPU timestamps where the device has them (median of three after a warm-up), else
/// queue-synchronised wall time; a failed timing counts as infinitely slow.
#[cfg(not(target_arch = "wasm32"))]
fn default_time(gpu: &Gpu, d: &[Dispatch]) -> f64 {
    gpu.time_dispatches(d, 3).map_or(f64::INFINITY, |(secs, _)| secs)
}
#[cfg(target_arch = "wasm32")]
fn default_time(_: &Gpu, _: &[Dispatch]) -> f64 {
    // No synchronous wait in the browser: every candidate ties and the chooser's pick stays.
    0.0
}
