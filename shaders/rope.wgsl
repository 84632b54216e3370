// Rotary position embedding in place over x (t, heads, head_dim), one thread per rotated pair, as
// ggml_rope computes it (ggml-cpu ops.cpp, no scaling): token i sits at position pos0 + i; pair p
// turns by θ_p = pos · theta_scale^p, the power taken as p successive f32 products exactly like
// ggml's rope cache, with theta_scale = theta^(−2/head_dim) computed on the CPU.
//   NEOX = 0u (Normal): pairs (2p, 2p + 1), llama GGUF.   NEOX = 1u: pairs (p, p + head_dim/2).
// The CPU twin is src/cpu/rope.rs.

struct Shape {
    t: u32,
    heads: u32,
    head_dim: u32,
    pos0: u32,
    theta_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // (t, heads, head_dim)

const WG: u32 = 256u;
// 2π as an 8-bit head (so k · TWO_PI_HI is exact for |k| < 2^16) and the rest: this Cody–Waite
// reduction to [−π, π] keeps cos and sin accurate at positions in the thousands, where GPU sin and cos
// of large arguments are only loosely specified.
const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 0.001935307179586232;
const INV_TWO_PI: f32 = 0.15915494309189535;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pair = gid.x + gid.y * groups.x * WG;
    let half = shape.head_dim / 2u;
    if (pair >= shape.t * shape.heads * half) {
        return;
    }
    let p = pair % half;
    let row = pair / half; // token · heads + head
    let token = row / shape.heads;
    var theta = f32(shape.pos0 + token);
    for (var i = 0u; i < p; i++) {
        theta *= shape.theta_scale;
    }
    let k = round(theta * INV_TWO_PI);
    let r = (theta - k * TWO_PI_HI) - k * TWO_PI_LO;
    let c = cos(r);
    let s = sin(r);
    let base = row * shape.head_dim;
    var i0 = base + 2u * p;
    var i1 = i0 + 1u;
    if (NEOX == 1u) {
        i0 = base + p;
        i1 = i0 + half;
    }
    let x0 = x[i0];
    let x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
}
