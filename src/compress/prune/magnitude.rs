//! Magnitude pruning: the weights of smallest |w| go, with no data at all. Compared within each output
//! row by default (each output keeps the same number of inputs), or over the whole matrix as the
//! SparseGPT and Wanda repositories' baseline does.

use super::mask::{row_mask, whole_mask, Sparsity};
use crate::error::{Error, Result};

/// Where the smallest weights are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Row,
    Matrix,
}

impl Scope {
    pub fn parse(name: &str) -> Result<Scope> {
        match name {
            "row" => Ok(Scope::Row),
            "matrix" => Ok(Scope::Matrix),
            _ => Err(Error::Invalid(format!("scope must be \"row\" or \"matrix\", not \"{name}\""))),
        }
    }
}

/// The mask (true = pruned) of a (rows, cols) matrix `w`. An N:M pattern compares within its groups,
/// whatever the scope.
pub fn magnitude_mask(w: &[f32], rows: usize, cols: usize, sparsity: Sparsity, scope: Scope) -> Vec<bool> {
    let scores: Vec<f64> = w.iter().map(|&v| v.abs() as f64).collect();
    match (sparsity, scope) {
        (Sparsity::Unstructured(s), Scope::Matrix) => whole_mask(&scores, s),
        _ => row_mask(&scores, rows, cols, sparsity),
    }
}
