// The sparse 16-bit corrections of SpQR and OWQ, added after the matmul: out (t, rows) += x (t, cols)·Sᵀ.
// One thread per row of S and tile of TOKENS tokens walks the row's entries in CSR form once for the
// whole tile. Each entry is one u32: column in the low 16 bits, the f16 value in the high 16 bits. Row
// sums run in f32; the CPU twin (src/cpu/sparse.rs) sums in f64.

struct Shape {
    t: u32,
    rows: u32,
    cols: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (t, cols)
@group(0) @binding(2) var<storage, read> row_ptr: array<u32>;    // (rows + 1)
@group(0) @binding(3) var<storage, read> entries: array<u32>;    // (nnz) column | f16 value << 16
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // (t, rows)

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn add_sparse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    let tiles = (shape.t + TOKENS - 1u) / TOKENS;
    if (i >= tiles * shape.rows) {
        return;
    }
    // Neighbouring threads take neighbouring rows of the same tokens.
    let row = i % shape.rows;
    let first = (i / shape.rows) * TOKENS;
    let tokens = min(TOKENS, shape.t - first);
    // Loops over the constant TOKENS (guarded) so that drivers can keep acc in registers.
    var acc: array<f32, TOKENS>;
    for (var e = row_ptr[row]; e < row_ptr[row + 1u]; e++) {
        let entry = entries[e];
        let value = unpack2x16float(entry).y;
        let col = entry & 0xffffu;
        for (var j = 0u; j < TOKENS; j++) {
            if (j < tokens) {
                acc[j] += value * x[(first + j) * shape.cols + col];
            }
        }
    }
    for (var j = 0u; j < TOKENS; j++) {
        if (j < tokens) {
            out[(first + j) * shape.rows + row] += acc[j];
        }
    }
}
