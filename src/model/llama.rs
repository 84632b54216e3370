//! The Llama family on the GPU (SmolLM2, TinyLlama, Llama 3, Qwen2 with QKV biases; an output-projection
//! or down-projection bias, as llama.cpp also reads, where width pruning compensated one): embedding,
//! RMSNorm, RoPE, grouped-query causal attention over a KV cache, SwiGLU MLP, tied or separate head.
//! One call records a whole batch of tokens into one command buffer.

use super::config::{bias_name, ModelConfig, Role};
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::weights::{optional_f32_bias, Weights};
use super::LoadedModel;
use crate::compress::calib::{Capture, Site};
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::{elementwise, embed::embed, norm::rms_norm, rope::rope};

/// Indices into `LoadedModel::tensors` of one block's weights.
struct Block {
    attn_norm: usize,
    q: usize,
    k: usize,
    v: usize,
    q_bias: Option<usize>,
    k_bias: Option<usize>,
    v_bias: Option<usize>,
    attn_out: usize,
    attn_out_bias: Option<usize>,
    ffn_norm: usize,
    gate: usize,
    up: usize,
    down: usize,
    down_bias: Option<usize>,
}

pub struct Llama {
    pub cfg: ModelConfig,
    embedding: usize,
    output_norm: usize,
    /// The output head: `output.weight`, or the embedding when tied.
    output: usize,
    blocks: Vec<Block>,
}

/// Activation buffers for up to `batch` tokens, reused for every batch and layer.
pub struct Workspace {
    pub batch: usize,
    ids: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    attn: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    /// silu(gate)·up, the input of the down projection.
    act: wgpu::Buffer,
    /// Quantised activations for linears that quantise their input (as wide as the widest input).
    scratch: wgpu::Buffer,
}

impl Workspace {
    /// The residual stream, (batch, d_model).
    pub fn residual(&self) -> &wgpu::Buffer {
        &self.x
    }
}

impl Llama {
    /// Find every weight by name and check its shape against the config.
    pub fn new(model: &LoadedModel, cfg: ModelConfig) -> Result<Llama> {
        let weights = Weights::new(model);
        let (d, hd) = (cfg.d_model, cfg.head_dim);
        let (q_rows, kv_rows) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let name = |role| cfg.layer_name(l, role);
            blocks.push(Block {
                attn_norm: weights.find(&name(Role::AttnNorm), &[d])?,
                q: weights.find(&name(Role::Q), &[q_rows, d])?,
                k: weights.find(&name(Role::K), &[kv_rows, d])?,
                v: weights.find(&name(Role::V), &[kv_rows, d])?,
                q_bias: weights.optional(&bias_name(&name(Role::Q)), &[q_rows])?,
                k_bias: weights.optional(&bias_name(&name(Role::K)), &[kv_rows])?,
                v_bias: weights.optional(&bias_name(&name(Role::V)), &[kv_rows])?,
                attn_out: weights.find(&name(Role::AttnOut), &[d, q_rows])?,
                attn_out_bias: weights.optional(&bias_name(&name(Role::AttnOut)), &[d])?,
                ffn_norm: weights.find(&name(Role::FfnNorm), &[d])?,
                gate: weights.find(&name(Role::Gate), &[cfg.d_ffn, d])?,
                up: weights.find(&name(Role::Up), &[cfg.d_ffn, d])?,
                down: weights.find(&name(Role::Down), &[d, cfg.d_ffn])?,
                down_bias: weights.optional(&bias_name(&name(Role::Down)), &[d])?,
            });
        }
        let embedding = weights.find(cfg.embedding_name(), &[cfg.vocab, d])?;
        let output = weights.optional(cfg.output_name(), &[cfg.vocab, d])?.unwrap_or(embedding);
        let output_norm = weights.find(cfg.output_norm_name(), &[d])?;
        Ok(Llama { embedding, output_norm, output, blocks, cfg })
    }

    pub fn workspace(&self, gpu: &Gpu, batch: usize) -> Result<Workspace> {
        let c = &self.cfg;
        let f32s = |label: &str, n: usize| {
            gpu.storage_buffer(label, (batch * n * 4) as u64, wgpu::BufferUsages::COPY_DST)
        };
        Ok(Workspace {
            batch,
            ids: f32s("ids", 1)?,
            x: f32s("x", c.d_model)?,
            h: f32s("h", c.d_model.max(c.n_heads * c.head_dim))?,
            q: f32s("q", c.n_heads * c.head_dim)?,
            k: f32s("k", c.n_kv_heads * c.head_dim)?,
            v: f32s("v", c.n_kv_heads * c.head_dim)?,
            attn: f32s("attn", c.n_heads * c.head_dim)?,
            gate: f32s("gate", c.d_ffn)?,
            up: f32s("up", c.d_ffn)?,
            act: f32s("act", c.d_ffn)?,
            scratch: f32s("quantised activations", c.d_ffn.max(c.d_model).max(c.n_heads * c.head_dim))?,
        })
    }

    pub fn kv_cache(&self, gpu: &Gpu, max_seq: usize) -> Result<KvCache> {
        KvCache::new(gpu, &self.cfg, max_seq)
    }

    pub fn output_head<'m>(&self, model: &'m LoadedModel) -> &'m GpuTensor {
        &model.tensors[self.output]
    }

    /// Record the forward pass of `ids` (at most `ws.batch` tokens, at positions `cache.len..`),
    /// appending their keys and values to the cache. The final normalised hidden states are left in
    /// the returned buffer, (t, d_model); the caller applies the output head to the rows it needs.
    pub async fn forward<'w>(
        &self,
        gpu: &Gpu,
        model: &LoadedModel,
        enc: &mut wgpu::CommandEncoder,
        ws: &'w Workspace,
        cache: &mut KvCache,
        ids: &[u32],
    ) -> Result<&'w wgpu::Buffer> {
        let c = &self.cfg;
        let t = ids.len();
        cache.check_room(t, ws.batch)?;
        self.embed(gpu, model, enc, ws, ids).await?;
        for l in 0..self.blocks.len() {
            self.block(gpu, model, enc, ws, cache, l, t, None).await?;
        }
        let tu = t as u32;
        rms_norm(gpu, enc, &ws.x, &model.tensors[self.output_norm], &ws.h, tu, c.d_model as u32, c.norm_eps)
            .await?;
        cache.len += t;
        Ok(&ws.h)
    }

    /// Record the embedding of `ids` into the residual stream `ws.x`.
    pub async fn embed(
        &self,
        gpu: &Gpu,
        model: &LoadedModel,
        enc: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        ids: &[u32],
    ) -> Result<()> {
        gpu.queue.write_buffer(&ws.ids, 0, bytemuck::cast_slice(ids));
        embed(gpu, enc, &model.tensors[self.embedding], &ws.ids, &ws.x, ids.len() as u32).await
    }

    /// Record block `l` on the `t` tokens of the residual stream `ws.x` (in place), at positions
    /// `cache.len..` (the caller advances `cache.len`). With `capture`, the inputs of the block's linear
    /// layers are accumulated into calibration statistics on the way.
    #[allow(clippy::too_many_arguments)]
    pub async fn block(
        &self,
        gpu: &Gpu,
        model: &LoadedModel,
        enc: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        cache: &KvCache,
        l: usize,
        t: usize,
        capture: Option<&Capture>,
    ) -> Result<()> {
        let c = &self.cfg;
        let b = &self.blocks[l];
        let w = |i: usize| &model.tensors[i];
        let tu = t as u32;
        let (d, hd) = (c.d_model as u32, c.head_dim as u32);
        let (heads, kv_heads) = (c.n_heads as u32, c.n_kv_heads as u32);
        let pos0 = cache.len as u32;
        let observe = async |enc: &mut wgpu::CommandEncoder, site, x, k: usize| match capture {
            Some(cap) => cap.record(gpu, enc, site, x, tu, k as u32).await,
            None => Ok(()),
        };
        let lin = Linear { gpu, model, scratch: &ws.scratch, t: tu };

        rms_norm(gpu, enc, &ws.x, w(b.attn_norm), &ws.h, tu, d, c.norm_eps).await?;
        observe(enc, Site::AttnIn, &ws.h, c.d_model).await?;
        let q_bias = optional_f32_bias(gpu, b.q_bias.map(w)).await?;
        let k_bias = optional_f32_bias(gpu, b.k_bias.map(w)).await?;
        let v_bias = optional_f32_bias(gpu, b.v_bias.map(w)).await?;
        lin.run(enc, &ws.h, b.q, q_bias.as_ref(), &ws.q).await?;
        lin.run(enc, &ws.h, b.k, k_bias.as_ref(), &ws.k).await?;
        lin.run(enc, &ws.h, b.v, v_bias.as_ref(), &ws.v).await?;
        rope(gpu, enc, &ws.q, tu, heads, hd, pos0, c.rope_base, c.rope_mode).await?;
        rope(gpu, enc, &ws.k, tu, kv_heads, hd, pos0, c.rope_base, c.rope_mode).await?;
        cache.attend(gpu, enc, c, l, &ws.q, &ws.k, &ws.v, &ws.attn, t).await?;
        observe(enc, Site::AttnOutIn, &ws.attn, c.n_heads * c.head_dim).await?;
        let attn_out_bias = optional_f32_bias(gpu, b.attn_out_bias.map(w)).await?;
        lin.run(enc, &ws.attn, b.attn_out, attn_out_bias.as_ref(), &ws.h).await?;
        elementwise::add_in_place(gpu, enc, &ws.x, &ws.h, tu * d).await?;

        rms_norm(gpu, enc, &ws.x, w(b.ffn_norm), &ws.h, tu, d, c.norm_eps).await?;
        observe(enc, Site::FfnIn, &ws.h, c.d_model).await?;
        lin.run(enc, &ws.h, b.gate, None, &ws.gate).await?;
        lin.run(enc, &ws.h, b.up, None, &ws.up).await?;
        elementwise::swiglu(gpu, enc, &ws.gate, &ws.up, &ws.act, tu * c.d_ffn as u32).await?;
        observe(enc, Site::DownIn, &ws.act, c.d_ffn).await?;
        let down_bias = optional_f32_bias(gpu, b.down_bias.map(w)).await?;
        lin.run(enc, &ws.act, b.down, down_bias.as_ref(), &ws.h).await?;
        elementwise::add_in_place(gpu, enc, &ws.x, &ws.h, tu * d).await
    }
}
