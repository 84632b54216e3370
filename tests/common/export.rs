//! Helpers shared by the export tests: a model loaded from memory, an export collected piece by piece,
//! a tensor's stored bytes in the model and in a file, perplexity in Squeeze and in llama.cpp.

use super::{Rng, TINY_VOCAB};
use squeeze::compress::Recipe;
use squeeze::eval::perplexity::{perplexity, Convention};
use squeeze::export::{Export, ExportFormat, ExportPlan};
use squeeze::formats::{open_model, MemSource, ModelHeader};
use squeeze::gpu::Gpu;
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn quiet(_: &str, _: u64, _: u64) {}

pub fn load_mem(gpu: &Gpu, files: &[MemSource]) -> LoadedModel {
    pollster::block_on(load(gpu, files, &mut quiet)).unwrap()
}

pub fn open(name: &str, bytes: Vec<u8>) -> ModelHeader {
    pollster::block_on(open_model(&[MemSource { name: name.into(), bytes }])).unwrap()
}

/// Random token ids of the tiny vocabulary.
pub fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % TINY_VOCAB) as u32).collect()
}

/// The whole export in memory, piece by piece as the page receives it.
pub fn export(
    gpu: &Gpu,
    original: &LoadedModel,
    model: &LoadedModel,
    recipe: Option<&Recipe>,
    format: ExportFormat,
) -> (ExportPlan, Vec<u8>) {
    let mut e = Export::new(original, model, recipe, format).unwrap();
    let mut file = Vec::new();
    while let Some(piece) = pollster::block_on(e.next_piece(gpu, model)).unwrap() {
        file.extend(piece);
    }
    assert_eq!(file.len() as u64, e.plan().bytes, "the plan announces the file's size");
    (e.plan().clone(), file)
}

/// A model's stored bytes of tensor `name`, read back from the GPU.
pub fn stored(gpu: &Gpu, model: &LoadedModel, name: &str) -> Vec<u8> {
    let t = model.tensor(name).unwrap();
    pollster::block_on(gpu.read_bytes(&t.buffer, 0, t.n_bytes)).unwrap()
}

/// Tensor `name`'s bytes in an exported file.
pub fn in_file<'f>(file: &'f [u8], header: &ModelHeader, name: &str) -> &'f [u8] {
    let t = header.tensor(name).unwrap();
    &file[t.offset as usize..(t.offset + t.n_bytes) as usize]
}

pub fn ppl(
    gpu: &Gpu,
    model: &LoadedModel,
    tokens: &[u32],
    ctx: usize,
    chunks: usize,
    bos: Option<u32>,
) -> f64 {
    let mut runner = Runner::new(gpu, model, ctx, ctx).unwrap();
    let p = pollster::block_on(perplexity(
        &mut runner,
        tokens,
        ctx,
        Some(chunks),
        bos,
        Convention::LlamaCpp,
        &mut quiet,
    ))
    .unwrap();
    assert_eq!(p.chunks, chunks);
    p.ppl
}

/// `llama-perplexity` from LLAMA_PERPLEXITY or the PATH.
pub fn llama_perplexity() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLAMA_PERPLEXITY") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("llama-perplexity"))
        .find(|p| p.is_file())
}

/// llama.cpp's final estimate for `model` on `text` ("Final estimate: PPL = 39.5889 +/- 4.22169").
pub fn llama_cpp_ppl(bin: &Path, model: &Path, text: &Path, ctx: usize, chunks: usize) -> f64 {
    let out = Command::new(bin)
        .args(["-m", model.to_str().unwrap(), "-f", text.to_str().unwrap(), "-t", "2"])
        .args(["-c", &ctx.to_string(), "--chunks", &chunks.to_string()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let tail =
        log.split("Final estimate: PPL = ").nth(1).unwrap_or_else(|| panic!("llama-perplexity: {log}"));
    tail.split_whitespace().next().unwrap().parse().unwrap()
}
