//! The GPU forward pass against its CPU twin (`cpu::llama`, `cpu::gpt2`, built from the kernels' plain
//! twins) on tiny random Llama models, in GGUF and safetensors naming, and tiny random GPT-2 GGUFs, with
//! quantised and float weights; and the KV cache: feeding tokens in pieces gives the logits of feeding
//! them at once.

mod common;

use common::{
    gpu, open_bytes, tiny_gguf, tiny_gpt2_gguf, tiny_llama_gguf, tiny_llama_safetensors, TINY_VOCAB,
};
use squeeze::cpu::dequant::dequantize;
use squeeze::cpu::gpt2::CpuGpt2;
use squeeze::cpu::llama::CpuLlama;
use squeeze::formats::{read_tensor_bytes, DType, MemSource, MetaValue};
use squeeze::model::config::{Family, ModelConfig};
use squeeze::model::runner::Runner;
use squeeze::model::{load, LoadedModel};

fn no_progress(_: &str, _: u64, _: u64) {}

/// The CPU twin's logits for `ids`, from the model's tensors decoded on the CPU.
fn twin_logits(sources: &[MemSource], model: &LoadedModel, ids: &[u32]) -> Vec<f32> {
    let cfg = ModelConfig::from_header(&model.header).unwrap();
    let weight = |name: &str| {
        let t = model.header.tensors.iter().find(|t| t.name == name)?;
        let bytes = pollster::block_on(read_tensor_bytes(sources, t)).unwrap();
        Some(dequantize(t.dtype, &bytes, t.n_elements() as usize).unwrap())
    };
    match cfg.family {
        Family::Llama => CpuLlama::new(cfg, weight).unwrap().forward(ids),
        Family::Gpt2 => CpuGpt2::new(cfg, weight).unwrap().forward(ids),
    }
}

fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + 11) % TINY_VOCAB as u32).collect()
}

/// Largest |a − b| relative to the largest |b|: the GPU sums in a different order than the twin, and
/// each of the 2 layers × 7 matmuls adds ~k·ε relative error (k ≤ 512, ε = 6e-8 → 3e-5 each; GPT-2:
/// 2 × 4 matmuls with k ≤ 1024 → 6e-5 each, plus GELU's few-ulp tanh), so 1e-3 of the logit scale is a
/// loose bound that still catches any wrong index, mask, rotation, position or bias.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-3 * scale, "{what}: max |gpu − cpu| = {worst} vs logit scale {scale}");
}

fn check_against_twin(what: &str, sources: Vec<MemSource>) {
    let gpu = gpu();
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let tokens = ids(13);
    let want = twin_logits(&sources, &model, &tokens);
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
    check_kv_cache_pieces(tiny_llama_gguf(DType::Q8_0, 9));
}

fn check_kv_cache_pieces(gguf: Vec<u8>) {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: gguf }];
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

#[test]
fn gguf_gpt2_matches_cpu_twin_for_float_and_block_weights() {
    for dtype in [DType::F32, DType::F16, DType::Q8_0] {
        let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_gpt2_gguf(dtype, 7) }];
        check_against_twin(&format!("tiny GGUF gpt2 with {dtype} weights"), sources);
    }
}

#[test]
fn gpt2_kv_cache_pieces_equal_one_batch() {
    check_kv_cache_pieces(tiny_gpt2_gguf(DType::Q8_0, 10));
}

#[test]
fn gpt2_cache_stops_at_its_learned_positions() {
    let gpu = gpu();
    let sources = vec![MemSource { name: "tiny.gguf".into(), bytes: tiny_gpt2_gguf(DType::F16, 4) }];
    let model = pollster::block_on(load(&gpu, &sources, &mut no_progress)).unwrap();
    let runner = Runner::new(&gpu, &model, 1000, 16).unwrap();
    assert_eq!(runner.cache.max_seq, common::TINY_GPT2_CONTEXT as usize);
}

#[test]
fn unknown_architectures_and_hugging_face_gpt2_are_refused_clearly() {
    let meta = [("general.architecture", MetaValue::String("mamba".into()))];
    let header = open_bytes("mamba.gguf", tiny_gguf(&meta, [], DType::F32, 1)).unwrap();
    let err = ModelConfig::from_header(&header).unwrap_err().to_string();
    assert!(err.contains("mamba.gguf: unsupported: architecture 'mamba'"), "{err}");
    assert!(err.contains("Llama family") && err.contains("gpt2"), "{err}");

    let config = serde_json::json!({ "model_type": "gpt2", "n_layer": 2, "n_embd": 256, "n_head": 4 });
    let files = [
        MemSource {
            name: "model.safetensors".into(),
            bytes: tiny_llama_safetensors(DType::F16, 1)[0].bytes.clone(),
        },
        MemSource { name: "config.json".into(), bytes: config.to_string().into_bytes() },
    ];
    let err = ModelConfig::from_header(&common::open_mem(&files).unwrap()).unwrap_err().to_string();
    assert!(err.contains("Hugging Face GPT-2 checkpoints are not supported yet; use a GGUF"), "{err}");
}
