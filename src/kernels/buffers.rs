//! Checks and binding windows for the f32 activation buffers the forward-pass kernels read and write.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::ops::Range;

/// Fail unless `buffer` holds at least `elements` f32 values.
pub(crate) fn check_len(what: &str, buffer: &wgpu::Buffer, elements: u64) -> Result<()> {
    if buffer.size() < 4 * elements {
        return Err(Error::Invalid(format!(
            "{what} needs {elements} f32 values ({} bytes) but its buffer has {} bytes",
            4 * elements,
            buffer.size()
        )));
    }
    Ok(())
}

/// Fail unless `elements` f32 values fit one storage binding of this GPU.
pub(crate) fn check_binding(gpu: &Gpu, what: &str, elements: u64) -> Result<()> {
    let budget = gpu.limits().max_storage_buffer_binding_size;
    if 4 * elements > budget {
        return Err(Error::DeviceLimit(format!(
            "{what} binds {} bytes; this GPU binds at most {budget} bytes at a time",
            4 * elements
        )));
    }
    Ok(())
}

/// Fail unless `n` fits the u32 a shader indexes with.
pub(crate) fn as_u32(what: &str, n: u64) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::DeviceLimit(format!("{what}: {n} elements in one dispatch")))
}

/// The binding of rows `rows` of a row-major f32 matrix of `cols` columns in `buffer`, its start
/// aligned down to `align` bytes; `skip` is the number of f32 values before the first row.
pub(crate) struct RowWindow<'a> {
    pub binding: wgpu::BindingResource<'a>,
    pub skip: u32,
}

pub(crate) fn row_window(buffer: &wgpu::Buffer, rows: Range<u64>, cols: u64, align: u64) -> RowWindow<'_> {
    let start = 4 * rows.start * cols;
    let offset = start / align * align;
    let size = (4 * rows.end * cols - offset).max(4).min(buffer.size() - offset);
    RowWindow {
        binding: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: std::num::NonZeroU64::new(size),
        }),
        skip: ((start - offset) / 4) as u32,
    }
}

/// Consecutive ranges of at most as many of `rows` rows of `row_elements` f32 values each as one binding
/// holds (leaving room for the alignment of the window's start).
pub(crate) fn f32_row_chunks(gpu: &Gpu, what: &str, rows: u64, row_elements: u64) -> Result<Vec<Range<u64>>> {
    let limits = gpu.limits();
    crate::gpu::row_chunks(
        what,
        rows,
        4 * row_elements.max(1),
        limits.min_storage_buffer_offset_alignment as u64,
        limits.max_storage_buffer_binding_size,
    )
}

/// The binding of the first `elements` 4-byte values of `buffer`.
pub(crate) fn prefix(buffer: &wgpu::Buffer, elements: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: std::num::NonZeroU64::new(4 * elements.max(1)),
    })
}
