//! Perplexity, in llama.cpp's convention (so the figure can be checked with `llama-perplexity`) or the
//! research repositories' (GPTQ, SparseGPT, Wanda, AWQ).
//!
//! llama.cpp: the text is cut into chunks of `ctx` tokens, each evaluated from an empty cache; the first
//! token of a chunk becomes BOS only when the vocabulary adds BOS; only the second half of each chunk
//! is scored, so every scored token has at least ctx/2 tokens of context. Research repositories: the
//! same non-overlapping windows, every token scored.

use crate::error::{Error, Result};
use crate::model::runner::Runner;
use crate::model::Progress;
use serde::Serialize;

/// Tokens fed per forward call within a chunk.
const PIECE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    LlamaCpp,
    AllTokens,
}

#[derive(Debug, Clone, Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    /// One standard error of the estimate, as llama.cpp reports it (± after "PPL =").
    pub ppl_err: f64,
    pub ctx: usize,
    pub chunks: usize,
    /// Tokens scored.
    pub tokens: usize,
    pub convention: Convention,
    /// The running estimate after each chunk.
    pub per_chunk: Vec<f64>,
}

/// Accumulates negative log-likelihoods the way llama.cpp does (sum and sum of squares in f64).
#[derive(Default)]
struct NllSum {
    count: usize,
    sum: f64,
    sum2: f64,
}

impl NllSum {
    fn add(&mut self, nll: f32) {
        self.count += 1;
        self.sum += nll as f64;
        self.sum2 += (nll as f64) * (nll as f64);
    }
    fn ppl(&self) -> f64 {
        (self.sum / self.count.max(1) as f64).exp()
    }
    fn err(&self) -> f64 {
        let mean = self.sum / self.count as f64;
        let var = self.sum2 / self.count as f64 - mean * mean;
        if var > 0.0 && self.count > 1 {
            (var / (self.count - 1) as f64).sqrt() * self.ppl()
        } else {
            0.0
        }
    }
}

/// `bos` is Some only when the model's vocabulary adds BOS (`tokenizer.ggml.add_bos_token`).
pub async fn perplexity(
    runner: &mut Runner<'_>,
    tokens: &[u32],
    ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    convention: Convention,
    progress: &mut impl Progress,
) -> Result<Perplexity> {
    if ctx < 2 || tokens.len() < 2 * ctx {
        return Err(Error::Invalid(format!(
            "perplexity at ctx {ctx} needs at least {} tokens; the text has {}",
            2 * ctx,
            tokens.len()
        )));
    }
    if ctx > runner.cache.max_seq {
        return Err(Error::Invalid(format!(
            "ctx {ctx} exceeds the KV cache of {} positions",
            runner.cache.max_seq
        )));
    }
    let chunks = (tokens.len() / ctx).min(max_chunks.unwrap_or(usize::MAX));
    let first = match convention {
        Convention::LlamaCpp => ctx / 2,
        Convention::AllTokens => 0,
    };
    let mut sum = NllSum::default();
    let mut per_chunk = Vec::with_capacity(chunks);
    for c in 0..chunks {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        progress.report("perplexity", c as u64, chunks as u64);
        let chunk = &tokens[c * ctx..(c + 1) * ctx];
        let mut ids = chunk.to_vec();
        if let Some(bos) = bos {
            ids[0] = bos;
        }
        // Row j predicts the original token j+1; the last row predicts nothing.
        let mut targets = chunk[1..].to_vec();
        targets.push(0);
        runner.reset();
        // Pieces of the chunk go through the KV cache one after another, so a cancel waits for one
        // piece, not a whole chunk (a 1024-token chunk takes minutes on a software GPU).
        for start in (0..ctx).step_by(PIECE) {
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            let end = (start + PIECE).min(ctx);
            // Rows of this piece that are scored (global [first, ctx − 1)), relative to the piece.
            let lo = first.clamp(start, end);
            let hi = (ctx - 1).clamp(lo, end);
            let scored = lo - start..hi - start;
            for nll in runner.nll(&ids[start..end], &targets[start..end], scored).await? {
                sum.add(nll);
            }
        }
        per_chunk.push(sum.ppl());
    }
    progress.report("perplexity", chunks as u64, chunks as u64);
    Ok(Perplexity {
        ppl: sum.ppl(),
        ppl_err: sum.err(),
        ctx,
        chunks,
        tokens: sum.count,
        convention,
        per_chunk,
    })
}
