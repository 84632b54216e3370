// out[i, out_col + j] = Σ_c x[i, c] · W[j, c] (+ bias[out_col + j]) with W read as stored (F32, F16,
// BF16, GGUF blocks, MXFP4 or Squeeze's packed formats): the shared block library (shaders/blocks.wgsl,
// prepended with FORMAT, BLOCK_SIZE, BLOCK_BYTES and BITS) decodes it 32 elements at a time, so this
// one body serves every format.
//
// One thread per row of W: it decodes a 32-element chunk of its row once, into registers, and uses it
// for all TOKENS tokens of the dispatch (TOKENS = 1 is the matrix–vector case). Those tokens' x rows
// are staged by the launcher in a uniform buffer: every thread reads the same x values, which GPUs
// broadcast and CPU drivers (llvmpipe) gather without the per-lane loop their storage loads take.
// No workgroup memory, no barriers. The launcher binds windows of W (row chunks) and of out.
// The CPU twin is src/cpu/matmul.rs.

struct Shape {
    k: u32,          // columns of x and W
    rows: u32,       // rows of W in this window = output columns written
    tokens: u32,     // tokens in this dispatch (≤ TOKENS)
    row_bytes: u32,  // stored bytes of one row of W
    w_skip: u32,     // bytes from the start of the W binding to its first row
    out_skip: u32,   // f32 elements from the start of the out binding to the dispatch's first token
    out_stride: u32, // f32 elements per row of out (n)
    out_col: u32,    // the output column of the window's first row of W
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> packed: array<u32>;     // (rows, row_bytes / 4) W as stored
@group(0) @binding(2) var<uniform> x: array<vec4<f32>, 4096>;    // (tokens, k) at the start, f32
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // (n); any buffer when has_bias == 0
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // (tokens, out_stride)

const WG: u32 = 64u;

// x[at], at counted in f32 elements.
fn x1(at: u32) -> f32 {
    return x[at / 4u][at % 4u];
}

// x[at .. at + 32] · w
fn dot32(w: Chunk, at: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let a = at + 4u * i;
        var v: vec4<f32>;
        if (X_ALIGNED == 1u) {
            v = x[a / 4u];
        } else {
            v = vec4<f32>(x1(a), x1(a + 1u), x1(a + 2u), x1(a + 3u));
        }
        s += dot(w[i], v);
    }
    return s;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let j = (wid.x + wid.y * groups.x) * WG + lid;
    // Threads past the last row compute a copy of it and write nothing, so that every invocation
    // stays in uniform control flow; so do token slots past the last token. Fixed trip counts let the
    // compiler keep acc in registers.
    let row = shape.w_skip + min(j, shape.rows - 1u) * shape.row_bytes;
    let last = shape.tokens - 1u;
    var acc: array<f32, TOKENS>;
    let whole = shape.k & ~31u;
    for (var e = 0u; e < whole; e += 32u) {
        let w = load32(row, e);
        for (var m = 0u; m < TOKENS; m++) {
            acc[m] += dot32(w, min(m, last) * shape.k + e);
        }
    }
    // Scalar formats only: the last k mod 32 columns.
    for (var e = whole; e < shape.k; e++) {
        let w = load1(row, e);
        for (var m = 0u; m < TOKENS; m++) {
            acc[m] += w * x1(min(m, last) * shape.k + e);
        }
    }
    if (j < shape.rows) {
        var b = 0.0;
        if (shape.has_bias != 0u) {
            b = bias[shape.out_col + j];
        }
        for (var m = 0u; m < TOKENS; m++) {
            if (m <= last) {
                out[shape.out_skip + m * shape.out_stride + shape.out_col + j] = acc[m] + b;
            }
        }
    }
}
