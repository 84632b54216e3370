//! The GPU forward pass against its CPU twin (`cpu::llama`, built from the kernels' plain twins) on tiny
//! random Llama models, in GGUF and safetensors naming, with quantised and float weights; and the KV
//! cache: feeding tokens in pieces gives the logits of feeding them at once.

mod common;

use common::{tiny_llama_gguf, tiny_llama_safetensors, TINY_VOCAB};
use squeeze::cpu::dequant::dequantize;
use squeeze::cpu::llama::CpuLlama;
use squeeze::formats::{read_tensor_bytes, DType, MemSource};
use squeeze::gpu::{Gpu, GpuOptions};
use squeeze::model::config::ModelConfig;
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new(GpuOptions::default())).expect("a Vulkan adapter (lavapipe in CI)")
}

fn no_progress(_: &str, _: u64, _: u64) {}

fn cpu_twin(sources: &[MemSource], model: &LoadedModel) -> CpuLlama {
    let cfg = ModelConfig::from_header(&model.header).unwrap();
    CpuLlama::new(cfg, |name| {
        let t = model.header.tensors.iter().find(|t| t.name == name)?;
        let bytes = pollster::block_on(read_tensor_bytes(sources, t)).unwrap();
        Some(dequantize(t.dtype, &bytes, t.n_elements() as usize).unwrap())
    })
    .unwrap()
}

fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + 11) % TINY_VOCAB as u32).collect()
}

/// Largest |a − b| relative to the largest |b|: the GPU sums in a different order than the twin, and
/// each of the 2 layers × 7 matmuls adds ~k·ε relative error (k ≤ 512, ε = 6e-8 → 3e-5 each), so 1e-3
/// of the logit scale is a loose bound that still catches any wrong index, mask or rotation.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-3 * scale, "{what}: max |gpu − cpu| = {worst} vs logit scale {scale}");
}

fn check_against_twin(what: &str, sources: Vec<MemSource>) {
    let gpu = gpu();
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let twin = cpu_twin(&sources, &model);
    let tokens = ids(13);
    let want = twin.forward(&tokens);
    let mut runner = Runner::new(&gpu, &model, 64, 16).unwrap();
    let got = pollster::block_on(runner.logits_of(&tokens, 0..tokens.len())).unwrap();
    assert_close(what, &got, &want);
}

#[test]
fn gguf_llama_matches_cpu_twin_for_float_and_block_weights() {
    for dtype in [DType::F32, DType::F16, DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q6_K] {
        let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(dtype, 5) }];
        check_against_twin(&format!("tiny GGUF llama with {dtype} weights"), sources);
    }
}

#[test]
fn safetensors_llama_matches_cpu_twin_with_rotate_half_rope() {
    check_against_twin("tiny safetensors llama (BF16)", tiny_llama_safetensors(DType::BF16, 6));
}

#[test]
fn kv_cache_pieces_equal_one_batch() {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::Q8_0, 9) }];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let tokens = ids(21);

    let mut whole = Runner::new(&gpu, &model, 64, 32).unwrap();
    let want = pollster::block_on(whole.next_logits(&tokens)).unwrap();

    // Batches of 4 split the prompt across forward calls; then single-token decode steps.
    let mut pieces = Runner::new(&gpu, &model, 64, 4).unwrap();
    pollster::block_on(pieces.next_logits(&tokens[..15])).unwrap();
    let mut got = Vec::new();
    for &t in &tokens[15..] {
        got = pollster::block_on(pieces.next_logits(&[t])).unwrap();
    }
    assert_eq!(pieces.cache.len, tokens.len());
    assert_close("prefill in batches of 4 then decode", &got, &want);
}

#[test]
fn overfilling_the_cache_is_an_error_not_a_crash() {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_llama_gguf(DType::F16, 3) }];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let mut runner = Runner::new(&gpu, &model, 8, 8).unwrap();
    let err = pollster::block_on(runner.next_logits(&ids(9))).unwrap_err().to_string();
    assert!(err.contains("KV cache holds 8 positions"), "{err}");
}
