//! Rotary position embedding on the GPU (`shaders/rope.wgsl`), in place, one thread per rotated pair.
//! The CPU twin and the pair layouts are in `cpu::rope`.

use super::buffers::{as_u32, check_binding, check_len};
pub use crate::cpu::rope::RopeMode;
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

const WORKGROUP: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    t: u32,
    heads: u32,
    head_dim: u32,
    pos0: u32,
    theta_scale: f32,
    _pad: [u32; 3],
}

/// Record the rotation of x (t, heads, head_dim) in place: token i at position pos0 + i, base `theta`.
#[allow(clippy::too_many_arguments)]
pub async fn rope(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    t: u32,
    heads: u32,
    head_dim: u32,
    pos0: u32,
    theta: f32,
    mode: RopeMode,
) -> Result<()> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::Invalid(format!("rope needs an even head dimension, not {head_dim}")));
    }
    let n = t as u64 * heads as u64 * head_dim as u64;
    check_len("rope: x", x, n)?;
    check_binding(gpu, "rope: x", n)?;
    as_u32("rope", n)?;
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "rope",
            entry: "main",
            constants: vec![("NEOX", (mode == RopeMode::Neox) as u32)],
            bindings: &[Access::Uniform, Access::ReadWrite],
        })
        .await?;
    let theta_scale = crate::cpu::rope::theta_scale(theta, head_dim as usize);
    let shape = gpu.uniform(&Shape { t, heads, head_dim, pos0, theta_scale, _pad: [0; 3] });
    gpu.dispatch(
        enc,
        &kernel,
        &[shape.as_entire_binding(), x.as_entire_binding()],
        grid((n / 2).div_ceil(WORKGROUP), gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(())
}
