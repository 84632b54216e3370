//! CPU twins of the element-by-element passes (`shaders/elementwise.wgsl`), in f32 like ggml.

/// a += b: the residual connection.
pub fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// silu(gate) · up, with silu(g) = g / (1 + exp(−g)) (ggml_silu_f32).
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter().zip(up).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect()
}

/// The tanh approximation of GELU that GPT-2 and ggml use, in place:
/// 0.5·x·(1 + tanh(sqrt(2/π)·x·(1 + 0.044715·x²))).
pub fn gelu(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044715;
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + (SQRT_2_OVER_PI * *v * (1.0 + GELU_COEF_A * *v * *v)).tanh());
    }
}

/// Columns `cols` of each row of x (t, stride): one projection's share of a fused one, (t, cols.len()).
pub fn columns(x: &[f32], t: usize, stride: usize, cols: std::ops::Range<usize>) -> Vec<f32> {
    x[..t * stride].chunks_exact(stride).flat_map(|row| row[cols.clone()].iter().copied()).collect()
}

pub use super::embed::add_positions;
