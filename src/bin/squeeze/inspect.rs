//! `squeeze info` and `squeeze stats`: what is in a model file, and what one tensor's weights look like.

use crate::{args, json, model_files, USAGE};
use squeeze::error::Result;
use squeeze::eval::weight_stats::{tensor_stats, WeightStats};
use squeeze::formats::{open_model, read_tensor_bytes};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::ModelView;
use std::fmt::Write as _;

pub async fn info(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &["json"], &[], USAGE)?;
    args.expect_positional(1, "info", USAGE)?;
    let view = ModelView::of_header(&open_model(&model_files(&args.positional[0])?).await?);
    if args.flag("json") {
        return Ok(json(&view));
    }
    let mut out = view.summary.to_text();
    let _ = writeln!(out, "\n\n{:<44} {:>16} {:>6} {:>12}", "tensor", "shape", "dtype", "bytes");
    for t in &view.tensors {
        let _ = writeln!(out, "{:<44} {:>16} {:>6} {:>12}", t.name, shape_text(&t.shape), t.dtype, t.n_bytes);
    }
    Ok(out)
}

pub async fn stats(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &["json"], &["bins", "top"], USAGE)?;
    args.expect_positional(2, "stats", USAGE)?;
    let sources = model_files(&args.positional[0])?;
    let header = open_model(&sources).await?;
    let info = header.tensor(&args.positional[1])?;
    let gpu = Gpu::new(GpuOptions::default()).await?;
    let bytes = read_tensor_bytes(&sources, info).await?;
    let tensor = gpu.upload_tensor(&info.name, &info.shape, info.dtype, &bytes)?;
    let stats = tensor_stats(&gpu, &tensor, args.value("bins", 32)?, args.value("top", 8)?).await?;
    Ok(if args.flag("json") { json(&stats) } else { stats_text(&stats, &gpu.info.adapter) })
}

fn shape_text(shape: &[u64]) -> String {
    shape.iter().map(u64::to_string).collect::<Vec<_>>().join("×")
}

fn stats_text(s: &WeightStats, adapter: &str) -> String {
    let mut out = String::new();
    let shape = shape_text(&s.shape);
    let _ = writeln!(
        out,
        "{} [{shape}] {}: {} values, computed on {adapter} in {:.1} ms",
        s.name, s.dtype, s.n, s.ms
    );
    let _ = writeln!(
        out,
        "min {:.6}  max {:.6}  mean {:.6}  std {:.6}  excess kurtosis {:.3}",
        s.min, s.max, s.mean, s.std, s.kurtosis
    );
    let quantiles: Vec<String> =
        s.quantiles.iter().map(|q| format!("p{}={:.5}", q.p * 100.0, q.value)).collect();
    let _ = writeln!(out, "quantiles: {}", quantiles.join("  "));
    let peak = s.histogram.counts.iter().copied().max().unwrap_or(1).max(1);
    let width = (s.histogram.hi - s.histogram.lo) / s.histogram.counts.len() as f64;
    let _ = writeln!(out, "histogram ({} bins):", s.histogram.counts.len());
    for (i, &c) in s.histogram.counts.iter().enumerate() {
        let bar = "█".repeat((c * 50).div_ceil(peak) as usize);
        let _ = writeln!(out, "  {:>10.5} {:>9} {bar}", s.histogram.lo + width * i as f64, c);
    }
    let _ = writeln!(out, "top output channels by max|w|:");
    for c in &s.top_channels {
        let _ = writeln!(out, "  channel {:>6}  max|w| {:.5}", c.channel, c.max_abs);
    }
    out
}
