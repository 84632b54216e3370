//! `squeeze bench`: how fast the model loads and runs here, and how much GPU memory it takes.

use crate::compress::read;
use crate::{args, json, model_files, USAGE};
use squeeze::compress::{compress, Calibration, Recipe};
use squeeze::error::{Error, Result};
use squeeze::eval::now_ms;
use squeeze::eval::weight_stats::tensor_stats;
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::runner::Runner;
use squeeze::model::{self};

/// Prompt length for the prefill measurement, and tokens decoded for the decode measurement.
const PREFILL_TOKENS: usize = 256;
const DECODE_TOKENS: usize = 32;

#[derive(serde::Serialize)]
struct BenchReport {
    model: String,
    adapter: String,
    backend: String,
    parse_ms: f64,
    upload_ms: f64,
    tensors: usize,
    gpu_weight_bytes: u64,
    file_tensor_bytes: u64,
    kv_cache_bytes: u64,
    prefill_tokens: usize,
    prefill_tokens_per_s: f64,
    decode_tokens: usize,
    decode_tokens_per_s: f64,
    largest_tensor: String,
    stats_ms: f64,
    /// With --recipe: the recipe, how long compressing took, and the compressed model's bytes (the
    /// speeds above are then the compressed model's).
    recipe: Option<String>,
    compress_seconds: Option<f64>,
    calib_seconds: Option<f64>,
    compressed_bytes: Option<u64>,
}

fn no_progress(_: &str, _: u64, _: u64) {}

pub async fn bench(raw: &[String]) -> Result<String> {
    let args = args::parse(raw, &["json"], &["recipe", "calib-file", "calib-tokens"], USAGE)?;
    args.expect_positional(1, "bench", USAGE)?;
    let gpu = Gpu::new(GpuOptions::default()).await?;
    let original = model::load(&gpu, &model_files(&args.positional[0])?, &mut no_progress).await?;
    let view = original.view();
    let compressed = match args.text("recipe") {
        Some(path) => {
            let recipe = Recipe::parse(&read(path)?)?;
            let mut calib = match args.text("calib-file") {
                Some(f) => model::tokenizer(&original.header)?.encode(&read(f)?, false, false),
                None => Vec::new(),
            };
            calib.truncate(args.value("calib-tokens", 512)?);
            let calibration = Calibration { tokens: &calib, seq_len: 256 };
            Some(compress(&gpu, &original, &recipe, Some(calibration), &mut no_progress).await?)
        }
        None => None,
    };
    let loaded = compressed.as_ref().map_or(&original, |c| &c.model);

    let largest = loaded
        .tensors
        .iter()
        .max_by_key(|t| t.n_bytes)
        .ok_or_else(|| Error::Invalid("empty model".into()))?;
    // Warm the kernels once so the timing shows the steady state the page sees on a second click.
    tensor_stats(&gpu, largest, 64, 8).await?;
    let stats = tensor_stats(&gpu, largest, 64, 8).await?;

    let mut runner = Runner::new(&gpu, loaded, PREFILL_TOKENS + DECODE_TOKENS, PREFILL_TOKENS)?;
    let vocab = runner.config().vocab as u32;
    let prompt: Vec<u32> = (0..PREFILL_TOKENS as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    runner.next_logits(&prompt[..8]).await?; // compile every kernel before timing
    runner.reset();
    let start = now_ms();
    let mut logits = runner.next_logits(&prompt).await?;
    let prefill_ms = now_ms() - start;
    let start = now_ms();
    for _ in 0..DECODE_TOKENS {
        let next = squeeze::model::sampler::argmax(&logits);
        logits = runner.next_logits(&[next]).await?;
    }
    let decode_ms = now_ms() - start;
    let c = runner.config();
    let kv_cache_bytes = (2 * c.n_layers * runner.cache.max_seq * c.n_kv_heads * c.head_dim * 4) as u64;

    let report = BenchReport {
        model: view.files.join(", "),
        adapter: gpu.info.adapter.clone(),
        backend: gpu.info.backend.clone(),
        parse_ms: loaded.timings.parse_ms,
        upload_ms: loaded.timings.upload_ms,
        tensors: view.tensors.len(),
        gpu_weight_bytes: view.gpu_bytes.unwrap_or(0),
        file_tensor_bytes: view.summary.bytes_total,
        kv_cache_bytes,
        prefill_tokens: PREFILL_TOKENS,
        prefill_tokens_per_s: PREFILL_TOKENS as f64 * 1e3 / prefill_ms,
        decode_tokens: DECODE_TOKENS,
        decode_tokens_per_s: DECODE_TOKENS as f64 * 1e3 / decode_ms,
        largest_tensor: largest.name.clone(),
        stats_ms: stats.ms,
        recipe: compressed.as_ref().map(|c| c.report.recipe.to_json()),
        compress_seconds: compressed.as_ref().map(|c| c.report.seconds),
        calib_seconds: compressed.as_ref().map(|c| c.report.calib_seconds),
        compressed_bytes: compressed.as_ref().map(|c| c.report.size_bytes),
    };
    if args.flag("json") {
        return Ok(json(&report));
    }
    let r = &report;
    let compressed = match (&r.recipe, r.compress_seconds, r.calib_seconds, r.compressed_bytes) {
        (Some(recipe), Some(s), Some(c), Some(b)) => format!(
            "compressed   {recipe}\n             in {s:.1} s ({c:.1} s calibrating), {b} bytes; speeds below are the compressed model's\n"
        ),
        _ => String::new(),
    };
    Ok(compressed
        + &format!(
            "model        {} on {} ({})\n\
         load         parse {:.1} ms, upload {:.1} ms ({} tensors)\n\
         GPU memory   weights {} bytes (file: {} bytes of tensor data), KV cache {} bytes for {} positions\n\
         prefill      {:.1} tokens/s ({} tokens in one batch)\n\
         decode       {:.1} tokens/s ({} tokens, greedy)\n\
         stats        {} in {:.1} ms (dequantise + histogram + channel max)\n",
            r.model,
            r.adapter,
            r.backend,
            r.parse_ms,
            r.upload_ms,
            r.tensors,
            r.gpu_weight_bytes,
            r.file_tensor_bytes,
            r.kv_cache_bytes,
            runner.cache.max_seq,
            r.prefill_tokens_per_s,
            r.prefill_tokens,
            r.decode_tokens_per_s,
            r.decode_tokens,
            r.largest_tensor,
            r.stats_ms
        ))
}
