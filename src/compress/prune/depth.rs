//! Depth pruning: remove whole transformer blocks, leaving a physically shallower model (fewer tensors,
//! the block count in its metadata and summary lowered, later blocks renumbered). Which blocks go is
//! decided by their importance on the calibration text, as ShortGPT and Minitron measure it:
//! "block" — BI = 1 − mean over tokens of cos(x_in, x_out), how much the block turns the residual
//! stream (one pass through the model); or "ppl" — the perplexity of the model without that block (one
//! forward pass per block, exact but n times the cost).

use crate::compress::calib::Calibrator;
use crate::compress::Calibration;
use crate::error::{Error, Result};
use crate::eval::perplexity::{perplexity, Convention};
use crate::formats::{ArchSummary, Container, MetaValue};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::runner::Runner;
use crate::model::{LoadedModel, Progress};
use std::collections::HashMap;

/// How a block's importance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// 1 − E[cos(x_in, x_out)] on the calibration text.
    Block,
    /// Perplexity on the calibration text with the block removed.
    Ppl,
}

impl Importance {
    pub fn parse(name: &str) -> Result<Importance> {
        match name {
            "block" => Ok(Importance::Block),
            "ppl" => Ok(Importance::Ppl),
            _ => Err(Error::Invalid(format!("importance must be \"block\" or \"ppl\", not \"{name}\""))),
        }
    }
}

/// 1 − the mean over tokens of cos(x_in, x_out), for residual streams (tokens, d) before and after a
/// block. A token whose stream is zero on either side counts as unturned (cos 1).
pub fn block_importance(x_in: &[f32], x_out: &[f32], d: usize) -> f64 {
    let tokens = x_in.len() / d;
    let mut sum = 0.0;
    for (a, b) in x_in.chunks_exact(d).zip(x_out.chunks_exact(d)) {
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (&a, &b) in a.iter().zip(b) {
            ab += a as f64 * b as f64;
            aa += a as f64 * a as f64;
            bb += b as f64 * b as f64;
        }
        sum += if aa > 0.0 && bb > 0.0 { ab / (aa * bb).sqrt() } else { 1.0 };
    }
    1.0 - sum / tokens.max(1) as f64
}

/// Every block's importance (higher matters more) on the calibration text, by `importance`.
pub async fn importances(
    gpu: &Gpu,
    model: &LoadedModel,
    importance: Importance,
    calibration: Calibration<'_>,
    progress: &mut impl Progress,
) -> Result<Vec<f64>> {
    let cfg = ModelConfig::from_header(&model.header)?;
    let mut scores = Vec::with_capacity(cfg.n_layers);
    match importance {
        Importance::Block => {
            let mut cal = Calibrator::new(gpu, model, calibration.tokens, calibration.seq_len).await?;
            let mut x_in = cal.residuals(gpu).await?;
            for l in 0..cfg.n_layers {
                progress.report("block importance", l as u64, cfg.n_layers as u64);
                cal.run_block(gpu, model, l, None, true, progress).await?;
                let x_out = cal.residuals(gpu).await?;
                scores.push(block_importance(&x_in, &x_out, cfg.d_model));
                x_in = x_out;
            }
        }
        Importance::Ppl => {
            let ctx = calibration.seq_len.min(calibration.tokens.len() / 2);
            for l in 0..cfg.n_layers {
                progress.report("perplexity without each block", l as u64, cfg.n_layers as u64);
                let shallower = without_blocks(model, &[l])?;
                let mut runner = Runner::new(gpu, &shallower, ctx, ctx)?;
                let p = perplexity(
                    &mut runner,
                    calibration.tokens,
                    ctx,
                    None,
                    None,
                    Convention::AllTokens,
                    progress,
                )
                .await?;
                scores.push(p.ppl);
            }
        }
    }
    Ok(scores)
}

/// The `count` blocks of least importance, in increasing block order.
pub fn least_important(scores: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut chosen = order[..count.min(order.len())].to_vec();
    chosen.sort();
    chosen
}

/// `model` without the blocks in `drop`: their tensors gone, later blocks renumbered down, the block
/// count in the metadata (GGUF) or config (Hugging Face) and the summary updated. The remaining tensors
/// share the original's GPU buffers.
pub fn without_blocks(model: &LoadedModel, drop: &[usize]) -> Result<LoadedModel> {
    let cfg = ModelConfig::from_header(&model.header)?;
    let n = cfg.n_layers;
    if let Some(&l) = drop.iter().find(|&&l| l >= n) {
        return Err(Error::Invalid(format!("block {l} does not exist: the model has {n} blocks")));
    }
    let kept: Vec<usize> = (0..n).filter(|l| !drop.contains(l)).collect();
    if kept.is_empty() {
        return Err(Error::Invalid(format!("dropping all {n} blocks leaves no model")));
    }
    let prefix = |l: usize| match cfg.container {
        Container::Gguf => format!("blk.{l}."),
        Container::Safetensors => format!("model.layers.{l}."),
    };
    // Original block → its new number.
    let renumber: HashMap<usize, usize> = kept.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let block_of = |name: &str| (0..n).find(|&l| name.starts_with(&prefix(l)));

    let mut header = model.header.clone();
    header.tensors.clear();
    let (mut tensors, mut extras) = (Vec::new(), HashMap::new());
    for (i, (info, tensor)) in model.header.tensors.iter().zip(&model.tensors).enumerate() {
        let name = match block_of(&info.name) {
            Some(l) if drop.contains(&l) => continue,
            Some(l) => format!("{}{}", prefix(renumber[&l]), &info.name[prefix(l).len()..]),
            None => info.name.clone(),
        };
        if let Some(e) = model.extras.get(&i) {
            extras.insert(header.tensors.len(), e.clone());
        }
        let mut info = info.clone();
        info.name = name.clone();
        let mut tensor = tensor.clone();
        tensor.name = name;
        header.tensors.push(info);
        tensors.push(tensor);
    }
    let layers = kept.len() as u64;
    header.summary = match cfg.container {
        Container::Gguf => {
            let key = format!("{}.block_count", header.summary.architecture);
            header.metadata.insert(key, MetaValue::U32(layers as u32));
            ArchSummary::from_gguf(&header.metadata, &header.tensors)
        }
        Container::Safetensors => {
            if let Some(c) = header.config.as_mut().and_then(|c| c.as_object_mut()) {
                c.insert("num_hidden_layers".into(), layers.into());
            }
            ArchSummary::from_config(header.config.as_ref(), &header.tensors)
        }
    };
    Ok(LoadedModel { header, tensors, timings: model.timings, extras })
}
