//! The linear layer's CPU twin: out = x·Wᵀ (+ bias) over f32 weights (quantised weights go through
//! `cpu::dequant` first). Dot products accumulate in f64, so this is the exact answer up to one
//! rounding, and the GPU's f32 sums are measured against it.

/// out[i, j] = Σ_c x[i, c]·w[j, c] (+ bias[j]) for x (t, k), w (n, k), bias (n); out is (t, n).
pub fn matmul(x: &[f32], t: usize, k: usize, w: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert!(
        x.len() >= t * k && w.len() >= n * k,
        "matmul: x {} < {t}×{k} or w {} < {n}×{k}",
        x.len(),
        w.len()
    );
    let mut out = vec![0f32; t * n];
    for i in 0..t {
        let xi = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wj = &w[j * k..(j + 1) * k];
            let dot: f64 = xi.iter().zip(wj).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[i * n + j] = (dot + bias.map_or(0.0, |b| b[j] as f64)) as f32;
        }
    }
    out
}
