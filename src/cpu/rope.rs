//! The rotary position embedding's CPU twin (`shaders/rope.wgsl`), as ggml computes it without
//! scaling: theta_scale = theta^(−2/head_dim) by powf, the angle of pair p at position pos is
//! pos·theta_scale^p taken as p successive f32 products (ggml's rope cache), then cosf and sinf.

/// Which elements of a head form the rotated pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs (2p, 2p + 1): Llama as stored in GGUF files.
    Normal,
    /// Halves (p, p + head_dim/2): Qwen2, GPT-NeoX, and Llama in Hugging Face layout.
    Neox,
}

/// theta^(−2/head_dim) in f32, the factor between successive pairs' angles.
pub fn theta_scale(theta: f32, head_dim: usize) -> f32 {
    theta.powf(-2.0 / head_dim as f32)
}

/// Rotate x (t, heads, head_dim) in place; token i has position pos0 + i.
pub fn rope(x: &mut [f32], t: usize, heads: usize, head_dim: usize, pos0: usize, theta: f32, mode: RopeMode) {
    let scale = theta_scale(theta, head_dim);
    let half = head_dim / 2;
    for i in 0..t {
        // The rope cache: cos and sin of each pair's angle at this position.
        let mut angle = (pos0 + i) as f32;
        let mut cos_sin = Vec::with_capacity(half);
        for _ in 0..half {
            cos_sin.push((angle.cos(), angle.sin()));
            angle *= scale;
        }
        for h in 0..heads {
            let head = &mut x[(i * heads + h) * head_dim..(i * heads + h + 1) * head_dim];
            for (p, &(c, s)) in cos_sin.iter().enumerate() {
                let (i0, i1) = match mode {
                    RopeMode::Normal => (2 * p, 2 * p + 1),
                    RopeMode::Neox => (p, p + half),
                };
                let (x0, x1) = (head[i0], head[i1]);
                head[i0] = x0 * c - x1 * s;
                head[i1] = x0 * s + x1 * c;
            }
        }
    }
}
