//! CPU twin of the dynamic per-token activation quantisation (`shaders/actquant.wgsl`) that W8A8
//! (SmoothQuant) and LLM.int8() apply to a linear's input x (t, k): each token row is rounded to
//! symmetric b-bit integers times its own absmax scale, s_t = max_c |x[t, c]| / (2^(b−1) − 1). With an
//! LLM.int8() threshold, the outlier feature columns (|x[t, c]| ≥ threshold for any token) are left
//! out of s_t and pass through unchanged: they are the 16-bit part of the decomposition.

use std::ops::RangeInclusive;

/// The activation bit widths the quantiser accepts.
pub const SUPPORTED_BITS: RangeInclusive<u32> = 2..=16;

/// The largest integer level of symmetric `bits`-bit quantisation: 127 for 8 bits.
pub fn max_level(bits: u32) -> f32 {
    assert!(SUPPORTED_BITS.contains(&bits), "activation quantisation to {bits} bits");
    ((1u32 << (bits - 1)) - 1) as f32
}

/// The columns c of x (t, k) where some token has |x[t, c]| ≥ threshold (LLM.int8()'s outlier
/// features), in increasing order.
pub fn outlier_columns(x: &[f32], t: usize, k: usize, threshold: f32) -> Vec<usize> {
    (0..k).filter(|&c| (0..t).any(|i| x[i * k + c].abs() >= threshold)).collect()
}

/// x̂ = round(x / s_t)·s_t for every non-outlier element of x (t, k), rounding half to even as WGSL's
/// `round` does; outlier columns (see [`outlier_columns`], none when `threshold` is None) are copied.
pub fn quantize_activations(x: &[f32], t: usize, k: usize, bits: u32, threshold: Option<f32>) -> Vec<f32> {
    assert!(x.len() >= t * k, "quantize_activations: x has {} values, not {t}×{k}", x.len());
    let q_max = max_level(bits);
    let mut is_outlier = vec![false; k];
    for c in threshold.map_or(vec![], |th| outlier_columns(x, t, k, th)) {
        is_outlier[c] = true;
    }
    let mut out = x[..t * k].to_vec();
    for row in out.chunks_exact_mut(k) {
        let inliers = || row.iter().zip(&is_outlier).filter(|(_, &o)| !o).map(|(v, _)| v.abs());
        let scale = inliers().fold(0f32, f32::max) / q_max;
        for (v, &outlier) in row.iter_mut().zip(&is_outlier) {
            if !outlier {
                *v = quantize(*v, scale, q_max);
            }
        }
    }
    out
}

/// One value on the grid of step `scale`; a zero scale (an all-zero row) maps everything to 0.
fn quantize(v: f32, scale: f32, q_max: f32) -> f32 {
    if scale == 0.0 {
        return 0.0;
    }
    (v / scale).round_ties_even().clamp(-q_max, q_max) * scale
}
