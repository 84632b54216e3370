//! CPU twins of the weight-statistics kernels (`shaders/stats.wgsl`) over a row-major rows×cols f32
//! matrix. Sums run in f64 here and in f32 partial sums on the GPU, so those agree to rounding; min,
//! max and the histogram agree exactly.

/// Per row: [min, max, max|x|, Σx].
pub fn row_reduce(values: &[f32], rows: usize, cols: usize) -> Vec<[f32; 4]> {
    (0..rows)
        .map(|r| {
            let row = &values[r * cols..(r + 1) * cols];
            let (mut min, mut max, mut max_abs, mut sum) = (f32::MAX, f32::MIN, 0f32, 0f64);
            for &x in row {
                min = min.min(x);
                max = max.max(x);
                max_abs = max_abs.max(x.abs());
                sum += x as f64;
            }
            [min, max, max_abs, sum as f32]
        })
        .collect()
}

/// Per row: [Σ(x − mean)², Σ(x − mean)⁴], with the differences taken in f32 as on the GPU.
pub fn row_moments(values: &[f32], rows: usize, cols: usize, mean: f32) -> Vec<[f32; 2]> {
    (0..rows)
        .map(|r| {
            let (mut m2, mut m4) = (0f64, 0f64);
            for &x in &values[r * cols..(r + 1) * cols] {
                let d2 = ((x - mean) as f64).powi(2);
                m2 += d2;
                m4 += d2 * d2;
            }
            [m2 as f32, m4 as f32]
        })
        .collect()
}

/// bins / (hi − lo): the factor both the GPU and the CPU multiply by, computed once in f32.
/// A constant tensor (hi == lo) puts everything in bin 0.
pub fn bin_scale(bins: u32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        bins as f32 / (hi - lo)
    } else {
        0.0
    }
}

/// Counts of `values` in `bins` equal bins over [lo, hi]; values == hi (and any beyond) land in the
/// last bin, values below lo in the first.
pub fn histogram(values: &[f32], bins: u32, lo: f32, hi: f32) -> Vec<u64> {
    let scale = bin_scale(bins, lo, hi);
    let mut counts = vec![0u64; bins as usize];
    for &x in values {
        let b = ((x - lo) * scale).clamp(0.0, (bins - 1) as f32) as usize;
        counts[b] += 1;
    }
    counts
}
