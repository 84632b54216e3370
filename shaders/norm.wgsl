// Row normalisation, one workgroup per row of x (rows, cols), as llama.cpp computes it:
//   rms_norm:   y = x · 1/sqrt(mean(x²) + eps) · w
//   layer_norm: y = (x − mean) · 1/sqrt(mean((x − mean)²) + eps) · w + b
// Weights and biases are F32, F16 or BF16 as stored (W_FORMAT, B_FORMAT). Sums are f32 partial sums
// combined by the tree reduction of shaders/reduce.wgsl; the CPU twin (src/cpu/norm.rs) sums in f64.

struct Shape {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // (rows, cols)
@group(0) @binding(2) var<storage, read> weight: array<u32>;       // (cols) as stored
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // (rows, cols)
@group(0) @binding(4) var<storage, read> bias: array<u32>;         // layer_norm: (cols) as stored

const F32: u32 = 0u;
const F16: u32 = 1u;
// Threads per row: few, because on CPU drivers each barrier of the tree costs more than the loads.
const ROW_WG: u32 = 64u;

// Element i of the weight (or bias) as stored: F32, F16 or BF16 (a shift of the upper half-word).
fn weight_at(i: u32) -> f32 {
    switch W_FORMAT {
        case F32: { return bitcast<f32>(weight[i]); }
        case F16: { return unpack2x16float(weight[i / 2u] >> (16u * (i & 1u))).x; }
        default: { return bitcast<f32>((weight[i / 2u] >> (16u * (i & 1u))) << 16u); }
    }
}

fn bias_at(i: u32) -> f32 {
    switch B_FORMAT {
        case F32: { return bitcast<f32>(bias[i]); }
        case F16: { return unpack2x16float(bias[i / 2u] >> (16u * (i & 1u))).x; }
        default: { return bitcast<f32>((bias[i / 2u] >> (16u * (i & 1u))) << 16u); }
    }
}

// 1 / sqrt(mean((x − centre)²) + eps) over the given row: the scale of both norms.
fn inverse_deviation(lid: u32, row: u32, centre: f32) -> f32 {
    let base = row * shape.cols;
    var sq = 0.0;
    for (var c = lid; c < shape.cols; c += ROW_WG) {
        let d = x[base + c] - centre;
        sq += d * d;
    }
    return 1.0 / sqrt(workgroup_sum(lid, sq) / f32(shape.cols) + shape.eps);
}

@compute @workgroup_size(ROW_WG)
fn rms_norm(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= shape.rows) {
        return;
    }
    let scale = inverse_deviation(lid, row, 0.0);
    let base = row * shape.cols;
    for (var c = lid; c < shape.cols; c += ROW_WG) {
        out[base + c] = x[base + c] * scale * weight_at(c);
    }
}

@compute @workgroup_size(ROW_WG)
fn layer_norm(@builtin(local_invocation_index) lid: u32, group: Workgroup) {
    let row = workgroup_index(group);
    if (row >= shape.rows) {
        return;
    }
    let base = row * shape.cols;
    var sum = 0.0;
    for (var c = lid; c < shape.cols; c += ROW_WG) {
        sum += x[base + c];
    }
    let mean = workgroup_sum(lid, sum) / f32(shape.cols);
    let scale = inverse_deviation(lid, row, mean);
    for (var c = lid; c < shape.cols; c += ROW_WG) {
        out[base + c] = (x[base + c] - mean) * scale * weight_at(c) + bias_at(c);
    }
}
