//! CPU twins of the row normalisations (`shaders/norm.wgsl`), in llama.cpp's order of operations
//! (ggml_compute_forward_rms_norm / _norm): sums in f64, the scale 1/sqrt(· + eps) in f32, then x·scale
//! times the weight.

/// RMSNorm of each row of x (rows, cols): y = x · 1/sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &[f32], rows: usize, cols: usize, w: &[f32], eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let sum: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let mean = (sum / cols as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for c in 0..cols {
            y[r * cols + c] = row[c] * scale * w[c];
        }
    }
    y
}

/// LayerNorm of each row of x (rows, cols): y = (x − mean) · 1/sqrt(mean((x − mean)²) + eps) · w + b.
pub fn layer_norm(x: &[f32], rows: usize, cols: usize, w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = (row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64) as f32;
        let var: f64 = row.iter().map(|&v| ((v - mean) as f64).powi(2)).sum::<f64>() / cols as f64;
        let scale = 1.0 / (var as f32 + eps).sqrt();
        for c in 0..cols {
            y[r * cols + c] = (row[c] - mean) * scale * w[c] + b[c];
        }
    }
    y
}
