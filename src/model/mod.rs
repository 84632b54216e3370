//! A model opened on the GPU: its parsed header plus every tensor uploaded exactly as stored (packed
//! blocks stay packed, so GPU memory equals the file's tensor bytes).

pub mod config;
pub mod generate;
pub mod gpt2;
pub mod kv_cache;
pub mod linear;
pub mod llama;
pub mod runner;
pub mod sampler;
mod weights;

use crate::error::{Error, Result};
use crate::eval::now_ms;
use crate::formats::{self, ArchSummary, ByteSource, Container, ModelHeader};
use crate::gpu::{row_chunks, Gpu, GpuTensor};
use linear::{LinearExtras, LowRank};
use serde::Serialize;
use std::collections::HashMap;

pub struct LoadedModel {
    pub header: ModelHeader,
    /// In the same order as `header.tensors`.
    pub tensors: Vec<GpuTensor>,
    pub timings: LoadTimings,
    /// Run-time parts of compressed linear layers, by index into `tensors`.
    pub extras: HashMap<usize, LinearExtras>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LoadTimings {
    pub parse_ms: f64,
    pub upload_ms: f64,
}

/// Progress of a long operation: which phase, and how far along it is (bytes for uploads).
pub trait Progress {
    fn report(&mut self, phase: &str, done: u64, total: u64);
    /// Long operations stop with `Error::Cancelled` between steps once this turns true.
    fn cancelled(&self) -> bool {
        false
    }
}

impl<F: FnMut(&str, u64, u64)> Progress for F {
    fn report(&mut self, phase: &str, done: u64, total: u64) {
        self(phase, done, total)
    }
}

/// Forwards only cancellation: for work nested inside an operation that reports its own progress.
pub struct Muted<'a, P: Progress>(pub &'a P);

impl<P: Progress> Progress for Muted<'_, P> {
    fn report(&mut self, _: &str, _: u64, _: u64) {}

    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// One row of the tensor table.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    pub n_bytes: u64,
    pub n_elements: u64,
}

/// What the page and `squeeze info --json` show about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub files: Vec<String>,
    pub container: Container,
    pub summary: ArchSummary,
    pub tensors: Vec<TensorRow>,
    pub timings: Option<LoadTimings>,
    /// GPU memory held by the uploaded tensors (None when only the header was read).
    pub gpu_bytes: Option<u64>,
}

impl ModelView {
    pub fn of_header(header: &ModelHeader) -> ModelView {
        let tensors = header
            .tensors
            .iter()
            .map(|t| TensorRow {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.name(),
                n_bytes: t.n_bytes,
                n_elements: t.n_elements(),
            })
            .collect();
        ModelView {
            files: header.files.clone(),
            container: header.container,
            summary: header.summary.clone(),
            tensors,
            timings: None,
            gpu_bytes: None,
        }
    }
}

/// The model's tokenizer: from GGUF metadata, or from the tokenizer.json (and tokenizer_config.json) of a
/// model directory.
pub fn tokenizer(header: &ModelHeader) -> Result<tokenizer::Tokenizer> {
    match (header.container, &header.tokenizer_json) {
        (Container::Gguf, _) => tokenizer::Tokenizer::from_gguf(&header.metadata),
        (Container::Safetensors, Some(json)) => {
            tokenizer::Tokenizer::from_hugging_face(json, header.tokenizer_config.as_ref())
        }
        (Container::Safetensors, None) => Err(Error::Invalid(format!(
            "{}: no tokenizer.json among the model files; add it to run the model",
            header.files.join(", ")
        ))),
    }
}

impl LoadedModel {
    pub fn view(&self) -> ModelView {
        ModelView {
            timings: Some(self.timings),
            gpu_bytes: Some(
                self.tensors.iter().map(|t| t.buffer.size()).sum::<u64>()
                    + self.extras.values().map(LinearExtras::stored_bytes).sum::<u64>(),
            ),
            ..ModelView::of_header(&self.header)
        }
    }

    pub fn tensor(&self, name: &str) -> Result<&GpuTensor> {
        let index = self.header.tensors.iter().position(|t| t.name == name);
        index.map(|i| &self.tensors[i]).ok_or_else(|| self.header.tensor(name).unwrap_err())
    }

    /// The factors tensor `i` is stored as, when a low-rank step (svd, asvd) replaced it.
    pub fn low_rank(&self, i: usize) -> Option<&LowRank> {
        self.extras.get(&i)?.low_rank.as_ref()
    }

    /// Tensor `name` with the values the model computes with: as stored, or for a matrix stored as
    /// low-rank factors (its own tensor then holds no bytes) their product A·B, uploaded as F32.
    pub async fn matrix(&self, gpu: &Gpu, name: &str) -> Result<GpuTensor> {
        let t = self.tensor(name)?;
        let i = self.header.tensors.iter().position(|t| t.name == name).expect("found above");
        match self.low_rank(i) {
            None => Ok(t.clone()),
            Some(f) => {
                let product = f.product(gpu).await?;
                gpu.upload_tensor(name, &t.shape, formats::DType::F32, bytemuck::cast_slice(&product))
            }
        }
    }
}

/// Parse the model's header and upload all its tensors. The files are only read.
pub async fn load<S: ByteSource>(
    gpu: &Gpu,
    sources: &[S],
    progress: &mut impl Progress,
) -> Result<LoadedModel> {
    let start = now_ms();
    progress.report("parse", 0, 1);
    let header = formats::open_model(sources).await?;
    progress.report("parse", 1, 1);
    let parsed = now_ms();

    let total: u64 = header.tensors.iter().map(|t| t.n_bytes).sum();
    let mut done = 0;
    let mut tensors = Vec::with_capacity(header.tensors.len());
    for info in &header.tensors {
        let file = sources[info.file].name();
        check_fits(gpu, file, info)?;
        let bytes = formats::read_tensor_bytes(sources, info).await?;
        let tensor = gpu
            .upload_tensor(&info.name, &info.shape, info.dtype, &bytes)
            .map_err(|e| Error::DeviceLimit(format!("{file}: {e}")))?;
        tensors.push(tensor);
        done += info.n_bytes;
        progress.report("upload", done, total);
    }
    gpu.finish().await?;
    let uploaded = now_ms();
    Ok(LoadedModel {
        header,
        tensors,
        timings: LoadTimings { parse_ms: parsed - start, upload_ms: uploaded - parsed },
        extras: HashMap::new(),
    })
}

/// Every kernel processes whole rows within one storage binding: refuse tensors whose single row (packed,
/// or dequantised to f32) exceeds it, before uploading anything.
fn check_fits(gpu: &Gpu, file: &str, info: &formats::TensorInfo) -> Result<()> {
    let budget = gpu.limits().max_storage_buffer_binding_size;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    let row_bytes = (info.n_bytes / info.rows().max(1)).max(info.cols() * 4);
    row_chunks(&format!("{file}: tensor {}", info.name), info.rows(), row_bytes, align, budget)?;
    Ok(())
}
pub mod tokenizer;
