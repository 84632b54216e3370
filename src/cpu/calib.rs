//! CPU twins of the calibration-statistics kernels (`shaders/calib.wgsl`): per-channel statistics and
//! the Hessian xᵀx of the activations x (t tokens, k channels, row-major) at a linear layer's input,
//! added into running totals so that batches accumulate. One batch's sums run in f64 here and in f32 on
//! the GPU; both add the batch's total into the f32 running total.

/// stats (4, k) += [Σ|x|; max|x| (a running max); Σx²; Σx] over the t tokens of x, per channel.
pub fn accumulate_columns(x: &[f32], t: usize, k: usize, stats: &mut [f32]) {
    assert!(
        x.len() >= t * k && stats.len() >= 4 * k,
        "calib columns: x {} < {t}×{k} or stats < 4×{k}",
        x.len()
    );
    for c in 0..k {
        let (mut sum_abs, mut max_abs, mut sum_sq, mut sum) = (0f64, 0f32, 0f64, 0f64);
        for i in 0..t {
            let v = x[i * k + c];
            sum_abs += v.abs() as f64;
            max_abs = max_abs.max(v.abs());
            sum_sq += v as f64 * v as f64;
            sum += v as f64;
        }
        stats[c] += sum_abs as f32;
        stats[k + c] = stats[k + c].max(max_abs);
        stats[2 * k + c] += sum_sq as f32;
        stats[3 * k + c] += sum as f32;
    }
}

/// h (k, k) += xᵀx: h[a, b] += Σ_i x[i, a]·x[i, b] over the t tokens of x.
pub fn accumulate_hessian(x: &[f32], t: usize, k: usize, h: &mut [f32]) {
    assert!(x.len() >= t * k && h.len() >= k * k, "calib hessian: x {} < {t}×{k} or h < {k}×{k}", x.len());
    let mut sums = vec![0f64; k * k];
    for i in 0..t {
        let row = &x[i * k..(i + 1) * k];
        for (a, &xa) in row.iter().enumerate() {
            for (b, &xb) in row.iter().enumerate() {
                sums[a * k + b] += xa as f64 * xb as f64;
            }
        }
    }
    for (h, s) in h.iter_mut().zip(sums) {
        *h += s as f32;
    }
}
