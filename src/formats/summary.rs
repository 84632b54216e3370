//! The architecture at a glance: layer count, widths, heads, vocabulary and what the weights weigh,
//! taken from GGUF metadata or a Hugging Face config.json plus the tensor table.

use super::{MetaValue, TensorInfo};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, Default)]
pub struct ArchSummary {
    /// The model family the forward pass knows it by: "llama", "qwen2", "gpt2", "gemma3", or the raw
    /// architecture string.
    pub family: String,
    /// GGUF `general.architecture`, or config.json `model_type` / `architectures[0]`.
    pub architecture: String,
    pub name: Option<String>,
    pub n_layers: Option<u64>,
    pub d_model: Option<u64>,
    pub n_heads: Option<u64>,
    pub n_kv_heads: Option<u64>,
    pub d_ffn: Option<u64>,
    pub vocab: Option<u64>,
    pub context: Option<u64>,
    pub head_dim: Option<u64>,
    pub rope_base: Option<f64>,
    pub norm_eps: Option<f64>,
    /// Whether the output projection reuses the token embedding.
    pub tied_embeddings: Option<bool>,
    /// Sum of all tensors' element counts.
    pub params: u64,
    pub tensor_count: usize,
    /// Sum of all tensors' stored bytes.
    pub bytes_total: u64,
    pub bytes_by_dtype: BTreeMap<String, u64>,
    pub params_by_dtype: BTreeMap<String, u64>,
}

impl ArchSummary {
    /// From GGUF metadata (`{arch}.block_count` …) and the tensor table.
    pub fn from_gguf(metadata: &BTreeMap<String, MetaValue>, tensors: &[TensorInfo]) -> ArchSummary {
        let text = |key: &str| match metadata.get(key) {
            Some(MetaValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        let architecture = text("general.architecture").unwrap_or_default();
        let arch_key = |key: &str| metadata.get(&format!("{architecture}.{key}"));
        let int = |key: &str| arch_key(key).and_then(meta_u64);
        let float = |key: &str| arch_key(key).and_then(meta_f64);
        let d_model = int("embedding_length");
        let n_heads = int("attention.head_count");
        let vocab = int("vocab_size").or_else(|| match metadata.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array(tokens)) => Some(tokens.len() as u64),
            _ => None,
        });
        ArchSummary {
            family: family_of(&architecture),
            name: text("general.name"),
            n_layers: int("block_count"),
            d_model,
            n_heads,
            n_kv_heads: int("attention.head_count_kv").or(n_heads),
            d_ffn: int("feed_forward_length"),
            vocab,
            context: int("context_length"),
            head_dim: int("attention.key_length").or_else(|| head_dim(d_model, n_heads)),
            rope_base: float("rope.freq_base"),
            norm_eps: float("attention.layer_norm_rms_epsilon")
                .or_else(|| float("attention.layer_norm_epsilon")),
            tied_embeddings: tied_from_tensors(tensors, "output.weight"),
            architecture,
            ..Self::from_tensors(tensors)
        }
    }

    /// From a Hugging Face config.json (when given) and the tensor table. Multimodal configs keep the
    /// language model's numbers under `text_config`, which is preferred when present.
    pub fn from_config(config: Option<&Value>, tensors: &[TensorInfo]) -> ArchSummary {
        let null = Value::Null;
        let top = config.unwrap_or(&null);
        let text = top.get("text_config").filter(|v| v.is_object()).unwrap_or(top);
        let int = |keys: &[&str]| keys.iter().find_map(|k| text.get(k).and_then(Value::as_u64));
        let float = |keys: &[&str]| keys.iter().find_map(|k| text.get(k).and_then(Value::as_f64));
        let first_arch = top.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str);
        let model_type = top.get("model_type").and_then(Value::as_str);
        let architecture = model_type.or(first_arch).unwrap_or_default().to_string();
        let family = match (model_type, first_arch) {
            (Some(t), _) => family_of(t),
            (None, Some(class)) => family_of(&class_to_model_type(class)),
            (None, None) => String::new(),
        };
        let d_model = int(&["hidden_size", "n_embd"]);
        let n_heads = int(&["num_attention_heads", "n_head"]);
        // GPT-2 configs leave n_inner null and mean 4 × d_model.
        let gpt2_ffn = d_model.filter(|_| family == "gpt2").and_then(|d| d.checked_mul(4));
        let tied = text.get("tie_word_embeddings").and_then(Value::as_bool);
        ArchSummary {
            name: top
                .get("_name_or_path")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            n_layers: int(&["num_hidden_layers", "n_layer"]),
            d_model,
            n_heads,
            n_kv_heads: int(&["num_key_value_heads"]).or(n_heads),
            d_ffn: int(&["intermediate_size", "n_inner"]).or(gpt2_ffn),
            vocab: int(&["vocab_size"]),
            context: int(&["max_position_embeddings", "n_positions"]),
            head_dim: int(&["head_dim"]).or_else(|| head_dim(d_model, n_heads)),
            rope_base: float(&["rope_theta"]),
            norm_eps: float(&["rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"]),
            tied_embeddings: tied.or_else(|| tied_from_tensors(tensors, "lm_head.weight")),
            family,
            architecture,
            ..Self::from_tensors(tensors)
        }
    }

    /// The counts that come from the tensor table alone.
    fn from_tensors(tensors: &[TensorInfo]) -> ArchSummary {
        let mut s = ArchSummary { tensor_count: tensors.len(), ..Default::default() };
        for t in tensors {
            let n = t.n_elements();
            // Saturating: the counts come from the file, and a summary must not panic on a hostile one.
            s.params = s.params.saturating_add(n);
            s.bytes_total = s.bytes_total.saturating_add(t.n_bytes);
            let p = s.params_by_dtype.entry(t.dtype.name()).or_default();
            *p = p.saturating_add(n);
            let b = s.bytes_by_dtype.entry(t.dtype.name()).or_default();
            *b = b.saturating_add(t.n_bytes);
        }
        s
    }

    /// A few lines for the command line.
    pub fn to_text(&self) -> String {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let f = |v: Option<f64>| v.map_or("?".to_string(), |v| v.to_string());
        let mut out = String::new();
        let title = self.name.as_deref().unwrap_or("(unnamed model)");
        let _ = writeln!(out, "{title}: family {}, architecture {}", self.family, self.architecture);
        let _ = writeln!(
            out,
            "{} layers, d_model {}, {} heads ({} KV, head_dim {}), FFN {}, vocab {}, context {}",
            n(self.n_layers),
            n(self.d_model),
            n(self.n_heads),
            n(self.n_kv_heads),
            n(self.head_dim),
            n(self.d_ffn),
            n(self.vocab),
            n(self.context)
        );
        let tied = match self.tied_embeddings {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        let _ = writeln!(
            out,
            "rope base {}, norm eps {}, tied embeddings {tied}",
            f(self.rope_base),
            f(self.norm_eps)
        );
        let _ = writeln!(
            out,
            "{} parameters in {} tensors, {}",
            count(self.params),
            self.tensor_count,
            mebibytes(self.bytes_total)
        );
        for (dtype, params) in &self.params_by_dtype {
            let bytes = self.bytes_by_dtype.get(dtype).copied().unwrap_or(0);
            let _ = writeln!(out, "  {dtype}: {} parameters, {}", count(*params), mebibytes(bytes));
        }
        out
    }
}

/// 134.5M, 40.2K, 576.
fn count(n: u64) -> String {
    match n {
        1_000_000_000.. => format!("{:.2}B", n as f64 / 1e9),
        1_000_000.. => format!("{:.1}M", n as f64 / 1e6),
        1_000.. => format!("{:.1}K", n as f64 / 1e3),
        _ => n.to_string(),
    }
}

fn mebibytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

/// GGUF stores some numbers in whichever integer type the converter chose.
fn meta_u64(v: &MetaValue) -> Option<u64> {
    match *v {
        MetaValue::U8(x) => Some(x.into()),
        MetaValue::U16(x) => Some(x.into()),
        MetaValue::U32(x) => Some(x.into()),
        MetaValue::U64(x) => Some(x),
        MetaValue::I8(x) => u64::try_from(x).ok(),
        MetaValue::I16(x) => u64::try_from(x).ok(),
        MetaValue::I32(x) => u64::try_from(x).ok(),
        MetaValue::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

fn meta_f64(v: &MetaValue) -> Option<f64> {
    match *v {
        // Through the shortest decimal form, so that an f32 1e-5 reads as 1e-5 and not 9.99999974e-6.
        MetaValue::F32(x) => x.to_string().parse().ok(),
        MetaValue::F64(x) => Some(x),
        _ => meta_u64(v).map(|x| x as f64),
    }
}

fn head_dim(d_model: Option<u64>, n_heads: Option<u64>) -> Option<u64> {
    d_model?.checked_div(n_heads?)
}

/// No separate output matrix means the embedding is reused (unknown when there are no tensors at all).
fn tied_from_tensors(tensors: &[TensorInfo], output_name: &str) -> Option<bool> {
    (!tensors.is_empty()).then(|| !tensors.iter().any(|t| t.name == output_name))
}

/// Architecture names that differ only by packaging map to one family.
fn family_of(architecture: &str) -> String {
    match architecture {
        "gemma3_text" => "gemma3".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

/// `LlamaForCausalLM` → `llama`, `GPT2LMHeadModel` → `gpt2`, for configs without a model_type.
fn class_to_model_type(class: &str) -> String {
    let stem = ["ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "Model"]
        .iter()
        .find_map(|suffix| class.strip_suffix(suffix))
        .unwrap_or(class);
    stem.to_ascii_lowercase()
}
