//! Element-by-element passes on the GPU (`shaders/elementwise.wgsl`): the residual add, SwiGLU, GELU
//! and the column slice that splits a fused projection, recorded into the caller's encoder. The CPU
//! twins are in `cpu::elementwise`. GPT-2's learned positions ([`add_positions`]) decode a weight
//! table, so they live with the embedding.

use super::buffers::{as_u32, check_binding, check_len, prefix};
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};
use std::ops::Range;

pub use super::embed::add_positions;

const WORKGROUP: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    /// Threads, one per output element.
    n: u32,
    width: u32,
    stride: u32,
    first: u32,
}

/// The passes over n elements of each buffer.
fn flat(n: u32) -> Shape {
    Shape { n, ..Default::default() }
}

/// Dispatch `entry` with one thread per element of `shape.n`, binding the first `len` values of each
/// of `buffers` (buffer, len) after the shape.
async fn pass(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    entry: &'static str,
    buffers: &[(&wgpu::Buffer, u64)],
    bindings: &'static [Access],
    shape: Shape,
) -> Result<()> {
    if shape.n == 0 {
        return Err(Error::Invalid(format!("{entry} over 0 elements")));
    }
    for &(b, len) in buffers {
        check_len(entry, b, len)?;
        check_binding(gpu, entry, len)?;
    }
    let kernel = gpu.kernel(KernelSpec { shader: "elementwise", entry, constants: vec![], bindings }).await?;
    let uniform = gpu.uniform(&shape);
    let resources: Vec<_> = std::iter::once(uniform.as_entire_binding())
        .chain(buffers.iter().map(|&(b, len)| prefix(b, len)))
        .collect();
    gpu.dispatch(
        enc,
        &kernel,
        &resources,
        grid((shape.n as u64).div_ceil(WORKGROUP), gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(())
}

/// Record a += b over n elements (the residual connection).
pub async fn add_in_place(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    let bindings = &[Access::Uniform, Access::ReadWrite, Access::Read];
    pass(gpu, enc, "add", &[(a, n.into()), (b, n.into())], bindings, flat(n)).await
}

/// Record out = silu(gate) · up over n elements (the SwiGLU MLP's activation).
pub async fn swiglu(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    gate: &wgpu::Buffer,
    up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    let bindings = &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite];
    pass(gpu, enc, "swiglu", &[(gate, n.into()), (up, n.into()), (out, n.into())], bindings, flat(n)).await
}

/// Record GELU (tanh approximation) of x in place over n elements.
pub async fn gelu(gpu: &Gpu, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, n: u32) -> Result<()> {
    pass(gpu, enc, "gelu", &[(x, n.into())], &[Access::Uniform, Access::ReadWrite], flat(n)).await
}

/// Record out (t, cols.len()) = columns `cols` of each row of x (t, stride): one projection's share of
/// a fused one (GPT-2's q, k and v).
pub async fn columns(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    stride: u32,
    cols: Range<u32>,
    out: &wgpu::Buffer,
    t: u32,
) -> Result<()> {
    if cols.start >= cols.end || cols.end > stride {
        return Err(Error::Invalid(format!("columns {cols:?} of rows of {stride}")));
    }
    let width = cols.end - cols.start;
    let n = as_u32("columns", t as u64 * width as u64)?;
    let shape = Shape { n, width, stride, first: cols.start };
    let buffers = [(x, t as u64 * stride as u64), (out, n.into())];
    pass(gpu, enc, "columns", &buffers, &[Access::Uniform, Access::Read, Access::ReadWrite], shape).await
}
