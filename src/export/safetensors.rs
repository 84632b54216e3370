//! What a safetensors export writes besides the tensor data: Hugging Face tensor names and a
//! config.json, kept in the header's `__metadata__` so that the one file opens in Squeeze alone. From a
//! GGUF source (Llama family) the names are mapped back, the q/k rows are put back in Hugging Face's
//! rotary layout, and config.json is built from the metadata; a Hugging Face source keeps its own.

use super::shapes::{uniform, Shapes};
use crate::compress::Recipe;
use crate::cpu::rope::RopeMode;
use crate::error::{Error, Result};
use crate::formats::safetensors::{CONFIG_KEY, TOKENIZER_KEY};
use crate::formats::safetensors_write::SafetensorsWriter;
use crate::formats::{Container, MetaValue, ModelHeader};
use crate::model::config::{bias_name, Family, ModelConfig, Role};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The file's naming, and a writer holding its metadata: config.json, tokenizer.json when the source has
/// one, and where the file came from.
pub(super) fn writer(
    header: &ModelHeader,
    cfg: &ModelConfig,
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    notes: &mut Vec<String>,
) -> Result<(Naming, SafetensorsWriter)> {
    let naming = naming(header, cfg, shapes)?;
    let config = config(header, cfg, shapes, notes)?;
    let mut w = SafetensorsWriter::new();
    for (key, value) in metadata(header, &config, recipe) {
        w.set_metadata(&key, value)?;
    }
    match (&header.tokenizer_json, header.container) {
        (Some(text), _) => w.set_metadata(TOKENIZER_KEY, text.clone())?,
        (None, Container::Gguf) => notes.push(
            "no tokenizer.json: a GGUF keeps its tokenizer in metadata; put the original model's \
             tokenizer.json beside the file to run it"
                .into(),
        ),
        (None, Container::Safetensors) => {
            notes.push("no tokenizer.json: the source came without one, so the file has none".into())
        }
    }
    Ok((naming, w))
}

/// Each tensor's name in the file, and for q/k rows of a GGUF llama the row each file row comes from.
pub(super) struct Naming {
    pub names: Vec<String>,
    pub rows_from: Vec<Option<Vec<usize>>>,
}

fn naming(header: &ModelHeader, cfg: &ModelConfig, shapes: &Shapes) -> Result<Naming> {
    if header.container == Container::Safetensors {
        return Ok(Naming {
            names: header.tensors.iter().map(|t| t.name.clone()).collect(),
            rows_from: vec![None; header.tensors.len()],
        });
    }
    if cfg.family != Family::Llama {
        return Err(Error::Invalid(format!(
            "{}: safetensors export maps GGUF names to Hugging Face ones for the Llama family only (this is \
             {}); export .gguf instead",
            header.files.join(", "),
            header.summary.architecture
        )));
    }
    let hf = ModelConfig { container: Container::Safetensors, ..cfg.clone() };
    // GGUF name → (Hugging Face name, heads whose rows llama.cpp's converter interleaved).
    let mut map: HashMap<String, (String, Option<usize>)> = HashMap::new();
    for (g, h) in [
        (cfg.embedding_name(), hf.embedding_name()),
        (cfg.output_norm_name(), hf.output_norm_name()),
        (cfg.output_name(), hf.output_name()),
    ] {
        map.insert(g.to_string(), (h.to_string(), None));
    }
    for l in 0..shapes.n_layers {
        for role in Role::ALL {
            let heads = match (cfg.rope_mode, role) {
                (RopeMode::Normal, Role::Q) => Some(shapes.n_heads[l] as usize),
                (RopeMode::Normal, Role::K) => Some(shapes.n_kv_heads[l] as usize),
                _ => None,
            };
            let (g, h) = (cfg.layer_name(l, role), hf.layer_name(l, role));
            map.insert(bias_name(&g), (bias_name(&h), heads));
            map.insert(g, (h, heads));
        }
    }
    let mut naming = Naming { names: Vec::new(), rows_from: Vec::new() };
    for t in &header.tensors {
        let (name, heads) = map.get(&t.name).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor {} has no Hugging Face name (Squeeze maps the Llama family's weights); export .gguf \
                 instead",
                t.name
            ))
        })?;
        naming.names.push(name.clone());
        naming.rows_from.push(heads.map(|h| hf_rows_from_gguf(t.shape[0] as usize, h)));
    }
    Ok(naming)
}

/// llama.cpp's converter interleaves the two rotary halves of each head's q/k rows (Hugging Face row
/// h·d + j·d/2 + i becomes GGUF row h·d + 2i + j); for each Hugging Face row, the GGUF row it is.
pub fn hf_rows_from_gguf(rows: usize, heads: usize) -> Vec<usize> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    (0..rows)
        .map(|r| {
            let (h, k) = (r / head_dim, r % head_dim);
            h * head_dim + 2 * (k % half) + k / half
        })
        .collect()
}

/// config.json: the source's with the shape-given numbers taken from the tensors, or one built from
/// GGUF metadata.
fn config(
    header: &ModelHeader,
    cfg: &ModelConfig,
    shapes: &Shapes,
    notes: &mut Vec<String>,
) -> Result<Value> {
    let per_block = |v: &[u64]| match uniform(v) {
        Some(x) => json!(x),
        None => json!(v),
    };
    let shaped = [
        ("num_hidden_layers", json!(shapes.n_layers)),
        ("hidden_size", json!(shapes.d_model)),
        ("intermediate_size", per_block(&shapes.d_ffn)),
        ("num_attention_heads", per_block(&shapes.n_heads)),
        ("num_key_value_heads", per_block(&shapes.n_kv_heads)),
        ("vocab_size", json!(shapes.vocab)),
    ];
    if uniform(&shapes.d_ffn).is_none() || uniform(&shapes.n_heads).is_none() {
        notes.push(
            "blocks differ in width: config.json lists them per block, which transformers cannot read".into(),
        );
    }
    let Some(source) = &header.config else {
        return config_from_gguf(header, cfg, shaped);
    };
    let mut config = source.clone();
    // Multimodal configs keep the language model's numbers under text_config.
    let text = match config.get("text_config").is_some_and(Value::is_object) {
        true => config.get_mut("text_config").expect("checked"),
        false => &mut config,
    };
    for (key, value) in shaped {
        let before = text.get(key).cloned();
        let implied = key == "num_key_value_heads" && before.is_none() && value != per_block(&shapes.n_heads);
        if before.as_ref().is_some_and(|b| *b != value) || implied {
            notes.push(format!("config.json {key} set to {value} from the tensors (was {before:?})"));
            text[key] = value;
        }
    }
    Ok(config)
}

fn config_from_gguf(header: &ModelHeader, cfg: &ModelConfig, shaped: [(&str, Value); 6]) -> Result<Value> {
    let s = &header.summary;
    let (class, model_type) = match s.family.as_str() {
        "llama" | "smollm" => ("LlamaForCausalLM", "llama"),
        "mistral" => ("MistralForCausalLM", "mistral"),
        "qwen2" => ("Qwen2ForCausalLM", "qwen2"),
        other => {
            return Err(Error::Invalid(format!(
                "{}: no config.json can be built for architecture '{other}'; export .gguf instead",
                header.files.join(", ")
            )))
        }
    };
    let token = |key: &str| match header.metadata.get(key) {
        Some(MetaValue::U32(id)) => json!(id),
        _ => Value::Null,
    };
    let mut config = json!({
        "architectures": [class],
        "model_type": model_type,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.context,
        "rope_theta": s.rope_base.unwrap_or(cfg.rope_base as f64),
        "rms_norm_eps": s.norm_eps.unwrap_or(cfg.norm_eps as f64),
        "hidden_act": "silu",
        "tie_word_embeddings": !header.tensors.iter().any(|t| t.name == cfg.output_name()),
        "bos_token_id": token("tokenizer.ggml.bos_token_id"),
        "eos_token_id": token("tokenizer.ggml.eos_token_id"),
    });
    for (key, value) in shaped {
        config[key] = value;
    }
    Ok(config)
}

/// The `__metadata__` entries: config.json and where the file came from.
fn metadata(header: &ModelHeader, config: &Value, recipe: Option<&Recipe>) -> Vec<(String, String)> {
    let mut meta = vec![
        ("format".to_string(), "pt".to_string()),
        (CONFIG_KEY.to_string(), config.to_string()),
        ("squeeze.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("squeeze.source".to_string(), header.files.join(", ")),
    ];
    if let Some(r) = recipe {
        meta.push(("squeeze.recipe".to_string(), r.to_json()));
    }
    meta
}
