//! Causal grouped-query attention over a KV cache on the GPU (`shaders/attention.wgsl`): an online
//! softmax per (query, head, key split) in registers, then a merge of the splits, so cache length
//! costs time but no workgroup memory, and a single decoded token still spreads over many threads.
//! The CPU twin is `cpu::attention`.

use super::buffers::{check_binding, check_len, prefix};
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

/// The largest head dimension the kernel holds in registers.
pub const MAX_HEAD_DIM: u32 = 256;
/// Threads per workgroup (`WG` in the shader).
const WORKGROUP: u64 = 32;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    t: u32,
    heads: u32,
    kv_heads: u32,
    pos0: u32,
    keys_per_split: u32,
    splits: u32,
    scale: f32,
    _pad: u32,
}

/// Record out (t, n_heads, head_dim) = softmax(scale · q kᵀ) v for queries q (t, n_heads, head_dim)
/// at positions pos0.. over the caches (max_seq, n_kv_heads, head_dim), whose rows 0 .. pos0 + t must
/// already hold this step's keys and values. Query i sees cache positions 0 ..= pos0 + i.
#[allow(clippy::too_many_arguments)]
pub async fn attention(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    q: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    out: &wgpu::Buffer,
    t: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    scale: f32,
) -> Result<()> {
    if t == 0
        || n_kv_heads == 0
        || !n_heads.is_multiple_of(n_kv_heads)
        || head_dim == 0
        || !head_dim.is_multiple_of(4)
        || head_dim > MAX_HEAD_DIM
    {
        return Err(Error::Invalid(format!(
            "attention of {t} tokens over {n_heads} heads, {n_kv_heads} kv heads of dimension {head_dim}: heads \
             must be a multiple of kv heads and the dimension a multiple of 4 up to {MAX_HEAD_DIM}"
        )));
    }
    let queries = t as u64 * n_heads as u64;
    let q_len = queries * head_dim as u64;
    let kv_positions = pos0 as u64 + t as u64;
    let kv_len = kv_positions * n_kv_heads as u64 * head_dim as u64;
    check_len("attention: q", q, q_len)?;
    check_len("attention: out", out, q_len)?;
    check_len(&format!("attention at positions up to {kv_positions}: k cache"), k_cache, kv_len)?;
    check_len(&format!("attention at positions up to {kv_positions}: v cache"), v_cache, kv_len)?;
    check_binding(gpu, "attention: q", q_len)?;
    check_binding(gpu, &format!("attention over {kv_positions} positions: kv cache"), kv_len)?;

    // Short splits while decoding, so one token's few heads still fill many threads; long ones in
    // prefill, where the queries do. The partial results must fit one binding.
    let d4 = head_dim as u64 / 4;
    let budget = gpu.limits().max_storage_buffer_binding_size;
    let max_splits = budget / (queries * (d4 + 1) * 16);
    let wanted = kv_positions.div_ceil(if t == 1 { 64 } else { 256 });
    let splits = wanted.min(max_splits);
    if splits == 0 {
        return Err(Error::DeviceLimit(format!(
            "attention of {t} tokens × {n_heads} heads: one split's partial results exceed one binding"
        )));
    }
    let keys_per_split = kv_positions.div_ceil(splits);
    let partials = gpu.storage_buffer(
        "attention partials",
        queries * splits * (d4 + 1) * 16,
        wgpu::BufferUsages::empty(),
    )?;

    let kernel = |entry: &'static str, bindings: &'static [Access]| {
        gpu.kernel(KernelSpec { shader: "attention", entry, constants: vec![("D4", d4 as u32)], bindings })
    };
    let partial =
        kernel("partial", &[Access::Uniform, Access::Read, Access::Read, Access::Read, Access::ReadWrite])
            .await?;
    let merge = kernel("merge", &[Access::Uniform, Access::Read, Access::ReadWrite]).await?;
    let shape = gpu.uniform(&Shape {
        t,
        heads: n_heads,
        kv_heads: n_kv_heads,
        pos0,
        keys_per_split: keys_per_split as u32,
        splits: splits as u32,
        scale,
        _pad: 0,
    });
    let max_groups = gpu.limits().max_compute_workgroups_per_dimension;
    gpu.dispatch(
        enc,
        &partial,
        &[
            shape.as_entire_binding(),
            prefix(q, q_len),
            prefix(k_cache, kv_len),
            prefix(v_cache, kv_len),
            partials.as_entire_binding(),
        ],
        grid((queries * splits).div_ceil(WORKGROUP), max_groups),
    );
    gpu.dispatch(
        enc,
        &merge,
        &[shape.as_entire_binding(), partials.as_entire_binding(), prefix(out, q_len)],
        grid(queries.div_ceil(WORKGROUP), max_groups),
    );
    Ok(())
}
