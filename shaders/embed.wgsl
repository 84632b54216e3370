// Rows of a weight table decoded as stored in any format the shared block library (shaders/blocks.wgsl,
// prepended with FORMAT, BLOCK_SIZE, BLOCK_BYTES and BITS) reads, 32 elements per thread:
//   gather:   out[i] = table[ids[i]]: the token embedding. The table may be bound in row windows
//             (row0 .. row0 + rows), one dispatch each; a token whose id lies outside is left alone.
//   add_rows: x[x_row + r] += table[row0 + r]: GPT-2's learned position embedding.
// The CPU twins are in src/cpu/embed.rs.

struct Shape {
    cols: u32,      // elements per row (d)
    row_bytes: u32, // stored bytes of one table row
    skip: u32,      // bytes from the start of the table binding to row `row0`
    row0: u32,      // the table row at the start of the window
    rows: u32,      // table rows in the window
    t: u32,         // gather: rows of out
    x_row: u32,     // add_rows: the row of x that table row row0 is added to
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> packed: array<u32>;    // (rows, row_bytes / 4) as stored
@group(0) @binding(2) var<storage, read> ids: array<u32>;       // gather: (t) token ids
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // gather: (t, cols)
@group(0) @binding(2) var<storage, read_write> x: array<f32>;   // add_rows: (t, cols)

const WG: u32 = 64u;

// The stored bytes of window row r start here.
fn table_row(r: u32) -> u32 {
    return shape.skip + r * shape.row_bytes;
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let chunks = (shape.cols + 31u) / 32u;
    let q = gid.x + gid.y * groups.x * WG;
    if (q >= shape.t * chunks) {
        return;
    }
    let i = q / chunks;
    let e = 32u * (q % chunks);
    let id = ids[i];
    if (id < shape.row0 || id - shape.row0 >= shape.rows) {
        return;
    }
    let row = table_row(id - shape.row0);
    let at = i * shape.cols;
    // Block formats come in whole blocks, so only scalar formats can end in a partial chunk.
    if (e + 32u > shape.cols) {
        for (var c = e; c < shape.cols; c++) {
            out[at + c] = load1(row, c);
        }
        return;
    }
    let y = load32(row, e);
    for (var c = 0u; c < 32u; c++) {
        out[at + e + c] = y[c / 4u][c % 4u];
    }
}

@compute @workgroup_size(WG)
fn add_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let chunks = (shape.cols + 31u) / 32u;
    let q = gid.x + gid.y * groups.x * WG;
    if (q >= shape.rows * chunks) {
        return;
    }
    let r = q / chunks;
    let e = 32u * (q % chunks);
    let row = table_row(r);
    let at = (shape.x_row + r) * shape.cols;
    if (e + 32u > shape.cols) {
        for (var c = e; c < shape.cols; c++) {
            x[at + c] += load1(row, c);
        }
        return;
    }
    let y = load32(row, e);
    for (var c = 0u; c < 32u; c++) {
        x[at + e + c] += y[c / 4u][c % 4u];
    }
}
