//! Causal grouped-query attention's CPU twin (`shaders/attention.wgsl`): scores, softmax and the
//! weighted sum of values in f64, one query and head at a time.

/// out (t, n_heads, head_dim) for queries q (t, n_heads, head_dim) at positions pos0 + i over caches
/// (≥ pos0 + t, n_kv_heads, head_dim): query i sees positions 0 ..= pos0 + i, head h kv head
/// h / (n_heads / n_kv_heads); weights softmax(scale · q·k).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    t: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos0: usize,
    scale: f32,
) -> Vec<f32> {
    let d = head_dim;
    let group = n_heads / n_kv_heads;
    let mut out = vec![0f32; t * n_heads * d];
    for i in 0..t {
        let n = pos0 + i + 1;
        for h in 0..n_heads {
            let qh = &q[(i * n_heads + h) * d..][..d];
            let kv = |cache: &[f32], j: usize| -> Vec<f64> {
                cache[(j * n_kv_heads + h / group) * d..][..d].iter().map(|&v| v as f64).collect()
            };
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    qh.iter().zip(kv(k_cache, j)).map(|(&a, b)| a as f64 * b).sum::<f64>() * scale as f64
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            let mut o = vec![0f64; d];
            for (j, w) in weights.iter().enumerate() {
                for (oc, vc) in o.iter_mut().zip(kv(v_cache, j)) {
                    *oc += w / total * vc;
                }
            }
            for (dst, v) in out[(i * n_heads + h) * d..][..d].iter_mut().zip(o) {
                *dst = v as f32;
            }
        }
    }
    out
}
