//! What a safetensors export writes besides the tensor data: config.json, tokenizer.json and
//! tokenizer_config.json, kept in the header's `__metadata__` so that the one file opens in Squeeze alone.
//! A Hugging Face source keeps its own; from a GGUF source (Llama family) config.json is built from the
//! metadata and the tokenizer files from `tokenizer.ggml.*` (the names and q/k rows: see `naming`).

use super::shapes::{uniform, Shapes};
use crate::compress::Recipe;
use crate::error::{Error, Result};
use crate::formats::safetensors::{CONFIG_KEY, TOKENIZER_CONFIG_KEY, TOKENIZER_KEY};
use crate::formats::safetensors_write::SafetensorsWriter;
use crate::formats::{Container, MetaValue, ModelHeader};
use crate::model::config::ModelConfig;
use crate::model::tokenizer::Tokenizer;
use serde_json::{json, Value};

/// A writer holding the file's metadata: config.json, the tokenizer files when the source has a
/// tokenizer, and where the file came from.
pub(super) fn writer(
    header: &ModelHeader,
    cfg: &ModelConfig,
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    notes: &mut Vec<String>,
) -> Result<SafetensorsWriter> {
    let config = config(header, cfg, shapes, notes)?;
    let mut w = SafetensorsWriter::new();
    for (key, value) in metadata(header, &config, recipe) {
        w.set_metadata(&key, value)?;
    }
    let tokenizer_files = match header.container {
        Container::Safetensors => match &header.tokenizer_json {
            Some(text) => Ok((text.clone(), header.tokenizer_config.as_ref().map(Value::to_string))),
            None => Err("the source came without one, so the file has none".to_string()),
        },
        // A GGUF keeps its tokenizer in metadata: written out as Hugging Face's two files.
        Container::Gguf => Tokenizer::from_gguf(&header.metadata)
            .and_then(|t| Ok((t.to_tokenizer_json()?, Some(t.to_tokenizer_config().to_string()))))
            .map_err(|e| format!("the GGUF's tokenizer cannot be written as one ({e})")),
    };
    match tokenizer_files {
        Ok((json, config)) => {
            if header.container == Container::Gguf {
                notes.push(
                    "tokenizer.json and tokenizer_config.json built from the GGUF's tokenizer.ggml.* metadata"
                        .into(),
                );
            }
            w.set_metadata(TOKENIZER_KEY, json)?;
            if let Some(config) = config {
                w.set_metadata(TOKENIZER_CONFIG_KEY, config)?;
            }
        }
        Err(why) => notes.push(format!(
            "no tokenizer.json: {why}; put the original model's tokenizer.json beside the file to run it"
        )),
    }
    Ok(w)
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
