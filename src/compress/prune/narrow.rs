//! A narrower model: some rows and columns of some tensors kept, vectors added or replaced, and the
//! widths in the metadata (GGUF) or config (Hugging Face) and the summary updated — what width pruning
//! (`width`) leaves. Untouched tensors share the original's GPU buffers.
//!
//! A tensor that only loses rows keeps its stored bytes, row by row, in any format: exactly the
//! original's kept rows. One that loses columns is decoded and stored dense like a pruned matrix
//! (`store_dense`: its float type, F16 for a block format, whose blocks the removed columns break);
//! a quantising step after the pruning step packs it again.

use super::store_dense;
use crate::error::{Error, Result};
use crate::formats::{ArchSummary, Container, DType, MetaValue, TensorInfo};
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::config::ModelConfig;
use crate::model::LoadedModel;
use std::collections::{BTreeMap, HashMap};

/// The hyperparameters a narrowed model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_ffn: usize,
    pub d_model: usize,
}

impl Widths {
    pub fn of(cfg: &ModelConfig) -> Widths {
        Widths {
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
            d_ffn: cfg.d_ffn,
            d_model: cfg.d_model,
        }
    }
}

/// What to keep of one tensor.
#[derive(Debug, Default)]
struct Keep {
    rows: Option<Vec<usize>>,
    /// A vector's entries are its columns.
    cols: Option<Vec<usize>>,
    /// Whether the model must have the tensor.
    required: bool,
}

/// What to keep of which tensor.
#[derive(Debug, Default)]
pub struct Cut {
    /// By tensor name.
    keep: BTreeMap<String, Keep>,
    /// (name, the tensor it follows, f32 values): a new vector, or one replacing the tensor of that name.
    vectors: Vec<(String, String, Vec<f32>)>,
}

impl Cut {
    /// Keep these rows (outer index) of matrix `name`.
    pub fn rows(&mut self, name: &str, rows: &[usize]) {
        let entry = self.keep.entry(name.into()).or_default();
        entry.rows = Some(rows.to_vec());
        entry.required = true;
    }

    /// Keep these columns of matrix `name`, if the model has it (an untied output head may be absent).
    pub fn cols(&mut self, name: &str, cols: &[usize]) {
        self.keep.entry(name.into()).or_default().cols = Some(cols.to_vec());
    }

    /// Keep these entries of vector `name` (a norm or a bias), if the model has it.
    pub fn entries(&mut self, name: &str, entries: &[usize]) {
        self.cols(name, entries);
    }

    /// Put the f32 vector `values` named `name` right after tensor `after` (replacing any `name`).
    pub fn set_vector(&mut self, name: &str, after: &str, values: Vec<f32>) {
        self.vectors.push((name.into(), after.into(), values));
    }
}

/// What `narrow` did, in words for the step report.
pub struct Narrowing {
    pub model: LoadedModel,
    pub note: String,
}

/// `model` with `cut` applied and `widths` in its metadata.
pub async fn narrow(gpu: &Gpu, model: &LoadedModel, cut: &Cut, widths: &Widths) -> Result<Narrowing> {
    let present = |name: &str| model.header.tensors.iter().any(|t| t.name == name);
    if let Some((name, _)) = cut.keep.iter().find(|(name, k)| k.required && !present(name)) {
        return Err(Error::Invalid(format!("width pruning: the model has no tensor {name}")));
    }
    let mut header = model.header.clone();
    header.tensors.clear();
    let (mut tensors, mut extras) = (Vec::new(), HashMap::new());
    let (mut by_rows, mut decoded) = (Vec::new(), Vec::new());
    for (i, (info, tensor)) in model.header.tensors.iter().zip(&model.tensors).enumerate() {
        if cut.vectors.iter().any(|v| v.0 == info.name) {
            continue; // replaced, after the tensor it follows
        }
        match cut.keep.get(&info.name) {
            None => {
                if let Some(e) = model.extras.get(&i) {
                    extras.insert(header.tensors.len(), e.clone());
                }
                header.tensors.push(info.clone());
                tensors.push(tensor.clone());
            }
            Some(Keep { rows, cols, .. }) => {
                if model.extras.contains_key(&i) {
                    return Err(Error::Invalid(format!(
                        "width pruning: {} has run-time extras from an earlier step; prune width first",
                        info.name
                    )));
                }
                let (shape, dtype, bytes) =
                    slice(gpu, info, tensor, rows.as_deref(), cols.as_deref()).await?;
                match cols {
                    None => by_rows.push(info.dtype),
                    Some(_) => decoded.push((info.dtype, dtype)),
                }
                push(gpu, &mut header.tensors, &mut tensors, info, shape, dtype, &bytes)?;
            }
        }
        for (name, _, values) in cut.vectors.iter().filter(|v| v.1 == info.name) {
            let template = TensorInfo { name: name.clone(), ..info.clone() };
            let bytes = bytemuck::cast_slice(values);
            let shape = vec![values.len() as u64];
            push(gpu, &mut header.tensors, &mut tensors, &template, shape, DType::F32, bytes)?;
        }
    }
    set_widths(&mut header, widths);
    let note = format!(
        "{} tensors lost rows only and keep their stored bytes ({}); {} lost columns and were decoded and \
         stored dense ({}){}",
        by_rows.len(),
        type_counts(by_rows.iter().map(|d| d.name())),
        decoded.len(),
        type_counts(decoded.iter().map(|(from, to)| format!("{} → {}", from.name(), to.name()))),
        match cut.vectors.len() {
            0 => String::new(),
            n => format!("; {n} f32 bias vectors written"),
        }
    );
    Ok(Narrowing { model: LoadedModel { header, tensors, timings: model.timings, extras }, note })
}

/// "Q4_1 ×60, F32 ×2".
fn type_counts(names: impl Iterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    names.for_each(|n| *counts.entry(n).or_default() += 1);
    let parts: Vec<String> = counts.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
    match parts.is_empty() {
        true => "none".into(),
        false => parts.join(", "),
    }
}

fn push(
    gpu: &Gpu,
    infos: &mut Vec<TensorInfo>,
    tensors: &mut Vec<GpuTensor>,
    template: &TensorInfo,
    shape: Vec<u64>,
    dtype: DType,
    bytes: &[u8],
) -> Result<()> {
    let info = TensorInfo { shape, dtype, n_bytes: bytes.len() as u64, ..template.clone() };
    tensors.push(gpu.upload_tensor(&info.name, &info.shape, dtype, bytes)?);
    infos.push(info);
    Ok(())
}

/// The kept `rows` and `cols` of a tensor: (shape, stored type, bytes).
async fn slice(
    gpu: &Gpu,
    info: &TensorInfo,
    tensor: &GpuTensor,
    rows: Option<&[usize]>,
    cols: Option<&[usize]>,
) -> Result<(Vec<u64>, DType, Vec<u8>)> {
    let (r, c) = (info.rows() as usize, info.cols() as usize);
    let out_of = |what: &str, n: usize, of: usize| {
        Error::Invalid(format!("width pruning: {what} {n} of {} does not exist (it has {of})", info.name))
    };
    if let Some(&i) = rows.into_iter().flatten().find(|&&i| i >= r) {
        return Err(out_of("row", i, r));
    }
    if let Some(&j) = cols.into_iter().flatten().find(|&&j| j >= c) {
        return Err(out_of("column", j, c));
    }
    let all_rows: Vec<usize> = (0..r).collect();
    let rows = rows.unwrap_or(&all_rows);
    let shape = match info.shape.len() {
        1 => vec![cols.map_or(c, <[usize]>::len) as u64],
        _ => vec![rows.len() as u64, cols.map_or(c, <[usize]>::len) as u64],
    };
    match cols {
        None => {
            let bytes = gpu.read_bytes(&tensor.buffer, 0, info.n_bytes).await?;
            let per_row = info.n_bytes as usize / r;
            let kept = rows.iter().flat_map(|&i| &bytes[i * per_row..(i + 1) * per_row]).copied().collect();
            Ok((shape, info.dtype, kept))
        }
        Some(cols) => {
            let values = dequantize_to_vec(gpu, tensor).await?;
            let values = &values;
            let kept: Vec<f32> =
                rows.iter().flat_map(|&i| cols.iter().map(move |&j| values[i * c + j])).collect();
            let stored = store_dense(&kept, info.dtype);
            Ok((shape, stored.dtype, stored.bytes))
        }
    }
}

/// Write `widths` into the header's metadata or config, and the summary from them.
fn set_widths(header: &mut crate::formats::ModelHeader, w: &Widths) {
    // Without an explicit head width, readers take d_model / heads.
    let head_dim_needed = w.d_model != w.n_heads * w.head_dim;
    match header.container {
        Container::Gguf => {
            let arch = header.summary.architecture.clone();
            let mut set = |key: &str, v: usize| {
                header.metadata.insert(format!("{arch}.{key}"), MetaValue::U32(v as u32));
            };
            set("attention.head_count", w.n_heads);
            set("attention.head_count_kv", w.n_kv_heads);
            set("feed_forward_length", w.d_ffn);
            set("embedding_length", w.d_model);
            if head_dim_needed {
                set("attention.key_length", w.head_dim);
                set("attention.value_length", w.head_dim);
            }
            header.summary = ArchSummary::from_gguf(&header.metadata, &header.tensors);
        }
        Container::Safetensors => {
            if let Some(c) = header.config.as_mut().and_then(|c| c.as_object_mut()) {
                c.insert("num_attention_heads".into(), w.n_heads.into());
                c.insert("num_key_value_heads".into(), w.n_kv_heads.into());
                c.insert("intermediate_size".into(), w.d_ffn.into());
                c.insert("hidden_size".into(), w.d_model.into());
                if head_dim_needed {
                    c.insert("head_dim".into(), w.head_dim.into());
                }
            }
            header.summary = ArchSummary::from_config(header.config.as_ref(), &header.tensors);
        }
    }
}
