//! Launchers for the calibration-statistics kernels (`shaders/calib.wgsl`): what compression methods
//! need from the activations x (t tokens, k channels, f32, row-major) at the input of a linear layer,
//! added into running totals so that batches accumulate. Per-channel Σ|x|, max|x|, Σx², Σx (AWQ,
//! SmoothQuant, Wanda, LLM.int8, FLAP) and the Hessian xᵀx (GPTQ, SparseGPT). x larger than one binding goes
//! in token windows. The Hessian transposes x a chunk of at most 512 tokens at a time, so that each
//! dispatch reads its ROWS channels from a uniform window, and goes in row windows when h is larger than
//! one binding. The CPU twins are in `cpu::calib`.

use super::buffers::{check_binding, check_len, f32_row_chunks, prefix, row_window};
use crate::error::{Error, Result};
use crate::gpu::{Access, Gpu, Kernel, KernelSpec};
use std::ops::Range;
use std::sync::Arc;

/// Threads per workgroup, one channel each (`WG` in the shader).
const WG: u32 = 64;
/// Rows of h one `hessian` dispatch sums (`ROWS` in the shader).
const ROWS: u32 = 32;
/// Bytes of the uniform window of xᵀ rows a `hessian` dispatch reads (`block_xt` in the shader): the
/// WebGPU default maxUniformBufferBindingSize.
const BLOCK_WINDOW: u64 = 64 * 1024;
/// The most tokens one Hessian chunk takes: ROWS rows of them fill the uniform window.
const MAX_CHUNK_TOKENS: u32 = (BLOCK_WINDOW / 4) as u32 / ROWS;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t: u32,
    k: u32,
    x_skip: u32,
    t_pad: u32,
    row0: u32,
    row_end: u32,
    h_skip: u32,
    a0: u32,
    mirror: u32,
    _pad: [u32; 3],
}

async fn kernel(gpu: &Gpu, entry: &'static str, bindings: &'static [Access]) -> Result<Arc<Kernel>> {
    gpu.kernel(KernelSpec { shader: "calib", entry, constants: vec![], bindings }).await
}

/// Bindings of `columns` and `transpose_x`: params, x, the output they write.
const X_TO_OUTPUT: &[Access] = &[Access::Uniform, Access::Read, Access::ReadWrite];

/// A zeroed (4, k) f32 buffer for [`accumulate_columns`] to add into.
pub fn new_column_stats(gpu: &Gpu, k: u32) -> Result<wgpu::Buffer> {
    // New buffers are zero-initialised by wgpu; COPY_DST lets a caller clear it for reuse.
    gpu.storage_buffer("column statistics", 16 * k as u64, wgpu::BufferUsages::COPY_DST)
}

/// Bytes of the (k, k) f32 Hessian of a layer with k input channels, if this GPU can hold it.
fn hessian_bytes(gpu: &Gpu, k: u32) -> Result<u64> {
    let bytes = 4 * k as u64 * k as u64;
    let max = gpu.limits().max_buffer_size;
    if bytes > max {
        return Err(Error::DeviceLimit(format!(
            "the Hessian of a layer with {k} input channels is a {k}×{k} f32 matrix of {bytes} bytes; \
             this GPU's largest buffer is {max} bytes"
        )));
    }
    Ok(bytes)
}

/// A zeroed (k, k) f32 buffer for [`accumulate_hessian`] to add into.
pub fn new_hessian(gpu: &Gpu, k: u32) -> Result<wgpu::Buffer> {
    let bytes = hessian_bytes(gpu, k)?;
    gpu.storage_buffer("hessian", bytes, wgpu::BufferUsages::COPY_DST)
}

/// Fail unless x holds t tokens of k channels.
fn check_x(what: &str, x: &wgpu::Buffer, t: u32, k: u32) -> Result<()> {
    if t == 0 || k == 0 {
        return Err(Error::Invalid(format!("{what}: {t} tokens of {k} channels")));
    }
    check_len(&format!("{what}: x"), x, t as u64 * k as u64)
}

/// Record stats (4, k) += [Σ|x|; max|x|; Σx²; Σx] per channel over the t tokens of x (t, k) into `enc`;
/// the middle row keeps the running max. `stats` comes from [`new_column_stats`] or is laid out alike.
pub async fn accumulate_columns(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    t: u32,
    k: u32,
    stats: &wgpu::Buffer,
) -> Result<()> {
    let what = format!("column statistics of {k} channels");
    check_x(&what, x, t, k)?;
    check_len(&format!("{what}: stats"), stats, 4 * k as u64)?;
    check_binding(gpu, &format!("{what}: stats"), 4 * k as u64)?;
    let kernel = kernel(gpu, "columns", X_TO_OUTPUT).await?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for tokens in f32_row_chunks(gpu, &format!("{what}: x"), t as u64, k as u64)? {
        let x_window = row_window(x, tokens.clone(), k as u64, align);
        let params = gpu.uniform(&Params {
            t: (tokens.end - tokens.start) as u32,
            k,
            x_skip: x_window.skip,
            ..Default::default()
        });
        gpu.dispatch(
            enc,
            &kernel,
            &[params.as_entire_binding(), x_window.binding, stats.as_entire_binding()],
            [k.div_ceil(WG), 1, 1],
        );
    }
    Ok(())
}

/// How the Hessian's work is cut: tokens in chunks whose transpose (k_pad, t_pad) fits one binding
/// and whose ROWS rows fit the uniform window; h in windows of whole ROWS-row blocks.
struct HessianPlan {
    k_pad: u32,
    /// Tokens per row of the transpose; ROWS rows of it start at offsets uniform bindings accept.
    t_pad: u32,
    token_chunks: Vec<Range<u32>>,
    row_windows: Vec<Range<u32>>,
}

impl HessianPlan {
    fn new(gpu: &Gpu, what: &str, t: u32, k: u32) -> Result<HessianPlan> {
        let limits = gpu.limits();
        let (align, budget) =
            (limits.min_storage_buffer_offset_alignment as u64, limits.max_storage_buffer_binding_size);
        let uniform_align = gpu.device.limits().min_uniform_buffer_offset_alignment;
        let quantum = 4u32.max(uniform_align / (4 * ROWS));
        let k_pad = k.next_multiple_of(WG);
        let fit = (budget.saturating_sub(align) / (4 * k_pad as u64)).min(MAX_CHUNK_TOKENS as u64) as u32;
        let per_chunk = fit / quantum * quantum;
        if per_chunk == 0 {
            return Err(Error::DeviceLimit(format!(
                "{what}: {quantum} tokens of {k_pad} channels exceed one binding ({budget} bytes)"
            )));
        }
        let token_chunks = (0..t.div_ceil(per_chunk)).map(|i| i * per_chunk..((i + 1) * per_chunk).min(t));
        let blocks = f32_row_chunks(gpu, what, k.div_ceil(ROWS) as u64, ROWS as u64 * k as u64)?;
        let rows = |b: &Range<u64>| b.start as u32 * ROWS..(b.end as u32 * ROWS).min(k);
        Ok(HessianPlan {
            k_pad,
            t_pad: t.min(per_chunk).next_multiple_of(quantum),
            token_chunks: token_chunks.collect(),
            row_windows: blocks.iter().map(rows).collect(),
        })
    }

    /// f32 values of the transpose of one chunk.
    fn xt_len(&self) -> u64 {
        self.k_pad as u64 * self.t_pad as u64
    }

    /// Whether all of h fits one binding, so that it can be summed by halves and mirrored.
    fn mirror(&self) -> bool {
        self.row_windows.len() == 1
    }
}

/// Record h (k, k) += xᵀx, i.e. h[a, b] += Σ_i x[i, a]·x[i, b] over the t tokens of x (t, k), into
/// `enc`. `h` comes from [`new_hessian`] or is laid out alike. When h fits one binding only the entries
/// on and above the diagonal are summed, then mirrored (half the work); otherwise h goes in row windows
/// computed whole.
pub async fn accumulate_hessian(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    t: u32,
    k: u32,
    h: &wgpu::Buffer,
) -> Result<()> {
    let what = format!("Hessian of a layer with {k} input channels");
    check_x(&what, x, t, k)?;
    let bytes = hessian_bytes(gpu, k)?;
    check_len(&format!("{what}: h"), h, bytes / 4)?;
    let plan = HessianPlan::new(gpu, &what, t, k)?;
    let transpose = kernel(gpu, "transpose_x", X_TO_OUTPUT).await?;
    let hessian =
        kernel(gpu, "hessian", &[Access::Uniform, Access::Uniform, Access::Read, Access::ReadWrite]).await?;
    // Room after the last row block for a whole uniform window.
    let xt =
        gpu.storage_buffer("x transposed", 4 * plan.xt_len() + BLOCK_WINDOW, wgpu::BufferUsages::UNIFORM)?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for tokens in &plan.token_chunks {
        let x_window = row_window(x, tokens.start as u64..tokens.end as u64, k as u64, align);
        let chunk = Params {
            t: tokens.end - tokens.start,
            k,
            x_skip: x_window.skip,
            t_pad: plan.t_pad,
            mirror: plan.mirror() as u32,
            ..Default::default()
        };
        let params = gpu.uniform(&chunk);
        gpu.dispatch(
            enc,
            &transpose,
            &[params.as_entire_binding(), x_window.binding, prefix(&xt, plan.xt_len())],
            [plan.k_pad / WG, plan.t_pad, 1],
        );
        record_row_blocks(gpu, enc, &hessian, &plan, &xt, h, chunk);
    }
    Ok(())
}

/// Record one `hessian` dispatch per ROWS rows of h for the chunk of tokens transposed into `xt`.
fn record_row_blocks(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    plan: &HessianPlan,
    xt: &wgpu::Buffer,
    h: &wgpu::Buffer,
    chunk: Params,
) {
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for rows in &plan.row_windows {
        let h_window = row_window(h, rows.start as u64..rows.end as u64, chunk.k as u64, align);
        for a0 in rows.clone().step_by(ROWS as usize) {
            let params = gpu.uniform(&Params {
                row0: rows.start,
                row_end: rows.end,
                h_skip: h_window.skip,
                a0,
                ..chunk
            });
            let block = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: xt,
                offset: 4 * a0 as u64 * plan.t_pad as u64,
                size: std::num::NonZeroU64::new(BLOCK_WINDOW),
            });
            // Mirrored, the column blocks left of the one holding the diagonal have nothing to add.
            let skipped = if plan.mirror() { a0 / WG } else { 0 };
            gpu.dispatch(
                enc,
                kernel,
                &[params.as_entire_binding(), block, prefix(xt, plan.xt_len()), h_window.binding.clone()],
                [plan.k_pad / WG - skipped, 1, 1],
            );
        }
    }
}
