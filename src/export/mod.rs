//! Export: a (compressed) model as a GGUF or safetensors file, streamed in pieces — the header first,
//! then one tensor at a time — so neither the page nor the command line holds the whole file.
//!
//! Every tensor's stored bytes go out unchanged when the file format can hold them: GGUF holds the
//! ggml types (F32, F16, Q8_0, Q4_0, Q4_1, MXFP4 …); safetensors holds everything, Squeeze's packed
//! formats as bytes with their layout named in the header. What cannot go out as stored — a packed
//! format in GGUF, or a layer with run-time extras (SpQR/OWQ's 16-bit corrections, SmoothQuant's or
//! LLM.int8()'s activation quantisation) — is decoded and written as F16 (F32 when the source tensor
//! was F32). A matrix stored as two low-rank factors (SVD, ASVD) goes out the same way, as their
//! product: neither format has a layer made of two matrices that llama.cpp or transformers would run.
//! The plan says per tensor which it will be, before any byte is written.

mod gguf;
mod naming;
mod safetensors;
mod shapes;

pub use naming::hf_rows_from_gguf;
pub use shapes::Shapes;

use crate::compress::Recipe;
use crate::cpu::dequant::dequantize;
use crate::error::{Error, Result};
use crate::formats::gguf_write::GgufWriter;
use crate::formats::safetensors_write::SafetensorsWriter;
use crate::formats::{Container, DType, FileLayout, TensorInfo};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::linear::LinearExtras;
use crate::model::LoadedModel;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Gguf,
    Safetensors,
}

impl ExportFormat {
    /// The format a file name asks for by its extension.
    pub fn from_file_name(name: &str) -> Result<ExportFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".gguf") {
            Ok(ExportFormat::Gguf)
        } else if lower.ends_with(".safetensors") {
            Ok(ExportFormat::Safetensors)
        } else {
            Err(Error::Invalid(format!(
                "{name}: unknown export format; the file name must end in .gguf or .safetensors"
            )))
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Gguf => "gguf",
            ExportFormat::Safetensors => "safetensors",
        }
    }

    /// Whether the file format has a type for `dtype`.
    fn holds(self, dtype: DType) -> bool {
        match self {
            ExportFormat::Gguf => dtype.in_gguf(),
            ExportFormat::Safetensors => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The stored bytes, unchanged (rows may be reordered: see the reason).
    Stored,
    /// Decoded (kept weights added back) and written as F16 or F32.
    Dequantised,
}

/// What the export does with one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorPlan {
    /// In the model.
    pub name: String,
    /// In the file.
    pub out_name: String,
    pub shape: Vec<u64>,
    /// As the model stores it.
    pub dtype: String,
    /// As the file stores it.
    pub out_dtype: String,
    pub action: Action,
    pub reason: Option<String>,
    pub bytes: u64,
}

/// Everything the export will write, before it writes it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportPlan {
    pub format: ExportFormat,
    /// A name for the file: the source's with `-squeezed` and the format's extension.
    pub file_name: String,
    pub tensors: Vec<TensorPlan>,
    pub stored: usize,
    pub dequantised: usize,
    /// The whole file.
    pub bytes: u64,
    /// Metadata the export changed or left out, and why.
    pub notes: Vec<String>,
}

/// How one tensor's bytes are made.
struct Job {
    index: usize,
    /// Some: decode and write in this type.
    decode_to: Option<DType>,
    /// Some: file row r is model row rows_from[r].
    rows_from: Option<Vec<usize>>,
}

/// An export in progress: call [`Export::next_piece`] until it answers None, writing each piece after
/// the last.
pub struct Export {
    plan: ExportPlan,
    layout: FileLayout,
    jobs: Vec<Job>,
    /// Pieces handed out: 0 none, 1 the header, 1 + k through tensor k.
    next: usize,
    /// Bytes handed out.
    written: u64,
}

enum Writer {
    Gguf(GgufWriter),
    Safetensors(SafetensorsWriter),
}

impl Writer {
    fn declare(&mut self, name: &str, shape: &[u64], dtype: DType) -> Result<u64> {
        match self {
            Writer::Gguf(w) => w.declare_tensor(name, shape, dtype),
            Writer::Safetensors(w) => w.declare_tensor(name, shape, dtype),
        }
    }

    fn layout(&self) -> FileLayout {
        match self {
            Writer::Gguf(w) => w.layout(),
            Writer::Safetensors(w) => w.layout(),
        }
    }
}

impl Export {
    /// Plan the export of `model` (compressed from `original`, by `recipe` when given). Refuses what
    /// the format cannot describe, naming the tensor or the source.
    pub fn new(
        original: &LoadedModel,
        model: &LoadedModel,
        recipe: Option<&Recipe>,
        format: ExportFormat,
    ) -> Result<Export> {
        let header = &model.header;
        let cfg = ModelConfig::from_header(header)?;
        let shapes = Shapes::of(header, &cfg)?;
        let mut notes = Vec::new();

        let decisions: Vec<(DType, Action, Option<String>)> = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| decide(format, t, model.extras.get(&i), source_is_f32(original, &t.name)))
            .collect();
        let (to, mut writer) = match format {
            ExportFormat::Gguf => {
                let quantised = decisions.iter().any(|(d, _, _)| d.block_size() > 1);
                let w = gguf::writer(header, &cfg, &shapes, recipe, quantised, &mut notes)?;
                (Container::Gguf, Writer::Gguf(w))
            }
            ExportFormat::Safetensors => {
                let w = safetensors::writer(header, &cfg, &shapes, recipe, &mut notes)?;
                (Container::Safetensors, Writer::Safetensors(w))
            }
        };
        // The GGUF side keeps q/k rows interleaved when its architecture is "llama".
        let interleaved = header.container != to && gguf::architecture(header)? == "llama";
        let naming = naming::naming(header, &cfg, &shapes, to, interleaved)?;

        let mut tensors = Vec::new();
        let mut jobs = Vec::new();
        for (i, ((t, (out_dtype, action, mut reason)), (out_name, rows_from))) in header
            .tensors
            .iter()
            .zip(decisions)
            .zip(naming.names.into_iter().zip(naming.rows_from))
            .enumerate()
        {
            let bytes = writer.declare(&out_name, &t.shape, out_dtype)?;
            if rows_from.is_some() {
                reason = Some(naming.reorder_reason.into());
            }
            jobs.push(Job {
                index: i,
                decode_to: (action == Action::Dequantised).then_some(out_dtype),
                rows_from,
            });
            tensors.push(TensorPlan {
                name: t.name.clone(),
                out_name,
                shape: t.shape.clone(),
                dtype: t.dtype.name(),
                out_dtype: out_dtype.name(),
                action,
                reason,
                bytes,
            });
        }
        let layout = writer.layout();
        let count = |a: Action| tensors.iter().filter(|t| t.action == a).count();
        let plan = ExportPlan {
            format,
            file_name: export_name(header.files.first().map_or("model", String::as_str), format),
            stored: count(Action::Stored),
            dequantised: count(Action::Dequantised),
            tensors,
            bytes: layout.file_len,
            notes,
        };
        Ok(Export { plan, layout, jobs, next: 0, written: 0 })
    }

    pub fn plan(&self) -> &ExportPlan {
        &self.plan
    }

    /// The next piece of the file (the header, then each tensor with the zeros before it), or None
    /// when the file is complete. `model` must be the one the export was planned for.
    pub async fn next_piece(&mut self, gpu: &Gpu, model: &LoadedModel) -> Result<Option<Vec<u8>>> {
        let piece = self.next;
        self.next += 1;
        let out = match piece {
            0 => std::mem::take(&mut self.layout.header),
            _ => {
                let k = piece - 1;
                let Some(job) = self.jobs.get(k) else { return Ok(None) };
                let mut out = vec![0u8; (self.layout.offsets[k] - self.written) as usize];
                out.extend(tensor_bytes(gpu, model, job).await?);
                if k + 1 == self.jobs.len() {
                    out.resize((self.layout.file_len - self.written) as usize, 0);
                }
                out
            }
        };
        self.written += out.len() as u64;
        Ok(Some(out))
    }

    /// Bytes handed out so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// What the file stores for tensor `t`: its own type, or F16/F32 decoded when the format has no type
/// for it or the layer needs more than its weight.
fn decide(
    format: ExportFormat,
    t: &TensorInfo,
    extras: Option<&LinearExtras>,
    source_f32: bool,
) -> (DType, Action, Option<String>) {
    let wide = if source_f32 { DType::F32 } else { DType::F16 };
    let format_name = format.extension();
    let reason = match extras {
        Some(LinearExtras { low_rank: Some(f), .. }) => Some(format!(
            "stored as two rank-{} factors (A·B, run as two matmuls), which {format_name} cannot say; \
             their product is written",
            f.rank()
        )),
        Some(e) if !e.corrections.is_empty() => Some(format!(
            "{} weights kept in 16 bit beside it (SpQR/OWQ) added back into the matrix",
            e.corrections.len()
        )),
        Some(e) if e.act_bits.is_some() => Some(format!(
            "its input was quantised to {} bits per token at run time (SmoothQuant/LLM.int8()), which {format_name} \
             cannot say; the weights are written plain",
            e.act_bits.unwrap_or(0)
        )),
        _ if !format.holds(t.dtype) => Some(format!("{format_name} has no type for {}", t.dtype)),
        _ => None,
    };
    match reason {
        Some(r) => (wide, Action::Dequantised, Some(r)),
        None => (t.dtype, Action::Stored, None),
    }
}

/// Whether the original model stored tensor `name` in F32 (then a decoded export keeps F32).
fn source_is_f32(original: &LoadedModel, name: &str) -> bool {
    original.header.tensors.iter().any(|t| t.name == name && t.dtype == DType::F32)
}

/// `SmolLM2.Q4_1.gguf` → `SmolLM2.Q4_1-squeezed.safetensors`.
fn export_name(source: &str, format: ExportFormat) -> String {
    let stem = [".gguf", ".safetensors"].iter().find_map(|ext| source.strip_suffix(ext)).unwrap_or(source);
    format!("{stem}-squeezed.{}", format.extension())
}

/// One tensor's bytes as the file stores them.
async fn tensor_bytes(gpu: &Gpu, model: &LoadedModel, job: &Job) -> Result<Vec<u8>> {
    let t = &model.tensors[job.index];
    let stored = gpu.read_bytes(&t.buffer, 0, t.n_bytes).await?;
    let bytes = match (job.decode_to, model.low_rank(job.index)) {
        (None, _) => stored,
        (Some(dtype), Some(f)) => encode(dtype, &f.product(gpu).await?),
        (Some(dtype), None) => {
            let mut values = dequantize(t.dtype, &stored, t.n_elements() as usize)
                .map_err(|e| Error::Invalid(format!("exporting {}: {e}", t.name)))?;
            if let Some(extras) = model.extras.get(&job.index) {
                extras.add_corrections(&mut values, t.cols() as usize);
            }
            encode(dtype, &values)
        }
    };
    Ok(match &job.rows_from {
        Some(rows_from) => reorder(&bytes, rows_from),
        None => bytes,
    })
}

/// f32 values as F16 or F32 bytes.
fn encode(dtype: DType, values: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        _ => bytemuck::cast_slice(values).to_vec(),
    }
}

/// `bytes` as equal units (rows of a matrix, elements of a vector), unit r taken from unit rows_from[r].
fn reorder(bytes: &[u8], rows_from: &[usize]) -> Vec<u8> {
    let unit = bytes.len() / rows_from.len();
    rows_from.iter().flat_map(|&r| &bytes[r * unit..(r + 1) * unit]).copied().collect()
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{check_out_path, write_file};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::{Export, ExportFormat};
    use crate::error::{Error, Result};
    use crate::gpu::Gpu;
    use crate::model::LoadedModel;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// The format `out` asks for, unless writing it would replace one of the model's own files.
    pub fn check_out_path(out: &Path, inputs: &[PathBuf]) -> Result<ExportFormat> {
        let format = ExportFormat::from_file_name(&out.to_string_lossy())?;
        if let Ok(target) = out.canonicalize() {
            for input in inputs {
                let files: Vec<PathBuf> = match input.is_dir() {
                    true => std::fs::read_dir(input)
                        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                        .unwrap_or_default(),
                    false => vec![input.clone()],
                };
                if files.iter().any(|f| f.canonicalize().is_ok_and(|f| f == target)) {
                    return Err(Error::Invalid(format!(
                        "{}: is a file of the model being compressed; Squeeze never overwrites its input —                          choose another output path",
                        out.display()
                    )));
                }
            }
        }
        Ok(format)
    }

    /// Write the whole export to `path`, through a `.part` file renamed at the end so that a failed
    /// export leaves no half file under the real name.
    pub async fn write_file(gpu: &Gpu, export: &mut Export, model: &LoadedModel, path: &Path) -> Result<()> {
        let part = PathBuf::from(format!("{}.part", path.display()));
        let io = |e: std::io::Error| Error::Io { file: part.display().to_string(), problem: e.to_string() };
        let result = async {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io)?);
            while let Some(piece) = export.next_piece(gpu, model).await? {
                file.write_all(&piece).map_err(io)?;
            }
            file.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
            std::fs::rename(&part, path).map_err(io)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }
}
