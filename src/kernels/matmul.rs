//! The linear layer on the GPU (`shaders/matmul.wgsl`): out = x·Wᵀ (+ bias), with W read in its
//! stored format (F32, F16, BF16 or GGUF blocks) and decoded on the fly, never copied to f32. One
//! shader body serves one token (matrix–vector) and many (each decoded chunk of W reused for a tile
//! of tokens, whose x rows are staged in a uniform buffer). The CPU twin is `cpu::matmul` (compared
//! after `cpu::dequant`).

use super::buffers::{check_binding, check_len, prefix, row_window};
use crate::error::{Error, Result};
use crate::gpu::{grid, row_chunks, Access, Gpu, GpuTensor, KernelSpec};

/// Threads per workgroup, one row of W each (`WG` in the shader).
const WORKGROUP: u64 = 64;
/// The most tokens one dispatch (and each thread) handles (`TOKENS` in the shader).
const TILE_TOKENS: u64 = 8;
/// f32 values in the x binding: a 64 KiB uniform window (`x` in the shader), the WebGPU default
/// maxUniformBufferBindingSize.
const X_WINDOW: u64 = 16384;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    k: u32,
    rows: u32,
    tokens: u32,
    row_bytes: u32,
    w_skip: u32,
    out_skip: u32,
    out_stride: u32,
    out_col: u32,
    has_bias: u32,
    _pad: [u32; 3],
}

/// Record out[i, j] = Σ_c x[i, c]·W[j, c] (+ bias[j]) for `t` tokens into `enc`: x is (t, k) f32 with
/// COPY_SRC usage (as `Gpu::storage_buffer` makes them), W is `w` as stored, (n, k) with k ≤ 16384;
/// bias (n) f32; out (t, n) f32. Weights larger than one binding are processed in row chunks.
pub async fn matmul(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    w: &GpuTensor,
    bias: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
    t: u32,
) -> Result<()> {
    let what = format!("matmul with {}", w.name);
    if !w.dtype.decodable() {
        return Err(Error::unsupported(&w.name, format!("a matmul cannot read {} weights", w.dtype)));
    }
    let (n, k, t64) = (w.rows(), w.cols(), t as u64);
    if t == 0 || n == 0 || k == 0 {
        return Err(Error::Invalid(format!("{what}: {t} tokens of a ({n}, {k}) weight")));
    }
    if k > X_WINDOW {
        return Err(Error::DeviceLimit(format!(
            "{what}: rows of {k} elements; one token's x must fit a 64 KiB uniform binding ({X_WINDOW} values)"
        )));
    }
    if !x.usage().contains(wgpu::BufferUsages::COPY_SRC) {
        return Err(Error::Invalid(format!("{what}: x needs COPY_SRC usage (Gpu::storage_buffer gives it)")));
    }
    check_len(&format!("{what}: x"), x, t64 * k)?;
    check_len(&format!("{what}: out"), out, t64 * n)?;
    if let Some(b) = bias {
        check_len(&format!("{what}: bias"), b, n)?;
        check_binding(gpu, &format!("{what}: bias"), n)?;
    }

    let limits = gpu.limits();
    let (align, budget) =
        (limits.min_storage_buffer_offset_alignment as u64, limits.max_storage_buffer_binding_size);
    let row_ranges = row_chunks(&what, n, w.row_bytes(), align, budget)?;
    // Tokens per dispatch: their x rows fill at most the uniform window, their out rows one binding.
    let tile =
        t64.min(if t == 1 { 1 } else { TILE_TOKENS }).min(X_WINDOW / k).min((budget - align) / (4 * n));
    if tile == 0 {
        return Err(Error::DeviceLimit(format!(
            "{what}: one row of out ({} bytes) exceeds one binding",
            4 * n
        )));
    }
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "matmul",
            entry: "main",
            constants: [
                w.dtype.shader_constants(),
                vec![("TOKENS", tile as u32), ("X_ALIGNED", k.is_multiple_of(4) as u32)],
            ]
            .concat(),
            bindings: &[Access::Uniform, Access::Read, Access::Uniform, Access::Read, Access::ReadWrite],
        })
        .await?;

    // Stage each tile's x rows at its own aligned offset of a uniform buffer, with room after the
    // last for a whole window.
    let stride =
        (4 * tile * k).next_multiple_of(gpu.device.limits().min_uniform_buffer_offset_alignment as u64);
    let tiles = t64.div_ceil(tile);
    let staged = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("matmul x tiles"),
        size: (tiles - 1) * stride + 4 * X_WINDOW,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    for i in 0..tiles {
        let tokens = i * tile..((i + 1) * tile).min(t64);
        enc.copy_buffer_to_buffer(
            x,
            4 * tokens.start * k,
            &staged,
            i * stride,
            4 * (tokens.end - tokens.start) * k,
        );
    }
    for i in 0..tiles {
        let tokens = i * tile..((i + 1) * tile).min(t64);
        let x_window = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &staged,
            offset: i * stride,
            size: std::num::NonZeroU64::new(4 * X_WINDOW),
        });
        let out_window = row_window(out, tokens.clone(), n, align);
        for rows in &row_ranges {
            let w_window = w.window(rows.clone(), align);
            let n_rows = rows.end - rows.start;
            let shape = gpu.uniform(&Shape {
                k: k as u32,
                rows: n_rows as u32,
                tokens: (tokens.end - tokens.start) as u32,
                row_bytes: w.row_bytes() as u32,
                w_skip: w_window.skip as u32,
                out_skip: out_window.skip,
                out_stride: n as u32,
                out_col: rows.start as u32,
                has_bias: bias.is_some() as u32,
                _pad: [0; 3],
            });
            // Without a bias, W stands in for it (the shader never reads it then).
            let bias_binding = bias.map_or(w.binding(w_window), |b| prefix(b, n));
            gpu.dispatch(
                enc,
                &kernel,
                &[
                    shape.as_entire_binding(),
                    w.binding(w_window),
                    x_window.clone(),
                    bias_binding,
                    out_window.binding.clone(),
                ],
                grid(n_rows.div_ceil(WORKGROUP), limits.max_compute_workgroups_per_dimension),
            );
        }
    }
    Ok(())
}
