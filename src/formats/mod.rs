//! Model file formats: GGUF and safetensors (+ Hugging Face config.json), the block codecs' types,
//! and the architecture summary. Parsers read headers from byte ranges; tensor data stays in the
//! file until it is uploaded to the GPU or decoded.

pub mod dtype;
pub mod gguf;
pub mod gguf_write;
pub mod packed;
pub mod safetensors;
pub mod safetensors_write;
pub mod source;
pub mod summary;

pub use dtype::{DType, Packed, PackedKind};
pub use source::{ByteSource, MemSource};
pub use summary::ArchSummary;

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where everything goes in a file a writer lays out (`gguf_write`, `safetensors_write`).
#[derive(Debug, Clone)]
pub struct FileLayout {
    /// Everything before the first tensor's data (padding included).
    pub header: Vec<u8>,
    /// Absolute byte offset of each tensor's data, in the order the tensors were added; the gaps
    /// between them (and after the last one, up to `file_len`) are zeros.
    pub offsets: Vec<u64>,
    /// Length of the whole file.
    pub file_len: u64,
}

/// One tensor as stored in a file. `shape` is outermost first (PyTorch order: `[rows, cols]`), so the
/// last dimension is the one blocks run along; GGUF stores dims innermost first and is reversed on read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// Index into `ModelHeader::files` of the file holding the data.
    pub file: usize,
    /// Absolute byte offset of the data in that file.
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Length of the innermost dimension (1 for scalars).
    pub fn cols(&self) -> u64 {
        self.shape.last().copied().unwrap_or(1)
    }
    /// Product of all outer dimensions: the number of output channels of a weight matrix.
    pub fn rows(&self) -> u64 {
        self.n_elements() / self.cols().max(1)
    }
}

/// A GGUF metadata value (all thirteen GGUF value types).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Gguf,
    Safetensors,
}

/// Everything known about a model before any tensor data is read.
#[derive(Debug, Clone, Serialize)]
pub struct ModelHeader {
    pub container: Container,
    /// Names of the files the model was opened from, in the order given.
    pub files: Vec<String>,
    /// GGUF metadata (empty for safetensors).
    #[serde(skip)]
    pub metadata: BTreeMap<String, MetaValue>,
    /// Hugging Face config.json, when the model came as safetensors.
    #[serde(skip)]
    pub config: Option<serde_json::Value>,
    /// tokenizer.json text, when given.
    #[serde(skip)]
    pub tokenizer_json: Option<String>,
    /// tokenizer_config.json (BOS/EOS, chat template), when given.
    #[serde(skip)]
    pub tokenizer_config: Option<serde_json::Value>,
    pub tensors: Vec<TensorInfo>,
    pub summary: ArchSummary,
}

impl ModelHeader {
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| {
            Error::Invalid(format!("no tensor named '{name}' ({} tensors in the model)", self.tensors.len()))
        })
    }
}

/// Open a model from one GGUF file, or from the files of a Hugging Face model directory
/// (config.json, model.safetensors or its shards with model.safetensors.index.json, tokenizer.json,
/// tokenizer_config.json).
pub async fn open_model<S: ByteSource>(sources: &[S]) -> Result<ModelHeader> {
    let is = |s: &S, ext: &str| s.name().to_ascii_lowercase().ends_with(ext);
    if let Some(gguf) = sources.iter().find(|s| is(s, ".gguf")) {
        if sources.len() > 1 {
            return Err(Error::Invalid(format!(
                "a GGUF file is a whole model: open {} on its own, not with {} other files",
                gguf.name(),
                sources.len() - 1
            )));
        }
        return gguf::open(gguf).await;
    }
    if sources.iter().any(|s| is(s, ".safetensors")) {
        return safetensors::open_dir(sources).await;
    }
    let names: Vec<&str> = sources.iter().map(|s| s.name()).collect();
    Err(Error::Invalid(format!(
        "no model file among [{}]: expected a .gguf file or .safetensors files (with config.json)",
        names.join(", ")
    )))
}

/// Read all of a tensor's stored bytes.
pub async fn read_tensor_bytes<S: ByteSource>(sources: &[S], t: &TensorInfo) -> Result<Vec<u8>> {
    let len = usize::try_from(t.n_bytes).map_err(|_| {
        Error::Invalid(format!("tensor {} is too large to read ({} bytes)", t.name, t.n_bytes))
    })?;
    sources[t.file].read(t.offset, len).await
}
