//! Helpers shared by the integration tests: a deterministic PRNG, random tensor bytes that decode to
//! finite values, tiny random Llama-style models as GGUF and as a safetensors directory, a tiny random
//! GPT-2 GGUF, and the path of the real model file that the setup downloads.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

pub mod bench;
pub mod export;
pub mod hessians;

use half::{bf16, f16};
use squeeze::error::Result;
use squeeze::formats::gguf_write::GgufWriter;
use squeeze::formats::{open_model, safetensors, DType, MemSource, MetaValue, ModelHeader};
use squeeze::gpu::{Gpu, GpuOptions};
use std::path::PathBuf;

/// splitmix64: tiny, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Byte offsets of the f16 scale fields in one block of `dtype` (ggml-common.h layouts). Random bytes
/// there could be NaN or infinity; the tests overwrite them with small finite scales.
fn f16_scale_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q8_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q2_K => &[80, 82],
        DType::Q3_K => &[108],
        DType::Q6_K => &[208],
        _ => &[],
    }
}

/// Stored bytes for `n` elements of `dtype`. Float types get values uniform in ±`scale`; block types get
/// random quants with finite scales of about `scale`/8; integer types get random bytes.
pub fn random_tensor_bytes(dtype: DType, n: u64, scale: f32, rng: &mut Rng) -> Vec<u8> {
    let values = |rng: &mut Rng| (0..n).map(|_| rng.uniform() * scale).collect::<Vec<f32>>();
    match dtype {
        DType::F32 => values(rng).iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => values(rng).iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
        DType::F16 => values(rng).iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        DType::BF16 => values(rng).iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        _ => {
            let len = dtype.bytes_for(n).expect("n must be a whole number of blocks") as usize;
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes);
            let block = dtype.block_bytes() as usize;
            for b in bytes.chunks_mut(block) {
                let mut small = || (0.25 + 0.75 * rng.uniform().abs()) * scale / 8.0;
                for &at in f16_scale_offsets(dtype) {
                    b[at..at + 2].copy_from_slice(&f16::from_f32(small()).to_le_bytes());
                }
                if dtype == DType::Q8_K {
                    b[..4].copy_from_slice(&small().to_le_bytes()); // Q8_K's scale is an f32
                }
            }
            bytes
        }
    }
}

pub const TINY_LAYERS: u64 = 2;
/// 256 so that rows are whole K-quant blocks.
pub const TINY_D_MODEL: u64 = 256;
pub const TINY_HEADS: u64 = 4;
pub const TINY_KV_HEADS: u64 = 2;
pub const TINY_HEAD_DIM: u64 = TINY_D_MODEL / TINY_HEADS;
pub const TINY_FFN: u64 = 512;
pub const TINY_VOCAB: u64 = 300;
pub const TINY_CONTEXT: u64 = 256;
pub const TINY_ROPE_BASE: f32 = 10000.0;
pub const TINY_NORM_EPS: f32 = 1e-5;

/// The tensors of the tiny Llama in GGUF naming: (name, outermost-first shape, is a norm weight).
/// Tied embeddings, like SmolLM2: there is no output.weight.
pub fn tiny_llama_gguf_tensors() -> Vec<(String, Vec<u64>, bool)> {
    let (d, kv, f) = (TINY_D_MODEL, TINY_KV_HEADS * TINY_HEAD_DIM, TINY_FFN);
    let mut t = vec![("token_embd.weight".to_string(), vec![TINY_VOCAB, d], false)];
    for i in 0..TINY_LAYERS {
        let name = |s: &str| format!("blk.{i}.{s}.weight");
        t.push((name("attn_norm"), vec![d], true));
        t.push((name("attn_q"), vec![d, d], false));
        t.push((name("attn_k"), vec![kv, d], false));
        t.push((name("attn_v"), vec![kv, d], false));
        t.push((name("attn_output"), vec![d, d], false));
        t.push((name("ffn_norm"), vec![d], true));
        t.push((name("ffn_gate"), vec![f, d], false));
        t.push((name("ffn_up"), vec![f, d], false));
        t.push((name("ffn_down"), vec![d, f], false));
    }
    t.push(("output_norm.weight".to_string(), vec![d], true));
    t
}

/// A 2-layer llama-architecture GGUF (d_model 256, 4 heads, 2 KV heads, FFN 512, vocab 300) with
/// random weights: the embedding and all linears in `dtype_for_linears`, norm weights F32 near 1.
pub fn tiny_llama_gguf(dtype_for_linears: DType, seed: u64) -> Vec<u8> {
    let tensors = tiny_llama_gguf_tensors()
        .into_iter()
        .map(|(name, shape, is_norm)| (name, shape, if is_norm { Init::Norm } else { Init::Linear }));
    tiny_gguf(&tiny_llama_meta(), tensors, dtype_for_linears, seed)
}

/// The tiny Llama's architecture metadata (the tokenizer's is added by [`tiny_gguf`]).
pub fn tiny_llama_meta() -> Vec<(&'static str, MetaValue)> {
    let u32_ = |v: u64| MetaValue::U32(v as u32);
    vec![
        ("general.architecture", MetaValue::String("llama".into())),
        ("general.name", MetaValue::String("tiny-llama".into())),
        ("llama.block_count", u32_(TINY_LAYERS)),
        ("llama.context_length", u32_(TINY_CONTEXT)),
        ("llama.embedding_length", u32_(TINY_D_MODEL)),
        ("llama.feed_forward_length", u32_(TINY_FFN)),
        ("llama.attention.head_count", u32_(TINY_HEADS)),
        ("llama.attention.head_count_kv", u32_(TINY_KV_HEADS)),
        ("llama.rope.dimension_count", u32_(TINY_HEAD_DIM)),
        ("llama.rope.freq_base", MetaValue::F32(TINY_ROPE_BASE)),
        ("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(TINY_NORM_EPS)),
        ("llama.vocab_size", u32_(TINY_VOCAB)),
    ]
}

pub const TINY_GPT2_FFN: u64 = 1024;
pub const TINY_GPT2_CONTEXT: u64 = 64;

/// A 2-layer gpt2-architecture GGUF in llama.cpp's naming (d_model 256, 4 heads, FFN 1024, vocab 300,
/// 64 learned positions) with random weights: both embeddings and all linears in `dtype_for_linears`,
/// norm weights F32 near 1, biases F32. Tied embeddings: there is no output.weight.
pub fn tiny_gpt2_gguf(dtype_for_linears: DType, seed: u64) -> Vec<u8> {
    let u32_ = |v: u64| MetaValue::U32(v as u32);
    let meta = [
        ("general.architecture", MetaValue::String("gpt2".into())),
        ("general.name", MetaValue::String("tiny-gpt2".into())),
        ("gpt2.block_count", u32_(TINY_LAYERS)),
        ("gpt2.context_length", u32_(TINY_GPT2_CONTEXT)),
        ("gpt2.embedding_length", u32_(TINY_D_MODEL)),
        ("gpt2.feed_forward_length", u32_(TINY_GPT2_FFN)),
        ("gpt2.attention.head_count", u32_(TINY_HEADS)),
        ("gpt2.attention.layer_norm_epsilon", MetaValue::F32(TINY_NORM_EPS)),
    ];
    let (d, f) = (TINY_D_MODEL, TINY_GPT2_FFN);
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![TINY_VOCAB, d], Init::Linear),
        ("position_embd.weight".to_string(), vec![TINY_GPT2_CONTEXT, d], Init::Linear),
    ];
    // (name, outputs, inputs; none for a norm)
    let mut with_bias = |name: String, outputs: u64, inputs: Option<u64>| {
        match inputs {
            Some(k) => t.push((format!("{name}.weight"), vec![outputs, k], Init::Linear)),
            None => t.push((format!("{name}.weight"), vec![outputs], Init::Norm)),
        }
        t.push((format!("{name}.bias"), vec![outputs], Init::Bias));
    };
    for i in 0..TINY_LAYERS {
        with_bias(format!("blk.{i}.attn_norm"), d, None);
        with_bias(format!("blk.{i}.attn_qkv"), 3 * d, Some(d));
        with_bias(format!("blk.{i}.attn_output"), d, Some(d));
        with_bias(format!("blk.{i}.ffn_norm"), d, None);
        with_bias(format!("blk.{i}.ffn_up"), f, Some(d));
        with_bias(format!("blk.{i}.ffn_down"), d, Some(f));
    }
    with_bias("output_norm".to_string(), d, None);
    tiny_gguf(&meta, t, dtype_for_linears, seed)
}

/// How a tiny model's tensor is filled.
#[derive(Clone, Copy)]
pub enum Init {
    /// Uniform in ±0.1 (or blocks of about that scale), in the model's linear dtype.
    Linear,
    /// F32 near 1.
    Norm,
    /// F32 uniform in ±0.1.
    Bias,
}

/// A GGUF of `meta`, a byte-level tokenizer's metadata over TINY_VOCAB tokens, and random `tensors`.
pub fn tiny_gguf(
    meta: &[(&str, MetaValue)],
    tensors: impl IntoIterator<Item = (String, Vec<u64>, Init)>,
    dtype_for_linears: DType,
    seed: u64,
) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut w = GgufWriter::new();
    let tokenizer = [
        ("tokenizer.ggml.model", MetaValue::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            MetaValue::Array((0..TINY_VOCAB).map(|i| MetaValue::String(format!("<t{i}>"))).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", MetaValue::U32(0)),
        ("tokenizer.ggml.eos_token_id", MetaValue::U32(1)),
    ];
    for (key, value) in meta.iter().cloned().chain(tokenizer) {
        w.set(key, value).expect("valid metadata");
    }
    for (name, shape, init) in tensors {
        let n = shape.iter().product();
        let (dtype, bytes) = match init {
            Init::Linear => (dtype_for_linears, random_tensor_bytes(dtype_for_linears, n, 0.1, &mut rng)),
            Init::Norm => (DType::F32, norm_weight_bytes(DType::F32, n, &mut rng)),
            Init::Bias => (DType::F32, random_tensor_bytes(DType::F32, n, 0.1, &mut rng)),
        };
        w.add_tensor(&name, &shape, dtype, bytes).expect("valid tensor");
    }
    w.to_bytes()
}

/// Norm weights near 1 so that activations keep their scale.
fn norm_weight_bytes(dtype: DType, n: u64, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = random_tensor_bytes(DType::F32, n, 0.1, rng);
    for c in bytes.chunks_mut(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) + 1.0;
        c.copy_from_slice(&v.to_le_bytes());
    }
    let values = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    match dtype {
        DType::F16 => values.flat_map(|v| f16::from_f32(v).to_le_bytes()).collect(),
        DType::BF16 => values.flat_map(|v| bf16::from_f32(v).to_le_bytes()).collect(),
        _ => bytes,
    }
}

/// The same tiny Llama as a Hugging Face directory: `model.safetensors` (all tensors in `dtype`, which
/// must be F32, F16 or BF16) and `config.json`.
pub fn tiny_llama_safetensors(dtype: DType, seed: u64) -> Vec<MemSource> {
    let mut rng = Rng::new(seed);
    let (d, kv, f) = (TINY_D_MODEL, TINY_KV_HEADS * TINY_HEAD_DIM, TINY_FFN);
    let mut tensors = vec![("model.embed_tokens.weight".to_string(), vec![TINY_VOCAB, d], false)];
    for i in 0..TINY_LAYERS {
        let name = |s: &str| format!("model.layers.{i}.{s}.weight");
        tensors.push((name("input_layernorm"), vec![d], true));
        tensors.push((name("self_attn.q_proj"), vec![d, d], false));
        tensors.push((name("self_attn.k_proj"), vec![kv, d], false));
        tensors.push((name("self_attn.v_proj"), vec![kv, d], false));
        tensors.push((name("self_attn.o_proj"), vec![d, d], false));
        tensors.push((name("post_attention_layernorm"), vec![d], true));
        tensors.push((name("mlp.gate_proj"), vec![f, d], false));
        tensors.push((name("mlp.up_proj"), vec![f, d], false));
        tensors.push((name("mlp.down_proj"), vec![d, f], false));
    }
    tensors.push(("model.norm.weight".to_string(), vec![d], true));
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape, is_norm)| {
            let n = shape.iter().product();
            match is_norm {
                true => norm_weight_bytes(dtype, n, &mut rng),
                false => random_tensor_bytes(dtype, n, 0.1, &mut rng),
            }
        })
        .collect();
    let entries: Vec<(&str, &[u64], DType, &[u8])> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape, _), bytes)| (name.as_str(), shape.as_slice(), dtype, bytes.as_slice()))
        .collect();
    vec![
        MemSource { name: "model.safetensors".into(), bytes: safetensors::write(&entries) },
        MemSource { name: "config.json".into(), bytes: tiny_llama_config().to_string().into_bytes() },
    ]
}

pub fn tiny_llama_config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": TINY_LAYERS,
        "hidden_size": TINY_D_MODEL,
        "num_attention_heads": TINY_HEADS,
        "num_key_value_heads": TINY_KV_HEADS,
        "intermediate_size": TINY_FFN,
        "vocab_size": TINY_VOCAB,
        "max_position_embeddings": TINY_CONTEXT,
        "rope_theta": TINY_ROPE_BASE,
        "rms_norm_eps": TINY_NORM_EPS,
        "tie_word_embeddings": true
    })
}

/// Open in-memory files as a model.
pub fn open_mem(files: &[MemSource]) -> Result<ModelHeader> {
    pollster::block_on(open_model(files))
}

/// Open one in-memory file as a model.
pub fn open_bytes(name: &str, bytes: Vec<u8>) -> Result<ModelHeader> {
    open_mem(&[MemSource { name: name.to_string(), bytes }])
}

/// The real SmolLM2 file the setup downloads. Missing is a failure, not a skip: the tests that need it
/// must not pass silently on a machine that never fetched it.
pub fn real_model_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run `npm test` (or `bash scripts/setup.sh`, which downloads it) first",
        path.display()
    );
    path
}

pub fn gpu_with(options: GpuOptions) -> Gpu {
    pollster::block_on(Gpu::new(options))
        .expect("a GPU adapter (natively: WGPU_BACKEND=vulkan with lavapipe)")
}

pub fn gpu() -> Gpu {
    gpu_with(GpuOptions::default())
}

/// A GPU that binds at most 64 KiB at a time, so modest tensors go through the kernels in several
/// windows, whose rows start mid-buffer and off the binding alignment.
pub fn small_gpu() -> Gpu {
    gpu_with(GpuOptions { max_storage_buffer_binding_size: Some(64 * 1024), ..Default::default() })
}

/// GPU values against their CPU twin, element `i` within `tolerance(i)`; names the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() / tolerance(i);
        if (excess.is_nan() || excess > 1.0) && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, excess)) = worst {
        panic!(
            "{what}: element {i}: GPU {:e}, CPU {:e}, {excess:.1}× the tolerance {:e}",
            got[i],
            want[i],
            tolerance(i)
        );
    }
}

/// Asserts that `json` is refused as a recipe with a message containing `says`.
pub fn assert_recipe_refused(json: &str, says: &str) {
    match squeeze::compress::Recipe::parse(json) {
        Err(squeeze::error::Error::Invalid(m)) => assert!(m.contains(says), "{json}: {m}"),
        other => panic!("{json} was accepted: {other:?}"),
    }
}
