//! Layer sensitivity: how far the model's predictions move (KL divergence against the original) when
//! one block alone is compressed with a data-free step, block after block. It tells which blocks can
//! take fewer bits, and drives the target-bpw mode (`compress::allot`).

use super::kld::{divergence_from, BaseLogProbs};
use super::now_ms;
use crate::compress::{plan, run_recipe, Recipe, Step};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::runner::Runner;
use crate::model::{LoadedModel, Muted, Progress};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct LayerSensitivity {
    pub layer: usize,
    /// Mean KL(original ‖ model with only this block compressed), nats per token.
    pub kld: f64,
    pub top1: f64,
    /// Bits per weight of the block's compressed tensors.
    pub bpw: f64,
    pub seconds: f64,
}

/// The scan compresses blocks without calibration: refuse a step that needs it (before any work).
pub fn check_step(step: &Step) -> Result<()> {
    match step.info().calibrated {
        true => Err(Error::Invalid(format!(
            "the sensitivity scan compresses one block at a time without calibration; {} needs it \
             (use a data-free method such as rtn, hqq or nf4)",
            step.method
        ))),
        false => Ok(()),
    }
}

/// Compress each block's targets of `step` alone and measure the model against `base`.
pub async fn scan(
    gpu: &Gpu,
    original: &LoadedModel,
    step: &Step,
    base: &BaseLogProbs,
    progress: &mut impl Progress,
) -> Result<Vec<LayerSensitivity>> {
    check_step(step)?;
    let mut by_layer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (l, t) in plan::block_linears(step, &original.header)? {
        by_layer.entry(l).or_default().push(regex::escape(&original.header.tensors[t.index].name));
    }
    if by_layer.is_empty() {
        return Err(Error::Invalid("the sensitivity scan needs a step that targets block linears".into()));
    }
    let total = by_layer.len() as u64;
    let mut out = Vec::with_capacity(by_layer.len());
    for (n, (layer, names)) in by_layer.into_iter().enumerate() {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        progress.report("sensitivity", n as u64, total);
        let t0 = now_ms();
        let only = Step { target: Some(format!("^(?:{})$", names.join("|"))), ..step.clone() };
        let one = Recipe { steps: vec![only], sequential: false };
        let compressed = run_recipe(gpu, original, &one, None, &[], &mut Muted(progress)).await?;
        let mut runner = Runner::new(gpu, &compressed.model, base.ctx(), base.ctx())?;
        let d = divergence_from(base, &mut runner, &mut Muted(progress)).await?;
        out.push(LayerSensitivity {
            layer,
            kld: d.kld,
            top1: d.top1,
            bpw: compressed.report.bpw_compressed,
            seconds: (now_ms() - t0) / 1000.0,
        });
    }
    progress.report("sensitivity", total, total);
    Ok(out)
}
