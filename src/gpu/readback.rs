//! Reading GPU buffers back. `map_async`'s callback sends on a one-shot channel that we await: natively
//! `device.poll` drives it to completion, in the browser the event loop does (polling there is a no-op,
//! and busy-waiting would freeze the worker).

use super::Gpu;
use crate::error::{Error, Result};

impl Gpu {
    /// Wait until everything submitted so far (uploads included) has run on the GPU.
    pub async fn finish(&self) -> Result<()> {
        self.queue.submit([]);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        rx.await.map_err(|_| Error::Gpu("the GPU dropped a completion callback".into()))?;
        self.check()
    }

    pub async fn read_bytes(&self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let padded = size.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(src, offset, &staging, 0, padded);
        self.queue.submit([encoder.finish()]);

        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        let mapped = rx.await.map_err(|_| Error::Gpu("the GPU dropped a readback".into()))?;
        self.check()?;
        mapped.map_err(|e| Error::Gpu(format!("cannot read a GPU buffer back: {e}")))?;
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("cannot map a GPU buffer: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(bytes[..size as usize].to_vec())
    }

    pub async fn read_f32(&self, src: &wgpu::Buffer, offset: u64, count: u64) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(src, offset, count * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    pub async fn read_u32(&self, src: &wgpu::Buffer, offset: u64, count: u64) -> Result<Vec<u32>> {
        let bytes = self.read_bytes(src, offset, count * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
