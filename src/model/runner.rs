//! Running a loaded model: batches of tokens through the forward pass with a KV cache, then the
//! output head on just the rows a caller needs (the last one for generation, the scored ones for
//! perplexity), so a 49152-wide vocabulary never fills memory for a whole context.

use super::config::ModelConfig;
use super::llama::{KvCache, Llama, Workspace};
use super::LoadedModel;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{logits::token_nll, matmul::matmul};
use std::ops::Range;

/// Rows of logits computed per head dispatch: bounds the logits buffer to HEAD_ROWS × vocab floats.
const HEAD_ROWS: usize = 64;

pub struct Runner<'a> {
    gpu: &'a Gpu,
    model: &'a LoadedModel,
    pub arch: Llama,
    ws: Workspace,
    pub cache: KvCache,
    head_in: wgpu::Buffer,
    logits: wgpu::Buffer,
    targets: wgpu::Buffer,
    nll: wgpu::Buffer,
}

impl<'a> Runner<'a> {
    /// `max_seq` positions of KV cache; prompts are fed `batch` tokens at a time.
    pub fn new(gpu: &'a Gpu, model: &'a LoadedModel, max_seq: usize, batch: usize) -> Result<Runner<'a>> {
        let cfg = ModelConfig::from_header(&model.header)?;
        let (d, vocab) = (cfg.d_model, cfg.vocab);
        let arch = Llama::new(model, cfg)?;
        let ws = arch.workspace(gpu, batch)?;
        let cache = arch.kv_cache(gpu, max_seq)?;
        let buffer =
            |label: &str, bytes: usize| gpu.storage_buffer(label, bytes as u64, wgpu::BufferUsages::COPY_DST);
        Ok(Runner {
            head_in: buffer("head input", HEAD_ROWS * d * 4)?,
            logits: buffer("logits", HEAD_ROWS * vocab * 4)?,
            targets: buffer("targets", HEAD_ROWS * 4)?,
            nll: buffer("nll", HEAD_ROWS * 4)?,
            gpu,
            model,
            arch,
            ws,
            cache,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.arch.cfg
    }

    /// Forget everything in the KV cache.
    pub fn reset(&mut self) {
        self.cache.len = 0;
    }

    /// Feed `ids` after what the cache holds; return the logits after the last of them.
    pub async fn next_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        self.feed(ids, ids.len().saturating_sub(1)..ids.len(), Head::Logits).await
    }

    /// Feed `ids` after what the cache holds and return the logits after each token in `rows`
    /// (indices into `ids`), row after row.
    pub async fn logits_of(&mut self, ids: &[u32], rows: Range<usize>) -> Result<Vec<f32>> {
        self.feed(ids, rows, Head::Logits).await
    }

    /// Teacher-forced −log p(targets[i] | ids[..=i]) for every i in `rows`: the perplexity primitive.
    pub async fn nll(&mut self, ids: &[u32], targets: &[u32], rows: Range<usize>) -> Result<Vec<f32>> {
        if targets.len() != ids.len() {
            return Err(Error::Invalid(format!("{} targets for {} tokens", targets.len(), ids.len())));
        }
        self.feed(ids, rows, Head::Nll(targets)).await
    }

    async fn feed(&mut self, ids: &[u32], rows: Range<usize>, head: Head<'_>) -> Result<Vec<f32>> {
        let (gpu, d, vocab) = (self.gpu, self.arch.cfg.d_model, self.arch.cfg.vocab);
        if rows.end > ids.len() {
            return Err(Error::Invalid(format!("rows {rows:?} past the {} tokens given", ids.len())));
        }
        let output = self.arch.output_head(self.model);
        let mut out = Vec::new();
        for start in (0..ids.len()).step_by(self.ws.batch) {
            let batch = &ids[start..(start + self.ws.batch).min(ids.len())];
            let mut enc = gpu.encoder();
            let hidden =
                self.arch.forward(gpu, self.model, &mut enc, &self.ws, &mut self.cache, batch).await?;
            gpu.queue.submit([enc.finish()]);
            let (lo, hi) = (rows.start.max(start), rows.end.min(start + batch.len()));
            for first in (lo..hi).step_by(HEAD_ROWS) {
                let n = HEAD_ROWS.min(hi - first);
                let mut enc = gpu.encoder();
                let row_bytes = (d * 4) as u64;
                enc.copy_buffer_to_buffer(
                    hidden,
                    (first - start) as u64 * row_bytes,
                    &self.head_in,
                    0,
                    n as u64 * row_bytes,
                );
                matmul(gpu, &mut enc, &self.head_in, output, None, &self.logits, n as u32).await?;
                match head {
                    Head::Logits => {
                        gpu.queue.submit([enc.finish()]);
                        out.extend(gpu.read_f32(&self.logits, 0, (n * vocab) as u64).await?);
                    }
                    Head::Nll(targets) => {
                        gpu.queue.write_buffer(
                            &self.targets,
                            0,
                            bytemuck::cast_slice(&targets[first..first + n]),
                        );
                        token_nll(
                            gpu,
                            &mut enc,
                            &self.logits,
                            &self.targets,
                            &self.nll,
                            n as u32,
                            vocab as u32,
                        )
                        .await?;
                        gpu.queue.submit([enc.finish()]);
                        out.extend(gpu.read_f32(&self.nll, 0, n as u64).await?);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// What the output head produces for the rows asked for.
#[derive(Clone, Copy)]
enum Head<'t> {
    Logits,
    /// −log softmax at these target ids (one per input token).
    Nll(&'t [u32]),
}
