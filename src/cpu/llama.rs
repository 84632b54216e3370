//! The Llama-family forward pass on the CPU, composed from the kernels' plain twins: the definition
//! the GPU forward pass in `model::llama` is tested against (on tiny models; it is slow on real ones).

use super::{attention::attention, elementwise, matmul::matmul, norm::rms_norm, rope::rope};
use crate::error::{Error, Result};
use crate::model::config::{bias_name, ModelConfig, Role};

struct Block {
    attn_norm: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    q_bias: Option<Vec<f32>>,
    k_bias: Option<Vec<f32>>,
    v_bias: Option<Vec<f32>>,
    attn_out: Vec<f32>,
    attn_out_bias: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    down_bias: Option<Vec<f32>>,
}

pub struct CpuLlama {
    cfg: ModelConfig,
    embedding: Vec<f32>,
    blocks: Vec<Block>,
    output_norm: Vec<f32>,
    output: Vec<f32>,
}

impl CpuLlama {
    /// `weight(name)` returns a tensor dequantised to f32, or None when the model lacks it.
    pub fn new(cfg: ModelConfig, weight: impl Fn(&str) -> Option<Vec<f32>>) -> Result<CpuLlama> {
        let need =
            |name: &str| weight(name).ok_or_else(|| Error::Invalid(format!("tensor {name} is missing")));
        let blocks = (0..cfg.n_layers)
            .map(|l| {
                let name = |role| cfg.layer_name(l, role);
                Ok(Block {
                    attn_norm: need(&name(Role::AttnNorm))?,
                    q: need(&name(Role::Q))?,
                    k: need(&name(Role::K))?,
                    v: need(&name(Role::V))?,
                    q_bias: weight(&bias_name(&name(Role::Q))),
                    k_bias: weight(&bias_name(&name(Role::K))),
                    v_bias: weight(&bias_name(&name(Role::V))),
                    attn_out: need(&name(Role::AttnOut))?,
                    attn_out_bias: weight(&bias_name(&name(Role::AttnOut))),
                    ffn_norm: need(&name(Role::FfnNorm))?,
                    gate: need(&name(Role::Gate))?,
                    up: need(&name(Role::Up))?,
                    down: need(&name(Role::Down))?,
                    down_bias: weight(&bias_name(&name(Role::Down))),
                })
            })
            .collect::<Result<_>>()?;
        let embedding = need(cfg.embedding_name())?;
        let output = weight(cfg.output_name()).unwrap_or_else(|| embedding.clone());
        Ok(CpuLlama { output_norm: need(cfg.output_norm_name())?, embedding, blocks, output, cfg })
    }

    /// Logits (t, vocab) for every position of `ids`, starting from an empty context.
    pub fn forward(&self, ids: &[u32]) -> Vec<f32> {
        self.forward_observed(ids, |_, _, _| {})
    }

    /// `forward`, showing `observe(layer, role, x)` the input x (t, k) of each block's linears: `Role::Q`
    /// for q, k, v; `Role::AttnOut`; `Role::Gate` for gate and up; `Role::Down`.
    pub fn forward_observed(&self, ids: &[u32], mut observe: impl FnMut(usize, Role, &[f32])) -> Vec<f32> {
        let c = &self.cfg;
        let (t, d, hd) = (ids.len(), c.d_model, c.head_dim);
        let (q_dim, kv_dim) = (c.n_heads * hd, c.n_kv_heads * hd);
        let mut x: Vec<f32> =
            ids.iter().flat_map(|&id| self.embedding[id as usize * d..][..d].to_vec()).collect();
        for (l, b) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, t, d, &b.attn_norm, c.norm_eps);
            observe(l, Role::Q, &h);
            let mut q = matmul(&h, t, d, &b.q, q_dim, b.q_bias.as_deref());
            let mut k = matmul(&h, t, d, &b.k, kv_dim, b.k_bias.as_deref());
            let v = matmul(&h, t, d, &b.v, kv_dim, b.v_bias.as_deref());
            rope(&mut q, t, c.n_heads, hd, 0, c.rope_base, c.rope_mode);
            rope(&mut k, t, c.n_kv_heads, hd, 0, c.rope_base, c.rope_mode);
            let scale = 1.0 / (hd as f32).sqrt();
            let a = attention(&q, &k, &v, t, c.n_heads, c.n_kv_heads, hd, 0, scale);
            observe(l, Role::AttnOut, &a);
            let o = matmul(&a, t, q_dim, &b.attn_out, d, b.attn_out_bias.as_deref());
            elementwise::add_in_place(&mut x, &o);
            let h = rms_norm(&x, t, d, &b.ffn_norm, c.norm_eps);
            observe(l, Role::Gate, &h);
            let g = matmul(&h, t, d, &b.gate, c.d_ffn, None);
            let u = matmul(&h, t, d, &b.up, c.d_ffn, None);
            let s = elementwise::swiglu(&g, &u);
            observe(l, Role::Down, &s);
            let f = matmul(&s, t, c.d_ffn, &b.down, d, b.down_bias.as_deref());
            elementwise::add_in_place(&mut x, &f);
        }
        let h = rms_norm(&x, t, d, &self.output_norm, c.norm_eps);
        matmul(&h, t, d, &self.output, c.vocab, None)
    }
}
