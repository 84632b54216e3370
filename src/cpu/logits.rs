//! CPU twins of the log-softmax kernels (`shaders/logits.wgsl`), in f64.

/// log Σ_c exp(row[c]), shifted by the row's maximum so that nothing overflows.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln()
}

/// −log softmax(logits[i])[targets[i]] for each of the t rows of logits (t, vocab).
pub fn token_nll(logits: &[f32], t: usize, vocab: usize, targets: &[u32]) -> Vec<f32> {
    (0..t)
        .map(|i| {
            let row = &logits[i * vocab..(i + 1) * vocab];
            (log_sum_exp(row) - row[targets[i] as usize] as f64) as f32
        })
        .collect()
}

/// log softmax of each row of logits (t, vocab).
pub fn log_softmax_rows(logits: &[f32], t: usize, vocab: usize) -> Vec<f32> {
    logits[..t * vocab]
        .chunks_exact(vocab)
        .flat_map(|row| {
            let lse = log_sum_exp(row);
            row.iter().map(move |&v| (v as f64 - lse) as f32)
        })
        .collect()
}
