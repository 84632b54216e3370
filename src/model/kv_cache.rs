//! The keys and values of every layer for the positions seen so far, shared by both families: a
//! forward pass appends each batch's and attends over all of them.

use super::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::attention::attention;

/// Keys and values of every layer for positions `0..len`, each layer (max_seq, n_kv_heads, head_dim).
pub struct KvCache {
    pub max_seq: usize,
    pub len: usize,
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    /// Bytes of one position's keys (or values) in one layer.
    row_bytes: u64,
}

impl KvCache {
    pub(super) fn new(gpu: &Gpu, cfg: &ModelConfig, max_seq: usize) -> Result<KvCache> {
        let row_bytes = (cfg.n_kv_heads * cfg.head_dim * 4) as u64;
        let layer =
            |what: &str| gpu.storage_buffer(what, max_seq as u64 * row_bytes, wgpu::BufferUsages::COPY_DST);
        let k = (0..cfg.n_layers).map(|_| layer("k cache")).collect::<Result<_>>()?;
        let v = (0..cfg.n_layers).map(|_| layer("v cache")).collect::<Result<_>>()?;
        Ok(KvCache { max_seq, len: 0, k, v, row_bytes })
    }

    /// Fail unless a forward pass can take `t` tokens: 1 ..= `batch`, and room for them after `len`.
    pub(super) fn check_room(&self, t: usize, batch: usize) -> Result<()> {
        if t == 0 || t > batch {
            return Err(Error::Invalid(format!("a batch holds 1..={batch} tokens, not {t}")));
        }
        if self.len + t > self.max_seq {
            return Err(Error::Invalid(format!(
                "the KV cache holds {} positions; {} are used and {t} more do not fit",
                self.max_seq, self.len
            )));
        }
        Ok(())
    }

    /// Record one layer's attention step: append this batch's keys and values, (t, n_kv_heads,
    /// head_dim) each, at positions `len..len + t`, then attend from its queries q (t, n_heads, head_dim)
    /// over every position so far into out, with the usual 1/√head_dim scale.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn attend(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        cfg: &ModelConfig,
        layer: usize,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
        out: &wgpu::Buffer,
        t: usize,
    ) -> Result<()> {
        let (at, bytes) = (self.len as u64 * self.row_bytes, t as u64 * self.row_bytes);
        enc.copy_buffer_to_buffer(k, 0, &self.k[layer], at, bytes);
        enc.copy_buffer_to_buffer(v, 0, &self.v[layer], at, bytes);
        let scale = 1.0 / (cfg.head_dim as f32).sqrt();
        let (heads, kv_heads, hd) = (cfg.n_heads as u32, cfg.n_kv_heads as u32, cfg.head_dim as u32);
        let (k_cache, v_cache) = (&self.k[layer], &self.v[layer]);
        let pos0 = self.len as u32;
        attention(gpu, enc, q, k_cache, v_cache, out, t as u32, heads, kv_heads, hd, pos0, scale).await
    }
}
