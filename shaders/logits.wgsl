// Per-row log-softmax statistics of logits (rows, vocab), one workgroup per row. Each thread keeps a
// running (max m, Σ exp(x − m)) over its columns, rescaling the sum whenever the max grows; a tree
// reduction merges the pairs, giving log Σ exp(x) = m + log(s) in f32 without overflow.
//   token_nll:   out[i] = m + log(s) − x[i, targets[first + i]]: the negative log-likelihood.
//   log_softmax: y[i, c] = x[i, c] − (m + log(s)).
// The CPU twins are in src/cpu/logits.rs.

struct Shape {
    rows: u32,
    vocab: u32,
    x_skip: u32, // f32 elements from the start of the logits (and y) binding to its first row
    first: u32,  // token_nll: the index into targets and out of the first row
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> logits: array<f32>;       // (rows, vocab)
@group(0) @binding(2) var<storage, read> targets: array<u32>;      // token_nll: (t)
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;    // token_nll: (t)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // log_softmax: (rows, vocab)

const WG: u32 = 64u;
const LOWEST: f32 = -3.4028234663852886e38;

var<workgroup> partial: array<vec2<f32>, WG>;

// Two (max, sum of exp relative to the max) pairs as one.
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// log Σ_c exp(logits[base + c]) over the row starting at element `base`.
fn log_sum_exp(lid: u32, base: u32) -> f32 {
    var own = vec2<f32>(LOWEST, 0.0);
    for (var c = lid; c < shape.vocab; c += WG) {
        let v = logits[base + c];
        if (v > own.x) {
            own = vec2<f32>(v, own.y * exp(own.x - v) + 1.0);
        } else {
            own.y += exp(v - own.x);
        }
    }
    partial[lid] = own;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] = merge(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    return total.x + log(total.y);
}

@compute @workgroup_size(WG)
fn token_nll(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row = wid.x + wid.y * groups.x;
    if (row >= shape.rows) {
        return;
    }
    let base = shape.x_skip + row * shape.vocab;
    let lse = log_sum_exp(lid, base);
    if (lid == 0u) {
        // Ids past the vocabulary (a caller's bug) read the last logit rather than another row's.
        let id = min(targets[shape.first + row], shape.vocab - 1u);
        nll[shape.first + row] = lse - logits[base + id];
    }
}

@compute @workgroup_size(WG)
fn log_softmax(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row = wid.x + wid.y * groups.x;
    if (row >= shape.rows) {
        return;
    }
    let base = shape.x_skip + row * shape.vocab;
    let lse = log_sum_exp(lid, base);
    for (var c = lid; c < shape.vocab; c += WG) {
        y[base + c] = logits[base + c] - lse;
    }
}
