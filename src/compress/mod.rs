//! Compression: recipes of steps (quantise, prune, factorise) applied to a loaded model's tensors,
//! the calibration that feeds them, and the report of what each step did.
//!
//! The loaded model is never modified: the result is a new `LoadedModel` that shares the GPU buffers
//! of every tensor no step touched. Methods read each weight as f32 (the original decoded — for a
//! quantised file that is exactly what it computes with) and write a stored format the kernels read.

pub mod allot;
pub mod calib;
pub mod linalg;
pub mod lowrank;
mod methods;
pub mod plan;
pub mod prune;
pub mod quant;
pub mod recipe;
mod report;
mod work;

pub use recipe::{Recipe, Step, METHODS};
pub use report::{CompressReport, Outcome, StepReport, TensorReport};

use crate::error::{Error, Result};
use crate::eval::now_ms;
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::{LoadedModel, Progress};
pub use allot::Allotment;
use calib::{Calibrator, Capture};
use work::Work;

/// Calibration text for the calibrated methods: token ids, cut into sequences of `seq_len`.
#[derive(Clone, Copy)]
pub struct Calibration<'a> {
    pub tokens: &'a [u32],
    pub seq_len: usize,
}

pub struct Compressed {
    pub model: LoadedModel,
    pub report: CompressReport,
}

/// Apply `recipe` to `original`, block by block; `calibration` is needed when a step is calibrated
/// or allots its bits by sensitivity (target-bpw mode, measured first).
pub async fn compress(
    gpu: &Gpu,
    original: &LoadedModel,
    recipe: &Recipe,
    calibration: Option<Calibration<'_>>,
    progress: &mut impl Progress,
) -> Result<Compressed> {
    let start = now_ms();
    if let Some(s) = recipe.steps.iter().find(|s| s.structural()) {
        if recipe.steps.iter().any(Step::allots) {
            return Err(Error::Invalid(format!(
                "an allotment by sensitivity (target_bpw, allot) and {} in one recipe: not supported yet (the \
                 allotment is measured on the model before its structure changes); run them as two compressions",
                s.method
            )));
        }
    }
    let mut allotments = Vec::new();
    for (index, step) in recipe.steps.iter().enumerate().filter(|(_, s)| s.allots()) {
        let calibration = calibration.ok_or_else(|| {
            Error::Invalid(format!(
                "recipe step {} ({}): an allotment measures each block's sensitivity on calibration text: give it",
                index + 1,
                step.method
            ))
        })?;
        allotments.push(allot::allot(gpu, original, index, step, calibration, progress).await?);
    }
    let mut compressed = run_recipe(gpu, original, recipe, calibration, &allotments, progress).await?;
    compressed.report.seconds = (now_ms() - start) / 1000.0;
    for a in &allotments {
        compressed.report.steps[a.step].notes.push(a.summary());
    }
    compressed.report.allotments = allotments;
    Ok(compressed)
}

/// `compress` with the bits of target-bpw steps already allotted.
pub async fn run_recipe(
    gpu: &Gpu,
    original: &LoadedModel,
    recipe: &Recipe,
    calibration: Option<Calibration<'_>>,
    allotments: &[Allotment],
    progress: &mut impl Progress,
) -> Result<Compressed> {
    let start = now_ms();
    if recipe.needs_calibration() && calibration.is_none() {
        return Err(Error::Invalid("this recipe has calibrated steps: give calibration text".into()));
    }
    let restructured = restructure(gpu, original, recipe, calibration, progress).await?;
    let first = restructured.model.as_ref().unwrap_or(original);
    let cfg = ModelConfig::from_header(&first.header)?;
    let targets = plan::plan(recipe, &cfg, &first.header)?;
    let mut work = Work::new(gpu, original, first, recipe);
    for (index, notes, removed, seconds) in restructured.steps {
        work.steps[index].notes = notes;
        work.steps[index].removed = removed;
        work.steps[index].seconds = seconds;
    }
    work.blocks_dropped = restructured.blocks_dropped;

    // Tensors outside the blocks (embedding, output head) take data-free steps only; do them first.
    for (index, (step, targets)) in recipe.steps.iter().zip(&targets).enumerate() {
        let outside: Vec<_> = targets.iter().filter(|t| t.linear.is_none()).copied().collect();
        if !outside.is_empty() {
            methods::apply(&mut work, index, step, &outside, None).await?;
        }
    }
    work.upload_pending()?;

    let calibrated_steps = recipe.steps.iter().any(|s| s.info().calibrated && !s.structural());
    let mut calibrator = match (calibrated_steps, calibration) {
        (true, Some(c)) => {
            progress.report("calibration", 0, cfg.n_layers as u64);
            Some(Calibrator::new(gpu, &work.model, c.tokens, c.seq_len).await?)
        }
        _ => None,
    };
    let calib_tokens = calibrator.as_ref().map_or(0, |c| c.tokens);
    let mut calib_ms = 0.0;
    for l in 0..cfg.n_layers {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        progress.report("compress", l as u64, cfg.n_layers as u64);
        let in_layer = |ts: &[plan::Target]| -> Vec<plan::Target> {
            ts.iter().filter(|t| matches!(t.linear, Some((tl, _)) if tl == l)).copied().collect()
        };
        let layer_steps: Vec<_> = recipe
            .steps
            .iter()
            .zip(&targets)
            .enumerate()
            .map(|(i, (s, ts))| (i, Allotment::step_for(allotments, i, s, l), in_layer(ts)))
            .filter(|(_, _, ts)| !ts.is_empty())
            .collect();
        let calibrated = layer_steps.iter().any(|(_, s, _)| s.info().calibrated);
        let mut stats = None;
        if let Some(cal) = calibrator.as_mut() {
            let t0 = now_ms();
            // Capture this block's inputs (and, unless sequential, advance with the original block).
            let capture = match calibrated {
                true => {
                    let hessian = layer_steps.iter().any(|(_, s, _)| methods::needs_hessian(s));
                    Some(Capture::new(gpu, &cal.site_widths()?, hessian)?)
                }
                false => None,
            };
            if capture.is_some() || !recipe.sequential {
                cal.run_block(gpu, &work.model, l, capture.as_ref(), !recipe.sequential, progress).await?;
            }
            if let Some(c) = &capture {
                stats = Some(c.read(gpu, cal.tokens).await?);
            }
            calib_ms += now_ms() - t0;
        }
        for (index, step, ts) in &layer_steps {
            methods::apply(&mut work, *index, step, ts, stats.as_mut()).await?;
        }
        work.upload_pending()?;
        // No calibrated step past this block: the residual streams are not needed any more.
        if !targets.iter().zip(&recipe.steps).any(|(ts, s)| {
            s.info().calibrated && ts.iter().any(|t| matches!(t.linear, Some((tl, _)) if tl > l))
        }) {
            calibrator = None;
        }
        if let (Some(cal), true) = (calibrator.as_mut(), recipe.sequential) {
            let t0 = now_ms();
            cal.run_block(gpu, &work.model, l, None, true, progress).await?;
            calib_ms += now_ms() - t0;
        }
    }
    progress.report("compress", cfg.n_layers as u64, cfg.n_layers as u64);
    gpu.finish().await?;
    Ok(work.finish(calib_tokens, calib_ms / 1000.0, (now_ms() - start) / 1000.0))
}

/// What the recipe's leading structural steps did: the model they left (none without such steps), each
/// step's notes, removed units and seconds by step index, and the blocks removed (original numbering).
#[derive(Default)]
struct Restructured {
    model: Option<LoadedModel>,
    steps: Vec<(usize, Vec<String>, Vec<prune::width::Removed>, f64)>,
    blocks_dropped: Vec<usize>,
}

/// The recipe's leading structural steps (drop_layers, width pruning), one after another.
async fn restructure(
    gpu: &Gpu,
    original: &LoadedModel,
    recipe: &Recipe,
    calibration: Option<Calibration<'_>>,
    progress: &mut impl Progress,
) -> Result<Restructured> {
    let mut done = Restructured::default();
    // Original block number of each block of the current model.
    let mut origin: Vec<usize> = (0..ModelConfig::from_header(&original.header)?.n_layers).collect();
    for (index, step) in recipe.steps.iter().enumerate().take_while(|(_, s)| s.structural()) {
        let t0 = now_ms();
        let current = done.model.as_ref().unwrap_or(original);
        let at_step = |e: Error| match e {
            Error::Invalid(m) => Error::Invalid(format!("recipe step {} ({}): {m}", index + 1, step.method)),
            other => other,
        };
        let (next, notes, removed) = match (step.width_unit(), step.width_importance()) {
            (Some(unit), Some(importance)) => {
                let ratio = step.f64("ratio");
                let narrowed =
                    prune::width::prune_width(gpu, current, unit, importance, ratio, calibration, progress)
                        .await
                        .map_err(at_step)?;
                (narrowed.model, narrowed.notes, narrowed.removed)
            }
            _ => {
                let (next, notes) = drop_blocks(gpu, current, step, &mut origin, calibration, progress)
                    .await
                    .map_err(at_step)?;
                (next, notes, Vec::new())
            }
        };
        done.steps.push((index, notes, removed, (now_ms() - t0) / 1000.0));
        done.model = Some(next);
    }
    done.blocks_dropped =
        (0..ModelConfig::from_header(&original.header)?.n_layers).filter(|l| !origin.contains(l)).collect();
    Ok(done)
}

/// One drop_layers step on `current`, whose blocks are `origin` in the original's numbering (updated).
async fn drop_blocks(
    gpu: &Gpu,
    current: &LoadedModel,
    step: &Step,
    origin: &mut Vec<usize>,
    calibration: Option<Calibration<'_>>,
    progress: &mut impl Progress,
) -> Result<(LoadedModel, Vec<String>)> {
    let count = step.usize("count");
    if count >= origin.len() {
        return Err(Error::Invalid(format!("cannot drop {count} of the model's {} blocks", origin.len())));
    }
    let calibration = calibration.expect("checked: calibrated steps have calibration text");
    let scores = prune::depth::importances(gpu, current, step.importance(), calibration, progress).await?;
    let drop = prune::depth::least_important(&scores, count);
    let shown = |ls: &[usize]| ls.iter().map(|&l| origin[l].to_string()).collect::<Vec<_>>().join(", ");
    let scores_shown: Vec<String> =
        scores.iter().enumerate().map(|(l, s)| format!("{}: {s:.4}", origin[l])).collect();
    let notes = vec![
        format!("dropped blocks {} (original numbering); {} remain", shown(&drop), origin.len() - count),
        format!("importance ({:?}) of each block: {}", step.importance(), scores_shown.join(", ")),
    ];
    let next = prune::depth::without_blocks(current, &drop)?;
    *origin = origin.iter().enumerate().filter(|(l, _)| !drop.contains(l)).map(|(_, &o)| o).collect();
    Ok((next, notes))
}
