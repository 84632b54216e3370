// Shared by the row kernels (norm, logits, stats), which run one workgroup of ROW_WG threads per row:
// where the workgroup stands in the dispatch, and the tree reduction across its threads. The
// including shader defines ROW_WG, a power of two.

// The per-workgroup builtins, which entry points take as one parameter. Both are uniform across the
// workgroup, so the struct is too (Tint treats a struct input as uniform only when every member is).
struct Workgroup {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
}

// The workgroup's index in a dispatch that spills past 65535 workgroups into y.
fn workgroup_index(group: Workgroup) -> u32 {
    return group.wid.x + group.wid.y * group.groups.x;
}

var<workgroup> reduce_partial: array<vec4<f32>, ROW_WG>;

// Combines every thread's `own` across the workgroup in log2(ROW_WG) halving steps: lanes where
// `sums` is true are added, the others keep the max (a min is reduced as the max of the negation).
fn workgroup_reduce(lid: u32, own: vec4<f32>, sums: vec4<bool>) -> vec4<f32> {
    reduce_partial[lid] = own;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let a = reduce_partial[lid];
            let b = reduce_partial[lid + stride];
            reduce_partial[lid] = select(max(a, b), a + b, sums);
        }
        workgroupBarrier();
    }
    let total = reduce_partial[0];
    // Nobody may overwrite reduce_partial[0] for a following reduction before everyone has read it.
    workgroupBarrier();
    return total;
}

// The sum of every thread's `own` over the workgroup.
fn workgroup_sum(lid: u32, own: f32) -> f32 {
    return workgroup_reduce(lid, vec4<f32>(own, 0.0, 0.0, 0.0), vec4<bool>(true)).x;
}
