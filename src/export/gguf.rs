//! What a GGUF export writes besides the tensors: the source's metadata (architecture, tokenizer,
//! hyperparameters — the shape-given ones taken from the tensors), and where the file came from
//! (`squeeze.*`: version, source file, recipe). A Hugging Face source has no GGUF metadata: it is made
//! from config.json and tokenizer.json as llama.cpp's converter makes it.

use super::shapes::{uniform, Shapes};
use crate::compress::Recipe;
use crate::error::{Error, Result};
use crate::formats::gguf_write::GgufWriter;
use crate::formats::{Container, MetaValue, ModelHeader};
use crate::model::{self, config::ModelConfig};
use std::collections::BTreeMap;

/// The architecture the file declares, which decides llama.cpp's graph and whether q/k rows are
/// interleaved ("llama"): a GGUF source's own, or the one llama.cpp's converter picks for a Hugging Face
/// model of the Llama family.
pub(super) fn architecture(header: &ModelHeader) -> Result<String> {
    let s = &header.summary;
    match (header.container, s.family.as_str()) {
        (Container::Gguf, _) => Ok(s.architecture.clone()),
        (Container::Safetensors, "llama" | "mistral" | "smollm") => Ok("llama".into()),
        (Container::Safetensors, "qwen2") => Ok("qwen2".into()),
        (Container::Safetensors, other) => Err(Error::Invalid(format!(
            "{}: GGUF export from a Hugging Face checkpoint covers the Llama family (llama, mistral, qwen2), \
             not '{other}'; export .safetensors instead",
            header.files.join(", ")
        ))),
    }
}

/// A writer holding the exported file's metadata. `quantised`: whether any tensor is in a ggml block
/// format.
pub(super) fn writer(
    header: &ModelHeader,
    cfg: &ModelConfig,
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    quantised: bool,
    notes: &mut Vec<String>,
) -> Result<GgufWriter> {
    let source = match header.container {
        Container::Gguf => header.metadata.clone(),
        Container::Safetensors => {
            notes.push(
                "metadata built from config.json and tokenizer.json (with tokenizer_config.json when given), as \
                 llama.cpp's convert_hf_to_gguf.py writes it"
                    .into(),
            );
            from_hugging_face(header, cfg)?
        }
    };
    let mut w = GgufWriter::new();
    for (key, value) in metadata(&source, &header.files, shapes, recipe, quantised, notes) {
        w.set(&key, value)?;
    }
    Ok(w)
}

/// The metadata llama.cpp's converter would write for a Hugging Face model: the hyperparameters from
/// config.json, the tokenizer from tokenizer.json (and tokenizer_config.json).
fn from_hugging_face(header: &ModelHeader, cfg: &ModelConfig) -> Result<BTreeMap<String, MetaValue>> {
    let arch = architecture(header)?;
    if header.tokenizer_json.is_none() {
        return Err(Error::Invalid(format!(
            "{}: GGUF export needs the model's tokenizer.json — llama.cpp reads the tokenizer from the GGUF \
             itself; open the model with its tokenizer.json, or export .safetensors instead",
            header.files.join(", ")
        )));
    }
    let tokenizer = model::tokenizer(header)?;
    let u32_ = |v: usize| MetaValue::U32(v as u32);
    let mut meta = BTreeMap::new();
    meta.insert("general.architecture".to_string(), MetaValue::String(arch.clone()));
    if let Some(name) = &header.summary.name {
        meta.insert("general.name".to_string(), MetaValue::String(name.clone()));
    }
    let mut hyper = vec![
        ("context_length", u32_(cfg.context)),
        ("embedding_length", u32_(cfg.d_model)),
        ("block_count", u32_(cfg.n_layers)),
        ("feed_forward_length", u32_(cfg.d_ffn)),
        ("attention.head_count", u32_(cfg.n_heads)),
        ("attention.head_count_kv", u32_(cfg.n_kv_heads)),
        ("rope.freq_base", MetaValue::F32(cfg.rope_base)),
        ("rope.dimension_count", u32_(cfg.head_dim)),
        ("attention.layer_norm_rms_epsilon", MetaValue::F32(cfg.norm_eps)),
        ("vocab_size", u32_(cfg.vocab)),
    ];
    // llama.cpp takes d_model / heads unless told otherwise.
    if cfg.head_dim * cfg.n_heads != cfg.d_model {
        hyper.push(("attention.key_length", u32_(cfg.head_dim)));
        hyper.push(("attention.value_length", u32_(cfg.head_dim)));
    }
    for (suffix, value) in hyper {
        meta.insert(format!("{arch}.{suffix}"), value);
    }
    meta.extend(tokenizer.to_gguf_metadata());
    Ok(meta)
}

/// The metadata of the exported file, in writing order.
fn metadata(
    source: &BTreeMap<String, MetaValue>,
    files: &[String],
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    quantised: bool,
    notes: &mut Vec<String>,
) -> Vec<(String, MetaValue)> {
    let mut meta: Vec<(String, MetaValue)> = Vec::new();
    for (key, value) in source {
        // llama.cpp prints the file type from this key; after compression it is stale, and without it
        // llama.cpp names the file type by counting the tensors' types.
        if key == "general.file_type" {
            notes.push("general.file_type left out: llama.cpp names the file type from its tensors".into());
            continue;
        }
        meta.push((key.clone(), value.clone()));
    }
    let mut set = |key: String, value: MetaValue| match meta.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => meta.push((key, value)),
    };
    let arch = match source.get("general.architecture") {
        Some(MetaValue::String(a)) => a.clone(),
        _ => String::new(),
    };
    let per_block = |v: &[u64]| match uniform(v) {
        Some(x) => MetaValue::U32(x as u32),
        None => MetaValue::Array(v.iter().map(|&x| MetaValue::U32(x as u32)).collect()),
    };
    let mut shaped = vec![
        ("block_count", MetaValue::U32(shapes.n_layers as u32)),
        ("embedding_length", MetaValue::U32(shapes.d_model as u32)),
        ("feed_forward_length", per_block(&shapes.d_ffn)),
        ("attention.head_count", per_block(&shapes.n_heads)),
    ];
    // Absent, llama.cpp takes head_count_kv = head_count.
    let kv_key = format!("{arch}.attention.head_count_kv");
    if source.contains_key(&kv_key) || shapes.n_kv_heads != shapes.n_heads {
        shaped.push(("attention.head_count_kv", per_block(&shapes.n_kv_heads)));
    }
    if source.contains_key(&format!("{arch}.vocab_size")) {
        shaped.push(("vocab_size", MetaValue::U32(shapes.vocab as u32)));
    }
    for (suffix, value) in shaped {
        let key = format!("{arch}.{suffix}");
        let before = source.get(&key);
        if before.map(numbers) != Some(numbers(&value)) {
            notes.push(format!(
                "{key} set to {:?} from the tensors (was {:?})",
                numbers(&value),
                before.map(numbers)
            ));
            set(key, value);
        }
    }
    if quantised && !source.contains_key("general.quantization_version") {
        set("general.quantization_version".into(), MetaValue::U32(2));
    }
    set("squeeze.version".into(), MetaValue::String(env!("CARGO_PKG_VERSION").into()));
    set("squeeze.source".into(), MetaValue::String(files.join(", ")));
    if let Some(r) = recipe {
        set("squeeze.recipe".into(), MetaValue::String(r.to_json()));
    }
    meta
}

/// A metadata number or array of numbers as plain integers, to compare values of different types.
fn numbers(v: &MetaValue) -> Vec<i128> {
    match v {
        MetaValue::U8(x) => vec![(*x).into()],
        MetaValue::I8(x) => vec![(*x).into()],
        MetaValue::U16(x) => vec![(*x).into()],
        MetaValue::I16(x) => vec![(*x).into()],
        MetaValue::U32(x) => vec![(*x).into()],
        MetaValue::I32(x) => vec![(*x).into()],
        MetaValue::U64(x) => vec![(*x).into()],
        MetaValue::I64(x) => vec![(*x).into()],
        MetaValue::Array(items) => items.iter().flat_map(numbers).collect(),
        _ => Vec::new(),
    }
}
