//! Statistics of one weight tensor: range, moments, quantiles, a histogram and the per-output-channel
//! max|w| that shows outlier channels. Computed on the GPU by dequantising row chunks and reducing them
//! (`kernels::stats`), combined on the CPU in f64; `cpu_tensor_stats` is the same report from the CPU
//! twins.

use super::now_ms;
use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::dequant;
use crate::kernels::stats::{self, Matrix, MAX_BINS};
use serde::Serialize;
use std::ops::Range;

/// Bins of the histogram the quantiles are read from.
pub const FINE_BINS: u32 = MAX_BINS;
/// The quantiles every report carries.
pub const QUANTILE_PS: [f64; 9] = [0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999];

#[derive(Debug, Clone, Serialize)]
pub struct WeightStats {
    pub name: String,
    /// Outermost first.
    pub shape: Vec<u64>,
    /// The stored type (`Q4_1`, `F32` …); statistics are of the decoded values.
    pub dtype: String,
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation (divides by n).
    pub std: f64,
    /// Excess (Fisher) kurtosis: n·Σ(x−mean)⁴ / (Σ(x−mean)²)² − 3, 0 for a normal distribution (scipy's
    /// `kurtosis(fisher=True, bias=True)`); NaN (null in JSON) for a constant tensor.
    pub kurtosis: f64,
    /// The smallest value with a fraction p of the tensor at or below it, read from a 2048-bin
    /// histogram over [min, max] with linear interpolation inside the bin: accurate to (max − min) / 2048.
    pub quantiles: Vec<Quantile>,
    pub histogram: Histogram,
    /// max|w| of each output channel (row).
    pub channel_max_abs: Vec<f32>,
    /// The channels with the largest max|w|, largest first.
    pub top_channels: Vec<Channel>,
    /// Wall time of the computation.
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantile {
    pub p: f64,
    pub value: f64,
}

/// Equal bins over [lo, hi]; values equal to hi are counted in the last bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    pub channel: u64,
    pub max_abs: f32,
}

/// What the reduction passes produce, on either device.
struct Reductions {
    /// Per row [min, max, max|x|, Σx].
    rows: Vec<[f32; 4]>,
    /// Per row [Σ(x−mean)², Σ(x−mean)⁴].
    moments: Vec<[f32; 2]>,
    /// FINE_BINS counts over [min, max].
    fine: Vec<u64>,
    /// The report's histogram over [min, max].
    histogram: Vec<u64>,
}

/// Statistics of `t` with a histogram of `bins` bins (1 to 2048) and the `top_k` channels by max|w|.
/// Two passes over the dequantised rows: extremes and sums, then moments about the mean and the
/// histograms. A tensor that fits one binding is dequantised once; bigger ones once per pass.
pub async fn tensor_stats(gpu: &Gpu, t: &GpuTensor, bins: u32, top_k: usize) -> Result<WeightStats> {
    let start = now_ms();
    if bins == 0 || bins > MAX_BINS {
        return Err(Error::Invalid(format!("a histogram needs 1 to {MAX_BINS} bins, not {bins}")));
    }
    // The histograms count in u32.
    if t.n_elements() > u32::MAX as u64 {
        return Err(Error::DeviceLimit(format!("statistics of {}: {} elements", t.name, t.n_elements())));
    }
    let chunks = dequant::chunks(gpu, t)?;
    let (rows, kept) = reduce_rows(gpu, t, &chunks).await?;
    let (lo, hi, mean) = extremes(&rows, t.n_elements());

    let fine = stats::histogram_counts(gpu, FINE_BINS)?;
    let coarse = (!FINE_BINS.is_multiple_of(bins)).then(|| stats::histogram_counts(gpu, bins)).transpose()?;
    let mut histograms = vec![(&fine, FINE_BINS)];
    histograms.extend(coarse.as_ref().map(|c| (c, bins)));
    let moments = moments_and_histograms(gpu, t, &chunks, kept, (mean as f32, lo, hi), &histograms).await?;

    let fine = read_counts(gpu, &fine, FINE_BINS).await?;
    let histogram = match &coarse {
        Some(coarse) => read_counts(gpu, coarse, bins).await?,
        None => rebin(&fine, bins),
    };
    let report = summarise(Reductions { rows, moments, fine, histogram }, t.cols(), top_k);
    Ok(WeightStats {
        name: t.name.clone(),
        shape: t.shape.clone(),
        dtype: t.dtype.to_string(),
        ms: now_ms() - start,
        ..report
    })
}

/// Pass 1: per-row [min, max, max|x|, Σx]. Keeps the decoded values when they are one chunk.
async fn reduce_rows(
    gpu: &Gpu,
    t: &GpuTensor,
    chunks: &[Range<u64>],
) -> Result<(Vec<[f32; 4]>, Option<wgpu::Buffer>)> {
    let mut rows = Vec::with_capacity(t.rows() as usize);
    let mut kept = None;
    for range in chunks {
        let values = dequant::dequantize(gpu, t, range.clone()).await?;
        let m = Matrix { values: &values, rows: range.end - range.start, cols: t.cols() };
        let mut encoder = gpu.encoder();
        let out = stats::row_reduce(gpu, &mut encoder, m).await?;
        gpu.queue.submit([encoder.finish()]);
        rows.extend(stats::read_rows(gpu, &out, m.rows).await?);
        if chunks.len() == 1 {
            kept = Some(values);
        }
    }
    Ok((rows, kept))
}

/// Pass 2: per-row [Σ(x−mean)², Σ(x−mean)⁴], and every (counts, bins) histogram over [lo, hi]
/// accumulated on the GPU.
async fn moments_and_histograms(
    gpu: &Gpu,
    t: &GpuTensor,
    chunks: &[Range<u64>],
    mut kept: Option<wgpu::Buffer>,
    (mean, lo, hi): (f32, f32, f32),
    histograms: &[(&wgpu::Buffer, u32)],
) -> Result<Vec<[f32; 2]>> {
    let mut moments = Vec::with_capacity(t.rows() as usize);
    for range in chunks {
        let values = match kept.take() {
            Some(v) => v,
            None => dequant::dequantize(gpu, t, range.clone()).await?,
        };
        let m = Matrix { values: &values, rows: range.end - range.start, cols: t.cols() };
        let mut encoder = gpu.encoder();
        let out = stats::row_moments(gpu, &mut encoder, m, mean).await?;
        for &(counts, bins) in histograms {
            stats::histogram(gpu, &mut encoder, m, (lo, hi), counts, bins).await?;
        }
        gpu.queue.submit([encoder.finish()]);
        moments.extend(stats::read_rows(gpu, &out, m.rows).await?.into_iter().map(|r| [r[0], r[1]]));
    }
    Ok(moments)
}

async fn read_counts(gpu: &Gpu, buffer: &wgpu::Buffer, bins: u32) -> Result<Vec<u64>> {
    Ok(gpu.read_u32(buffer, 0, bins as u64).await?.into_iter().map(u64::from).collect())
}

/// The same report from the CPU twins, for a row-major rows×cols matrix (named "", dtype F32).
///
/// # Panics
/// When `bins` is not 1 to 2048 or `values` does not hold rows×cols values.
pub fn cpu_tensor_stats(values: &[f32], rows: usize, cols: usize, bins: u32, top_k: usize) -> WeightStats {
    assert!((1..=MAX_BINS).contains(&bins), "a histogram needs 1 to {MAX_BINS} bins, not {bins}");
    assert_eq!(values.len(), rows * cols, "{rows}×{cols} values");
    let start = now_ms();
    let row_stats = cpu::stats::row_reduce(values, rows, cols);
    let (lo, hi, mean) = extremes(&row_stats, values.len() as u64);
    let moments = cpu::stats::row_moments(values, rows, cols, mean as f32);
    let fine = cpu::stats::histogram(values, FINE_BINS, lo, hi);
    let histogram = if FINE_BINS.is_multiple_of(bins) {
        rebin(&fine, bins)
    } else {
        cpu::stats::histogram(values, bins, lo, hi)
    };
    let report = summarise(Reductions { rows: row_stats, moments, fine, histogram }, cols as u64, top_k);
    WeightStats { ms: now_ms() - start, ..report }
}

/// Global min, max and mean from the per-row reductions.
fn extremes(rows: &[[f32; 4]], n: u64) -> (f32, f32, f64) {
    let lo = rows.iter().map(|r| r[0]).fold(f32::MAX, f32::min);
    let hi = rows.iter().map(|r| r[1]).fold(f32::MIN, f32::max);
    let sum: f64 = rows.iter().map(|r| r[3] as f64).sum();
    (lo, hi, sum / n.max(1) as f64)
}

/// Merge runs of FINE_BINS / bins adjacent fine bins (bins divides FINE_BINS).
fn rebin(fine: &[u64], bins: u32) -> Vec<u64> {
    fine.chunks(fine.len() / bins as usize).map(|c| c.iter().sum()).collect()
}

/// The value below which a fraction `p` of the histogram's count lies, interpolating linearly
/// inside the bin where the cumulative count crosses p·n.
fn quantile(counts: &[u64], lo: f64, hi: f64, p: f64) -> f64 {
    let n: u64 = counts.iter().sum();
    let width = (hi - lo) / counts.len() as f64;
    let target = p * n as f64;
    let mut below = 0u64;
    for (b, &c) in counts.iter().enumerate() {
        if c > 0 && (below + c) as f64 >= target {
            return lo + width * (b as f64 + (target - below as f64) / c as f64);
        }
        below += c;
    }
    hi
}

/// The report (unnamed, untimed) from the reductions of a matrix with `cols` columns.
fn summarise(r: Reductions, cols: u64, top_k: usize) -> WeightStats {
    let n = r.rows.len() as u64 * cols;
    let (lo, hi, mean) = extremes(&r.rows, n);
    let (lo, hi) = (lo as f64, hi as f64);
    let m2: f64 = r.moments.iter().map(|m| m[0] as f64).sum();
    let m4: f64 = r.moments.iter().map(|m| m[1] as f64).sum();
    let kurtosis = if m2 > 0.0 { n as f64 * m4 / (m2 * m2) - 3.0 } else { f64::NAN };

    let channel_max_abs: Vec<f32> = r.rows.iter().map(|row| row[2]).collect();
    let mut order: Vec<usize> = (0..channel_max_abs.len()).collect();
    // Stable: equal maxima keep channel order.
    order.sort_by(|&a, &b| channel_max_abs[b].total_cmp(&channel_max_abs[a]));
    let top_channels = order
        .iter()
        .take(top_k)
        .map(|&c| Channel { channel: c as u64, max_abs: channel_max_abs[c] })
        .collect();

    WeightStats {
        name: String::new(),
        shape: vec![r.rows.len() as u64, cols],
        dtype: "F32".into(),
        n,
        min: lo,
        max: hi,
        mean,
        std: (m2 / n.max(1) as f64).sqrt(),
        kurtosis,
        quantiles: QUANTILE_PS.iter().map(|&p| Quantile { p, value: quantile(&r.fine, lo, hi, p) }).collect(),
        histogram: Histogram { lo, hi, counts: r.histogram },
        channel_max_abs,
        top_channels,
        ms: 0.0,
    }
}
