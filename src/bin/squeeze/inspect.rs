//! The native command line: the same parsers, kernels and reports as the page, over Vulkan.
//!
//!   squeeze info  <model> [--json]
//!   squeeze stats <model> <tensor-name> [--bins N] [--top K] [--json]
//!   squeeze bench <model> [--json]
//!
//! <model> is a .gguf file, a .safetensors file, or a Hugging Face model directory.

use squeeze::error::{Error, Result};
use squeeze::eval::weight_stats::{tensor_stats, WeightStats};
use squeeze::formats::source::open_path;
use squeeze::formats::{open_model, read_tensor_bytes};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::{self, ModelView};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  squeeze info  <model> [--json]                       architecture summary and tensor table
  squeeze stats <model> <tensor> [--bins N] [--top K] [--json]
                                                       histogram, quantiles, kurtosis, outlier channels (GPU)
  squeeze bench <model> [--json]                       load time and GPU memory
<model>: a .gguf file, a .safetensors file, or a Hugging Face model directory";

/// Parsed command line: positional arguments and `--flag [value]` options.
struct Args {
    positional: Vec<String>,
    json: bool,
    bins: u32,
    top: usize,
}

fn parse_args(raw: &[String]) -> Result<Args> {
    let mut args = Args { positional: Vec::new(), json: false, bins: 32, top: 8 };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next().ok_or_else(|| Error::Invalid(format!("{flag} needs a value\n{USAGE}"))).and_then(|v| {
                v.parse::<u32>()
                    .map_err(|_| Error::Invalid(format!("{flag} wants a whole number, not '{v}'")))
            })
        };
        match a.as_str() {
            "--json" => args.json = true,
            "--bins" => args.bins = value("--bins")?,
            "--top" => args.top = value("--top")? as usize,
            "-h" | "--help" => return Err(Error::Invalid(USAGE.into())),
            flag if flag.starts_with("--") => {
                return Err(Error::Invalid(format!("unknown option {flag}\n{USAGE}")));
            }
            _ => args.positional.push(a.clone()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match pollster::block_on(run(&raw)) {
        Ok(report) => {
            // A closed pipe (`squeeze info … | head`) is the reader's choice, not a failure.
            let _ = std::io::stdout().write_all(report.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("squeeze: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one command and return its report as text (or JSON).
async fn run(raw: &[String]) -> Result<String> {
    let (command, rest) = raw.split_first().ok_or_else(|| Error::Invalid(USAGE.into()))?;
    let args = parse_args(rest)?;
    let arity = |n: usize| {
        if args.positional.len() == n {
            Ok(())
        } else {
            Err(Error::Invalid(format!("'{command}' takes {n} argument(s)\n{USAGE}")))
        }
    };
    match command.as_str() {
        "info" => {
            arity(1)?;
            info(&args).await
        }
        "stats" => {
            arity(2)?;
            stats(&args).await
        }
        "bench" => {
            arity(1)?;
            bench(&args).await
        }
        _ => Err(Error::Invalid(format!("unknown command '{command}'\n{USAGE}"))),
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("reports serialise") + "\n"
}

async fn info(args: &Args) -> Result<String> {
    let sources = open_path(&PathBuf::from(&args.positional[0]))?;
    let view = ModelView::of_header(&open_model(&sources).await?);
    if args.json {
        return Ok(json(&view));
    }
    let mut out = view.summary.to_text();
    let _ = writeln!(out, "\n\n{:<44} {:>16} {:>6} {:>12}", "tensor", "shape", "dtype", "bytes");
    for t in &view.tensors {
        let _ = writeln!(out, "{:<44} {:>16} {:>6} {:>12}", t.name, shape_text(&t.shape), t.dtype, t.n_bytes);
    }
    Ok(out)
}

async fn stats(args: &Args) -> Result<String> {
    let sources = open_path(&PathBuf::from(&args.positional[0]))?;
    let header = open_model(&sources).await?;
    let info = header.tensor(&args.positional[1])?;
    let gpu = Gpu::new(GpuOptions::default()).await?;
    let bytes = read_tensor_bytes(&sources, info).await?;
    let tensor = gpu.upload_tensor(&info.name, &info.shape, info.dtype, &bytes)?;
    let stats = tensor_stats(&gpu, &tensor, args.bins, args.top).await?;
    Ok(if args.json { json(&stats) } else { stats_text(&stats, &gpu.info.adapter) })
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

#[derive(serde::Serialize)]
struct BenchReport {
    model: String,
    adapter: String,
    backend: String,
    parse_ms: f64,
    upload_ms: f64,
    gpu_weight_bytes: u64,
    file_tensor_bytes: u64,
    tensors: usize,
    largest_tensor: String,
    stats_ms: f64,
}

async fn bench(args: &Args) -> Result<String> {
    let sources = open_path(&PathBuf::from(&args.positional[0]))?;
    let gpu = Gpu::new(GpuOptions::default()).await?;
    let loaded = model::load(&gpu, &sources, &mut |_: &str, _: u64, _: u64| {}).await?;
    let largest = loaded
        .tensors
        .iter()
        .max_by_key(|t| t.n_bytes)
        .ok_or_else(|| Error::Invalid("empty model".into()))?;
    // Warm the kernels once so the timing shows the steady state the page sees on a second click.
    tensor_stats(&gpu, largest, 64, 8).await?;
    let stats = tensor_stats(&gpu, largest, 64, 8).await?;
    let view = loaded.view();
    let report = BenchReport {
        model: view.files.join(", "),
        adapter: gpu.info.adapter.clone(),
        backend: gpu.info.backend.clone(),
        parse_ms: loaded.timings.parse_ms,
        upload_ms: loaded.timings.upload_ms,
        gpu_weight_bytes: view.gpu_bytes.unwrap_or(0),
        file_tensor_bytes: view.summary.bytes_total,
        tensors: view.tensors.len(),
        largest_tensor: largest.name.clone(),
        stats_ms: stats.ms,
    };
    if args.json {
        return Ok(json(&report));
    }
    Ok(format!(
        "model        {} on {} ({})\n\
         load         parse {:.1} ms, upload {:.1} ms ({} tensors)\n\
         GPU memory   {} bytes of weights (file: {} bytes of tensor data)\n\
         stats        {} in {:.1} ms (dequantise + histogram + channel max)\n",
        report.model,
        report.adapter,
        report.backend,
        report.parse_ms,
        report.upload_ms,
        report.tensors,
        report.gpu_weight_bytes,
        report.file_tensor_bytes,
        report.largest_tensor,
        report.stats_ms
    ))
}
