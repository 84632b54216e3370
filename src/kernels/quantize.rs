//! Round-to-nearest quantisation on the GPU (`shaders/quantize.wgsl`): an f32 weight matrix in a GPU
//! buffer packed into a stored format (`compress::quant::grid::Format`) in a new buffer, ready for
//! `kernels::matmul`. The CPU twin is `compress::quant::grid::quantize_rtn`, whose bytes the kernel
//! reproduces (see the shader's notes on exactness).

use super::buffers::{as_u32, check_len, f32_row_chunks, row_window};
use crate::compress::quant::grid::{Format, Scheme};
use crate::error::{Error, Result};
use crate::formats::packed;
use crate::gpu::{grid, Access, Gpu, GpuTensor, KernelSpec, Window};
use std::ops::Range;
use std::sync::OnceLock;

/// Threads per workgroup of `main` and `tensor_range` (`WG` in the shader); `main` runs one per block.
const WORKGROUP: u64 = 64;
/// Elements one `tensor_range` thread folds (`RANGE_SPAN`).
const RANGE_SPAN: u64 = 256;
/// Threads per workgroup of `tensor_search` (`SEARCH_WG`), one per candidate range.
const SEARCH_WORKGROUP: u32 = 8;
/// The ranges a search tries: p_i = 1 − i/100 for i < 80, as `Format::fit`.
const CANDIDATES: usize = 80;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    blocks: u32,
    in_skip: u32,
    out_skip: u32,
    elements: u32,
    group: u32,
    block_bytes: u32,
    per_tensor: u32,
    /// Always 0: the shader ORs it into products to keep drivers from fusing them into an fma.
    zero: u32,
    levels: [[f32; 4]; 4],
    shrink: [[f32; 4]; CANDIDATES / 4],
    log2_round_up: [[u32; 4]; 64],
}

/// Quantise the (rows, cols) f32 matrix at the start of `weights` into `format`: a new tensor named
/// `name` of dtype `format.dtype(cols)`. The work is submitted; read the tensor back or use it in
/// later submissions. Matrices larger than one binding are processed in row chunks.
pub async fn quantize(
    gpu: &Gpu,
    weights: &wgpu::Buffer,
    rows: u64,
    cols: u64,
    format: &Format,
    name: &str,
) -> Result<GpuTensor> {
    let what = format!("quantising {name} to {}", format.describe());
    if rows == 0 || cols == 0 {
        return Err(Error::Invalid(format!("{what}: a ({rows}, {cols}) matrix has no weights")));
    }
    let dtype = format.dtype(cols as usize)?;
    // Q5_0's split fifth bits and the K-quants' searched super-blocks have no shader path: compress
    // quantises every format on the CPU (`grid::quantize_rtn`), this kernel is the GPU route for the rest.
    if matches!(format.scheme, Scheme::Q5_0 | Scheme::Q4_K | Scheme::Q6_K) {
        return Err(Error::Invalid(format!(
            "{what}: the GPU quantiser does not write {:?}; quantise it on the CPU (grid::quantize_rtn)",
            format.scheme
        )));
    }
    // One invocation per whole block; rows ending in a shorter block (groups of 128 on rows of 576)
    // are quantised on the CPU (`grid::quantize_rtn`).
    if !cols.is_multiple_of(format.group_len(cols as usize) as u64) {
        return Err(Error::Invalid(format!(
            "{what}: the GPU quantiser needs groups that divide the row; rows of {cols} end in a shorter block"
        )));
    }
    check_len(&format!("{what}: weights"), weights, rows * cols)?;
    let n_bytes = dtype
        .bytes_for(rows * cols)
        .ok_or_else(|| Error::Invalid(format!("{what}: {rows}×{cols} weights do not fit {dtype}")))?;
    let buffer = gpu.storage_buffer(name, n_bytes, wgpu::BufferUsages::empty())?;
    let out = GpuTensor { name: name.to_string(), buffer, shape: vec![rows, cols], dtype, n_bytes };

    let shape = BlockShape {
        group: as_u32(&what, format.group_len(cols as usize) as u64)?,
        block_bytes: dtype.block_bytes() as u32,
        // As `Format::fit_all`: one grid for the whole tensor, except for the GGUF formats' fixed blocks.
        per_tensor: format.per_tensor(),
    };
    // `Format::fit` ignores the search for MXFP4, whose scale is a power of two.
    let search = format.search && format.scheme != Scheme::Mxfp4;
    let constants = [scheme_constants(format.scheme), vec![("SEARCH", search as u32)]].concat();
    let kernel = |entry| {
        gpu.kernel(KernelSpec {
            shader: "quantize",
            entry,
            constants: constants.clone(),
            bindings: &[Access::Uniform, Access::Read, Access::ReadWrite, Access::ReadWrite],
        })
    };
    let state = tensor_state(gpu)?;

    let align = gpu.limits().min_storage_buffer_offset_alignment as u64;
    let max_groups = gpu.limits().max_compute_workgroups_per_dimension;
    let mut chunks = Vec::new();
    for rows in f32_row_chunks(gpu, &what, rows, cols)? {
        chunks.push(Chunk::new(gpu, &what, format.scheme, shape, weights, &out, rows, cols, align)?);
    }
    let mut encoder = gpu.encoder();
    if shape.per_tensor {
        let range = kernel("tensor_range").await?;
        for c in &chunks {
            let groups = (c.elements as u64).div_ceil(WORKGROUP * RANGE_SPAN);
            gpu.dispatch(&mut encoder, &range, &c.bindings(&out, &state), grid(groups, max_groups));
        }
        if search {
            // Each candidate's sum continues chunk after chunk, in the CPU's order.
            let sums = kernel("tensor_search").await?;
            for c in &chunks {
                let groups = (CANDIDATES as u32).div_ceil(SEARCH_WORKGROUP);
                gpu.dispatch(&mut encoder, &sums, &c.bindings(&out, &state), [groups, 1, 1]);
            }
        }
    }
    let main = kernel("main").await?;
    for c in &chunks {
        let groups = ((c.elements / shape.group) as u64).div_ceil(WORKGROUP);
        gpu.dispatch(&mut encoder, &main, &c.bindings(&out, &state), grid(groups, max_groups));
    }
    gpu.queue.submit([encoder.finish()]);
    Ok(out)
}

/// How a row splits into stored blocks (the shader reads it from the uniform, so that one pipeline
/// serves every shape).
#[derive(Clone, Copy)]
struct BlockShape {
    group: u32,
    block_bytes: u32,
    per_tensor: bool,
}

/// The shader's SCHEME number and code width (4 for the nibble-pair layouts, 8 for Q8_0's bytes).
fn scheme_constants(scheme: Scheme) -> Vec<(&'static str, u32)> {
    let (id, bits) = match scheme {
        Scheme::Int { bits, sym: true } => (0, bits),
        Scheme::Int { bits, sym: false } => (1, bits),
        Scheme::Nf4 => (2, 4),
        Scheme::Fp4 => (3, 4),
        Scheme::Fp8E4M3 => (4, 8),
        Scheme::Fp8E5M2 => (5, 8),
        Scheme::Mxfp4 => (6, 4),
        Scheme::Q8_0 => (7, 8),
        Scheme::Q4_0 => (8, 4),
        Scheme::Q4_1 => (9, 4),
        Scheme::Q5_0 | Scheme::Q4_K | Scheme::Q6_K => unreachable!("refused by `quantize`"),
    };
    vec![("SCHEME", id), ("BITS", bits as u32)]
}

/// The per-tensor state `[min key, max key, err_0 … err_79]` (every pass binds it; only per-tensor
/// grids use it): the range folds start from 0, whose key is 2^31, the error sums from 0.
fn tensor_state(gpu: &Gpu) -> Result<wgpu::Buffer> {
    let state = gpu.storage_buffer(
        "quantize tensor state",
        4 * (2 + CANDIDATES as u64),
        wgpu::BufferUsages::COPY_DST,
    )?;
    let mut init = vec![0u32; 2 + CANDIDATES];
    init[..2].fill(0x8000_0000);
    gpu.queue.write_buffer(&state, 0, bytemuck::cast_slice(&init));
    Ok(state)
}

/// One row chunk's bindings and parameters.
struct Chunk<'a> {
    params: wgpu::Buffer,
    weights: wgpu::BindingResource<'a>,
    out: Window,
    elements: u32,
}

impl<'a> Chunk<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        gpu: &Gpu,
        what: &str,
        scheme: Scheme,
        shape: BlockShape,
        weights: &'a wgpu::Buffer,
        out: &GpuTensor,
        rows: Range<u64>,
        cols: u64,
        align: u64,
    ) -> Result<Chunk<'a>> {
        let input = row_window(weights, rows.clone(), cols, align);
        let window = out.window(rows.clone(), align);
        let elements = as_u32(what, (rows.end - rows.start) * cols)?;
        let params = gpu.uniform(&Params {
            blocks: elements / shape.group,
            in_skip: input.skip,
            out_skip: window.skip as u32,
            elements,
            group: shape.group,
            block_bytes: shape.block_bytes,
            per_tensor: shape.per_tensor as u32,
            zero: 0,
            levels: levels(scheme),
            shrink: shrink_steps(),
            log2_round_up: *log2_round_up(),
        });
        Ok(Chunk { params, weights: input.binding, out: window, elements })
    }

    fn bindings<'b>(&'b self, out: &'b GpuTensor, state: &'b wgpu::Buffer) -> [wgpu::BindingResource<'b>; 4] {
        [
            self.params.as_entire_binding(),
            self.weights.clone(),
            out.binding(self.out),
            state.as_entire_binding(),
        ]
    }
}

/// The code values `nearest_code` searches: NF4's levels or E2M1's.
fn levels(scheme: Scheme) -> [[f32; 4]; 4] {
    let table = if scheme == Scheme::Nf4 { packed::NF4 } else { packed::E2M1 };
    std::array::from_fn(|i| std::array::from_fn(|j| table[4 * i + j]))
}

/// The search's range factors, computed as `Format::fit` computes them.
fn shrink_steps() -> [[f32; 4]; CANDIDATES / 4] {
    std::array::from_fn(|i| std::array::from_fn(|j| 1.0 - (4 * i + j) as f32 / 100.0))
}

/// MXFP4's shared exponent takes ⌊log2 amax⌋ from `f32::log2`, which rounds up to the next integer
/// for the last few values below a power of two. For each biased exponent E of amax: the first
/// mantissa where this platform's log2 does so (2^23: none), so the shader's exponent matches.
fn log2_round_up() -> &'static [[u32; 4]; 64] {
    static TABLE: OnceLock<[[u32; 4]; 64]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let first_rounding_up = |e: u32| {
            let next = e as f32 - 126.0;
            let (mut lo, mut hi) = (0u32, 1u32 << 23);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if f32::from_bits(e << 23 | mid).log2().floor() >= next {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        std::array::from_fn(|i| {
            std::array::from_fn(|j| match (4 * i + j) as u32 {
                e @ 1..=254 => first_rounding_up(e),
                _ => 1 << 23,
            })
        })
    })
}
