//! Random layer problems for the Hessian-based compressors (GPTQ, SparseGPT): Gaussian weights, the
//! Hessian Σ x·xᵀ of correlated inputs, and the output error tr(ΔHΔᵀ) a compression causes.

use super::Rng;
use squeeze::compress::linalg;

/// Standard normal (Box–Muller).
pub fn gaussian(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - (rng.uniform() as f64 + 1.0) / 2.0; // (0, 1]
    let u2 = (rng.uniform() as f64 + 1.0) / 2.0;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` normal values of standard deviation `scale`.
pub fn gaussians(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (gaussian(rng) * scale) as f32).collect()
}

/// Σ x·xᵀ over `tokens` inputs X = Z·(I + mixing·G/√cols)·diag(s): Z and G standard normal, column scales
/// s = 10^(spread·u) with u uniform in ±1, so that act-order has an order to follow. With mixing 2 the
/// inputs are strongly correlated and H is far from diagonal. `dead` columns are always zero.
pub fn hessian(
    rng: &mut Rng,
    tokens: usize,
    cols: usize,
    mixing: f64,
    spread: f64,
    dead: &[usize],
) -> Vec<f64> {
    let mut m: Vec<f64> = (0..cols * cols).map(|_| gaussian(rng) * mixing / (cols as f64).sqrt()).collect();
    (0..cols).for_each(|i| m[i * cols + i] += 1.0);
    let scales: Vec<f64> = (0..cols).map(|_| 10f64.powf(spread * rng.uniform() as f64)).collect();
    let mut h = vec![0.0; cols * cols];
    for _ in 0..tokens {
        let z: Vec<f64> = (0..cols).map(|_| gaussian(rng)).collect();
        let x: Vec<f64> = (0..cols)
            .map(|j| {
                if dead.contains(&j) {
                    0.0
                } else {
                    (0..cols).map(|i| z[i] * m[i * cols + j]).sum::<f64>() * scales[j]
                }
            })
            .collect();
        for i in 0..cols {
            linalg::axpy(x[i], &x, &mut h[i * cols..(i + 1) * cols]);
        }
    }
    h
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// tr(ΔHΔᵀ) for Δ = W − Ŵ: how far the layer's outputs on the calibration inputs move.
pub fn output_error(w: &[f32], w_hat: &[f32], h: &[f64], cols: usize) -> f64 {
    let delta: Vec<f64> = w.iter().zip(w_hat).map(|(&a, &b)| a as f64 - b as f64).collect();
    delta
        .chunks_exact(cols)
        .map(|d| (0..cols).map(|i| d[i] * linalg::dot(&h[i * cols..(i + 1) * cols], d)).sum::<f64>())
        .sum()
}
