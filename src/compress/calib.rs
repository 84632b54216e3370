//! Calibration: run text through the model one block at a time and capture, at the inputs of each
//! block's linear layers, what the methods need — per-channel mean|x|, max|x|, Σx² and Σx, and the Hessian
//! XᵀX — accumulated on the GPU (`kernels::calib`).
//!
//! The residual stream of every calibration sequence is kept on the GPU between blocks, so a block is
//! run once to capture and once to advance: the cost of two forward passes however many layers there
//! are. Advancing with the block already compressed gives GPTQ's sequential convention (each layer
//! sees the errors of the layers before it); advancing with the original block gives the other.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::calib::{accumulate_columns, accumulate_hessian};
use crate::model::config::Role;
use crate::model::kv_cache::KvCache;
use crate::model::runner::Architecture;
use crate::model::{LoadedModel, Progress};
use std::collections::BTreeMap;

/// Where a block's linear layers read their input; layers reading the same input share statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// The attention norm's output: q, k, v.
    AttnIn,
    /// The attention's output: the output projection.
    AttnOutIn,
    /// The MLP norm's output: gate, up.
    FfnIn,
    /// silu(gate)·up: down.
    DownIn,
}

impl Site {
    pub fn of(role: Role) -> Option<Site> {
        Some(match role {
            Role::Q | Role::K | Role::V | Role::Qkv => Site::AttnIn,
            Role::AttnOut => Site::AttnOutIn,
            Role::Gate | Role::Up => Site::FfnIn,
            Role::Down => Site::DownIn,
            Role::AttnNorm | Role::FfnNorm => return None,
        })
    }
}

/// What calibration measured at one site, over `tokens` tokens of width `k`.
#[derive(Debug, Clone)]
pub struct SiteStats {
    pub k: usize,
    pub tokens: u64,
    pub mean_abs: Vec<f32>,
    pub max_abs: Vec<f32>,
    /// Σ x² per channel (Wanda's ‖X_j‖₂²).
    pub sum_sq: Vec<f32>,
    /// Σ x per channel (FLAP's mean and variance).
    pub sum: Vec<f32>,
    /// Σ x xᵀ, (k, k), when asked for.
    pub hessian: Option<Vec<f32>>,
}

struct SiteBuffers {
    k: usize,
    stats: wgpu::Buffer,
    hessian: Option<wgpu::Buffer>,
}

/// GPU accumulators for the sites of one block.
pub struct Capture {
    sites: BTreeMap<Site, SiteBuffers>,
}

impl Capture {
    /// Accumulators for `sites` (with their widths), with Hessians when `hessian`.
    pub fn new(gpu: &Gpu, sites: &[(Site, usize)], hessian: bool) -> Result<Capture> {
        let zeroed =
            |label: &str, n: usize| gpu.storage_buffer(label, (n * 4) as u64, wgpu::BufferUsages::COPY_DST);
        let mut map = BTreeMap::new();
        for &(site, k) in sites {
            let stats = zeroed("calibration column stats", 4 * k)?;
            let hessian = if hessian { Some(zeroed("calibration Hessian", k * k)?) } else { None };
            map.insert(site, SiteBuffers { k, stats, hessian });
        }
        Ok(Capture { sites: map })
    }

    /// Record the accumulation of `x` (t, k), the input at `site`, if this capture watches it.
    pub async fn record(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        site: Site,
        x: &wgpu::Buffer,
        t: u32,
        k: u32,
    ) -> Result<()> {
        let Some(b) = self.sites.get(&site) else { return Ok(()) };
        accumulate_columns(gpu, enc, x, t, k, &b.stats).await?;
        if let Some(h) = &b.hessian {
            accumulate_hessian(gpu, enc, x, t, k, h).await?;
        }
        Ok(())
    }

    /// Read every site's statistics back after `tokens` tokens.
    pub async fn read(&self, gpu: &Gpu, tokens: u64) -> Result<BTreeMap<Site, SiteStats>> {
        let mut out = BTreeMap::new();
        for (&site, b) in &self.sites {
            let raw = gpu.read_f32(&b.stats, 0, 4 * b.k as u64).await?;
            let hessian = match &b.hessian {
                Some(h) => Some(gpu.read_f32(h, 0, (b.k * b.k) as u64).await?),
                None => None,
            };
            let n = tokens.max(1) as f32;
            out.insert(
                site,
                SiteStats {
                    k: b.k,
                    tokens,
                    mean_abs: raw[..b.k].iter().map(|s| s / n).collect(),
                    max_abs: raw[b.k..2 * b.k].to_vec(),
                    sum_sq: raw[2 * b.k..3 * b.k].to_vec(),
                    sum: raw[3 * b.k..].to_vec(),
                    hessian,
                },
            );
        }
        Ok(out)
    }
}

/// The residual streams of the calibration sequences, advanced block by block.
pub struct Calibrator {
    arch: Architecture,
    cache: KvCache,
    /// Per sequence: its residual stream (len, d_model) and its length.
    streams: Vec<(wgpu::Buffer, usize)>,
    pub tokens: u64,
}

impl Calibrator {
    /// Embed `tokens`, cut into sequences of `seq_len`, ready for block 0.
    pub async fn new(gpu: &Gpu, model: &LoadedModel, tokens: &[u32], seq_len: usize) -> Result<Calibrator> {
        if tokens.len() < 2 || seq_len < 2 {
            return Err(Error::Invalid(format!(
                "calibration needs at least 2 tokens in sequences of at least 2; got {} tokens",
                tokens.len()
            )));
        }
        let arch = Architecture::new(gpu, model, 64)?;
        let (llama, ws) = arch.layered()?;
        let d = llama.cfg.d_model;
        let cache = arch.kv_cache(gpu, seq_len)?;
        let mut streams = Vec::new();
        for seq in tokens.chunks(seq_len).filter(|s| s.len() >= 2) {
            let stream = gpu.storage_buffer(
                "calibration residuals",
                (seq.len() * d * 4) as u64,
                wgpu::BufferUsages::COPY_DST,
            )?;
            for (i, batch) in seq.chunks(ws.batch).enumerate() {
                let mut enc = gpu.encoder();
                llama.embed(gpu, model, &mut enc, ws, batch).await?;
                let bytes = (batch.len() * d * 4) as u64;
                enc.copy_buffer_to_buffer(ws.residual(), 0, &stream, (i * ws.batch * d * 4) as u64, bytes);
                gpu.queue.submit([enc.finish()]);
            }
            streams.push((stream, seq.len()));
        }
        let tokens = streams.iter().map(|s| s.1 as u64).sum();
        Ok(Calibrator { arch, cache, streams, tokens })
    }

    /// Run block `l` of `model` over every sequence, accumulating into `capture` if given, and write
    /// its output back into the streams if `advance`.
    pub async fn run_block(
        &mut self,
        gpu: &Gpu,
        model: &LoadedModel,
        l: usize,
        capture: Option<&Capture>,
        advance: bool,
        progress: &mut impl Progress,
    ) -> Result<()> {
        let (llama, ws) = self.arch.layered()?;
        let d = llama.cfg.d_model;
        for (stream, len) in &self.streams {
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            self.cache.len = 0;
            for start in (0..*len).step_by(ws.batch) {
                let t = ws.batch.min(len - start);
                let (at, bytes) = ((start * d * 4) as u64, (t * d * 4) as u64);
                let mut enc = gpu.encoder();
                enc.copy_buffer_to_buffer(stream, at, ws.residual(), 0, bytes);
                llama.block(gpu, model, &mut enc, ws, &self.cache, l, t, capture).await?;
                if advance {
                    enc.copy_buffer_to_buffer(ws.residual(), 0, stream, at, bytes);
                }
                gpu.queue.submit([enc.finish()]);
                self.cache.len += t;
            }
        }
        gpu.check()?;
        Ok(())
    }

    /// The residual streams of every sequence, (tokens, d_model), one sequence after another.
    pub async fn residuals(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let d = self.arch.layered()?.0.cfg.d_model;
        let mut out = Vec::new();
        for (stream, len) in &self.streams {
            out.extend(gpu.read_f32(stream, 0, (len * d) as u64).await?);
        }
        Ok(out)
    }

    /// The widths of each site's input.
    pub fn site_widths(&self) -> Result<Vec<(Site, usize)>> {
        let c = &self.arch.layered()?.0.cfg;
        Ok(vec![
            (Site::AttnIn, c.d_model),
            (Site::AttnOutIn, c.n_heads * c.head_dim),
            (Site::FfnIn, c.d_model),
            (Site::DownIn, c.d_ffn),
        ])
    }
}
