//! Truncated SVD on the CPU in f64, through the Gram matrix of the shorter side: for W (m × n) with
//! m ≤ n, W·Wᵀ = U·Σ²·Uᵀ (m × m) gives the left singular vectors U and the singular values directly;
//! for m > n, Wᵀ·W = V·Σ²·Vᵀ gives V and U = W·V·Σ⁻¹. A symmetric eigensolver of the smaller side
//! (`linalg::symmetric_eigen`) costs about 9·min(m, n)³ flops, the Gram product min(m, n)²·max(m, n).
//!
//! Why the CPU: SmolLM2's largest matrix is 576 × 1536. On the shared 2-core development machine (two
//! runs of tests/lowrank.rs `factorisation_timing`) its f64 Gram product takes 106–202 ms on the CPU
//! against 0.84–2.7 s as an f32 matmul on the GPU (lavapipe, itself the CPU), and the 576 × 576
//! eigensolver, which has no GPU kernel, 342–478 ms; the whole truncated SVD at keep 0.8 0.56–1.0 s.
//! On a real GPU the Gram product would take milliseconds, but it is at most a third of the whole, and
//! the GPU would compute it in f32: the CPU route stays, for every size.
//!
//! Squaring W squares its condition number, but the truncation only needs the leading singular
//! directions, which the Gram matrix resolves to about √ε·σ₁ — far below what f16 factors keep.

use super::Factors;
use crate::compress::linalg::{axpy, dot, gram, symmetric_eigen};
use crate::error::{Error, Result};

/// The best rank-`rank` approximation of the (rows, cols) matrix `w` as two factors, A = U_r·Σ_r^½
/// and B = Σ_r^½·V_rᵀ.
pub fn truncated_svd(w: &[f32], rows: usize, cols: usize, rank: usize) -> Result<Factors> {
    project(w, w, rows, cols, rank)
}

/// Factors of `w` through the leading singular directions of `m` (W itself, or ASVD's W·S, the same
/// shape): with U_r, σ the top `rank` left singular vectors and values of `m`, A = U_r·Σ_r^½ and
/// B = Σ_r^-½·U_rᵀ·W — so A·B = U_r·U_rᵀ·W, W projected onto that subspace. For m = W this is the
/// truncated SVD; for m = W·S, B equals Σ_r^½·V_rᵀ·S⁻¹ wherever S is invertible, without dividing.
pub(super) fn project(w: &[f32], m: &[f32], rows: usize, cols: usize, rank: usize) -> Result<Factors> {
    if w.len() != rows * cols || m.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "the matrices have {} and {} values, not {rows}×{cols}",
            w.len(),
            m.len()
        )));
    }
    if rank == 0 || rank > rows.min(cols) {
        return Err(Error::Invalid(format!(
            "rank {rank} of a {rows}×{cols} matrix: must lie in [1, {}]",
            rows.min(cols)
        )));
    }
    if let Some(i) = w.iter().chain(m).position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!("value {} is not finite", i % (rows * cols))));
    }
    let m64: Vec<f64> = m.iter().map(|&v| v as f64).collect();
    let (u, sigma) = left_singular(&m64, rows, cols, rank)?;
    // B = Σ^-½·Uᵀ·W, summed over W's rows; A = U·Σ^½.
    let half: Vec<f64> = sigma[..rank].iter().map(|&s| if s > 0.0 { s.sqrt() } else { 1.0 }).collect();
    let mut b = vec![0.0f64; rank * cols];
    for (k, w_row) in w.chunks_exact(cols).enumerate() {
        let w_row: Vec<f64> = w_row.iter().map(|&v| v as f64).collect();
        for (i, b_row) in b.chunks_exact_mut(cols).enumerate() {
            axpy(u[k * rank + i] / half[i], &w_row, b_row);
        }
    }
    let a = u.iter().enumerate().map(|(ki, &v)| (v * half[ki % rank]) as f32).collect();
    Ok(Factors { rows, cols, rank, a, b: b.iter().map(|&v| v as f32).collect(), singular_values: sigma })
}

/// The top `rank` left singular vectors of the (rows, cols) `m`, as the columns of a (rows, rank)
/// matrix, and all min(rows, cols) singular values, largest first.
fn left_singular(m: &[f64], rows: usize, cols: usize, rank: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let root = |values: &[f64]| -> Vec<f64> { values.iter().map(|&l| l.max(0.0).sqrt()).collect() };
    if rows <= cols {
        let eigen = symmetric_eigen(&gram(m, rows, cols), rows)?;
        let mut u = vec![0.0; rows * rank];
        for (i, v) in eigen.vectors.chunks_exact(rows).take(rank).enumerate() {
            v.iter().enumerate().for_each(|(k, &x)| u[k * rank + i] = x);
        }
        return Ok((u, root(&eigen.values)));
    }
    let mt: Vec<f64> = (0..rows * cols).map(|ji| m[(ji % rows) * cols + ji / rows]).collect();
    let eigen = symmetric_eigen(&gram(&mt, cols, rows), cols)?;
    let sigma = root(&eigen.values);
    // u_i = m·v_i / σ_i; a direction m does not reach (σ_i = 0) contributes nothing and stays zero.
    let mut u = vec![0.0; rows * rank];
    for (k, m_row) in m.chunks_exact(cols).enumerate() {
        for (i, v) in eigen.vectors.chunks_exact(cols).take(rank).enumerate() {
            if sigma[i] > 0.0 {
                u[k * rank + i] = dot(m_row, v) / sigma[i];
            }
        }
    }
    Ok((u, sigma))
}
