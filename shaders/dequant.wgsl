// Dequantise stored tensor bytes (F32, F16, BF16, GGUF blocks, MXFP4 or Squeeze's packed formats) to
// f32: one thread per 32 consecutive elements, decoded by the shared block library
// (shaders/blocks.wgsl, prepended with FORMAT, BLOCK_SIZE, BLOCK_BYTES and BITS). The CPU twin is
// src/cpu/dequant.rs; results agree bit for bit up to fused multiply-adds.

struct Shape {
    n: u32,         // elements to decode: whole rows, so whole blocks
    skip: u32,      // bytes from the start of the binding to the first row (bindings start aligned)
    cols: u32,      // elements per row
    row_bytes: u32, // stored bytes per row
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> packed: array<u32>;    // (skip + stored bytes of the rows) / 4
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // (rows, cols)

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = 32u * (gid.x + gid.y * groups.x * WG);
    if (e >= shape.n) {
        return;
    }
    // Block formats come in whole blocks, so only scalar formats can end in a partial chunk.
    if (e + 32u > shape.n) {
        for (var i = e; i < shape.n; i++) {
            out[i] = load1(shape.skip, i);
        }
        return;
    }
    // Block formats are addressed row by row: a packed row may end in a shorter block.
    let y = load32(shape.skip + e / shape.cols * shape.row_bytes, e % shape.cols);
    for (var i = 0u; i < 8u; i++) {
        let at = e + 4u * i;
        out[at] = y[i].x;
        out[at + 1u] = y[i].y;
        out[at + 2u] = y[i].z;
        out[at + 3u] = y[i].w;
    }
}
