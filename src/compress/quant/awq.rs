//! AWQ (Lin et al., `mit-han-lab/llm-awq` `auto_scale.py`, `auto_clip.py`): activation-aware weight
//! quantisation. Input channels that see large activations are scaled up before rounding, so their weights
//! lose less (the inverse scale is folded into the op that produces the input), and each group's range is
//! clipped where that lowers the output error.
//!
//! Instead of re-running the block on calibration tokens, the output error of replacing W by Ŵ is measured
//! with the input's Hessian H = Σ x xᵀ: Σ_rows Δ_r H Δ_rᵀ with Δ = Ŵ − W, which is the same sum of squared
//! output errors over the calibration tokens.

use super::grid::{blocks, quantize_rtn, Format, Grid};
use super::smoothquant::{divide, scale_columns};
use crate::error::{Error, Result};

/// The scale search scores each candidate on at most this many rows per matrix, taken with a fixed
/// stride; the chosen scales are then scored on all rows.
pub const SEARCH_ROWS: usize = 64;

/// The per-input-channel scales AWQ chose: quantise W·diag(scales), fold 1/scales into the previous op.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqScales {
    pub scales: Vec<f32>,
    /// The exponent α of the chosen scales mean|x|^α.
    pub ratio: f32,
    /// H-loss of plain round-to-nearest (α = 0), summed over the linears, on all rows.
    pub loss_before: f64,
    /// H-loss with the chosen scales, on all rows.
    pub loss_after: f64,
}

/// v H[start.., start..] vᵀ over the `v.len()` columns from `start` of a symmetric (cols, cols) Hessian.
fn quadratic_form(v: &[f32], hessian: &[f32], cols: usize, start: usize) -> f64 {
    let n = v.len();
    // vᵀH accumulated row by row: independent lanes, so the compiler vectorises it (a dot product's
    // single f32 sum it may not reorder).
    let mut vh = vec![0f32; n];
    for (i, &vi) in v.iter().enumerate() {
        let row = &hessian[(start + i) * cols + start..][..n];
        for (acc, &h) in vh.iter_mut().zip(row) {
            *acc += vi * h;
        }
    }
    v.iter().zip(&vh).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Σ_rows Δ_r H Δ_rᵀ for a (rows, cols) difference `delta`: the squared output error over the tokens
/// whose Hessian is `hessian`.
pub fn hessian_loss(delta: &[f32], rows: usize, cols: usize, hessian: &[f32]) -> f64 {
    delta.chunks_exact(cols).take(rows).map(|row| quadratic_form(row, hessian, cols, 0)).sum()
}

fn check_shapes(linears: &[(&[f32], usize)], cols: usize, hessian: &[f32]) -> Result<()> {
    if hessian.len() != cols * cols {
        return Err(Error::Invalid(format!(
            "{cols} input channels need a {cols}×{cols} Hessian, not {} values",
            hessian.len()
        )));
    }
    for &(w, rows) in linears {
        if w.len() != rows * cols {
            return Err(Error::Invalid(format!(
                "a linear of {rows} rows and {cols} columns has {} weights, not {}",
                w.len(),
                rows * cols
            )));
        }
    }
    Ok(())
}

/// AWQ's candidate scales: mean|x|^α (at least 1e-4), normalised so that max·min = 1.
fn candidate_scales(mean_abs: &[f32], ratio: f32) -> Vec<f32> {
    let s: Vec<f32> = mean_abs.iter().map(|&m| m.powf(ratio).max(1e-4)).collect();
    let max = s.iter().fold(f32::MIN, |a, &b| a.max(b));
    let min = s.iter().fold(f32::MAX, |a, &b| a.min(b));
    let norm = (max * min).sqrt();
    s.iter().map(|v| v / norm).collect()
}

/// Every `ceil(rows / max_rows)`-th row of a (rows, cols) matrix, and how many that is.
fn sample_rows(w: &[f32], rows: usize, cols: usize, max_rows: usize) -> (Vec<f32>, usize) {
    let stride = rows.div_ceil(max_rows).max(1);
    let sampled: Vec<f32> = w.chunks_exact(cols).step_by(stride).flatten().copied().collect();
    let n = sampled.len() / cols;
    (sampled, n)
}

/// Σ over the linears of the H-loss of W ← Q(W·diag s)·diag(s)⁻¹, Q round-to-nearest on `format`.
fn scaled_loss(
    linears: &[(&[f32], usize)],
    cols: usize,
    s: &[f32],
    hessian: &[f32],
    format: &Format,
) -> Result<f64> {
    let mut total = 0.0;
    for &(w, rows) in linears {
        let mut scaled = w.to_vec();
        scale_columns(&mut scaled, rows, cols, s);
        let mut restored = quantize_rtn(format, &scaled, rows, cols)?.values;
        let mut delta = Vec::with_capacity(w.len());
        for (row, orig) in restored.chunks_exact_mut(cols).zip(w.chunks_exact(cols)) {
            divide(row, s);
            delta.extend(row.iter().zip(orig).map(|(q, w)| q - w));
        }
        total += hessian_loss(&delta, rows, cols, hessian);
    }
    Ok(total)
}

/// Search α = i/grid, i = 0 … grid−1, for the scales mean|x|^α shared by `linears` (W row-major, rows; all
/// reading the same `cols` inputs) that minimise their summed H-loss after round-to-nearest on `format`.
/// Candidates are scored on at most `SEARCH_ROWS` rows per matrix; if the winner is not better than plain
/// rounding on all rows, the scales stay at 1.
pub fn search_scales(
    linears: &[(&[f32], usize)],
    cols: usize,
    mean_abs: &[f32],
    hessian: &[f32],
    format: &Format,
    grid: usize,
) -> Result<AwqScales> {
    check_shapes(linears, cols, hessian)?;
    if mean_abs.len() != cols {
        return Err(Error::Invalid(format!(
            "{cols} input channels need {cols} values of mean|x|, not {}",
            mean_abs.len()
        )));
    }
    format.dtype(cols)?;
    let sampled: Vec<(Vec<f32>, usize)> =
        linears.iter().map(|&(w, rows)| sample_rows(w, rows, cols, SEARCH_ROWS)).collect();
    let sampled: Vec<(&[f32], usize)> = sampled.iter().map(|(w, rows)| (w.as_slice(), *rows)).collect();
    let ones = vec![1f32; cols];
    let mut best = (f64::INFINITY, 0f32, ones.clone());
    for i in 0..grid {
        let ratio = i as f32 / grid as f32;
        let s = candidate_scales(mean_abs, ratio);
        let loss = scaled_loss(&sampled, cols, &s, hessian, format)?;
        if loss < best.0 {
            best = (loss, ratio, s);
        }
    }
    let (_, ratio, scales) = best;
    let loss_before = scaled_loss(linears, cols, &ones, hessian, format)?;
    let loss_after = scaled_loss(linears, cols, &scales, hessian, format)?;
    Ok(if loss_after < loss_before {
        AwqScales { scales, ratio, loss_before, loss_after }
    } else {
        AwqScales { scales: ones, ratio: 0.0, loss_before, loss_after: loss_before }
    })
}

/// The grid for one group, searched over ranges clipped to ±amax·(1 − i/grid), i < `steps`, by the loss
/// δ H_gg δᵀ on the group's own columns (from `start`).
fn clip_group(
    values: &[f32],
    hessian: &[f32],
    cols: usize,
    start: usize,
    format: &Format,
    grid: usize,
    steps: usize,
) -> Grid {
    let lo = values.iter().fold(0f32, |m, &v| m.min(v));
    let hi = values.iter().fold(0f32, |m, &v| m.max(v));
    let amax = hi.max(-lo);
    let mut best: Option<(f64, Grid)> = None;
    for i in 0..steps {
        let max_val = amax * (1.0 - i as f32 / grid as f32);
        let g = Grid::for_range(format.scheme, lo.max(-max_val), hi.min(max_val));
        let delta: Vec<f32> = values.iter().map(|&v| g.round(v) - v).collect();
        let loss = quadratic_form(&delta, hessian, cols, start);
        if best.is_none_or(|(b, _)| loss < b) {
            best = Some((loss, g));
        }
    }
    best.expect("at least the unclipped range is tried").1
}

/// AWQ's clip search: for every row and group of a (rows, cols) matrix, the range max_val = amax·(1 − i/grid)
/// for i < grid·max_shrink (i = 0 is the unclipped min/max) whose grid gives the least δ_g H_gg δ_gᵀ.
/// Returns one grid per block, row-major, for `quantize_with_grids`.
pub fn search_clip(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    format: &Format,
    grid: usize,
    max_shrink: f32,
) -> Result<Vec<Grid>> {
    check_shapes(&[(w, rows)], cols, hessian)?;
    format.grid_dtype(cols)?;
    if format.per_tensor() {
        return Err(Error::Invalid(format!(
            "the clip search picks a range per row and group; {} shares one grid over the whole tensor",
            format.describe()
        )));
    }
    let group = format.group_len(cols);
    let steps = ((grid as f32 * max_shrink) as usize).max(1);
    let blocks_per_row = cols.div_ceil(group);
    Ok(blocks(w, cols, group)
        .enumerate()
        .map(|(b, values)| {
            let start = (b % blocks_per_row) * group;
            clip_group(values, hessian, cols, start, format, grid.max(1), steps)
        })
        .collect())
}
