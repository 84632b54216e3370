//! What a compression did, as the page and `squeeze compress --json` show it.

use super::allot::Allotment;
use super::prune::width::Removed;
use super::recipe::Recipe;
use crate::eval::kld::Divergence;
use serde::Serialize;

/// One tensor a step rewrote.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub method: String,
    pub layer: Option<usize>,
    pub dtype_before: String,
    pub dtype_after: String,
    pub params: u64,
    /// Stored bytes after, including scales, zero points and kept outliers.
    pub bytes: u64,
    pub bpw: f64,
    /// ‖Ŵ − W‖² / ‖W‖² against the weights before this step.
    pub rel_mse: f64,
    /// With calibration: Σ ΔHΔᵀ / Σ WHWᵀ over sampled rows — the relative error of the layer's output
    /// on the calibration inputs.
    pub output_err: Option<f64>,
    /// Weights kept in 16 bit beside the quantised matrix.
    pub outliers: u64,
    /// The share of its weights that are exactly zero after the step (what pruning achieved).
    pub sparsity: f64,
    /// Stored as two low-rank factors of this rank (`bytes` are theirs; `params` stay the matrix's).
    pub rank: Option<u64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub method: String,
    pub tensors: usize,
    pub seconds: f64,
    /// What the method chose, in words (AWQ's α, SmoothQuant's α, outlier columns …).
    pub notes: Vec<String>,
    /// The share of exactly zero weights over the tensors the step rewrote.
    pub sparsity: f64,
    /// Weights that were exactly zero before the step and are not after it: a quantising step after a
    /// pruning step should keep this at 0 (Q4_1's grid and GPTQ's error feedback do not).
    pub zeros_lost: u64,
    /// Width pruning: the units removed, per block (compact index ranges).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Removed>,
    #[serde(skip)]
    pub params: u64,
    #[serde(skip)]
    pub zeros: u64,
    /// Parameters of the low-rank factors the step stored.
    #[serde(skip)]
    pub factor_params: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompressReport {
    pub recipe: Recipe,
    pub steps: Vec<StepReport>,
    pub tensors: Vec<TensorReport>,
    pub calib_tokens: u64,
    pub calib_seconds: f64,
    pub seconds: f64,
    /// Every tensor of the model, counted by its shape.
    pub params: u64,
    /// Every tensor of the model the recipe was given (more than `params` after structured pruning).
    pub params_original: u64,
    /// Parameters the model stores: fewer than `params` where low-rank factors replace matrices.
    pub params_stored: u64,
    pub size_bytes: u64,
    pub size_bytes_original: u64,
    /// Bits per weight of the whole model: stored bits / parameters.
    pub bpw: f64,
    /// Over the compressed tensors only.
    pub bpw_compressed: f64,
    /// Target-bpw steps: the bits each block got and the sensitivity that decided it.
    pub allotments: Vec<Allotment>,
    /// The share of exactly zero weights over the compressed tensors.
    pub sparsity: f64,
    /// Blocks drop_layers removed, numbered as in the original.
    pub blocks_dropped: Vec<usize>,
}

/// A compression and its measurement against the original, flattened for tables and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub bpw: f64,
    pub size_bytes: u64,
    pub ppl: Option<f64>,
    pub ppl_base: Option<f64>,
    pub kld: Option<f64>,
    pub top1: Option<f64>,
    pub dp_rms: Option<f64>,
    /// Compression time (calibration included), not evaluation.
    pub seconds: f64,
    pub eval: Option<Divergence>,
    pub report: CompressReport,
}

impl Outcome {
    pub fn new(report: CompressReport, eval: Option<Divergence>) -> Outcome {
        Outcome {
            bpw: report.bpw,
            size_bytes: report.size_bytes,
            ppl: eval.as_ref().map(|e| e.ppl),
            ppl_base: eval.as_ref().map(|e| e.ppl_base),
            kld: eval.as_ref().map(|e| e.kld),
            top1: eval.as_ref().map(|e| e.top1),
            dp_rms: eval.as_ref().map(|e| e.dp_rms),
            seconds: report.seconds,
            eval,
            report,
        }
    }
}
