//! Loss scaling as PyTorch's `torch.amp.GradScaler`: the loss's gradient is seeded with a
//! scale S instead of 1, so that small gradients survive storage in a narrow float; the
//! updates unscale every gradient in f32 (times 1/S) and skip the whole step when the loss, a
//! gradient or a gradient norm is NaN or infinite (`ops::optim::check_finite`). This is the
//! host's half: the choice of S step by step (`LossScaler::update`, GradScaler's rule: halve S
//! on a skipped step, double it after `growth_interval` clean steps in a row), and the step
//! state's 1/S and Adam step counts, which leave the skipped steps out.
use std::collections::HashMap;

use super::StepState;
use crate::error::{Error, Result};

/// How the loss is scaled (`--loss-scale`, config key `loss_scale`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossScale {
    /// No scaling: the graph and its kernels are what they were before loss scaling existed.
    Off,
    /// GradScaler's dynamic scale: from `INIT_SCALE`, halved on every skipped step, doubled
    /// after `growth_interval` clean steps.
    Dynamic,
    /// A fixed scale (a step that overflows is still skipped; the scale never changes).
    Fixed(f32),
}

impl Default for LossScale {
    /// The default of every recipe: off (f32 storage keeps every gradient a step can make).
    fn default() -> Self {
        LossScale::Off
    }
}

/// GradScaler's defaults: the initial scale (2^16) and the clean steps before it doubles.
pub const INIT_SCALE: f32 = 65536.0;
pub const GROWTH_INTERVAL: usize = 2000;

impl LossScale {
    pub fn is_on(&self) -> bool {
        *self != LossScale::Off
    }
}

impl std::fmt::Display for LossScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossScale::Off => f.write_str("off"),
            LossScale::Dynamic => f.write_str("dynamic"),
            LossScale::Fixed(s) => write!(f, "{s}"),
        }
    }
}

impl std::str::FromStr for LossScale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" => Ok(LossScale::Off),
            "dynamic" => Ok(LossScale::Dynamic),
            other => match other.parse::<f64>() {
                Ok(v) => LossScale::fixed(v),
                Err(_) => Err(Error::Invalid(format!(
                    "unknown loss scale '{other}': use off, dynamic or a scale (a number > 0)"
                ))),
            },
        }
    }
}

impl LossScale {
    /// A fixed scale: a positive number that f32 holds.
    pub fn fixed(v: f64) -> Result<Self> {
        if v > 0.0 && (v as f32).is_normal() {
            Ok(LossScale::Fixed(v as f32))
        } else {
            Err(Error::Invalid(format!("a loss scale must be a number > 0 within f32's range, got {v}")))
        }
    }
}

// In a config: "off", "dynamic" or the scale, written as a string ("1024"); a number is read
// as a fixed scale too.
impl serde::Serialize for LossScale {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LossScale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Word(String),
            Number(f64),
        }
        match Given::deserialize(d)? {
            Given::Word(w) => w.parse().map_err(serde::de::Error::custom),
            Given::Number(v) => LossScale::fixed(v).map_err(serde::de::Error::custom),
        }
    }
}

/// The scale of a run as it goes: what the next step is seeded with, and what the steps so
/// far did. Saved in the checkpoint (`to_meta`), so a resumed run continues bit-exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    pub mode: LossScale,
    /// Clean steps after which a dynamic scale doubles.
    pub growth_interval: usize,
    /// S, the next step's seed of the loss's gradient (1 when off).
    pub scale: f32,
    /// Clean steps since the scale last changed (GradScaler's growth tracker).
    pub clean_steps: usize,
    /// Steps skipped so far (their gradients were not finite), all of them...
    pub skipped: usize,
    /// ...and those while the prototypes moved (Adam's step count of the prototypes leaves
    /// them out).
    pub skipped_unfrozen: usize,
    /// Whether the last step read back was skipped.
    pub last_skipped: bool,
}

/// The checkpoint's metadata keys.
const META_KEYS: [&str; 4] =
    ["loss_scale", "loss_scale_clean_steps", "loss_scale_skipped", "loss_scale_skipped_unfrozen"];

impl LossScaler {
    pub fn new(mode: LossScale, growth_interval: usize) -> LossScaler {
        let scale = match mode {
            LossScale::Off => 1.0,
            LossScale::Dynamic => INIT_SCALE,
            LossScale::Fixed(s) => s,
        };
        LossScaler {
            mode,
            growth_interval,
            scale,
            clean_steps: 0,
            skipped: 0,
            skipped_unfrozen: 0,
            last_skipped: false,
        }
    }

    pub fn is_on(&self) -> bool {
        self.mode.is_on()
    }

    /// The step state of iteration `step` (the prototypes move from `unfreeze` on): 1/S, and
    /// Adam's t counting only the steps taken, as torch.optim.Adam under GradScaler does.
    /// The iteration itself (learning rate, prototype freezing, queue) counts skipped steps
    /// too, as main_swav.py's loop does with apex's dynamic scaling.
    pub fn step_state(&self, lr: f64, step: usize, unfreeze: usize) -> StepState {
        let mut s = super::step_state_after_skips(lr, step, unfreeze, self.skipped, self.skipped_unfrozen);
        s.inv_scale = 1.0 / self.scale as f64;
        s
    }

    /// GradScaler's update after a step: on a skipped one (`found_inf`) a dynamic scale halves
    /// and its clean count restarts; after `growth_interval` clean steps in a row it doubles
    /// (unless that overflows f32). `unfrozen`: the prototypes moved in that step. A dynamic
    /// scale halved below f32's smallest normal number is an error (the gradients are not
    /// finite at any scale: the training has diverged).
    pub fn update(&mut self, found_inf: bool, unfrozen: bool) -> Result<()> {
        self.last_skipped = found_inf;
        let dynamic = self.mode == LossScale::Dynamic;
        if found_inf {
            self.skipped += 1;
            self.skipped_unfrozen += unfrozen as usize;
            if dynamic {
                self.clean_steps = 0;
                self.scale *= 0.5;
                if !self.scale.is_normal() {
                    return Err(Error::Invalid(format!(
                        "loss scaling: the gradients were not finite at any scale down to {} ({} steps skipped): the training has diverged",
                        self.scale * 2.0,
                        self.skipped
                    )));
                }
            }
        } else if dynamic {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                let grown = self.scale * 2.0;
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.clean_steps = 0;
            }
        }
        Ok(())
    }

    /// Its state as checkpoint metadata (nothing when off). The scale is written in Rust's
    /// shortest form, which reads back to the same f32.
    pub fn to_meta(&self) -> Vec<(String, String)> {
        if !self.is_on() {
            return Vec::new();
        }
        let values = [
            self.scale.to_string(),
            self.clean_steps.to_string(),
            self.skipped.to_string(),
            self.skipped_unfrozen.to_string(),
        ];
        META_KEYS.iter().map(|k| k.to_string()).zip(values).collect()
    }

    /// The state `to_meta` wrote; a checkpoint without it (a run without loss scaling) leaves
    /// the scaler as it is.
    pub fn restore(&mut self, meta: &HashMap<String, String>) -> Result<()> {
        if !self.is_on() || !meta.contains_key(META_KEYS[0]) {
            return Ok(());
        }
        let bad = |k: &str| Error::Invalid(format!("the checkpoint's {k} is missing or not a number"));
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(k));
        let count = |k: &str| get(k)?.parse::<usize>().map_err(|_| bad(k));
        let scale = get(META_KEYS[0])?
            .parse::<f32>()
            .ok()
            .filter(|s| s.is_normal() && *s > 0.0)
            .ok_or_else(|| bad(META_KEYS[0]))?;
        self.clean_steps = count(META_KEYS[1])?;
        self.skipped = count(META_KEYS[2])?;
        self.skipped_unfrozen = count(META_KEYS[3])?;
        self.scale = scale;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_and_config_spellings_read_back() {
        for (text, want) in
            [("off", LossScale::Off), ("dynamic", LossScale::Dynamic), ("1024", LossScale::Fixed(1024.0))]
        {
            let got: LossScale = text.parse().expect(text);
            assert_eq!((got, got.to_string()), (want, text.to_string()));
        }
        for bad in ["0", "-2", "nan", "inf", "1e39", "auto", ""] {
            assert!(bad.parse::<LossScale>().is_err(), "{bad}");
        }
        #[derive(serde::Deserialize)]
        struct Key {
            loss_scale: LossScale,
        }
        let key = |t: &str| toml::from_str::<Key>(t).map(|k| k.loss_scale).map_err(|e| e.to_string());
        assert_eq!(key("loss_scale = \"dynamic\""), Ok(LossScale::Dynamic));
        assert_eq!(key("loss_scale = 512"), Ok(LossScale::Fixed(512.0)));
        assert_eq!(key("loss_scale = 0.5"), Ok(LossScale::Fixed(0.5)));
        assert!(key("loss_scale = -1").is_err() && key("loss_scale = \"fast\"").is_err());
    }

    /// GradScaler's rule, with its defaults: a skip halves the scale and restarts the count;
    /// `growth_interval` clean steps double it (not past f32's range); a fixed scale never
    /// changes, but its skips are counted too.
    #[test]
    fn the_scale_follows_gradscalers_update_rule() {
        let mut s = LossScaler::new(LossScale::Dynamic, 3);
        assert_eq!(s.scale, 65536.0);
        for (found_inf, scale, clean) in
            [(false, 65536.0, 1), (false, 65536.0, 2), (true, 32768.0, 0), (false, 32768.0, 1)]
        {
            s.update(found_inf, true).unwrap();
            assert_eq!((s.scale, s.clean_steps), (scale, clean));
        }
        s.update(false, false).unwrap();
        s.update(false, false).unwrap();
        assert_eq!((s.scale, s.clean_steps, s.skipped, s.skipped_unfrozen), (65536.0, 0, 1, 1));
        s.scale = f32::MAX;
        (0..3).for_each(|_| s.update(false, true).unwrap());
        assert_eq!(s.scale, f32::MAX, "grew past f32's range");
        let mut f = LossScaler::new(LossScale::Fixed(8.0), 1);
        f.update(true, false).unwrap();
        f.update(false, false).unwrap();
        assert_eq!((f.scale, f.skipped, f.skipped_unfrozen), (8.0, 1, 0));
        // Halved below the smallest normal f32: diverged.
        let mut d = LossScaler::new(LossScale::Dynamic, 2000);
        let steps = (0..200).position(|_| d.update(true, true).is_err());
        assert_eq!(steps, Some(16 + 126), "65536 = 2^16 halves 142 times to 2^-126, the smallest normal");
    }

    /// Adam's t counts the steps taken (a skipped step is no step of torch.optim.Adam under
    /// GradScaler), the prototypes' from their unfreezing; the iteration, which sets the
    /// learning rate and the freezing, counts every step. 1/S is the f32 of the f64 inverse.
    #[test]
    fn the_step_state_leaves_skipped_steps_out_of_adams_count() {
        let mut s = LossScaler::new(LossScale::Fixed(3.0), 1);
        let unskipped = s.step_state(0.1, 5, 2);
        assert_eq!(unskipped.corrections, super::super::step_state(0.1, 5, 2).corrections);
        s.update(true, false).unwrap(); // skipped while the prototypes were frozen
        s.update(true, true).unwrap(); // and after
        let st = s.step_state(0.1, 5, 2);
        assert_eq!(st.corrections, super::super::adam_corrections(4), "5 iterations, 2 skipped: the 4th step");
        assert_eq!(st.prototype_corrections, super::super::adam_corrections(3), "iteration 5 of 2.., 1 skipped");
        assert!(st.prototypes_on && st.lr == 0.1);
        assert_eq!(st.to_values()[6], (1.0f64 / 3.0) as f32);
        assert_eq!(LossScaler::new(LossScale::Off, 1).step_state(0.1, 5, 2), super::super::step_state(0.1, 5, 2));
    }

    #[test]
    fn the_checkpoint_metadata_restores_the_state_exactly() {
        let mut s = LossScaler::new(LossScale::Dynamic, 2000);
        s.scale = 0.1f32 * 3.0;
        (s.clean_steps, s.skipped, s.skipped_unfrozen) = (7, 3, 2);
        let meta: HashMap<String, String> = s.to_meta().into_iter().collect();
        let mut r = LossScaler::new(LossScale::Dynamic, 2000);
        r.restore(&meta).unwrap();
        assert_eq!((r.scale.to_bits(), r.clean_steps, r.skipped, r.skipped_unfrozen), (s.scale.to_bits(), 7, 3, 2));
        assert!(LossScaler::new(LossScale::Off, 1).to_meta().is_empty());
        let mut broken = meta.clone();
        broken.insert("loss_scale_skipped".into(), "many".into());
        assert!(r.restore(&broken).unwrap_err().to_string().contains("loss_scale_skipped"));
    }
}
