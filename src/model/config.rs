//! What the forward pass needs to know about an architecture, and where each weight lives: GGUF names
//! (`blk.3.attn_q.weight`, shared by both families) or Hugging Face names
//! (`model.layers.3.self_attn.q_proj.weight`, Llama family only).

use crate::cpu::rope::RopeMode;
use crate::error::{Error, Result};
use crate::formats::{Container, ModelHeader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama, SmolLM, TinyLlama, Qwen2: RMSNorm, RoPE, grouped-query attention, SwiGLU.
    Llama,
    /// GPT-2: learned positions, LayerNorm with bias, fused QKV with bias, GELU MLP; GGUF only.
    Gpt2,
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    pub container: Container,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_ffn: usize,
    pub vocab: usize,
    pub context: usize,
    /// RoPE (Llama family only; GPT-2 has learned positions instead).
    pub rope_base: f32,
    pub rope_mode: RopeMode,
    pub norm_eps: f32,
}

/// The weights of one transformer block, by role. Each may have a bias beside it: [`bias_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    AttnNorm,
    Q,
    K,
    V,
    /// q, k and v fused into one matrix: q rows, then k rows, then v rows (GPT-2).
    Qkv,
    AttnOut,
    FfnNorm,
    Gate,
    Up,
    Down,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::AttnNorm,
        Role::Q,
        Role::K,
        Role::V,
        Role::Qkv,
        Role::AttnOut,
        Role::FfnNorm,
        Role::Gate,
        Role::Up,
        Role::Down,
    ];
}

impl ModelConfig {
    pub fn from_header(header: &ModelHeader) -> Result<ModelConfig> {
        let s = &header.summary;
        let file = header.files.first().map(String::as_str).unwrap_or("model");
        let family = match s.family.as_str() {
            "llama" | "qwen2" | "mistral" | "smollm" => Family::Llama,
            // Their Conv1D weights are stored transposed, (in, out), unlike every other linear here.
            "gpt2" if header.container == Container::Safetensors => {
                return Err(Error::unsupported(
                    file,
                    "Hugging Face GPT-2 checkpoints are not supported yet; use a GGUF conversion \
                     (llama.cpp's convert_hf_to_gguf.py)",
                ))
            }
            "gpt2" => Family::Gpt2,
            other => {
                return Err(Error::unsupported(
                    file,
                    format!(
                        "architecture '{other}': the forward pass supports the Llama family (llama, qwen2, \
                         mistral, smollm) and gpt2"
                    ),
                ))
            }
        };
        let need = |v: Option<u64>, what: &str| {
            v.map(|v| v as usize)
                .ok_or_else(|| Error::bad_file(file, format!("the model does not say its {what}")))
        };
        let d_model = need(s.d_model, "hidden size")?;
        let n_heads = need(s.n_heads, "attention head count")?;
        // GGUF llama has q/k rows permuted for adjacent-pair rotation; Hugging Face checkpoints and
        // qwen2 GGUFs keep the original rotate-half layout.
        let rope_mode = match (header.container, s.family.as_str()) {
            (Container::Gguf, "llama") => RopeMode::Normal,
            _ => RopeMode::Neox,
        };
        Ok(ModelConfig {
            family,
            container: header.container,
            n_layers: need(s.n_layers, "layer count")?,
            d_model,
            n_heads,
            n_kv_heads: s.n_kv_heads.map_or(n_heads, |v| v as usize),
            head_dim: s.head_dim.map_or(d_model / n_heads.max(1), |v| v as usize),
            d_ffn: need(s.d_ffn, "FFN width")?,
            vocab: need(s.vocab, "vocabulary size")?,
            context: s.context.map_or(2048, |v| v as usize),
            rope_base: s.rope_base.unwrap_or(10_000.0) as f32,
            rope_mode,
            norm_eps: s.norm_eps.unwrap_or(1e-5) as f32,
        })
    }

    pub fn embedding_name(&self) -> &'static str {
        match self.container {
            Container::Gguf => "token_embd.weight",
            Container::Safetensors => "model.embed_tokens.weight",
        }
    }

    pub fn output_norm_name(&self) -> &'static str {
        match self.container {
            Container::Gguf => "output_norm.weight",
            Container::Safetensors => "model.norm.weight",
        }
    }

    /// GPT-2's learned position table, (context, d_model).
    pub fn position_embedding_name(&self) -> &'static str {
        // from_header admits GPT-2 only from GGUF.
        "position_embd.weight"
    }

    /// The output head; absent when tied to the embedding.
    pub fn output_name(&self) -> &'static str {
        match self.container {
            Container::Gguf => "output.weight",
            Container::Safetensors => "lm_head.weight",
        }
    }

    pub fn layer_name(&self, layer: usize, role: Role) -> String {
        match self.container {
            Container::Gguf => {
                let suffix = match role {
                    Role::AttnNorm => "attn_norm.weight",
                    Role::Q => "attn_q.weight",
                    Role::K => "attn_k.weight",
                    Role::V => "attn_v.weight",
                    Role::Qkv => "attn_qkv.weight",
                    Role::AttnOut => "attn_output.weight",
                    Role::FfnNorm => "ffn_norm.weight",
                    Role::Gate => "ffn_gate.weight",
                    Role::Up => "ffn_up.weight",
                    Role::Down => "ffn_down.weight",
                };
                format!("blk.{layer}.{suffix}")
            }
            Container::Safetensors => {
                let suffix = match role {
                    Role::AttnNorm => "input_layernorm.weight",
                    Role::Q => "self_attn.q_proj.weight",
                    Role::K => "self_attn.k_proj.weight",
                    Role::V => "self_attn.v_proj.weight",
                    // As Phi-3 names it; no family supported from Hugging Face files fuses them.
                    Role::Qkv => "self_attn.qkv_proj.weight",
                    Role::AttnOut => "self_attn.o_proj.weight",
                    Role::FfnNorm => "post_attention_layernorm.weight",
                    Role::Gate => "mlp.gate_proj.weight",
                    Role::Up => "mlp.up_proj.weight",
                    Role::Down => "mlp.down_proj.weight",
                };
                format!("model.layers.{layer}.{suffix}")
            }
        }
    }
}

/// The bias beside a weight: `blk.0.attn_q.weight` → `blk.0.attn_q.bias` (both containers name them so).
pub fn bias_name(weight: &str) -> String {
    format!("{}.bias", weight.strip_suffix(".weight").unwrap_or(weight))
}
