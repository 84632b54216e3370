//! A small GGUF v3 writer: metadata of every value type plus tensors given as raw stored bytes.
//! Tests build synthetic models with it in memory (`to_bytes`); export declares the tensors only and
//! streams their data into the places `layout` gives. It refuses input that llama.cpp would refuse
//! instead of writing a file that cannot be loaded.

use super::gguf::DEFAULT_ALIGNMENT;
use super::{DType, FileLayout, MetaValue};
use crate::error::{Error, Result};

/// llama.cpp keeps tensor names in 64-byte buffers, NUL included.
const MAX_TENSOR_NAME_BYTES: usize = 63;

struct PendingTensor {
    name: String,
    /// Outermost first.
    shape: Vec<u64>,
    dtype: DType,
    n_bytes: u64,
    /// None for a tensor only declared: its data is streamed by the caller.
    data: Option<Vec<u8>>,
}

/// Collects metadata and tensors, then lays them out as a GGUF v3 file.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a metadata key (replacing an earlier value, keeping its position). Arrays must hold one value
    /// type (nested arrays may differ from each other); `general.alignment` must be a power-of-two u32.
    pub fn set(&mut self, key: &str, value: MetaValue) -> Result<()> {
        check_homogeneous(key, &value)?;
        if key == "general.alignment" && !matches!(value, MetaValue::U32(a) if a.is_power_of_two()) {
            return Err(Error::Invalid(format!(
                "general.alignment must be a power-of-two u32, not {value:?}"
            )));
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        Ok(())
    }

    /// Add a tensor. `shape` is outermost first; `data` is the stored bytes (blocks for quantised types).
    pub fn add_tensor(&mut self, name: &str, shape: &[u64], dtype: DType, data: Vec<u8>) -> Result<()> {
        let n_bytes = self.check_tensor(name, shape, dtype)?;
        if n_bytes != data.len() as u64 {
            return Err(Error::Invalid(format!(
                "GGUF tensor {name}: {} bytes given but a {dtype} tensor of shape {shape:?} takes {n_bytes}",
                data.len()
            )));
        }
        self.push(name, shape, dtype, n_bytes, Some(data));
        Ok(())
    }

    /// Declare a tensor whose data the caller writes at its place in [`GgufWriter::layout`].
    /// Returns its size in bytes.
    pub fn declare_tensor(&mut self, name: &str, shape: &[u64], dtype: DType) -> Result<u64> {
        let n_bytes = self.check_tensor(name, shape, dtype)?;
        self.push(name, shape, dtype, n_bytes, None);
        Ok(n_bytes)
    }

    fn push(&mut self, name: &str, shape: &[u64], dtype: DType, n_bytes: u64, data: Option<Vec<u8>>) {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype,
            n_bytes,
            data,
        });
    }

    /// What llama.cpp checks of a tensor info; the stored size when it passes.
    fn check_tensor(&self, name: &str, shape: &[u64], dtype: DType) -> Result<u64> {
        let bad = |problem: String| Err(Error::Invalid(format!("GGUF tensor {name}: {problem}")));
        if name.is_empty() || name.len() > MAX_TENSOR_NAME_BYTES {
            return bad(format!(
                "the name is {} bytes; GGUF allows 1 to {MAX_TENSOR_NAME_BYTES}",
                name.len()
            ));
        }
        if !dtype.in_gguf() {
            return bad(format!("GGUF has no type for {dtype}"));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return bad("added twice".to_string());
        }
        if !(1..=4).contains(&shape.len()) || shape.contains(&0) {
            return bad(format!("shape {shape:?} must have 1 to 4 non-zero dimensions"));
        }
        let cols = shape[shape.len() - 1];
        if !cols.is_multiple_of(dtype.block_size()) {
            return bad(format!(
                "rows of {cols} are not a multiple of the {dtype} block size {}",
                dtype.block_size()
            ));
        }
        match shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).and_then(|n| dtype.bytes_for(n)) {
            Some(n_bytes) => Ok(n_bytes),
            None => bad(format!("shape {shape:?} overflows a byte count")),
        }
    }

    /// The data alignment the file will use: `general.alignment` when set, else 32.
    pub fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, MetaValue::U32(a))) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// The header and the place of every tensor's data.
    pub fn layout(&self) -> FileLayout {
        let align = self.alignment();
        let mut header = Vec::new();
        header.extend_from_slice(b"GGUF");
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut header, key);
            header.extend_from_slice(&type_id(value).to_le_bytes());
            put_value(&mut header, value);
        }
        let mut relative = Vec::new();
        let mut end = 0u64;
        for t in &self.tensors {
            let at = end.next_multiple_of(align);
            relative.push(at);
            end = at + t.n_bytes;
        }
        for (t, &offset) in self.tensors.iter().zip(&relative) {
            put_str(&mut header, &t.name);
            header.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for d in t.shape.iter().rev() {
                header.extend_from_slice(&d.to_le_bytes()); // GGUF wants the innermost dimension first
            }
            header.extend_from_slice(&t.dtype.ggml_id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
        }
        let data_start = (header.len() as u64).next_multiple_of(align);
        header.resize(data_start as usize, 0);
        FileLayout {
            header,
            offsets: relative.iter().map(|r| data_start + r).collect(),
            file_len: (data_start + end).next_multiple_of(align),
        }
    }

    /// The whole file in memory: header, metadata, tensor infos, then each tensor's data at an aligned
    /// offset.
    ///
    /// # Panics
    /// When a tensor was only declared (its data is the caller's to stream).
    pub fn to_bytes(&self) -> Vec<u8> {
        let layout = self.layout();
        let mut out = layout.header;
        for (t, &offset) in self.tensors.iter().zip(&layout.offsets) {
            let data =
                t.data.as_ref().unwrap_or_else(|| panic!("tensor {} was declared without data", t.name));
            out.resize(offset as usize, 0);
            out.extend_from_slice(data);
        }
        out.resize(layout.file_len as usize, 0);
        out
    }
}

/// GGUF arrays carry one element type; a mixed array cannot be written.
fn check_homogeneous(key: &str, value: &MetaValue) -> Result<()> {
    if let MetaValue::Array(items) = value {
        if let Some(first) = items.first() {
            if let Some(odd) = items.iter().find(|v| type_id(v) != type_id(first)) {
                return Err(Error::Invalid(format!(
                    "metadata {key}: array mixes value types {} and {}",
                    type_id(first),
                    type_id(odd)
                )));
            }
        }
        items.iter().try_for_each(|v| check_homogeneous(key, v))?;
    }
    Ok(())
}

/// The GGUF value type number.
fn type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The value without its type (arrays include their element type and length).
fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(items) => {
            // An empty array has lost its element type; it is written as an empty u8 array.
            let elem = items.first().map_or(0, type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|v| put_value(out, v));
        }
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}
