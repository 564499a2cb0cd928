//! `train --resume RUN` with other flags: no flag is silently ignored. What may change in the
//! middle of a run (how long it trains, what it is evaluated on, where its caches live, when
//! it checkpoints, evaluates or stops) is applied and said in the run's first lines ("resume:
//! --epochs 8 (the run had 4)"); what would make it another run (the model, the data, the
//! recipe: batch, crops, optimizer, learning rate, Sinkhorn, queue, seed, ...) is refused,
//! naming the flag, the value given and the run's. A value equal to the run's is no change.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{lay_flags, parse_crops, path_string, TrainArgs};
use crate::error::{Error, Result};
use crate::train::TrainConfig;

/// Config keys a resumed run takes from the flags (or a --config file): how long it trains,
/// its held-out data and where its dataset caches live. Everything else is its recipe.
const APPLIED: [&str; 3] = ["epochs", "test_data", "cache_dir"];

/// Keys that make a checkpoint of another network: its tensors would not load.
const ARCHITECTURE: [&str; 6] = ["arch", "width", "stem", "prototypes", "feat_dim", "hidden_mlp"];

/// What the flags ask of a resumed run's stored config: the config they give (only the
/// APPLIED keys changed) and one line per change. A flag that would change anything else is
/// an error naming it, its value and the run's. `file` names the checkpoint in messages.
pub(super) fn apply_flags(a: &TrainArgs, stored: &TrainConfig, file: &Path) -> Result<(TrainConfig, Vec<String>)> {
    let (asked, by) = asked_config(a, stored)?;
    let (old, new) = (table(stored)?, table(&asked)?);
    let mut cfg = stored.clone();
    let mut notes = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys.into_iter().filter(|k| *k != "data") {
        let (had, want) = (old.get(key), new.get(key));
        if had == want {
            continue;
        }
        let who = by.get(key.as_str()).cloned().unwrap_or_else(|| format!("the config key {key}"));
        let (had_s, want_s) = (show(key, had, stored), show(key, want, &asked));
        if !APPLIED.contains(&key.as_str()) {
            let why = if ARCHITECTURE.contains(&key.as_str()) {
                "a checkpoint of another architecture".to_string()
            } else {
                "a resumed run keeps its recipe; start a new run with --out to train with another".to_string()
            };
            return Err(Error::Invalid(format!(
                "--resume '{}': the run was trained with {key} = {had_s}; {who} gives {want_s} ({why})",
                file.display()
            )));
        }
        match key.as_str() {
            "epochs" => cfg.epochs = asked.epochs,
            "test_data" => cfg.test_data = asked.test_data.clone(),
            _ => cfg.cache_dir = asked.cache_dir.clone(),
        }
        notes.push(format!("resume: {who} {want_s} (the run had {had_s})"));
    }
    Ok((cfg, notes))
}

/// The stored config with the --config file's keys and then the flags over it, as a new run
/// lays them over its defaults; and who asked for each key ("--lr", "--config 'f.toml'").
fn asked_config(a: &TrainArgs, stored: &TrainConfig) -> Result<(TrainConfig, BTreeMap<String, String>)> {
    let mut cfg = stored.clone();
    let mut by = BTreeMap::new();
    if let Some(path) = &a.config {
        let bad = |e: String| Error::Invalid(format!("--config '{}': {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let keys: toml::Table = text.parse().map_err(|e| bad(format!("invalid config: {e}")))?;
        cfg = cfg.with_toml(&text).map_err(|e| bad(e.to_string()))?;
        for k in keys.keys() {
            by.insert(k.clone(), format!("--config '{}' (key {k})", path.display()));
        }
        // Its paths as a new run records them: absolute.
        if keys.contains_key("test_data") {
            cfg.test_data = cfg.test_data.as_deref().map(|s| path_string(Path::new(s)));
        }
        if keys.contains_key("cache_dir") {
            cfg.cache_dir = cfg.cache_dir.as_deref().map(|s| path_string(Path::new(s)));
        }
    }
    lay_flags(&mut cfg, a, |key, name| {
        by.insert(key.to_string(), name.to_string());
    })?;
    if let Some(m) = a.images.max_side {
        cfg.max_side = m;
        by.insert("max_side".into(), "--max-side".into());
    }
    if let Some(t) = &a.test_data {
        cfg.test_data = Some(path_string(t));
        by.insert("test_data".into(), "--test-data".into());
    }
    if let Some(d) = &a.images.cache_dir {
        cfg.cache_dir = Some(path_string(d));
        by.insert("cache_dir".into(), "--cache-dir".into());
    }
    // The resolution compares as the number it stands for (a config file's 0 follows the crops).
    cfg.max_side = cfg.image_side();
    Ok((cfg, by))
}

fn table(cfg: &TrainConfig) -> Result<toml::Table> {
    toml::Table::try_from(cfg).map_err(|e| Error::Invalid(format!("the run's config: {e}")))
}

/// A config value as a flag would spell it: crops as COUNTxSIZE groups, an f32 without the
/// digits of its f64 widening, strings unquoted, an absent path as "none".
fn show(key: &str, v: Option<&toml::Value>, cfg: &TrainConfig) -> String {
    if key == "crops" {
        let spec = cfg.crops.iter().map(|c| format!("{}x{}", c.count, c.size)).collect::<Vec<_>>().join(",");
        return match parse_crops(&spec) {
            Ok(c) if c == cfg.crops => spec,
            _ => format!("{:?}", cfg.crops),
        };
    }
    match v {
        None => "none".into(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Float(f)) if (*f as f32) as f64 == *f => (*f as f32).to_string(),
        Some(other) => other.to_string(),
    }
}

/// --data on a resume: the run's own data (the same path is no change); another is refused;
/// a recorded path that has gone (moved data) may be replaced, and that is said. Without
/// --data, a run whose data has gone is an error unless it is finished (nothing to train).
pub(super) fn apply_data(a: &TrainArgs, cfg: &mut TrainConfig, finished: bool, r: &Path) -> Result<Vec<String>> {
    let Some(given) = given_data(a)? else {
        if let Some(recorded) = cfg.data.as_deref().filter(|d| !finished && !Path::new(d).exists()) {
            return Err(Error::Invalid(format!(
                "--resume '{}': the run's data '{recorded}' no longer exists; pass --data with its new place",
                r.display()
            )));
        }
        return Ok(Vec::new());
    };
    let (given, who) = given;
    match cfg.data.clone() {
        Some(recorded) if crate::run::same_path(&given, Path::new(&recorded)) => Ok(Vec::new()),
        // Another --data would change what an epoch is.
        Some(recorded) if Path::new(&recorded).exists() => Err(Error::Invalid(format!(
            "--resume '{}': the run trains on '{recorded}', not {who} '{}' (start a new run with --out to train on other data)",
            r.display(),
            path_string(&given)
        ))),
        recorded => {
            // Moved data, or an older run that recorded none: take the caller's word.
            cfg.data = Some(path_string(&given));
            let had = match recorded {
                Some(d) => format!("'{d}', which no longer exists"),
                None => "none recorded".into(),
            };
            Ok(vec![format!("resume: {who} '{}' (the run had {had})", path_string(&given))])
        }
    }
}

/// --data, else the `data` key of a --config file, with who gave it.
fn given_data(a: &TrainArgs) -> Result<Option<(PathBuf, String)>> {
    if let Some(d) = &a.data {
        return Ok(Some((d.clone(), "--data".into())));
    }
    let Some(path) = &a.config else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Invalid(format!("--config '{}': {e}", path.display())))?;
    let keys: toml::Table =
        text.parse().map_err(|e| Error::Invalid(format!("--config '{}': invalid config: {e}", path.display())))?;
    Ok(keys
        .get("data")
        .and_then(|d| d.as_str())
        .map(|d| (PathBuf::from(d), format!("--config '{}' (key data)", path.display()))))
}

/// The run options a resume takes as given (they are not part of the run's config): each
/// said. A --stop-at the run has already reached is refused (it would train a step past it).
pub(super) fn run_options(a: &TrainArgs, iteration: usize, finished: bool) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if let Some(n) = a.stop_at {
        if n <= iteration && !finished {
            return Err(Error::Invalid(format!(
                "--stop-at {n}: the run is already at iteration {iteration} (give a later iteration)"
            )));
        }
        notes.push(format!("resume: --stop-at {n} (the run is at iteration {iteration})"));
    }
    if a.checkpoint_every > 0 {
        notes.push(format!("resume: --checkpoint-every {} (the run's checkpoints from now on)", a.checkpoint_every));
    }
    if a.eval_every > 0 {
        notes.push(format!("resume: --eval-every {} (the k-NN evaluation from now on)", a.eval_every));
    }
    Ok(notes)
}
