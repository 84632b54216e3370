// Causal grouped-query attention over a KV cache in two passes (split-K "flash decoding"):
//   partial: one thread per (query token i, head h, key split s) runs an online softmax over the keys
//            s·L .. (s+1)·L that query i may see (positions ≤ pos0 + i), keeping a running max m, a
//            running sum l and the output acc (rescaled by exp(m_old − m_new) whenever m grows) in
//            registers, and stores (acc, m, l).
//   merge:   one thread per (i, h) combines the splits: out = Σ acc_s e^{m_s − M} / Σ l_s e^{m_s − M}.
// Query head h reads kv head h / (heads / kv_heads). Rows are read as vec4 and nothing goes through
// workgroup memory, so the cache length costs time only. D4 = head_dim / 4 is prepended by the
// launcher. The CPU twin is src/cpu/attention.rs.

struct Shape {
    t: u32,
    heads: u32,
    kv_heads: u32,
    pos0: u32,
    keys_per_split: u32, // L
    splits: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;               // partial: (t, heads, D4)
@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;         // partial: (max_seq, kv_heads, D4)
@group(0) @binding(3) var<storage, read> v_cache: array<vec4<f32>>;         // partial: (max_seq, kv_heads, D4)
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;  // partial: (t, heads, splits, D4 + 1)
@group(0) @binding(1) var<storage, read> merge_in: array<vec4<f32>>;        // merge: the partials
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;       // merge: (t, heads, D4)

const WG: u32 = 32u;
const LOWEST: f32 = -3.4028234663852886e38;

fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

@compute @workgroup_size(WG)
fn partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let id = thread_index(gid, groups);
    if (id >= shape.t * shape.heads * shape.splits) {
        return;
    }
    let split = id % shape.splits;
    let query = id / shape.splits; // token · heads + head
    let token = query / shape.heads;
    let kv_head = query % shape.heads / (shape.heads / shape.kv_heads);
    var qs: array<vec4<f32>, D4>;
    for (var c = 0u; c < D4; c++) {
        qs[c] = q[query * D4 + c] * shape.scale;
    }
    var m = LOWEST;
    var l = 0.0;
    var acc: array<vec4<f32>, D4>;
    let end = min((split + 1u) * shape.keys_per_split, shape.pos0 + token + 1u);
    for (var j = split * shape.keys_per_split; j < end; j++) {
        let row = (j * shape.kv_heads + kv_head) * D4;
        var s = 0.0;
        for (var c = 0u; c < D4; c++) {
            s += dot(qs[c], k_cache[row + c]);
        }
        let m_new = max(m, s);
        let alpha = exp(m - m_new);
        let p = exp(s - m_new);
        l = l * alpha + p;
        for (var c = 0u; c < D4; c++) {
            acc[c] = acc[c] * alpha + p * v_cache[row + c];
        }
        m = m_new;
    }
    // A split past the query's last key keeps m = LOWEST, l = 0: it weighs nothing in the merge.
    let at = id * (D4 + 1u);
    for (var c = 0u; c < D4; c++) {
        partials[at + c] = acc[c];
    }
    partials[at + D4] = vec4<f32>(m, l, 0.0, 0.0);
}

@compute @workgroup_size(WG)
fn merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let query = thread_index(gid, groups);
    if (query >= shape.t * shape.heads) {
        return;
    }
    let first = query * shape.splits;
    var m = LOWEST;
    for (var s = 0u; s < shape.splits; s++) {
        m = max(m, merge_in[(first + s) * (D4 + 1u) + D4].x);
    }
    var l = 0.0;
    var acc: array<vec4<f32>, D4>;
    for (var s = 0u; s < shape.splits; s++) {
        let at = (first + s) * (D4 + 1u);
        let ml = merge_in[at + D4];
        let w = exp(ml.x - m);
        l += ml.y * w;
        for (var c = 0u; c < D4; c++) {
            acc[c] += merge_in[at + c] * w;
        }
    }
    for (var c = 0u; c < D4; c++) {
        out[query * D4 + c] = acc[c] / l;
    }
}
