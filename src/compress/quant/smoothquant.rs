//! SmoothQuant (Xiao et al., `mit-han-lab/smoothquant` `smooth.py`): move the difficulty of quantising
//! activations with outlier channels into the weights. Input channel j of every linear that reads the same
//! activations is multiplied by s_j, and the op that produces those activations (the preceding norm's
//! weight) is divided by s_j, so x·Wᵀ is unchanged while max|x_j/s_j| is flatter across channels.
//! The column scaling and the division here are also how AWQ folds its scales.

/// s_j = max|X_j|^α / max_over_linears max|W_:,j|^(1−α), clamped at 1e-5, for linears (W row-major, rows)
/// that all read `cols` input channels whose activation maxima are `max_abs_x`.
pub fn smoothing_scales(max_abs_x: &[f32], linears: &[(&[f32], usize)], cols: usize, alpha: f32) -> Vec<f32> {
    assert_eq!(max_abs_x.len(), cols, "one activation maximum per input channel");
    let mut max_abs_w = vec![0f32; cols];
    for &(w, rows) in linears {
        assert_eq!(w.len(), rows * cols, "a linear of {rows} rows and {cols} columns");
        for row in w.chunks_exact(cols) {
            for (m, &v) in max_abs_w.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
    }
    max_abs_x
        .iter()
        .zip(&max_abs_w)
        .map(|(&x, &w)| (x.powf(alpha) / w.max(1e-5).powf(1.0 - alpha)).max(1e-5))
        .collect()
}

/// W ← W·diag(s) for a (rows, cols) row-major `w`: input column j times s_j.
pub fn scale_columns(w: &mut [f32], rows: usize, cols: usize, s: &[f32]) {
    assert_eq!(s.len(), cols, "one scale per column");
    for row in w.chunks_exact_mut(cols).take(rows) {
        for (v, &sj) in row.iter_mut().zip(s) {
            *v *= sj;
        }
    }
}

/// v ← v / s elementwise: folds 1/s into a norm's weight, an activation row, or a row of W·diag(s).
pub fn divide(v: &mut [f32], s: &[f32]) {
    assert_eq!(v.len(), s.len(), "one scale per element");
    for (v, &sj) in v.iter_mut().zip(s) {
        *v /= sj;
    }
}
