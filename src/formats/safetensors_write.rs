//! A safetensors writer: the JSON header (with `__metadata__`) first, then the tensors' data in the
//! order they were added, back to back. Types safetensors has (F32, F16, BF16, I8 …) are written under
//! their own names; every other stored format — GGUF blocks, Squeeze's packed formats — as its raw
//! bytes ("U8", shape [outer dims…, bytes per row]) with its real type and shape in
//! `__metadata__["squeeze.formats"]`, which `formats::safetensors` reads back. As in `gguf_write`,
//! tensors may be declared only, their data streamed by the caller into the places `layout` gives.

use super::{DType, FileLayout};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The `__metadata__` key holding {tensor name: {"dtype", "shape"}} of tensors stored as raw bytes.
pub const FORMATS_KEY: &str = "squeeze.formats";

/// The dtypes safetensors names itself (the rest are stored as bytes).
pub const NATIVE: [DType; 8] =
    [DType::F32, DType::F16, DType::BF16, DType::I8, DType::I16, DType::I32, DType::I64, DType::F64];

struct PendingTensor {
    name: String,
    /// As the header states it: the dtype's name, or "U8" for raw bytes.
    dtype: String,
    shape: Vec<u64>,
    n_bytes: u64,
    data: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct SafetensorsWriter {
    metadata: BTreeMap<String, String>,
    tensors: Vec<PendingTensor>,
    /// The entries of `FORMATS_KEY`.
    formats: Map<String, Value>,
}

impl SafetensorsWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a `__metadata__` entry (safetensors allows only text values).
    pub fn set_metadata(&mut self, key: &str, value: String) -> Result<()> {
        if key == FORMATS_KEY {
            return Err(Error::Invalid(format!(
                "safetensors metadata {key} is written by the writer itself"
            )));
        }
        self.metadata.insert(key.to_string(), value);
        Ok(())
    }

    /// Add a tensor with its stored bytes. `shape` is outermost first.
    pub fn add_tensor(&mut self, name: &str, shape: &[u64], dtype: DType, data: Vec<u8>) -> Result<()> {
        let n_bytes = self.check_tensor(name, shape, dtype)?;
        if n_bytes != data.len() as u64 {
            return Err(Error::Invalid(format!(
                "safetensors tensor {name}: {} bytes given but a {dtype} tensor of shape {shape:?} takes {n_bytes}",
                data.len()
            )));
        }
        self.push(name, shape, dtype, n_bytes, Some(data));
        Ok(())
    }

    /// Declare a tensor whose data the caller writes at its place in [`SafetensorsWriter::layout`].
    /// Returns its size in bytes.
    pub fn declare_tensor(&mut self, name: &str, shape: &[u64], dtype: DType) -> Result<u64> {
        let n_bytes = self.check_tensor(name, shape, dtype)?;
        self.push(name, shape, dtype, n_bytes, None);
        Ok(n_bytes)
    }

    /// The stored size of a tensor that may be added.
    fn check_tensor(&self, name: &str, shape: &[u64], dtype: DType) -> Result<u64> {
        let bad = |problem: String| Err(Error::Invalid(format!("safetensors tensor {name}: {problem}")));
        if name.is_empty() || name == "__metadata__" {
            return bad("the name is empty or reserved".to_string());
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return bad("added twice".to_string());
        }
        let n_elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        match n_elements.and_then(|n| dtype.bytes_for(n)) {
            Some(n_bytes) => Ok(n_bytes),
            None => bad(format!("shape {shape:?} is not a whole number of {dtype} blocks")),
        }
    }

    fn push(&mut self, name: &str, shape: &[u64], dtype: DType, n_bytes: u64, data: Option<Vec<u8>>) {
        let (stated_dtype, stated_shape) = match NATIVE.contains(&dtype) {
            true => (dtype.name(), shape.to_vec()),
            false => {
                let outer = &shape[..shape.len().saturating_sub(1)];
                let rows: u64 = outer.iter().product();
                let mut bytes_shape = outer.to_vec();
                bytes_shape.push(n_bytes / rows.max(1));
                self.formats.insert(name.to_string(), json!({"dtype": dtype.name(), "shape": shape}));
                ("U8".to_string(), bytes_shape)
            }
        };
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dtype: stated_dtype,
            shape: stated_shape,
            n_bytes,
            data,
        });
    }

    /// The header (8-byte length, JSON padded with spaces to a multiple of 8 as the reference writer
    /// does) and the place of every tensor's data.
    pub fn layout(&self) -> FileLayout {
        let mut header = Map::new();
        let mut metadata: Map<String, Value> =
            self.metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if !self.formats.is_empty() {
            metadata.insert(
                FORMATS_KEY.to_string(),
                Value::String(Value::Object(self.formats.clone()).to_string()),
            );
        }
        if !metadata.is_empty() {
            header.insert("__metadata__".to_string(), Value::Object(metadata));
        }
        let mut relative = Vec::new();
        let mut end = 0u64;
        for t in &self.tensors {
            relative.push(end);
            header.insert(
                t.name.clone(),
                json!({ "dtype": t.dtype, "shape": t.shape, "data_offsets": [end, end + t.n_bytes] }),
            );
            end += t.n_bytes;
        }
        let mut json = Value::Object(header).to_string().into_bytes();
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        let data_start = bytes.len() as u64;
        FileLayout {
            header: bytes,
            offsets: relative.iter().map(|r| data_start + r).collect(),
            file_len: data_start + end,
        }
    }

    /// The whole file in memory.
    ///
    /// # Panics
    /// When a tensor was only declared.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.layout().header;
        for t in &self.tensors {
            out.extend_from_slice(
                t.data.as_ref().unwrap_or_else(|| panic!("tensor {} was declared without data", t.name)),
            );
        }
        out
    }
}
