// Per-row log-softmax statistics of logits (rows, vocab), one workgroup per row. Each thread keeps a
// running (max m, s = Σ exp(x − m)) over its columns, rescaling s whenever m grows; the tree reduction
// of shaders/reduce.wgsl then takes the row's max M and S = Σ s·exp(m − M) over the threads, so
// log Σ exp(x) = M + log(S) in f32 without overflow.
//   token_nll:   out[i] = M + log(S) − x[i, targets[first + i]]: the negative log-likelihood.
//   log_softmax: y[i, c] = x[i, c] − (M + log(S)).
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

const ROW_WG: u32 = 64u;
const LOWEST: f32 = -3.4028234663852886e38;

// The first element of the given row in the logits (and y) bindings.
fn row_start(row: u32) -> u32 {
    return shape.x_skip + row * shape.vocab;
}

// log Σ_c exp(logits[row, c]).
fn log_sum_exp(lid: u32, row: u32) -> f32 {
    let base = row_start(row);
    var own = vec2<f32>(LOWEST, 0.0);
    for (var c = lid; c < shape.vocab; c += ROW_WG) {
        let v = logits[base + c];
        if (v > own.x) {
            own = vec2<f32>(v, own.y * exp(own.x - v) + 1.0);
        } else {
            own.y += exp(v - own.x);
        }
    }
    let row_max = workgroup_reduce(lid, vec4<f32>(own.x), vec4<bool>(false)).x;
    // Threads without columns hold (LOWEST, 0) and add nothing.
    return row_max + log(workgroup_sum(lid, own.y * exp(own.x - row_max)));
}

@compute @workgroup_size(ROW_WG)
fn token_nll(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= shape.rows) {
        return;
    }
    let lse = log_sum_exp(lid, row);
    if (lid == 0u) {
        // Ids past the vocabulary (a caller's bug) read the last logit rather than another row's.
        let id = min(targets[shape.first + row], shape.vocab - 1u);
        nll[shape.first + row] = lse - logits[row_start(row) + id];
    }
}

@compute @workgroup_size(ROW_WG)
fn log_softmax(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= shape.rows) {
        return;
    }
    let base = row_start(row);
    let lse = log_sum_exp(lid, row);
    for (var c = lid; c < shape.vocab; c += ROW_WG) {
        y[base + c] = logits[base + c] - lse;
    }
}
