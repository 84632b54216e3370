//! Dynamic per-token activation quantisation on the GPU (`shaders/actquant.wgsl`), the activation half
//! of W8A8 (SmoothQuant) and LLM.int8(): the input of a linear is rounded, token by token, to symmetric
//! b-bit integers times the token's absmax scale before the matmul reads it. LLM.int8()'s outlier
//! feature columns are found first and pass through unquantised. The CPU twin is `cpu::actquant`.

use super::buffers::{check_binding, check_len, prefix};
use crate::cpu::actquant::{max_level, SUPPORTED_BITS};
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

/// Threads per workgroup of the column pass, one column each (`COLUMN_WG` in the shader).
const COLUMN_WORKGROUP: u64 = 64;
/// Tokens each thread of the column pass scans (`TOKEN_SPAN` in the shader).
const TOKEN_SPAN: u64 = 64;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t: u32,
    k: u32,
    q_max: f32,
    threshold: f32,
}

/// Fail unless x (t, k) is non-empty and within `buffer`'s size and one binding.
fn check_activations(gpu: &Gpu, what: &str, buffer: &wgpu::Buffer, t: u32, k: u32) -> Result<u64> {
    let n = t as u64 * k as u64;
    if n == 0 {
        return Err(Error::Invalid(format!("{what} of {t} tokens of {k} values")));
    }
    check_len(what, buffer, n)?;
    check_binding(gpu, what, n)?;
    Ok(n)
}

/// Record the search for LLM.int8()'s outlier features in x (t, k): the returned (k) u32 buffer holds,
/// once the encoder is submitted, 1 for each column where some token has |x| ≥ `threshold`, else 0.
pub async fn outlier_columns(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    t: u32,
    k: u32,
    threshold: f32,
) -> Result<wgpu::Buffer> {
    let n = check_activations(gpu, "outlier columns: x", x, t, k)?;
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "actquant",
            entry: "outlier_columns",
            // The shader's quantize_rows needs it defined; this entry point never reads it.
            constants: vec![("OUTLIERS", 1)],
            bindings: &[Access::Uniform, Access::Read, Access::ReadWrite],
        })
        .await?;
    // New buffers are zero-initialised by wgpu; the shader only marks the outliers.
    let flags = gpu.storage_buffer("outlier columns", 4 * k as u64, wgpu::BufferUsages::empty())?;
    let params = gpu.uniform(&Params { t, k, threshold, ..Default::default() });
    gpu.dispatch(
        enc,
        &kernel,
        &[params.as_entire_binding(), prefix(x, n), flags.as_entire_binding()],
        grid(
            (k as u64).div_ceil(COLUMN_WORKGROUP) * (t as u64).div_ceil(TOKEN_SPAN),
            gpu.limits().max_compute_workgroups_per_dimension,
        ),
    );
    Ok(flags)
}

/// Record out (t, k) = x (t, k) quantised per token to symmetric `bits`-bit integers times the token's
/// scale s = max|x| / (2^(bits−1) − 1) (0 for an all-zero row). With a `threshold` (LLM.int8(): 6.0),
/// the columns where any token reaches it are left out of s and copied unchanged; None (SmoothQuant's
/// W8A8) quantises every column. `out` must be another buffer than `x`; made by `Gpu::storage_buffer`
/// it has the COPY_SRC usage the matmul needs of its input.
#[allow(clippy::too_many_arguments)]
pub async fn quantize_activations(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    t: u32,
    k: u32,
    bits: u32,
    threshold: Option<f32>,
) -> Result<()> {
    if !SUPPORTED_BITS.contains(&bits) {
        return Err(Error::Invalid(format!(
            "activations quantise to {} to {} bits, not {bits}",
            SUPPORTED_BITS.start(),
            SUPPORTED_BITS.end()
        )));
    }
    if x == out {
        return Err(Error::Invalid("quantize_activations cannot write over its input x".into()));
    }
    let n = check_activations(gpu, "quantize activations: x", x, t, k)?;
    check_len("quantize activations: out", out, n)?;
    let flags = match threshold {
        Some(threshold) => Some(outlier_columns(gpu, enc, x, t, k, threshold).await?),
        None => None,
    };
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "actquant",
            entry: "quantize_rows",
            constants: vec![("OUTLIERS", flags.is_some() as u32)],
            bindings: &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite],
        })
        .await?;
    let params = gpu.uniform(&Params { t, k, q_max: max_level(bits), ..Default::default() });
    // Without outliers, x stands in for the flags (the shader never reads them then).
    let flags_binding = flags.as_ref().map_or(prefix(x, n), |f| f.as_entire_binding());
    gpu.dispatch(
        enc,
        &kernel,
        &[params.as_entire_binding(), prefix(x, n), flags_binding, prefix(out, n)],
        grid(t as u64, gpu.limits().max_compute_workgroups_per_dimension),
    );
    Ok(())
}
