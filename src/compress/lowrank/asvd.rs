//! ASVD (Yuan et al. 2023, "Activation-aware Singular Value Decomposition"): factor W·S instead of W,
//! S = diag(s) with s_j = mean|x_j|^α over the calibration tokens (α = 0.5 in the paper), then undo S
//! in the second factor. Truncating W·S discards what matters least *after* each input channel is
//! weighted by its typical activation, so the channels carrying large activations — the ones whose
//! errors reach the output — are kept best.

use super::svd::project;
use super::Factors;
use crate::error::{Error, Result};

/// The scales s_j = mean|x_j|^α of the input channels.
pub fn scales(mean_abs: &[f32], alpha: f64) -> Vec<f32> {
    mean_abs.iter().map(|&m| (m as f64).powf(alpha) as f32).collect()
}

/// Rank-`rank` factors of the (rows, cols) `w` through the leading singular directions of W·S, with
/// s = [`scales`]: A·B = U_r·U_rᵀ·W for U_r the top left singular vectors of W·S (B = Σ^½·Vᵀ·S⁻¹
/// where S is invertible). `singular_values` are those of W·S.
pub fn asvd(
    w: &[f32],
    rows: usize,
    cols: usize,
    mean_abs: &[f32],
    alpha: f64,
    rank: usize,
) -> Result<Factors> {
    if mean_abs.len() != cols {
        return Err(Error::Invalid(format!(
            "{} input statistics for a matrix of {cols} columns",
            mean_abs.len()
        )));
    }
    let s = scales(mean_abs, alpha);
    let scaled: Vec<f32> =
        w.chunks_exact(cols).flat_map(|row| row.iter().zip(&s).map(|(&x, &s)| x * s)).collect();
    project(w, &scaled, rows, cols, rank)
}
