//! Where compression changed a tensor: the distribution of Ŵ − W and the weights kept exact.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::dequant::dequantize_to_vec;
use crate::model::LoadedModel;
use serde::Serialize;

/// At most this many kept positions are listed (the count is always exact).
const MAX_LISTED: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct WeightError {
    pub name: String,
    pub dtype_before: String,
    pub dtype_after: String,
    /// Histogram of Ŵ − W over [lo, hi] in `counts.len()` equal bins.
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u64>,
    pub rel_mse: f64,
    pub max_abs: f32,
    /// (row, col) of weights kept in 16 bit, the first `MAX_LISTED`.
    pub kept: Vec<[u32; 2]>,
    pub kept_count: usize,
}

/// Compare tensor `name` of `compressed` with the same tensor of `original` (both decoded, with the
/// kept 16-bit corrections added back, or as the product of low-rank factors).
pub async fn weight_error(
    gpu: &Gpu,
    original: &LoadedModel,
    compressed: &LoadedModel,
    name: &str,
    bins: usize,
) -> Result<WeightError> {
    let (a, b) = (original.tensor(name)?, compressed.tensor(name)?);
    if a.shape != b.shape {
        return Err(Error::Invalid(format!("{name} changed shape ({:?} → {:?})", a.shape, b.shape)));
    }
    let before = dequantize_to_vec(gpu, a).await?;
    let mut after = dequantize_to_vec(gpu, &compressed.matrix(gpu, name).await?).await?;
    let index = compressed.header.tensors.iter().position(|t| t.name == name).expect("found above");
    let extras = compressed.extras.get(&index);
    if let Some(e) = extras {
        e.add_corrections(&mut after, b.cols() as usize);
    }
    let corrections = extras.map_or(&[][..], |e| e.corrections.as_slice());
    let diff: Vec<f32> = after.iter().zip(&before).map(|(x, y)| x - y).collect();
    let max_abs = diff.iter().fold(0f32, |m, d| m.max(d.abs()));
    let (lo, hi) = (-max_abs, max_abs.max(f32::MIN_POSITIVE));
    let bins = bins.max(1);
    let mut counts = vec![0u64; bins];
    for d in &diff {
        let at = (((d - lo) / (hi - lo)) * bins as f32) as usize;
        counts[at.min(bins - 1)] += 1;
    }
    let err: f64 = diff.iter().map(|&d| (d as f64).powi(2)).sum();
    let norm: f64 = before.iter().map(|&w| (w as f64).powi(2)).sum();
    Ok(WeightError {
        name: name.to_string(),
        dtype_before: a.dtype.name(),
        dtype_after: b.dtype.name(),
        lo,
        hi,
        counts,
        rel_mse: err / norm.max(f64::MIN_POSITIVE),
        max_abs,
        kept: corrections.iter().take(MAX_LISTED).map(|&(r, c, _)| [r, c]).collect(),
        kept_count: corrections.len(),
    })
}
