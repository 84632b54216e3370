//! Low-rank factorisation: a linear layer's W (out × in) replaced by A (out × r) · B (r × in), stored
//! as the two factors and run as two matmuls, x → (x·Bᵀ)·Aᵀ. `svd` keeps W's r largest singular
//! directions (the best rank-r approximation in Frobenius norm); `asvd` (ASVD) keeps those of W·S,
//! S = diag(mean|x|^α) from calibration, so that input channels carrying large activations are
//! reproduced best.
//!
//! The rank follows from the share of parameters kept: r·(out + in) ≈ keep·out·in.

pub mod asvd;
pub mod svd;

use crate::error::{Error, Result};

/// W ≈ A·B, with the singular values the truncation chose from.
#[derive(Debug, Clone)]
pub struct Factors {
    pub rows: usize,
    pub cols: usize,
    pub rank: usize,
    /// (rows, rank), row-major.
    pub a: Vec<f32>,
    /// (rank, cols), row-major.
    pub b: Vec<f32>,
    /// Every singular value of the matrix factorised (W, or W·S for ASVD), largest first.
    pub singular_values: Vec<f64>,
}

impl Factors {
    /// A·B, (rows, cols): what the two matmuls compute with.
    pub fn product(&self) -> Vec<f32> {
        product(&self.a, &self.b, self.rows, self.rank, self.cols)
    }

    /// Parameters of the two factors: rank·(rows + cols).
    pub fn params(&self) -> usize {
        self.rank * (self.rows + self.cols)
    }
}

/// a (rows, rank) · b (rank, cols), row by row as sums of b's rows.
pub fn product(a: &[f32], b: &[f32], rows: usize, rank: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for (out_row, a_row) in out.chunks_exact_mut(cols).zip(a.chunks_exact(rank)) {
        for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(cols)) {
            out_row.iter_mut().zip(b_row).for_each(|(o, &b)| *o += a_ik * b);
        }
    }
    out
}

/// The rank whose factors hold `keep` of a (rows × cols) matrix's parameters, ⌊keep·rows·cols /
/// (rows + cols)⌋ but at least 1; refused when the factors would not be smaller than the matrix.
pub fn rank_for(keep: f64, rows: usize, cols: usize) -> Result<usize> {
    let (m, n) = (rows as f64, cols as f64);
    let rank = ((keep * m * n / (m + n)).floor() as usize).max(1);
    if rank * (rows + cols) >= rows * cols {
        return Err(Error::Invalid(format!(
            "rank-{rank} factors of a {rows}×{cols} matrix hold {} parameters, not fewer than its {}: \
             keep {keep} saves nothing here",
            rank * (rows + cols),
            rows * cols
        )));
    }
    Ok(rank)
}
