//! HQQ (Badri & Shaji, `mobiusml/hqq` `hqq/core/optimize.py`): data-free quantisation that keeps each group's
//! scale from its min/max and optimises a float zero point for an Lp (p < 1) error, which tolerates a few
//! large errors in exchange for many small ones. Half-quadratic splitting alternates two easy steps: the
//! error W − Ŵ is split off through a generalised soft threshold, then the zero point that best explains
//! the remaining weights is a mean.

use super::grid::{blocks, quantize_with_grids, Format, Grid, Quantized, Scheme};
use crate::error::{Error, Result};
use crate::formats::packed::BlockHeader;
use crate::formats::PackedKind;

/// The solver's settings; the defaults are the reference's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HqqOptions {
    pub iters: usize,
    /// p of the Lp error the zero point minimises.
    pub lp_norm: f32,
    /// Weight of the splitting penalty, multiplied by `kappa` every iteration.
    pub beta: f32,
    pub kappa: f32,
    /// Stop at the first iteration whose mean |W − Ŵ| is not lower than the best so far.
    pub early_stop: bool,
}

impl Default for HqqOptions {
    fn default() -> Self {
        HqqOptions { iters: 20, lp_norm: 0.7, beta: 10.0, kappa: 1.01, early_stop: true }
    }
}

/// The generalised soft threshold, the proximal operator of |x|^p / β:
/// sign(x)·max(0, |x| − |x|^(p−1)/β).
fn shrink_lp(x: f32, beta: f32, p: f32) -> f32 {
    x.signum() * (x.abs() - x.abs().powf(p - 1.0) / beta).max(0.0)
}

/// The zero point of `grid` (scale kept) optimised for `values`, as stored (f16). Every iteration's zero is
/// scored by mean |W − Ŵ|, and the best one scored is kept.
fn optimise_zero(values: &[f32], grid: Grid, opts: &HqqOptions) -> Grid {
    let n = values.len() as f32;
    let mut g = grid;
    let mut best = (f32::INFINITY, grid.z);
    let mut beta = opts.beta;
    for _ in 0..opts.iters {
        let codes: Vec<f32> = values.iter().map(|&v| g.code(v) as f32).collect();
        let restored = codes.iter().map(|&q| (q - g.z) * g.d);
        let errors: Vec<f32> = values.iter().zip(restored).map(|(&v, r)| v - r).collect();
        let error = errors.iter().map(|e| e.abs()).sum::<f32>() / n;
        if error < best.0 {
            best = (error, g.z);
        } else if opts.early_stop {
            break;
        }
        // With W_e the split-off error, the zero point minimising Σ (q − (W − W_e)/d − z)² is a mean.
        let z = values
            .iter()
            .zip(&codes)
            .zip(&errors)
            .map(|((&v, &q), &e)| q - (v - shrink_lp(e, beta, opts.lp_norm)) / g.d)
            .sum::<f32>()
            / n;
        g.z = z;
        beta *= opts.kappa;
    }
    Grid { z: BlockHeader::stored(PackedKind::IntAsym, grid.d, best.1).z, ..grid }
}

/// Quantise a (rows, cols) matrix with HQQ on an asymmetric integer `format`: min/max scales as RTN fits
/// them, zero points optimised per group (or row) and stored as f16, not rounded to integers.
pub fn hqq(w: &[f32], rows: usize, cols: usize, format: &Format, opts: HqqOptions) -> Result<Quantized> {
    if !matches!(format.scheme, Scheme::Int { sym: false, .. }) || format.per_tensor() {
        return Err(Error::Invalid(format!(
            "HQQ optimises a zero point per group or channel, so it needs an asymmetric integer format \
             in groups or per channel, not {}",
            format.describe()
        )));
    }
    format.dtype(cols)?;
    if w.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "a ({rows}, {cols}) matrix has {} weights, not {}",
            w.len(),
            rows * cols
        )));
    }
    let group = format.group_len(cols);
    let grids: Vec<Grid> = blocks(w, cols, group)
        .zip(format.fit_all(w, rows, cols))
        .map(|(values, grid)| if grid.d > 0.0 { optimise_zero(values, grid, &opts) } else { grid })
        .collect();
    quantize_with_grids(w, rows, cols, format, &grids)
}
