//! Log-softmax over logits on the GPU (`shaders/logits.wgsl`): the per-token negative log-likelihood
//! behind perplexity, and whole log-probability rows for divergences between models. One workgroup
//! per row; logits larger than one binding are processed in token chunks. The CPU twins are in
//! `cpu::logits`.

use super::buffers::{check_len, f32_row_chunks, prefix, row_window};
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    rows: u32,
    vocab: u32,
    x_skip: u32,
    first: u32,
}

/// Record out[i] = −log softmax(logits[i])[targets[i]] for logits (t, vocab), targets (t) u32 < vocab,
/// out (t) f32.
pub async fn token_nll(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    logits: &wgpu::Buffer,
    targets: &wgpu::Buffer,
    out: &wgpu::Buffer,
    t: u32,
    vocab: u32,
) -> Result<()> {
    let (t64, v64) = (t as u64, vocab as u64);
    if t == 0 || vocab == 0 {
        return Err(Error::Invalid(format!("token_nll over {t} rows of {vocab} logits")));
    }
    check_len("token_nll: logits", logits, t64 * v64)?;
    check_len("token_nll: targets", targets, t64)?;
    check_len("token_nll: out", out, t64)?;
    let bindings = &[Access::Uniform, Access::Read, Access::Read, Access::ReadWrite];
    let kernel =
        gpu.kernel(KernelSpec { shader: "logits", entry: "token_nll", constants: vec![], bindings }).await?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for rows in f32_row_chunks(gpu, "token_nll: logits", t64, v64)? {
        let window = row_window(logits, rows.clone(), v64, align);
        let shape = gpu.uniform(&Shape {
            rows: (rows.end - rows.start) as u32,
            vocab,
            x_skip: window.skip,
            first: rows.start as u32,
        });
        gpu.dispatch(
            enc,
            &kernel,
            &[shape.as_entire_binding(), window.binding, prefix(targets, t64), prefix(out, t64)],
            grid(rows.end - rows.start, gpu.limits().max_compute_workgroups_per_dimension),
        );
    }
    Ok(())
}

/// Record out (t, vocab) = log softmax of each row of logits (t, vocab); out is a different buffer.
pub async fn log_softmax_rows(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    logits: &wgpu::Buffer,
    out: &wgpu::Buffer,
    t: u32,
    vocab: u32,
) -> Result<()> {
    let (t64, v64) = (t as u64, vocab as u64);
    if t == 0 || vocab == 0 {
        return Err(Error::Invalid(format!("log_softmax_rows over {t} rows of {vocab} logits")));
    }
    check_len("log_softmax_rows: logits", logits, t64 * v64)?;
    check_len("log_softmax_rows: out", out, t64 * v64)?;
    let bindings = &[Access::Uniform, Access::Read, Access::ReadWrite];
    let kernel = gpu
        .kernel(KernelSpec { shader: "logits", entry: "log_softmax", constants: vec![], bindings })
        .await?;
    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    for rows in f32_row_chunks(gpu, "log_softmax_rows: logits", t64, v64)? {
        // Both windows start at the same offset, so they share one skip.
        let window = row_window(logits, rows.clone(), v64, align);
        let shape = gpu.uniform(&Shape {
            rows: (rows.end - rows.start) as u32,
            vocab,
            x_skip: window.skip,
            first: 0,
        });
        gpu.dispatch(
            enc,
            &kernel,
            &[shape.as_entire_binding(), window.binding, row_window(out, rows.clone(), v64, align).binding],
            grid(rows.end - rows.start, gpu.limits().max_compute_workgroups_per_dimension),
        );
    }
    Ok(())
}
