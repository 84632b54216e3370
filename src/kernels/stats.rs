//! Launchers for the weight-statistics kernels (`shaders/stats.wgsl`) over an f32 matrix on the GPU.
//! Each records its pass into the caller's encoder, so several passes over the same data go in one
//! submission. The CPU twins are in `cpu::stats`.

use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, Kernel, KernelSpec};
use std::sync::Arc;

/// The most histogram bins one pass can count (workgroup-local counters, 8 KiB).
pub const MAX_BINS: u32 = 2048;
/// Elements one histogram workgroup bins (`HISTOGRAM_SPAN` in the shader).
const HISTOGRAM_SPAN: u64 = 256 * 64;

/// A row-major (rows, cols) f32 matrix at the start of `values`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub values: &'a wgpu::Buffer,
    pub rows: u64,
    pub cols: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    bins: u32,
    _pad0: u32,
    mean: f32,
    lo: f32,
    scale: f32,
    _pad1: f32,
}

impl Matrix<'_> {
    fn params(&self) -> Result<Params> {
        let n = self.rows * self.cols;
        if n > u32::MAX as u64 {
            return Err(Error::DeviceLimit(format!("statistics over {n} elements in one pass")));
        }
        Ok(Params { rows: self.rows as u32, cols: self.cols as u32, ..Default::default() })
    }
}

async fn kernel(gpu: &Gpu, entry: &'static str) -> Result<Arc<Kernel>> {
    gpu.kernel(KernelSpec {
        shader: "stats",
        entry,
        constants: vec![],
        bindings: &[Access::Uniform, Access::Read, Access::ReadWrite],
    })
    .await
}

/// One workgroup per row writing one vec4 per row.
async fn row_pass(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    entry: &'static str,
    m: Matrix<'_>,
    params: Params,
) -> Result<wgpu::Buffer> {
    let budget = gpu.limits().max_storage_buffer_binding_size;
    if 16 * m.rows > budget {
        return Err(Error::DeviceLimit(format!("{entry}: {} rows of results exceed one binding", m.rows)));
    }
    let kernel = kernel(gpu, entry).await?;
    let out = gpu.storage_buffer(entry, 16 * m.rows, wgpu::BufferUsages::empty())?;
    let uniform = gpu.uniform(&params);
    gpu.dispatch(
        encoder,
        &kernel,
        &[uniform.as_entire_binding(), m.values.as_entire_binding(), out.as_entire_binding()],
        grid(m.rows, gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(out)
}

/// Per row [min, max, max|x|, Σx]: a (rows, 4) f32 buffer once the encoder is submitted.
pub async fn row_reduce(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    m: Matrix<'_>,
) -> Result<wgpu::Buffer> {
    row_pass(gpu, encoder, "row_reduce", m, m.params()?).await
}

/// Per row [Σ(x − mean)², Σ(x − mean)⁴, 0, 0]: a (rows, 4) f32 buffer once the encoder is submitted.
pub async fn row_moments(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    m: Matrix<'_>,
    mean: f32,
) -> Result<wgpu::Buffer> {
    row_pass(gpu, encoder, "row_moments", m, Params { mean, ..m.params()? }).await
}

/// A zeroed u32 buffer of `bins` counts for [`histogram`] to add into.
pub fn histogram_counts(gpu: &Gpu, bins: u32) -> Result<wgpu::Buffer> {
    if bins == 0 || bins > MAX_BINS {
        return Err(Error::Invalid(format!("a histogram needs 1 to {MAX_BINS} bins, not {bins}")));
    }
    // New buffers are zero-initialised by wgpu.
    gpu.storage_buffer("histogram", 4 * bins as u64, wgpu::BufferUsages::empty())
}

/// Add the counts of `m`'s values in `bins` equal bins over [lo, hi] into `counts` (from
/// [`histogram_counts`]); values == hi land in the last bin.
pub async fn histogram(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    m: Matrix<'_>,
    (lo, hi): (f32, f32),
    counts: &wgpu::Buffer,
    bins: u32,
) -> Result<()> {
    if bins == 0 || bins > MAX_BINS || counts.size() < 4 * bins as u64 {
        return Err(Error::Invalid(format!("histogram of {bins} bins into a {}-byte buffer", counts.size())));
    }
    let scale = crate::cpu::stats::bin_scale(bins, lo, hi);
    let uniform = gpu.uniform(&Params { bins, lo, scale, ..m.params()? });
    let kernel = kernel(gpu, "histogram").await?;
    gpu.dispatch(
        encoder,
        &kernel,
        &[uniform.as_entire_binding(), m.values.as_entire_binding(), counts.as_entire_binding()],
        grid((m.rows * m.cols).div_ceil(HISTOGRAM_SPAN), gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(())
}

/// Read a (rows, 4) result of [`row_reduce`] or [`row_moments`] back.
pub async fn read_rows(gpu: &Gpu, buffer: &wgpu::Buffer, rows: u64) -> Result<Vec<[f32; 4]>> {
    let flat = gpu.read_f32(buffer, 0, 4 * rows).await?;
    Ok(flat.chunks_exact(4).map(|r| [r[0], r[1], r[2], r[3]]).collect())
}
