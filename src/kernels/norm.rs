//! Row normalisation on the GPU (`shaders/norm.wgsl`): RMSNorm (Llama family) and LayerNorm (GPT-2),
//! one workgroup per row, recorded into the caller's encoder. The CPU twins are in `cpu::norm`.

use super::buffers::{check_binding, check_len, prefix};
use crate::error::{Error, Result};
use crate::formats::DType;
use crate::gpu::{grid, Access, Gpu, GpuTensor, KernelSpec};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// The ggml id of a norm weight or bias of `cols` elements, which must be F32, F16 or BF16.
fn vector_format(t: &GpuTensor, cols: u32) -> Result<u32> {
    if !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::unsupported(
            &t.name,
            format!("norm weights must be F32, F16 or BF16, not {}", t.dtype),
        ));
    }
    if t.n_elements() != cols as u64 {
        return Err(Error::Invalid(format!(
            "norm weight {} has {} elements for rows of {cols}",
            t.name,
            t.n_elements()
        )));
    }
    Ok(t.dtype.ggml_id())
}

#[allow(clippy::too_many_arguments)]
async fn norm(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    entry: &'static str,
    x: &wgpu::Buffer,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    out: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    eps: f32,
) -> Result<()> {
    let n = rows as u64 * cols as u64;
    if n == 0 {
        return Err(Error::Invalid(format!("{entry} over {rows} rows of {cols}")));
    }
    check_len(&format!("{entry}: x"), x, n)?;
    check_len(&format!("{entry}: out"), out, n)?;
    check_binding(gpu, &format!("{entry} of {rows} rows of {cols}"), n)?;
    let w_format = vector_format(weight, cols)?;
    let b_format = bias.map(|b| vector_format(b, cols)).transpose()?.unwrap_or(0);
    let bindings: &'static [Access] = match bias {
        Some(_) => &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite, Access::Read],
        None => &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite],
    };
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "norm",
            entry,
            constants: vec![("W_FORMAT", w_format), ("B_FORMAT", b_format)],
            bindings,
        })
        .await?;
    let shape = gpu.uniform(&Shape { rows, cols, eps, _pad: 0 });
    let mut resources =
        vec![shape.as_entire_binding(), prefix(x, n), weight.buffer.as_entire_binding(), prefix(out, n)];
    if let Some(b) = bias {
        resources.push(b.buffer.as_entire_binding());
    }
    gpu.dispatch(
        enc,
        &kernel,
        &resources,
        grid(rows as u64, gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(())
}

/// Record y = x / sqrt(mean(x²) + eps) · weight for each row of x (rows, cols) into out (rows, cols).
#[allow(clippy::too_many_arguments)]
pub async fn rms_norm(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    weight: &GpuTensor,
    out: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    eps: f32,
) -> Result<()> {
    norm(gpu, enc, "rms_norm", x, weight, None, out, rows, cols, eps).await
}

/// Record y = (x − mean) / sqrt(var + eps) · weight + bias for each row of x (rows, cols) into out.
#[allow(clippy::too_many_arguments)]
pub async fn layer_norm(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    weight: &GpuTensor,
    bias: &GpuTensor,
    out: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    eps: f32,
) -> Result<()> {
    norm(gpu, enc, "layer_norm", x, weight, Some(bias), out, rows, cols, eps).await
}
