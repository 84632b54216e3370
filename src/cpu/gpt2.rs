//! The GPT-2 forward pass on the CPU, composed from the kernels' plain twins: the definition the GPU
//! forward pass in `model::gpt2` is tested against (on tiny models; it is slow on real ones).

use super::{attention::attention, elementwise, embed, matmul::matmul, norm::layer_norm};
use crate::error::{Error, Result};
use crate::model::config::{bias_name, ModelConfig, Role};

/// A weight and its bias, as f32.
struct Pair {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Block {
    attn_norm: Pair,
    qkv: Pair,
    attn_out: Pair,
    ffn_norm: Pair,
    up: Pair,
    down: Pair,
}

pub struct CpuGpt2 {
    cfg: ModelConfig,
    embedding: Vec<f32>,
    positions: Vec<f32>,
    blocks: Vec<Block>,
    output_norm: Pair,
    output: Vec<f32>,
}

impl CpuGpt2 {
    /// `weight(name)` returns a tensor dequantised to f32, or None when the model lacks it.
    pub fn new(cfg: ModelConfig, weight: impl Fn(&str) -> Option<Vec<f32>>) -> Result<CpuGpt2> {
        let need =
            |name: &str| weight(name).ok_or_else(|| Error::Invalid(format!("tensor {name} is missing")));
        let pair = |name: &str| Ok::<_, Error>(Pair { weight: need(name)?, bias: need(&bias_name(name))? });
        let blocks = (0..cfg.n_layers)
            .map(|l| {
                let name = |role| cfg.layer_name(l, role);
                Ok(Block {
                    attn_norm: pair(&name(Role::AttnNorm))?,
                    qkv: pair(&name(Role::Qkv))?,
                    attn_out: pair(&name(Role::AttnOut))?,
                    ffn_norm: pair(&name(Role::FfnNorm))?,
                    up: pair(&name(Role::Up))?,
                    down: pair(&name(Role::Down))?,
                })
            })
            .collect::<Result<_>>()?;
        let embedding = need(cfg.embedding_name())?;
        Ok(CpuGpt2 {
            positions: need(cfg.position_embedding_name())?,
            output: weight(cfg.output_name()).unwrap_or_else(|| embedding.clone()),
            output_norm: pair(cfg.output_norm_name())?,
            embedding,
            blocks,
            cfg,
        })
    }

    /// Logits (t, vocab) for every position of `ids`, starting from an empty context.
    pub fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let c = &self.cfg;
        let (t, d, hd, f) = (ids.len(), c.d_model, c.head_dim, c.d_ffn);
        let (q_dim, kv_dim) = (c.n_heads * hd, c.n_kv_heads * hd);
        let qkv_dim = q_dim + 2 * kv_dim;
        let norm = |x: &[f32], p: &Pair| layer_norm(x, t, d, &p.weight, &p.bias, c.norm_eps);
        let linear = |x: &[f32], k: usize, p: &Pair, n: usize| matmul(x, t, k, &p.weight, n, Some(&p.bias));

        let mut x = embed::embed(&self.embedding, d, ids);
        embed::add_positions(&mut x, &self.positions, 0, t, d);
        for b in &self.blocks {
            let qkv = linear(&norm(&x, &b.attn_norm), d, &b.qkv, qkv_dim);
            let q = elementwise::columns(&qkv, t, qkv_dim, 0..q_dim);
            let k = elementwise::columns(&qkv, t, qkv_dim, q_dim..q_dim + kv_dim);
            let v = elementwise::columns(&qkv, t, qkv_dim, q_dim + kv_dim..qkv_dim);
            let scale = 1.0 / (hd as f32).sqrt();
            let a = attention(&q, &k, &v, t, c.n_heads, c.n_kv_heads, hd, 0, scale);
            elementwise::add_in_place(&mut x, &linear(&a, q_dim, &b.attn_out, d));
            let mut u = linear(&norm(&x, &b.ffn_norm), d, &b.up, f);
            elementwise::gelu(&mut u);
            elementwise::add_in_place(&mut x, &linear(&u, f, &b.down, d));
        }
        matmul(&norm(&x, &self.output_norm), t, d, &self.output, c.vocab, None)
    }
}
