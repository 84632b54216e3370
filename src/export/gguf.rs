//! What a GGUF export writes besides the tensors: the source's metadata (architecture, tokenizer,
//! hyperparameters — the shape-given ones taken from the tensors), and where the file came from
//! (`squeeze.*`: version, source file, recipe).

use super::shapes::{uniform, Shapes};
use crate::compress::Recipe;
use crate::error::{Error, Result};
use crate::formats::gguf_write::GgufWriter;
use crate::formats::{Container, MetaValue, ModelHeader};

/// GGUF export keeps the source's tensor names and metadata, so it needs a GGUF source.
pub(super) fn check_source(header: &ModelHeader) -> Result<()> {
    match header.container {
        Container::Gguf => Ok(()),
        Container::Safetensors => Err(Error::Invalid(format!(
            "{}: GGUF export needs a model opened from a GGUF file. A Hugging Face checkpoint would need its \
             tensor names, rotary layout and tokenizer.json converted (llama.cpp's convert_hf_to_gguf.py does \
             that); export .safetensors instead, or convert the source with llama.cpp first",
            header.files.join(", ")
        ))),
    }
}

/// A writer holding the exported file's metadata. `quantised`: whether any tensor is in a ggml block
/// format.
pub(super) fn writer(
    header: &ModelHeader,
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    quantised: bool,
    notes: &mut Vec<String>,
) -> Result<GgufWriter> {
    let mut w = GgufWriter::new();
    for (key, value) in metadata(header, shapes, recipe, quantised, notes) {
        w.set(&key, value)?;
    }
    Ok(w)
}

/// The metadata of the exported file, in writing order.
fn metadata(
    header: &ModelHeader,
    shapes: &Shapes,
    recipe: Option<&Recipe>,
    quantised: bool,
    notes: &mut Vec<String>,
) -> Vec<(String, MetaValue)> {
    let mut meta: Vec<(String, MetaValue)> = Vec::new();
    for (key, value) in &header.metadata {
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
    let arch = header.summary.architecture.clone();
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
    if header.metadata.contains_key(&kv_key) || shapes.n_kv_heads != shapes.n_heads {
        shaped.push(("attention.head_count_kv", per_block(&shapes.n_kv_heads)));
    }
    if header.metadata.contains_key(&format!("{arch}.vocab_size")) {
        shaped.push(("vocab_size", MetaValue::U32(shapes.vocab as u32)));
    }
    for (suffix, value) in shaped {
        let key = format!("{arch}.{suffix}");
        let before = header.metadata.get(&key);
        if before.map(numbers) != Some(numbers(&value)) {
            notes.push(format!(
                "{key} set to {:?} from the tensors (was {:?})",
                numbers(&value),
                before.map(numbers)
            ));
            set(key, value);
        }
    }
    if quantised && !header.metadata.contains_key("general.quantization_version") {
        set("general.quantization_version".into(), MetaValue::U32(2));
    }
    set("squeeze.version".into(), MetaValue::String(env!("CARGO_PKG_VERSION").into()));
    set("squeeze.source".into(), MetaValue::String(header.files.join(", ")));
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
