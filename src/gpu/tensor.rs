//! Tensors on the GPU: a buffer holding the tensor exactly as stored (f32, f16 or packed GGUF blocks),
//! its shape and dtype. Kernels work on row ranges through binding windows, so a tensor larger than
//! one storage binding (a 1B model's embedding) is processed in chunks.

use super::Gpu;
use crate::error::{Error, Result};
use crate::formats::DType;
use std::ops::Range;

/// Cloning shares the buffer (wgpu buffers are reference-counted handles).
#[derive(Clone)]
pub struct GpuTensor {
    pub name: String,
    pub buffer: wgpu::Buffer,
    /// Outermost first; the last dimension is the one blocks run along.
    pub shape: Vec<u64>,
    pub dtype: DType,
    /// Bytes of tensor data (the buffer may be padded up to a multiple of 4).
    pub n_bytes: u64,
}

/// A binding of part of a buffer: bind `[offset, offset + size)`; the data of interest starts `skip`
/// bytes into it (offsets must be aligned for binding, rows of packed blocks usually are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub offset: u64,
    pub size: u64,
    pub skip: u64,
}

impl GpuTensor {
    pub fn cols(&self) -> u64 {
        self.shape.last().copied().unwrap_or(1)
    }
    pub fn rows(&self) -> u64 {
        self.shape.iter().product::<u64>() / self.cols().max(1)
    }
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Stored bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        self.n_bytes / self.rows().max(1)
    }
    /// The binding window covering `rows`, with its start aligned down to `align` bytes.
    pub fn window(&self, rows: Range<u64>, align: u64) -> Window {
        let start = rows.start * self.row_bytes();
        let end = rows.end * self.row_bytes();
        let offset = start / align * align;
        let size = (end - offset).next_multiple_of(4).min(self.buffer.size() - offset);
        Window { offset, size, skip: start - offset }
    }
    pub fn binding(&self, w: Window) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: w.offset,
            size: std::num::NonZeroU64::new(w.size),
        })
    }
}

/// Split `n_rows` rows into consecutive ranges of at most `budget` bytes each, at `bytes_per_row`
/// (plus `slack` bytes for window alignment). A single row over budget cannot be processed.
pub fn row_chunks(
    what: &str,
    n_rows: u64,
    bytes_per_row: u64,
    slack: u64,
    budget: u64,
) -> Result<Vec<Range<u64>>> {
    if bytes_per_row + slack > budget {
        return Err(Error::DeviceLimit(format!(
            "{what}: one row needs {} bytes but this GPU binds at most {budget} bytes at a time",
            bytes_per_row + slack
        )));
    }
    let per_chunk = ((budget - slack) / bytes_per_row.max(1)).max(1);
    Ok((0..n_rows.div_ceil(per_chunk)).map(|i| i * per_chunk..((i + 1) * per_chunk).min(n_rows)).collect())
}

impl Gpu {
    /// Upload a tensor's stored bytes unchanged. Fails with the sizes involved when the device cannot
    /// hold it in one buffer.
    pub fn upload_tensor(&self, name: &str, shape: &[u64], dtype: DType, bytes: &[u8]) -> Result<GpuTensor> {
        let n_bytes = bytes.len() as u64;
        let max = self.limits().max_buffer_size;
        if n_bytes > max {
            return Err(Error::DeviceLimit(format!(
                "tensor {name} ({dtype}, {n_bytes} bytes) is larger than this GPU's largest buffer ({max} bytes)"
            )));
        }
        let buffer = self.storage_buffer(name, n_bytes, wgpu::BufferUsages::COPY_DST)?;
        self.write_padded(&buffer, bytes);
        Ok(GpuTensor { name: name.to_string(), buffer, shape: shape.to_vec(), dtype, n_bytes })
    }

    /// A storage buffer of at least `size` bytes (rounded up to 4), usable as a copy source for readback.
    pub fn storage_buffer(&self, label: &str, size: u64, extra: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let size = size.max(4).next_multiple_of(4);
        if size > self.limits().max_buffer_size {
            return Err(Error::DeviceLimit(format!(
                "{label} needs a {size}-byte buffer; this GPU allows at most {}",
                self.limits().max_buffer_size
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | extra,
            mapped_at_creation: false,
        }))
    }

    /// Write `bytes` at the start of `buffer`; a trailing partial word is zero-padded (writes must be
    /// multiples of 4 bytes).
    fn write_padded(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        // Chunks keep the driver's staging copies small for big tensors.
        const CHUNK: usize = 16 << 20;
        for start in (0..whole).step_by(CHUNK) {
            let end = (start + CHUNK).min(whole);
            self.queue.write_buffer(buffer, start as u64, &bytes[start..end]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(buffer, whole as u64, &tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::row_chunks;

    #[test]
    fn row_chunks_cover_all_rows_within_budget() {
        let chunks = row_chunks("t", 1000, 300, 256, 10_000).unwrap();
        assert_eq!(chunks.first().unwrap().start, 0);
        assert_eq!(chunks.last().unwrap().end, 1000);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(chunks.iter().all(|c| (c.end - c.start) * 300 + 256 <= 10_000));
    }

    #[test]
    fn a_row_over_budget_is_a_device_limit_error() {
        let e = row_chunks("blk.0.ffn_up.weight", 4, 9000, 256, 8192).unwrap_err();
        assert!(e.to_string().contains("blk.0.ffn_up.weight: one row needs 9256 bytes"), "{e}");
    }
}
