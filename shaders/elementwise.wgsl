// Element-by-element passes over f32 vectors of n elements, one thread per element:
//   add:    a += b (the residual connection)
//   swiglu: out = silu(gate) · up, silu(g) = g / (1 + exp(−g))
//   gelu:   x = 0.5·x·(1 + tanh(sqrt(2/π)·x·(1 + 0.044715·x²))) in place (GPT-2, ggml_gelu)
//   columns: part (n / width, width) = columns first .. first + width of fused (n / width, stride)
//            (GPT-2's q, k and v out of its fused projection)
// The CPU twins are in src/cpu/elementwise.rs.

struct Shape {
    n: u32,
    // columns only:
    width: u32,
    stride: u32,
    first: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
// Each entry point binds its own variables at these slots.
@group(0) @binding(1) var<storage, read_write> a: array<f32>;   // add: (n), in place
@group(0) @binding(2) var<storage, read> b: array<f32>;         // add: (n)
@group(0) @binding(1) var<storage, read> gate: array<f32>;      // swiglu: (n)
@group(0) @binding(2) var<storage, read> up: array<f32>;        // swiglu: (n)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // swiglu: (n)
@group(0) @binding(1) var<storage, read_write> x: array<f32>;   // gelu: (n), in place
@group(0) @binding(1) var<storage, read> fused: array<f32>;     // columns: (n / width, stride)
@group(0) @binding(2) var<storage, read_write> part: array<f32>; // columns: (n)

const WG: u32 = 256u;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF_A: f32 = 0.044715;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < shape.n) {
        a[i] += b[i];
    }
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < shape.n) {
        let g = gate[i];
        out[i] = g / (1.0 + exp(-g)) * up[i];
    }
}

@compute @workgroup_size(WG)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < shape.n) {
        let v = x[i];
        // tanh is exactly ±1 in f32 beyond ±10; clamping keeps drivers that compute it from exp
        // away from inf / inf.
        let inner = clamp(SQRT_2_OVER_PI * v * (1.0 + GELU_COEF_A * v * v), -10.0, 10.0);
        x[i] = 0.5 * v * (1.0 + tanh(inner));
    }
}

@compute @workgroup_size(WG)
fn columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < shape.n) {
        part[i] = fused[(i / shape.width) * shape.stride + shape.first + i % shape.width];
    }
}
