//! GPT-2 on the GPU (GGUF): token embedding plus learned positions, LayerNorm with bias, one fused QKV
//! projection with bias, causal multi-head attention over a KV cache, GELU MLP, tied or separate head.
//! One call records a whole batch of tokens into one command buffer.

use super::config::{bias_name, ModelConfig, Role};
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::weights::{f32_bias, Weights};
use super::LoadedModel;
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::{elementwise, embed::embed, norm::layer_norm};

/// Indices into `LoadedModel::tensors` of a weight and its bias.
#[derive(Clone, Copy)]
struct Pair {
    weight: usize,
    bias: usize,
}

/// One block's weights.
struct Block {
    attn_norm: Pair,
    qkv: Pair,
    attn_out: Pair,
    ffn_norm: Pair,
    up: Pair,
    down: Pair,
}

pub struct Gpt2 {
    pub cfg: ModelConfig,
    embedding: usize,
    positions: usize,
    output_norm: Pair,
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
    /// The fused projection, (t, q_dim + 2·kv_dim), before it is split into q, k and v.
    qkv: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    attn: wgpu::Buffer,
    up: wgpu::Buffer,
    /// What compressed linears need beside their input (as wide as the widest input or output).
    scratch: wgpu::Buffer,
}

impl Gpt2 {
    /// Find every weight and bias by name and check its shape against the config.
    pub fn new(model: &LoadedModel, cfg: ModelConfig) -> Result<Gpt2> {
        let weights = Weights::new(model);
        // A weight of (outputs, inputs), or (outputs) for a norm, and its bias of (outputs).
        let pair = |name: &str, outputs: usize, inputs: Option<usize>| -> Result<Pair> {
            let shape: &[usize] = match inputs {
                Some(inputs) => &[outputs, inputs],
                None => &[outputs],
            };
            Ok(Pair { weight: weights.find(name, shape)?, bias: weights.find(&bias_name(name), &[outputs])? })
        };
        let (d, f) = (cfg.d_model, cfg.d_ffn);
        let (q_dim, kv_dim) = (cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim);
        let blocks = (0..cfg.n_layers)
            .map(|l| {
                let name = |role| cfg.layer_name(l, role);
                Ok(Block {
                    attn_norm: pair(&name(Role::AttnNorm), d, None)?,
                    qkv: pair(&name(Role::Qkv), q_dim + 2 * kv_dim, Some(d))?,
                    attn_out: pair(&name(Role::AttnOut), d, Some(q_dim))?,
                    ffn_norm: pair(&name(Role::FfnNorm), d, None)?,
                    up: pair(&name(Role::Up), f, Some(d))?,
                    down: pair(&name(Role::Down), d, Some(f))?,
                })
            })
            .collect::<Result<_>>()?;
        let embedding = weights.find(cfg.embedding_name(), &[cfg.vocab, d])?;
        Ok(Gpt2 {
            positions: weights.find(cfg.position_embedding_name(), &[cfg.context, d])?,
            output: weights.optional(cfg.output_name(), &[cfg.vocab, d])?.unwrap_or(embedding),
            output_norm: pair(cfg.output_norm_name(), d, None)?,
            embedding,
            blocks,
            cfg,
        })
    }

    pub fn workspace(&self, gpu: &Gpu, batch: usize) -> Result<Workspace> {
        let c = &self.cfg;
        let f32s = |label: &str, n: usize| {
            gpu.storage_buffer(label, (batch * n * 4) as u64, wgpu::BufferUsages::COPY_DST)
        };
        let (q_dim, kv_dim) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        Ok(Workspace {
            batch,
            ids: f32s("ids", 1)?,
            x: f32s("x", c.d_model)?,
            h: f32s("h", c.d_model)?,
            qkv: f32s("qkv", q_dim + 2 * kv_dim)?,
            q: f32s("q", q_dim)?,
            k: f32s("k", kv_dim)?,
            v: f32s("v", kv_dim)?,
            attn: f32s("attn", q_dim)?,
            up: f32s("up", c.d_ffn)?,
            scratch: f32s("linear scratch", c.d_ffn.max(q_dim + 2 * kv_dim).max(c.d_model))?,
        })
    }

    /// At most `context` positions: past its learned position table GPT-2 has nothing to add.
    pub fn kv_cache(&self, gpu: &Gpu, max_seq: usize) -> Result<KvCache> {
        KvCache::new(gpu, &self.cfg, max_seq.min(self.cfg.context))
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
        let (tu, d) = (t as u32, c.d_model as u32);
        let (q_dim, kv_dim) = ((c.n_heads * c.head_dim) as u32, (c.n_kv_heads * c.head_dim) as u32);
        let qkv_dim = q_dim + 2 * kv_dim;
        let s = Step { gpu, model, scratch: &ws.scratch, t: tu, d, eps: c.norm_eps };

        gpu.queue.write_buffer(&ws.ids, 0, bytemuck::cast_slice(ids));
        embed(gpu, enc, s.w(self.embedding), &ws.ids, &ws.x, tu).await?;
        elementwise::add_positions(gpu, enc, &ws.x, s.w(self.positions), cache.len as u32, tu, d).await?;
        for (l, b) in self.blocks.iter().enumerate() {
            s.norm(enc, b.attn_norm, &ws.x, &ws.h).await?;
            s.linear(enc, b.qkv, &ws.h, &ws.qkv).await?;
            elementwise::columns(gpu, enc, &ws.qkv, qkv_dim, 0..q_dim, &ws.q, tu).await?;
            elementwise::columns(gpu, enc, &ws.qkv, qkv_dim, q_dim..q_dim + kv_dim, &ws.k, tu).await?;
            elementwise::columns(gpu, enc, &ws.qkv, qkv_dim, q_dim + kv_dim..qkv_dim, &ws.v, tu).await?;
            cache.attend(gpu, enc, c, l, &ws.q, &ws.k, &ws.v, &ws.attn, t).await?;
            s.linear(enc, b.attn_out, &ws.attn, &ws.h).await?;
            elementwise::add_in_place(gpu, enc, &ws.x, &ws.h, tu * d).await?;

            s.norm(enc, b.ffn_norm, &ws.x, &ws.h).await?;
            s.linear(enc, b.up, &ws.h, &ws.up).await?;
            elementwise::gelu(gpu, enc, &ws.up, tu * c.d_ffn as u32).await?;
            s.linear(enc, b.down, &ws.up, &ws.h).await?;
            elementwise::add_in_place(gpu, enc, &ws.x, &ws.h, tu * d).await?;
        }
        s.norm(enc, self.output_norm, &ws.x, &ws.h).await?;
        cache.len += t;
        Ok(&ws.h)
    }
}

/// What the steps of one forward pass share: t tokens of width d.
struct Step<'a> {
    gpu: &'a Gpu,
    model: &'a LoadedModel,
    scratch: &'a wgpu::Buffer,
    t: u32,
    d: u32,
    eps: f32,
}

impl Step<'_> {
    fn w(&self, i: usize) -> &GpuTensor {
        &self.model.tensors[i]
    }

    /// Record out = LayerNorm(x)·weight + bias, (t, d).
    async fn norm(
        &self,
        enc: &mut wgpu::CommandEncoder,
        p: Pair,
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (weight, bias) = (self.w(p.weight), self.w(p.bias));
        layer_norm(self.gpu, enc, x, weight, bias, out, self.t, self.d, self.eps).await
    }

    /// Record out = x·Wᵀ + b, with whatever compression added to the layer.
    async fn linear(
        &self,
        enc: &mut wgpu::CommandEncoder,
        p: Pair,
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let bias = f32_bias(self.gpu, self.w(p.bias)).await?;
        let lin = Linear { gpu: self.gpu, model: self.model, scratch: self.scratch, t: self.t };
        lin.run(enc, x, p.weight, Some(&bias), out).await
    }
}
