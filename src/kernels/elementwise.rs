//! Element-by-element passes on the GPU (`shaders/elementwise.wgsl`): the residual add, SwiGLU and
//! GELU, recorded into the caller's encoder. The CPU twins are in `cpu::elementwise`. GPT-2's learned
//! positions ([`add_positions`]) decode a weight table, so they live with the embedding.

use super::buffers::{check_binding, check_len, prefix};
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

pub use super::embed::add_positions;

const WORKGROUP: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    n: u32,
    _pad: [u32; 3],
}

async fn pass(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    entry: &'static str,
    buffers: &[&wgpu::Buffer],
    bindings: &'static [Access],
    n: u32,
) -> Result<()> {
    if n == 0 {
        return Err(Error::Invalid(format!("{entry} over 0 elements")));
    }
    for b in buffers {
        check_len(entry, b, n as u64)?;
    }
    check_binding(gpu, entry, n as u64)?;
    let kernel = gpu.kernel(KernelSpec { shader: "elementwise", entry, constants: vec![], bindings }).await?;
    let shape = gpu.uniform(&Shape { n, _pad: [0; 3] });
    let resources: Vec<_> = std::iter::once(shape.as_entire_binding())
        .chain(buffers.iter().map(|b| prefix(b, n as u64)))
        .collect();
    gpu.dispatch(
        enc,
        &kernel,
        &resources,
        grid((n as u64).div_ceil(WORKGROUP), gpu.limits().max_compute_workgroups_per_dimension),
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
    pass(gpu, enc, "add", &[a, b], &[Access::Uniform, Access::ReadWrite, Access::Read], n).await
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
    pass(gpu, enc, "swiglu", &[gate, up, out], bindings, n).await
}

/// Record GELU (tanh approximation) of x in place over n elements.
pub async fn gelu(gpu: &Gpu, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, n: u32) -> Result<()> {
    pass(gpu, enc, "gelu", &[x], &[Access::Uniform, Access::ReadWrite], n).await
}
