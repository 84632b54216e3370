//! How far a model's next-token distributions moved from a base model's on the same text, the way
//! llama.cpp's `--kl-divergence` reports it: mean KL(base ‖ model), the share of tokens whose most
//! likely next token agrees ("same top p"), RMS of Δp = p_model(correct) − p_base(correct), and the
//! perplexity of both. Chunks and scored rows follow llama.cpp's perplexity convention.
//!
//! The base's log-probabilities are held only for the chunk being compared, as 16-bit values over
//! each row's [min, max] range (llama.cpp's compact format: 2 bytes per vocabulary entry, ~1e-4 nats
//! resolution), never as a whole-text f32 array.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::runner::Runner;
use crate::model::{LoadedModel, Progress};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    /// Mean KL(base ‖ model) in nats per token.
    pub kld: f64,
    pub kld_err: f64,
    /// Share of scored tokens where both models' argmax agree.
    pub top1: f64,
    /// RMS of p_model(correct) − p_base(correct).
    pub dp_rms: f64,
    pub ppl_base: f64,
    pub ppl: f64,
    /// KLD percentiles: 50, 90, 95, 99, 99.9.
    pub kld_median: f64,
    pub kld_p90: f64,
    pub kld_p95: f64,
    pub kld_p99: f64,
    pub kld_p99_9: f64,
    pub tokens: usize,
    pub chunks: usize,
}

/// One row of log-probabilities, quantised to u16 between the row's min and max.
struct CompactLogProbs {
    min: f32,
    step: f32,
    values: Vec<u16>,
}

impl CompactLogProbs {
    fn new(log_probs: &[f64]) -> Self {
        let max = log_probs.iter().copied().fold(f64::NEG_INFINITY, f64::max) as f32;
        let min = log_probs.iter().copied().fold(f64::INFINITY, f64::min) as f32;
        let step = ((max - min) / 65535.0).max(f32::MIN_POSITIVE);
        let values = log_probs.iter().map(|&l| ((l as f32 - min) / step).round() as u16).collect();
        CompactLogProbs { min, step, values }
    }
    fn get(&self, i: usize) -> f64 {
        (self.min + self.step * self.values[i] as f32) as f64
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&l| l as f64 - log_z).collect()
}

fn argmax(values: impl Iterator<Item = f64>) -> usize {
    values.enumerate().fold((0, f64::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

/// The base model's next-token log-probabilities on the scored rows of every chunk, kept compact so
/// that many compressed models can be compared with one base run.
pub struct BaseLogProbs {
    ctx: usize,
    bos: Option<u32>,
    /// Per chunk: its tokens and the compact log-probabilities of its scored rows.
    chunks: Vec<(Vec<u32>, Vec<CompactLogProbs>)>,
}

impl BaseLogProbs {
    /// The context length the chunks were run at.
    pub fn ctx(&self) -> usize {
        self.ctx
    }

    /// Run `base` over `tokens` in chunks of `ctx` (at most `max_chunks`), keeping the scored rows
    /// (the second half of each chunk, as llama.cpp scores them).
    pub async fn compute(
        base: &mut Runner<'_>,
        tokens: &[u32],
        ctx: usize,
        max_chunks: Option<usize>,
        bos: Option<u32>,
        progress: &mut impl Progress,
    ) -> Result<BaseLogProbs> {
        if ctx < 2 || tokens.len() < 2 * ctx {
            return Err(Error::Invalid(format!(
                "KL divergence at ctx {ctx} needs at least {} tokens",
                2 * ctx
            )));
        }
        let n = (tokens.len() / ctx).min(max_chunks.unwrap_or(usize::MAX));
        let vocab = base.config().vocab;
        let mut chunks = Vec::with_capacity(n);
        for c in 0..n {
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            progress.report("base log-probs", c as u64, n as u64);
            let chunk = tokens[c * ctx..(c + 1) * ctx].to_vec();
            base.reset();
            let rows = base
                .logits_of(&with_bos(&chunk, bos), ctx / 2..ctx - 1)
                .await?
                .chunks(vocab)
                .map(|row| CompactLogProbs::new(&log_softmax(row)))
                .collect();
            chunks.push((chunk, rows));
        }
        Ok(BaseLogProbs { ctx, bos, chunks })
    }
}

fn with_bos(chunk: &[u32], bos: Option<u32>) -> Vec<u32> {
    let mut ids = chunk.to_vec();
    if let Some(bos) = bos {
        ids[0] = bos;
    }
    ids
}

/// Compare a compressed `model` with the `base` it came from over `tokens` in chunks of `ctx`.
#[allow(clippy::too_many_arguments)]
pub async fn compare_models(
    gpu: &Gpu,
    base: &LoadedModel,
    model: &LoadedModel,
    tokens: &[u32],
    ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    progress: &mut impl Progress,
) -> Result<Divergence> {
    let mut base_runner = Runner::new(gpu, base, ctx, ctx)?;
    let mut runner = Runner::new(gpu, model, ctx, ctx)?;
    kl_divergence(&mut base_runner, &mut runner, tokens, ctx, max_chunks, bos, progress).await
}

/// Compare `model` with `base` (same tokenizer) over `tokens` in chunks of `ctx`.
pub async fn kl_divergence(
    base: &mut Runner<'_>,
    model: &mut Runner<'_>,
    tokens: &[u32],
    ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    progress: &mut impl Progress,
) -> Result<Divergence> {
    let base = BaseLogProbs::compute(base, tokens, ctx, max_chunks, bos, progress).await?;
    divergence_from(&base, model, progress).await
}

/// Compare `model` with a base whose log-probabilities were computed before.
pub async fn divergence_from(
    base: &BaseLogProbs,
    model: &mut Runner<'_>,
    progress: &mut impl Progress,
) -> Result<Divergence> {
    let vocab = model.config().vocab;
    if base.chunks.first().is_some_and(|(_, rows)| rows.first().is_some_and(|r| r.values.len() != vocab)) {
        return Err(Error::Invalid(format!(
            "the models have different vocabularies (base {} vs {vocab}): KL divergence needs the same tokens",
            base.chunks[0].1[0].values.len()
        )));
    }
    let (ctx, n_chunks) = (base.ctx, base.chunks.len());
    let first = ctx / 2;
    let (mut kls, mut dps) = (Vec::new(), Vec::new());
    let (mut agree, mut nll_base, mut nll) = (0usize, 0f64, 0f64);
    for (c, (chunk, base_rows)) in base.chunks.iter().enumerate() {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        progress.report("kl-divergence", c as u64, n_chunks as u64);
        model.reset();
        let logits = model.logits_of(&with_bos(chunk, base.bos), first..ctx - 1).await?;
        if logits.iter().any(|l| !l.is_finite()) {
            return Err(Error::Invalid(format!(
                "the model's logits are not finite in chunk {} of the evaluation text: it cannot be compared",
                c + 1
            )));
        }
        for (j, (row, b)) in logits.chunks(vocab).zip(base_rows).enumerate() {
            let q = log_softmax(row);
            let kl: f64 = (0..vocab).map(|i| b.get(i).exp() * (b.get(i) - q[i])).sum();
            let correct = chunk[first + j + 1] as usize;
            kls.push(kl.max(0.0));
            dps.push(q[correct].exp() - b.get(correct).exp());
            nll_base -= b.get(correct);
            nll -= q[correct];
            agree += usize::from(argmax((0..vocab).map(|i| b.get(i))) == argmax(q.iter().copied()));
        }
    }
    progress.report("kl-divergence", n_chunks as u64, n_chunks as u64);
    let n = kls.len() as f64;
    let mean = kls.iter().sum::<f64>() / n;
    let var = kls.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let mut sorted = kls.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize];
    Ok(Divergence {
        kld: mean,
        kld_err: (var / n).sqrt(),
        top1: agree as f64 / n,
        dp_rms: (dps.iter().map(|d| d * d).sum::<f64>() / n).sqrt(),
        ppl_base: (nll_base / n).exp(),
        ppl: (nll / n).exp(),
        kld_median: pct(50.0),
        kld_p90: pct(90.0),
        kld_p95: pct(95.0),
        kld_p99: pct(99.0),
        kld_p99_9: pct(99.9),
        tokens: kls.len(),
        chunks: n_chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_log_probs_keep_four_decimals() {
        let lp = log_softmax(&[3.0, 1.0, -2.0, 0.5, -30.0]);
        let c = CompactLogProbs::new(&lp);
        for (i, &l) in lp.iter().enumerate() {
            assert!((c.get(i) - l).abs() < 5e-4, "{i}: {} vs {l}", c.get(i));
        }
    }

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1000.0, 1000.0]);
        assert!((lp[0] - (0.5f64).ln()).abs() < 1e-12);
    }
}
