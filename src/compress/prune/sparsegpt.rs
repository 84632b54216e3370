//! SparseGPT (Frantar & Alistarh 2023; IST-DASLab/sparsegpt `sparsegpt.py`, `fasterprune`): prune a
//! linear layer one input column at a time and, as GPTQ does for rounding, spread each removed weight's
//! error over the columns still to come through the inverse Hessian of the layer's calibration inputs
//! (optimal brain surgeon with H = 2/N·XᵀX), so that the layer's outputs move as little as possible.
//!
//! The mask adapts as the weights move: at the start of each block of columns (128 by default), the
//! block's weights with the lowest saliency w²/U_pp² — over all rows of the block together — are pruned;
//! with an N:M pattern, each group's M − N lowest are chosen when the loop reaches the group. U is the upper
//! Cholesky factor of (H + λI)⁻¹ (`linalg`), and the update is GPTQ's: column by column inside a block,
//! once per block onto the columns after it, tiles of rows sharing each row of U.
//!
//! ```text
//! for block [b0, b1):  mask ← lowest w²/U_pp² in W[:, b0:b1]   (unstructured)
//!     for p in block:   (N:M: at a group's first column, its M − N lowest w²/U_pp²)
//!         q = 0 if pruned else w_p;  e = (w_p − q)/U_pp;  W[:, p+1:b1] −= e·U[p, p+1:b1]
//!     W[:, b1:] −= E·U[b0:b1, b1:]
//! ```

use super::mask::{prune_n_of_m, whole_mask, Sparsity};
use crate::compress::linalg;
use crate::error::{Error, Result};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseGptOptions {
    pub sparsity: Sparsity,
    /// Added to diag(H), relative to its mean (the reference's `percdamp`).
    pub damp: f64,
    /// Columns per block: the unstructured mask is chosen per block, so unlike GPTQ's the result depends
    /// on it.
    pub block: usize,
}

impl Default for SparseGptOptions {
    fn default() -> Self {
        SparseGptOptions { sparsity: Sparsity::Unstructured(0.5), damp: 0.01, block: 128 }
    }
}

pub struct SparseGptResult {
    /// The pruned and updated weights, (rows, cols): exactly zero where `mask` is set.
    pub values: Vec<f32>,
    /// True where a weight was pruned.
    pub mask: Vec<bool>,
    /// Σ ((w − q)/U_pp)²/2 over the pruned weights, as the reference reports it.
    pub loss: f64,
}

/// Rows pruned together, so that each row of U fetched from memory serves all of them.
const TILE_ROWS: usize = 16;

/// Prune the (rows, cols) weights `w` with SparseGPT, given the Hessian Σ x·xᵀ (cols, cols) of the
/// layer's inputs over `tokens` calibration tokens.
pub fn sparsegpt(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    tokens: usize,
    opts: &SparseGptOptions,
) -> Result<SparseGptResult> {
    check(w, rows, cols, hessian, tokens, opts)?;
    let (mut h, dead) = linalg::layer_hessian(hessian, tokens, cols);
    let lambda = linalg::damping(&h, cols, opts.damp);
    (0..cols).for_each(|i| h[i * cols + i] += lambda);
    let u = linalg::upper_cholesky_of_inverse(&h, cols).map_err(|e| {
        Error::Invalid(format!(
            "SparseGPT: the Hessian damped by {} of its mean diagonal cannot be inverted ({e}); raise the \
             damping",
            opts.damp
        ))
    })?;
    let mut w: Vec<f64> =
        w.iter().enumerate().map(|(i, &v)| if dead[i % cols] { 0.0 } else { v as f64 }).collect();
    let mut mask = vec![false; rows * cols];
    let mut loss = 0.0;
    let mut err = vec![0.0; TILE_ROWS * opts.block];
    for b0 in (0..cols).step_by(opts.block) {
        let block = b0..(b0 + opts.block).min(cols);
        if let Sparsity::Unstructured(s) = opts.sparsity {
            choose_block(&w, &u, rows, cols, block.clone(), s, &mut mask);
        }
        let tile = TILE_ROWS * cols;
        for (w, mask) in w.chunks_mut(tile).zip(mask.chunks_mut(tile)) {
            for (r, (w, mask)) in w.chunks_exact_mut(cols).zip(mask.chunks_exact_mut(cols)).enumerate() {
                let err = &mut err[r * opts.block..(r + 1) * opts.block];
                loss += prune_row(w, mask, &u, block.clone(), opts.sparsity, err);
            }
            propagate(w, &u, cols, block.clone(), &err);
        }
    }
    Ok(SparseGptResult { values: w.iter().map(|&v| v as f32).collect(), mask, loss })
}

fn check(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &[f32],
    tokens: usize,
    opts: &SparseGptOptions,
) -> Result<()> {
    let problem = linalg::hessian_args_problem(w, rows, cols, hessian, tokens, opts.block, opts.damp).or(
        match opts.sparsity {
            Sparsity::NOfM { n, m } if !opts.block.is_multiple_of(m) => Some(format!(
                "blocks of {} columns do not split into the {n}:{m} pattern's groups",
                opts.block
            )),
            _ => None,
        },
    );
    match problem {
        Some(p) => Err(Error::Invalid(format!("SparseGPT: {p}"))),
        None => opts.sparsity.check_cols(cols, "SparseGPT"),
    }
}

/// Optimal brain surgeon's saliency of removing weight `w` whose inverse-Hessian factor is `u_pp`: the
/// growth of the layer's squared output error.
fn saliency(w: f64, u_pp: f64) -> f64 {
    w * w / (u_pp * u_pp)
}

/// The unstructured mask of one block: the lowest share `s` of saliencies over all rows of the block,
/// from the weights as the earlier blocks left them.
fn choose_block(
    w: &[f64],
    u: &[f64],
    rows: usize,
    cols: usize,
    block: Range<usize>,
    s: f64,
    mask: &mut [bool],
) {
    let scores: Vec<f64> = (0..rows)
        .flat_map(|r| block.clone().map(move |c| saliency(w[r * cols + c], u[c * cols + c])))
        .collect();
    let chosen = whole_mask(&scores, s);
    for (r, chosen) in chosen.chunks_exact(block.len()).enumerate() {
        mask[r * cols + block.start..r * cols + block.end].copy_from_slice(chosen);
    }
}

/// One row through `block`: pruned weights become 0 and their error (w − q)/U_pp, written to `err`,
/// moves the block's later weights. Returns the row's loss over the block.
fn prune_row(
    w: &mut [f64],
    mask: &mut [bool],
    u: &[f64],
    block: Range<usize>,
    sparsity: Sparsity,
    err: &mut [f64],
) -> f64 {
    let k = w.len();
    let mut loss = 0.0;
    for p in block.clone() {
        if let Sparsity::NOfM { n, m } = sparsity {
            if p % m == 0 {
                let scores: Vec<f64> = (p..p + m).map(|c| saliency(w[c], u[c * k + c])).collect();
                prune_n_of_m(&scores, n, m, &mut mask[p..p + m]);
            }
        }
        let q = if mask[p] { 0.0 } else { w[p] };
        let e = (w[p] - q) / u[p * k + p];
        w[p] = q;
        loss += e * e / 2.0;
        err[p - block.start] = e;
        linalg::axpy(-e, &u[p * k + p + 1..p * k + block.end], &mut w[p + 1..block.end]);
    }
    loss
}

/// The lazy update: the columns after the block absorb its errors, each row of U applied to the tile.
fn propagate(tile: &mut [f64], u: &[f64], cols: usize, block: Range<usize>, err: &[f64]) {
    let stride = err.len() / TILE_ROWS;
    for p in block.clone() {
        let u_p = &u[p * cols + block.end..(p + 1) * cols];
        for (r, w) in tile.chunks_exact_mut(cols).enumerate() {
            linalg::axpy(-err[r * stride + p - block.start], u_p, &mut w[block.end..]);
        }
    }
}
