// Calibration statistics of the activations x (t tokens, k channels) at the input of a linear layer,
// added into running totals so that batches accumulate. Sums run in f32 over one batch. The CPU twin
// is src/cpu/calib.rs.
//   columns:   per channel c, stats[c] += Σ|x|, stats[k + c] = max(·, max|x|), stats[2k + c] += Σx²,
//              stats[3k + c] += Σx (AWQ, SmoothQuant, Wanda, LLM.int8 outliers, FLAP's variance and
//              bias compensation); one thread per channel.
//   transpose_x: xt = xᵀ, zero-padded to (k_pad, t_pad), for the Hessian to read.
//   hessian:   h += xᵀx, h[a, b] += Σ_i x[i, a]·x[i, b] (GPTQ, SparseGPT) for ROWS rows a0 .. of h per
//              dispatch, one thread per column b.
//
// The Hessian's row channels come from a uniform window of xt: every thread reads the same values,
// which GPUs broadcast and CPU drivers (lavapipe) load once for all lanes, where workgroup memory costs
// them a per-lane gather and a barrier. Each thread keeps its ROWS sums in 8 named vec4s, because an
// array indexed in a loop lives in memory there. (Measured on lavapipe, t = 256, k = 1536: 64×64 tiles
// staged in workgroup memory took 4.5 s; this, 0.3 s.)
// When the h binding holds all of h (mirror == 1) only entries on and above the diagonal are summed,
// and each also lands on its transpose; otherwise the launcher binds windows of whole row blocks.

struct Params {
    t: u32,       // tokens in this chunk of x
    k: u32,       // channels
    x_skip: u32,  // f32 values from the start of the x binding to the chunk's first token
    t_pad: u32,   // tokens per row of xt: t rounded up, zeros past t
    row0: u32,    // hessian: the row of h at the start of the h window
    row_end: u32, // hessian: one past the window's last row
    h_skip: u32,  // hessian: f32 values from the start of the h binding to row row0
    a0: u32,      // hessian: the first of this dispatch's ROWS rows
    mirror: u32,  // hessian: 1 when the h window is all of h
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// columns, transpose_x
@group(0) @binding(1) var<storage, read> x: array<f32>;                  // (t, k)
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;        // (4, k)
@group(0) @binding(2) var<storage, read_write> xt_out: array<f32>;       // (k_pad, t_pad)
// hessian
@group(0) @binding(1) var<uniform> block_xt: array<vec4<f32>, 4096>;     // (ROWS, t_pad): xt rows a0 ..
@group(0) @binding(2) var<storage, read> xt: array<vec4<f32>>;           // (k_pad, t_pad / 4)
@group(0) @binding(3) var<storage, read_write> h: array<f32>;            // (row_end − row0, k)

const WG: u32 = 64u;
const ROWS: u32 = 32u;

@compute @workgroup_size(WG)
fn columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let k = params.k;
    if (c >= k) {
        return;
    }
    var sum_abs = 0.0;
    var max_abs = 0.0;
    var sum_sq = 0.0;
    var sum = 0.0;
    for (var i = 0u; i < params.t; i++) {
        let v = x[params.x_skip + i * k + c];
        sum_abs += abs(v);
        max_abs = max(max_abs, abs(v));
        sum_sq += v * v;
        sum += v;
    }
    stats[c] += sum_abs;
    stats[k + c] = max(stats[k + c], max_abs);
    stats[2u * k + c] += sum_sq;
    stats[3u * k + c] += sum;
}

// One workgroup per WG channels of one token (wid.y).
@compute @workgroup_size(WG)
fn transpose_x(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let i = gid.y;
    var v = 0.0;
    if (c < params.k && i < params.t) {
        v = x[params.x_skip + i * params.k + c];
    }
    xt_out[c * params.t_pad + i] = v;
}

// Rows a0 + 4q .. + 4 of xt at tokens i .. i + 4 as the columns of a matrix, so that `xb * rows4(q, i)`
// is their four dot products with xb.
fn rows4(q: u32, i: u32) -> mat4x4<f32> {
    let stride = params.t_pad / 4u;
    let at = 4u * q * stride + i / 4u;
    return mat4x4<f32>(block_xt[at], block_xt[at + stride], block_xt[at + 2u * stride], block_xt[at + 3u * stride]);
}

fn add_h(a: u32, b: u32, v: f32) {
    let at = params.h_skip + (a - params.row0) * params.k + b;
    h[at] += v;
}

// h[a + j, b] += v[j] for the rows and columns h has.
fn add4(a: u32, b: u32, v: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let r = a + j;
        if (r >= params.row_end || b >= params.k) {
            continue;
        }
        if (params.mirror == 0u) {
            add_h(r, b, v[j]);
        } else if (b >= r) {
            add_h(r, b, v[j]);
            if (b > r) {
                add_h(b, r, v[j]);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn hessian(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let a0 = params.a0;
    // With mirror, the dispatch starts at the column block holding the diagonal.
    let first = select(0u, a0 / WG * WG, params.mirror == 1u);
    // b < k_pad, a multiple of WG; xt's rows past k are zeros.
    let b = first + wid.x * WG + lid;
    let b_row = b * (params.t_pad / 4u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var i = 0u; i < params.t_pad; i += 4u) {
        let xb = xt[b_row + i / 4u];
        acc0 += xb * rows4(0u, i);
        acc1 += xb * rows4(1u, i);
        acc2 += xb * rows4(2u, i);
        acc3 += xb * rows4(3u, i);
        acc4 += xb * rows4(4u, i);
        acc5 += xb * rows4(5u, i);
        acc6 += xb * rows4(6u, i);
        acc7 += xb * rows4(7u, i);
    }
    add4(a0, b, acc0);
    add4(a0 + 4u, b, acc1);
    add4(a0 + 8u, b, acc2);
    add4(a0 + 12u, b, acc3);
    add4(a0 + 16u, b, acc4);
    add4(a0 + 20u, b, acc5);
    add4(a0 + 24u, b, acc6);
    add4(a0 + 28u, b, acc7);
}
