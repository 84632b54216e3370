// Dynamic per-token activation quantisation of x (t, k) for W8A8 (SmoothQuant) and LLM.int8():
//   outlier_columns: one thread per column and span of TOKEN_SPAN tokens: flags[c] = 1 when
//                    |x[i, c]| ≥ threshold for any token i (LLM.int8()'s outlier features), else 0.
//   quantize_rows:   one workgroup per token row: s = max |x| over the row's non-outlier columns / q_max,
//                    out = round(x / s)·s there (0 where s = 0), out = x in the outlier columns.
// OUTLIERS (0 or 1) says whether quantize_rows reads flags; without outliers x stands in for them.
// The CPU twin is src/cpu/actquant.rs.

struct Params {
    t: u32,
    k: u32,
    q_max: f32,     // 2^(bits − 1) − 1
    threshold: f32, // outlier_columns
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                         // (t, k)
@group(0) @binding(2) var<storage, read_write> flags_out: array<atomic<u32>>;   // outlier_columns: (k)
@group(0) @binding(2) var<storage, read> flags: array<u32>;                     // quantize_rows: (k)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;                 // quantize_rows: (t, k)

// Threads per token row: few, because on CPU drivers each barrier of the tree costs more than the loads.
const ROW_WG: u32 = 64u;
const COLUMN_WG: u32 = 64u;
// Tokens one thread of outlier_columns scans, so that long batches still spread over many workgroups.
const TOKEN_SPAN: u32 = 64u;

@compute @workgroup_size(COLUMN_WG)
fn outlier_columns(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let column_blocks = (params.k + COLUMN_WG - 1u) / COLUMN_WG;
    let w = workgroup_index(group);
    let c = (w % column_blocks) * COLUMN_WG + lid;
    let first = (w / column_blocks) * TOKEN_SPAN;
    if (c >= params.k) {
        return;
    }
    var outlier = 0u;
    for (var i = first; i < min(first + TOKEN_SPAN, params.t); i++) {
        outlier |= u32(abs(x[i * params.k + c]) >= params.threshold);
    }
    // The flags start zeroed (a new buffer), so only outliers are written, by any span that sees one.
    if (outlier != 0u) {
        atomicStore(&flags_out[c], 1u);
    }
}

fn is_outlier(c: u32) -> bool {
    return OUTLIERS == 1u && flags[c] != 0u;
}

@compute @workgroup_size(ROW_WG)
fn quantize_rows(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= params.t) {
        return;
    }
    let base = row * params.k;
    var amax = 0.0;
    for (var c = lid; c < params.k; c += ROW_WG) {
        amax = max(amax, select(abs(x[base + c]), 0.0, is_outlier(c)));
    }
    let scale = workgroup_reduce(lid, vec4<f32>(amax, 0.0, 0.0, 0.0), vec4<bool>(false)).x / params.q_max;
    for (var c = lid; c < params.k; c += ROW_WG) {
        let v = x[base + c];
        var q = 0.0;
        if (scale > 0.0) {
            q = clamp(round(v / scale), -params.q_max, params.q_max) * scale;
        }
        out[base + c] = select(q, v, is_outlier(c));
    }
}
