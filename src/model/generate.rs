//! Text generation: prefill the prompt in batches, then decode one token at a time, streaming each
//! piece of text as soon as it is whole UTF-8, until EOS, a control token, the token limit or a cancel.

use super::runner::Runner;
use super::sampler::Sampler;
use super::tokenizer::{StreamDecoder, Tokenizer};
use super::Progress;
use crate::error::{Error, Result};
use crate::eval::now_ms;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced end-of-sequence or another control token (e.g. `<|im_end|>`).
    EndOfText,
    MaxTokens,
    /// The KV cache is full.
    Context,
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub stop: StopReason,
}

/// Generate up to `max_tokens` after `prompt`. `on_text(piece, tokens_so_far, ms_decoding)` receives
/// the text as it grows; `progress.cancelled()` is checked before every token.
pub async fn generate(
    runner: &mut Runner<'_>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &mut Sampler,
    progress: &mut impl Progress,
    on_text: &mut impl FnMut(&str, usize, f64),
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::Invalid("the prompt is empty: give at least one token".into()));
    }
    if prompt.len() >= runner.cache.max_seq {
        return Err(Error::Invalid(format!(
            "the prompt has {} tokens; the context holds {}",
            prompt.len(),
            runner.cache.max_seq
        )));
    }
    runner.reset();
    let start = now_ms();
    let mut logits = runner.next_logits(prompt).await?;
    let prefill_ms = now_ms() - start;

    let mut history = prompt.to_vec();
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut decoder = StreamDecoder::default();
    let decode_start = now_ms();
    let stop = loop {
        if progress.cancelled() {
            break StopReason::Cancelled;
        }
        let id = sampler.sample(&logits, &history);
        if id == tokenizer.eos() || tokenizer.is_control(id) {
            break StopReason::EndOfText;
        }
        tokens.push(id);
        history.push(id);
        let piece = decoder.push(tokenizer, id);
        text.push_str(&piece);
        on_text(&piece, tokens.len(), now_ms() - decode_start);
        if tokens.len() >= max_tokens {
            break StopReason::MaxTokens;
        }
        if runner.cache.len >= runner.cache.max_seq {
            break StopReason::Context;
        }
        logits = runner.next_logits(&[id]).await?;
    };
    let tail = decoder.flush();
    if !tail.is_empty() {
        text.push_str(&tail);
        on_text(&tail, tokens.len(), now_ms() - decode_start);
    }
    let decode_ms = now_ms() - decode_start;
    let per_s = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    // The first token comes from the prompt's logits: n tokens cost n − 1 decode steps.
    let decode_steps = tokens.len().saturating_sub(1);
    Ok(Generation {
        prefill_tokens_per_s: per_s(prompt.len(), prefill_ms),
        decode_tokens_per_s: per_s(decode_steps, decode_ms),
        text,
        tokens,
        prompt_tokens: prompt.len(),
        prefill_ms,
        decode_ms,
        stop,
    })
}
