//! Running a loaded model: batches of tokens through the forward pass with a KV cache, then the
//! output head on just the rows a caller needs (the last one for generation, the scored ones for
//! perplexity), so a 49152-wide vocabulary never fills memory for a whole context.

use super::config::{Family, ModelConfig};
use super::gpt2::{self, Gpt2};
use super::kv_cache::KvCache;
use super::llama::{self, Llama};
use super::LoadedModel;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::{logits::token_nll, matmul::matmul};
use std::ops::Range;

/// Rows of logits computed per head dispatch: bounds the logits buffer to HEAD_ROWS × vocab floats.
const HEAD_ROWS: usize = 64;

/// The forward pass of one family, with the activation buffers it reuses batch after batch.
pub enum Architecture {
    Llama(Llama, llama::Workspace),
    Gpt2(Gpt2, gpt2::Workspace),
}

/// The one place that dispatches on the family.
impl Architecture {
    /// The model's family from its header, its weights found, and a workspace for `batch` tokens.
    pub fn new(gpu: &Gpu, model: &LoadedModel, batch: usize) -> Result<Architecture> {
        let cfg = ModelConfig::from_header(&model.header)?;
        Ok(match cfg.family {
            Family::Llama => {
                let arch = Llama::new(model, cfg)?;
                let ws = arch.workspace(gpu, batch)?;
                Architecture::Llama(arch, ws)
            }
            Family::Gpt2 => {
                let arch = Gpt2::new(model, cfg)?;
                let ws = arch.workspace(gpu, batch)?;
                Architecture::Gpt2(arch, ws)
            }
        })
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            Architecture::Llama(arch, _) => &arch.cfg,
            Architecture::Gpt2(arch, _) => &arch.cfg,
        }
    }

    /// The most tokens one forward pass takes.
    pub fn batch(&self) -> usize {
        match self {
            Architecture::Llama(_, ws) => ws.batch,
            Architecture::Gpt2(_, ws) => ws.batch,
        }
    }

    pub fn kv_cache(&self, gpu: &Gpu, max_seq: usize) -> Result<KvCache> {
        match self {
            Architecture::Llama(arch, _) => arch.kv_cache(gpu, max_seq),
            Architecture::Gpt2(arch, _) => arch.kv_cache(gpu, max_seq),
        }
    }

    pub fn output_head<'m>(&self, model: &'m LoadedModel) -> &'m GpuTensor {
        match self {
            Architecture::Llama(arch, _) => arch.output_head(model),
            Architecture::Gpt2(arch, _) => arch.output_head(model),
        }
    }

    /// The layer-by-layer pieces that calibration drives (embed, one block at a time): the Llama family.
    pub fn layered(&self) -> Result<(&Llama, &llama::Workspace)> {
        match self {
            Architecture::Llama(arch, ws) => Ok((arch, ws)),
            Architecture::Gpt2(..) => Err(Error::unsupported(
                "GPT-2",
                "calibrated methods run layer by layer on the Llama family (SmolLM2, Llama, Qwen2) only; \
                 GPT-2 models take the data-free ones (rtn, hqq, nf4, fp8_e4m3, fp8_e5m2, fp4, mxfp4, llm_int8)",
            )),
        }
    }

    /// Record the forward pass of `ids` after what `cache` holds; the final hidden states, (t, d_model).
    pub async fn forward(
        &self,
        gpu: &Gpu,
        model: &LoadedModel,
        enc: &mut wgpu::CommandEncoder,
        cache: &mut KvCache,
        ids: &[u32],
    ) -> Result<&wgpu::Buffer> {
        match self {
            Architecture::Llama(arch, ws) => arch.forward(gpu, model, enc, ws, cache, ids).await,
            Architecture::Gpt2(arch, ws) => arch.forward(gpu, model, enc, ws, cache, ids).await,
        }
    }
}

pub struct Runner<'a> {
    gpu: &'a Gpu,
    model: &'a LoadedModel,
    pub arch: Architecture,
    pub cache: KvCache,
    head_in: wgpu::Buffer,
    logits: wgpu::Buffer,
    targets: wgpu::Buffer,
    nll: wgpu::Buffer,
}

impl<'a> Runner<'a> {
    /// `max_seq` positions of KV cache; prompts are fed `batch` tokens at a time.
    pub fn new(gpu: &'a Gpu, model: &'a LoadedModel, max_seq: usize, batch: usize) -> Result<Runner<'a>> {
        let arch = Architecture::new(gpu, model, batch)?;
        let (d, vocab) = (arch.config().d_model, arch.config().vocab);
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
            cache,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        self.arch.config()
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
        let (gpu, d, vocab) = (self.gpu, self.config().d_model, self.config().vocab);
        if rows.end > ids.len() {
            return Err(Error::Invalid(format!("rows {rows:?} past the {} tokens given", ids.len())));
        }
        let output = self.arch.output_head(self.model);
        let mut out = Vec::new();
        let batch_size = self.arch.batch();
        for start in (0..ids.len()).step_by(batch_size) {
            let batch = &ids[start..(start + batch_size).min(ids.len())];
            let mut enc = gpu.encoder();
            let hidden = self.arch.forward(gpu, self.model, &mut enc, &mut self.cache, batch).await?;
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
