//! The sparse 16-bit corrections of SpQR and OWQ on the GPU (`shaders/sparse.wgsl`): the weights a
//! method keeps unquantised live apart as a sparse matrix S in CSR by output row, each entry a u32 of
//! column and f16 value, and are added after the matmul as out += x·Sᵀ. The CPU twin and the CSR
//! encoding are in `cpu::sparse`.

use super::buffers::{as_u32, check_binding, check_len, prefix};
use crate::cpu::sparse::encode_entries;
use crate::error::{Error, Result};
use crate::gpu::{grid, Access, Gpu, KernelSpec};

/// Threads per workgroup, one row of S each (`WG` in the shader).
const WORKGROUP: u64 = 64;
/// Tokens each thread adds into (`TOKENS` in the shader), so that a row's entries are read once per
/// tile rather than once per token.
const TILE_TOKENS: u64 = 8;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Shape {
    t: u32,
    rows: u32,
    cols: u32,
    _pad: u32,
}

/// S (rows, cols) on the GPU in CSR by row: `row_ptr` (rows + 1) u32 and `entries` (nnz) u32, each
/// column | f16 value << 16.
#[derive(Clone)]
pub struct SparseRows {
    pub rows: u64,
    pub cols: u64,
    pub row_ptr: wgpu::Buffer,
    pub entries: wgpu::Buffer,
    pub nnz: u64,
}

impl SparseRows {
    /// Upload (row, col, value) triples of a (rows, cols) matrix in any order; values are stored as
    /// f16 and repeated positions add up. Fails for cols ≥ 65536 (an entry's column is 16 bits), for
    /// positions outside the matrix and for values beyond f16's range.
    pub fn upload(gpu: &Gpu, name: &str, rows: u64, cols: u64, entries: &[(u32, u32, f32)]) -> Result<Self> {
        // Sizes beyond usize saturate, and encode_entries rejects them.
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let csr = encode_entries(size(rows), size(cols), entries)
            .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
        let upload = |what: &str, values: &[u32]| -> Result<wgpu::Buffer> {
            let buffer = gpu.storage_buffer(
                &format!("{name} {what}"),
                4 * values.len() as u64,
                wgpu::BufferUsages::COPY_DST,
            )?;
            gpu.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(values));
            Ok(buffer)
        };
        Ok(SparseRows {
            rows,
            cols,
            row_ptr: upload("row_ptr", &csr.row_ptr)?,
            entries: upload("entries", &csr.entries)?,
            nnz: csr.entries.len() as u64,
        })
    }

    /// Bytes S takes on the GPU: 4·(rows + 1) for row_ptr and 4 per entry.
    pub fn stored_bytes(&self) -> u64 {
        4 * (self.rows + 1) + 4 * self.nnz
    }
}

/// Record out (t, rows) += x (t, cols)·Sᵀ, i.e. out[i, r] += Σ_{(c, v) in row r of S} v·x[i, c].
pub async fn add_sparse(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    s: &SparseRows,
    out: &wgpu::Buffer,
    t: u32,
) -> Result<()> {
    let what = format!("sparse correction ({}, {}) of {t} tokens", s.rows, s.cols);
    let (x_len, out_len) = (t as u64 * s.cols, t as u64 * s.rows);
    // The shader indexes both with u32.
    if as_u32(&what, x_len)? == 0 || as_u32(&what, out_len)? == 0 {
        return Err(Error::Invalid(format!("{what}: nothing to add")));
    }
    if x == out {
        return Err(Error::Invalid(format!("{what}: out cannot be its own input x")));
    }
    check_len(&format!("{what}: x"), x, x_len)?;
    check_len(&format!("{what}: out"), out, out_len)?;
    for (part, len) in [("x", x_len), ("out", out_len), ("row_ptr", s.rows + 1), ("entries", s.nnz)] {
        check_binding(gpu, &format!("{what}: {part}"), len)?;
    }
    let tile = if t == 1 { 1 } else { TILE_TOKENS };
    let kernel = gpu
        .kernel(KernelSpec {
            shader: "sparse",
            entry: "add_sparse",
            constants: vec![("TOKENS", tile as u32)],
            bindings: &[Access::Uniform, Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        })
        .await?;
    let shape = gpu.uniform(&Shape { t, rows: s.rows as u32, cols: s.cols as u32, _pad: 0 });
    gpu.dispatch(
        enc,
        &kernel,
        &[
            shape.as_entire_binding(),
            prefix(x, x_len),
            s.row_ptr.as_entire_binding(),
            s.entries.as_entire_binding(),
            prefix(out, out_len),
        ],
        grid(
            ((t as u64).div_ceil(tile) * s.rows).div_ceil(WORKGROUP),
            gpu.limits().max_compute_workgroups_per_dimension,
        ),
    );
    Ok(())
}
