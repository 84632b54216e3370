//! GPU dequantisation (`shaders/dequant.wgsl`): rows of a tensor uploaded as stored (F32, F16, BF16 or
//! GGUF blocks) decoded into an f32 buffer. The CPU twin is `cpu::dequant`.

use crate::error::{Error, Result};
use crate::gpu::{grid, row_chunks, Access, Gpu, GpuTensor, KernelSpec};
use std::ops::Range;

/// Threads per workgroup (`WG` in the shader) and elements per thread.
const WORKGROUP: u64 = 64;
const PER_THREAD: u64 = 32;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    n: u32,
    skip: u32,
    cols: u32,
    row_bytes: u32,
}

/// Decode rows `rows` of `t` into a new f32 storage buffer of (rows, cols), row-major. The work is
/// submitted; read the buffer back or bind it in later submissions. The packed window and the output
/// must each fit one storage binding: split big tensors with [`chunks`].
pub async fn dequantize(gpu: &Gpu, t: &GpuTensor, rows: Range<u64>) -> Result<wgpu::Buffer> {
    if !t.dtype.decodable() {
        return Err(Error::unsupported(&t.name, format!("{} tensors cannot be dequantised", t.dtype)));
    }
    if rows.start >= rows.end || rows.end > t.rows() {
        return Err(Error::Invalid(format!(
            "rows {}..{} of tensor {} are not a non-empty range of its {} rows",
            rows.start,
            rows.end,
            t.name,
            t.rows()
        )));
    }
    let limits = gpu.limits();
    let window = t.window(rows.clone(), limits.min_storage_buffer_offset_alignment as u64);
    let n = (rows.end - rows.start) * t.cols();
    let budget = limits.max_storage_buffer_binding_size;
    if window.size.max(4 * n) > budget {
        return Err(Error::DeviceLimit(format!(
            "dequantising rows {}..{} of {} binds {} packed bytes and {} f32 bytes; this GPU binds at most {budget} \
             bytes at a time (split the rows with kernels::dequant::chunks)",
            rows.start,
            rows.end,
            t.name,
            window.size,
            4 * n
        )));
    }
    let n32 = u32::try_from(n)
        .map_err(|_| Error::DeviceLimit(format!("dequantising {}: {n} elements in one dispatch", t.name)))?;

    let kernel = gpu
        .kernel(KernelSpec {
            shader: "dequant",
            entry: "main",
            constants: t.dtype.shader_constants(),
            bindings: &[Access::Uniform, Access::Read, Access::ReadWrite],
        })
        .await?;
    let out = gpu.storage_buffer(&format!("{} as f32", t.name), 4 * n, wgpu::BufferUsages::empty())?;
    let shape = gpu.uniform(&Shape {
        n: n32,
        skip: window.skip as u32,
        cols: t.cols() as u32,
        row_bytes: t.row_bytes() as u32,
    });
    let groups = n.div_ceil(PER_THREAD).div_ceil(WORKGROUP);
    let mut encoder = gpu.encoder();
    gpu.dispatch(
        &mut encoder,
        &kernel,
        &[shape.as_entire_binding(), t.binding(window), out.as_entire_binding()],
        grid(groups, limits.max_compute_workgroups_per_dimension),
    );
    gpu.queue.submit([encoder.finish()]);
    Ok(out)
}

/// Row ranges of `t` that [`dequantize`] can take one at a time on this GPU.
pub fn chunks(gpu: &Gpu, t: &GpuTensor) -> Result<Vec<Range<u64>>> {
    let limits = gpu.limits();
    // The f32 output is the larger binding (no format stores more than 4 bytes an element); the packed
    // window may start up to one offset alignment before its first row.
    row_chunks(
        &format!("dequantising {}", t.name),
        t.rows(),
        4 * t.cols(),
        limits.min_storage_buffer_offset_alignment as u64,
        limits.max_storage_buffer_binding_size,
    )
}

/// The whole tensor as f32 values, decoded chunk by chunk on the GPU.
pub async fn dequantize_to_vec(gpu: &Gpu, t: &GpuTensor) -> Result<Vec<f32>> {
    let mut values = Vec::with_capacity(t.n_elements() as usize);
    for rows in chunks(gpu, t)? {
        let n = (rows.end - rows.start) * t.cols();
        let buffer = dequantize(gpu, t, rows).await?;
        values.extend(gpu.read_f32(&buffer, 0, n).await?);
    }
    Ok(values)
}
