//! Rows of a weight table on the GPU (`shaders/embed.wgsl`), decoded from any stored format: the token
//! embedding ([`embed`]) and GPT-2's learned positions ([`add_positions`]). Tables larger than one
//! binding are processed in row windows. The CPU twins are in `cpu::embed`.

use super::buffers::{check_binding, check_len, prefix};
use crate::error::{Error, Result};
use crate::gpu::{grid, row_chunks, Access, Gpu, GpuTensor, Kernel, KernelSpec};
use std::sync::Arc;

const WORKGROUP: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    cols: u32,
    row_bytes: u32,
    skip: u32,
    row0: u32,
    rows: u32,
    t: u32,
    x_row: u32,
    _pad: u32,
}

async fn kernel(
    gpu: &Gpu,
    table: &GpuTensor,
    entry: &'static str,
    bindings: &'static [Access],
) -> Result<Arc<Kernel>> {
    gpu.kernel(KernelSpec { shader: "embed", entry, constants: table.dtype.shader_constants(), bindings })
        .await
}

fn check_decodable(table: &GpuTensor) -> Result<()> {
    if !table.dtype.decodable() {
        return Err(Error::unsupported(&table.name, format!("{} tables cannot be decoded", table.dtype)));
    }
    Ok(())
}

fn table_chunks(
    gpu: &Gpu,
    table: &GpuTensor,
    rows: std::ops::Range<u64>,
) -> Result<Vec<std::ops::Range<u64>>> {
    let limits = gpu.limits();
    let chunks = row_chunks(
        &format!("reading {}", table.name),
        rows.end - rows.start,
        table.row_bytes(),
        limits.min_storage_buffer_offset_alignment as u64,
        limits.max_storage_buffer_binding_size,
    )?;
    Ok(chunks.into_iter().map(|c| rows.start + c.start..rows.start + c.end).collect())
}

/// Record out (t, d) = rows ids[0..t] of `table` (vocab, d) as f32. Ids ≥ vocab leave their row of
/// out unwritten.
pub async fn embed(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    table: &GpuTensor,
    ids: &wgpu::Buffer,
    out: &wgpu::Buffer,
    t: u32,
) -> Result<()> {
    check_decodable(table)?;
    let d = table.cols();
    let n = t as u64 * d;
    if n == 0 {
        return Err(Error::Invalid(format!("embedding {t} tokens with {}", table.name)));
    }
    check_len("embed: ids", ids, t as u64)?;
    check_len("embed: out", out, n)?;
    check_binding(gpu, "embed: out", n)?;
    let bindings = &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite];
    let kernel = kernel(gpu, table, "gather", bindings).await?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for rows in table_chunks(gpu, table, 0..table.rows())? {
        let window = table.window(rows.clone(), align);
        let shape = gpu.uniform(&Shape {
            cols: d as u32,
            row_bytes: table.row_bytes() as u32,
            skip: window.skip as u32,
            row0: rows.start as u32,
            rows: (rows.end - rows.start) as u32,
            t,
            ..Default::default()
        });
        gpu.dispatch(
            enc,
            &kernel,
            &[shape.as_entire_binding(), table.binding(window), prefix(ids, t as u64), prefix(out, n)],
            grid(
                (t as u64 * d.div_ceil(4)).div_ceil(WORKGROUP),
                gpu.limits().max_compute_workgroups_per_dimension,
            ),
        );
    }
    Ok(())
}

/// Record x (t, d) += rows pos0 .. pos0 + t of `table` (n_ctx, d), any decodable format.
pub async fn add_positions(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    table: &GpuTensor,
    pos0: u32,
    t: u32,
    d: u32,
) -> Result<()> {
    check_decodable(table)?;
    let (first, end) = (pos0 as u64, pos0 as u64 + t as u64);
    if t == 0 || table.cols() != d as u64 || end > table.rows() {
        return Err(Error::Invalid(format!(
            "positions {first}..{end} of {} ({} rows of {}) added to rows of {d}",
            table.name,
            table.rows(),
            table.cols()
        )));
    }
    let n = t as u64 * d as u64;
    check_len("add_positions: x", x, n)?;
    check_binding(gpu, "add_positions: x", n)?;
    let kernel = kernel(gpu, table, "add_rows", &[Access::Uniform, Access::Read, Access::ReadWrite]).await?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for rows in table_chunks(gpu, table, first..end)? {
        let window = table.window(rows.clone(), align);
        let count = rows.end - rows.start;
        let shape = gpu.uniform(&Shape {
            cols: d,
            row_bytes: table.row_bytes() as u32,
            skip: window.skip as u32,
            row0: rows.start as u32,
            rows: count as u32,
            x_row: (rows.start - first) as u32,
            ..Default::default()
        });
        gpu.dispatch(
            enc,
            &kernel,
            &[shape.as_entire_binding(), table.binding(window), prefix(x, n)],
            grid(
                (count * (d as u64).div_ceil(4)).div_ceil(WORKGROUP),
                gpu.limits().max_compute_workgroups_per_dimension,
            ),
        );
    }
    Ok(())
}
