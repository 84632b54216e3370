// Weight statistics over an f32 matrix, in f32; the CPU combines the per-row results in f64.
//   row_reduce:  one workgroup per row: min, max, max|x|, Σx.
//   row_moments: one workgroup per row: Σ(x − mean)², Σ(x − mean)⁴ about the global mean.
//   histogram:   counts of `bins` equal bins over [lo, hi] (x == hi in the last bin), added into `counts`.
// The CPU twins are in src/cpu/stats.rs.

struct Params {
    rows: u32,
    cols: u32,
    bins: u32,
    _pad0: u32,
    mean: f32,  // row_moments
    lo: f32,    // histogram: the left edge of bin 0
    scale: f32, // histogram: bins / (hi − lo), computed once on the CPU so both sides bin alike
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;             // (rows, cols)
@group(0) @binding(2) var<storage, read_write> row_out: array<vec4<f32>>; // (rows, 4)
// histogram's output; each entry point may bind a different variable at the same slot.
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>; // (bins)

const WG: u32 = 256u;
// Threads per row in the row passes: few, because on CPU drivers (lavapipe, SwiftShader) each
// barrier of the tree costs more than the loads; rows of hundreds of columns still keep each busy.
const ROW_WG: u32 = 32u;
const MAX_BINS: u32 = 2048u;
// Elements each histogram workgroup bins, so that flushing its 2048 local counts stays cheap.
const HISTOGRAM_SPAN: u32 = WG * 64u;
const LOWEST: f32 = -3.4028234663852886e38;

// Workgroup memory starts zeroed (WGSL guarantees it), so the counts need no clearing pass.
var<workgroup> local_counts: array<atomic<u32>, MAX_BINS>;

@compute @workgroup_size(ROW_WG)
fn row_reduce(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= params.rows) {
        return;
    }
    // (−min, max, max|x|, Σx)
    var acc = vec4<f32>(LOWEST, LOWEST, 0.0, 0.0);
    for (var c = lid; c < params.cols; c += ROW_WG) {
        let x = values[row * params.cols + c];
        acc = vec4<f32>(max(acc.x, -x), max(acc.y, x), max(acc.z, abs(x)), acc.w + x);
    }
    let r = workgroup_reduce(lid, acc, vec4<bool>(false, false, false, true));
    if (lid == 0u) {
        row_out[row] = vec4<f32>(-r.x, r.y, r.z, r.w);
    }
}

@compute @workgroup_size(ROW_WG)
fn row_moments(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= params.rows) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var c = lid; c < params.cols; c += ROW_WG) {
        let d = values[row * params.cols + c] - params.mean;
        let d2 = d * d;
        acc += vec4<f32>(d2, d2 * d2, 0.0, 0.0);
    }
    let r = workgroup_reduce(lid, acc, vec4<bool>(true));
    if (lid == 0u) {
        row_out[row] = r;
    }
}

// The same f32 operations as the CPU twin (a subtraction and a product, nothing to fuse), so both
// put every value in the same bin, edges included.
fn bin_of(x: f32) -> u32 {
    return u32(clamp((x - params.lo) * params.scale, 0.0, f32(params.bins - 1u)));
}

@compute @workgroup_size(WG)
fn histogram(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let n = params.rows * params.cols;
    let start = workgroup_index(group) * HISTOGRAM_SPAN;
    let end = min(start + HISTOGRAM_SPAN, n);
    for (var i = start + lid; i < end; i += WG) {
        atomicAdd(&local_counts[bin_of(values[i])], 1u);
    }
    workgroupBarrier();
    for (var b = lid; b < params.bins; b += WG) {
        let c = atomicLoad(&local_counts[b]);
        if (c > 0u) {
            atomicAdd(&counts[b], c);
        }
    }
}
