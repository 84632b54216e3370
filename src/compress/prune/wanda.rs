//! Wanda (Sun et al. 2023, locuslab/wanda `lib/prune.py`): pruning by weights and activations. The score
//! of W_ij is |W_ij|·‖X_j‖₂, the weight times the norm of the input feature it multiplies over the
//! calibration tokens, compared within each output row (or each N:M group); nothing is updated after.

use super::mask::{row_mask, Sparsity};
use crate::error::{Error, Result};

/// The mask (true = pruned) of a (rows, cols) matrix `w`, given Σx² per input column over the
/// calibration tokens (the norms' squares; their common scale does not change a row's order).
pub fn wanda_mask(
    w: &[f32],
    rows: usize,
    cols: usize,
    sum_sq: &[f32],
    sparsity: Sparsity,
) -> Result<Vec<bool>> {
    if sum_sq.len() != cols || w.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "Wanda: a ({rows}, {cols}) matrix needs {} weights and {cols} input norms, not {} and {}",
            rows * cols,
            w.len(),
            sum_sq.len()
        )));
    }
    let norms: Vec<f64> = sum_sq.iter().map(|&s| (s as f64).sqrt()).collect();
    let scores: Vec<f64> = w.iter().enumerate().map(|(i, &v)| v.abs() as f64 * norms[i % cols]).collect();
    Ok(row_mask(&scores, rows, cols, sparsity))
}
