//! Format tests: GGUF and safetensors round trips through the writers, every class of bad input with the
//! message a user would see, and the real SmolLM2 file. No GPU needed.

mod common;

use common::*;
use squeeze::error::Error;
use squeeze::formats::gguf::{self, parse_header};
use squeeze::formats::gguf_write::GgufWriter;
use squeeze::formats::source::FileSource;
use squeeze::formats::{open_model, read_tensor_bytes, safetensors, Container, DType, MemSource, MetaValue};
use std::collections::BTreeMap;

// ---------- helpers ----------

fn s(v: &str) -> MetaValue {
    MetaValue::String(v.to_string())
}

/// A GGUF with a little metadata and two small F32 tensors; the base for the bad-input tests.
fn small_gguf() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set("general.architecture", s("llama")).unwrap();
    w.set("llama.block_count", MetaValue::U32(1)).unwrap();
    w.add_tensor("first.weight", &[4, 8], DType::F32, vec![0; 128]).unwrap();
    w.add_tensor("blk.3.ffn_up.weight", &[2, 32], DType::F32, vec![0; 256]).unwrap();
    w.to_bytes()
}

/// Position of a tensor info's n_dims field: just after the length-prefixed name.
fn info_pos(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bytes.windows(needle.len()).rposition(|w| w == needle.as_slice()).expect("tensor name in file");
    at + needle.len()
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Open and expect failure; the message as the user sees it.
fn open_err(name: &str, bytes: Vec<u8>) -> (Error, String) {
    let e = open_bytes(name, bytes).expect_err("the file should be refused");
    let msg = e.to_string();
    (e, msg)
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should contain {p:?}");
    }
}

fn mem(name: &str, bytes: Vec<u8>) -> MemSource {
    MemSource { name: name.to_string(), bytes }
}

// ---------- GGUF round trips ----------

#[test]
fn gguf_round_trips_every_metadata_value_type() {
    use MetaValue::{Array, Bool, F32, F64, I16, I32, I64, I8, U16, U32, U64, U8};
    let values = vec![
        ("t.u8", U8(200)),
        ("t.i8", I8(-100)),
        ("t.u16", U16(60000)),
        ("t.i16", I16(-30000)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-2_000_000_000)),
        ("t.f32", F32(-1.5e-3)),
        ("t.bool_true", Bool(true)),
        ("t.bool_false", Bool(false)),
        ("t.string", s("héllo — ünïcode")),
        ("t.empty_string", s("")),
        ("t.u64", U64(u64::MAX - 1)),
        ("t.i64", I64(i64::MIN + 1)),
        ("t.f64", F64(std::f64::consts::PI)),
        ("t.array_u8", Array(vec![U8(1), U8(2), U8(255)])),
        ("t.array_f32", Array(vec![F32(0.5), F32(-2.0)])),
        ("t.array_string", Array(vec![s("a"), s(""), s("ccc")])),
        ("t.array_bool", Array(vec![Bool(true), Bool(false)])),
        ("t.array_i64", Array(vec![I64(-1), I64(7)])),
        ("t.array_empty", Array(vec![])),
        ("t.array_nested", Array(vec![Array(vec![U32(1), U32(2)]), Array(vec![]), Array(vec![U32(3)])])),
        ("t.array_nested_mixed_inner_types", Array(vec![Array(vec![s("x")]), Array(vec![F64(1.0)])])),
        ("t.array_nested_twice", Array(vec![Array(vec![Array(vec![I16(-5)])])])),
    ];
    let mut w = GgufWriter::new();
    for (k, v) in &values {
        w.set(k, v.clone()).unwrap();
    }
    let model = open_bytes("meta.gguf", w.to_bytes()).unwrap();
    let expected: BTreeMap<String, MetaValue> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(model.metadata, expected);
    assert!(model.tensors.is_empty());
    assert_eq!(model.container, Container::Gguf);
    assert_eq!(model.files, vec!["meta.gguf".to_string()]);
}

#[test]
fn gguf_writer_refuses_mixed_arrays_and_bad_alignment() {
    let mut w = GgufWriter::new();
    let e = w.set("x", MetaValue::Array(vec![MetaValue::U8(1), MetaValue::I8(1)])).unwrap_err();
    assert_contains(&e.to_string(), &["x", "mixes value types 0 and 1"]);
    let e = w.set("general.alignment", MetaValue::U32(48)).unwrap_err();
    assert_contains(&e.to_string(), &["general.alignment", "power-of-two"]);
    let e = w.add_tensor("t", &[2, 30], DType::Q8_0, vec![0; 68]).unwrap_err();
    assert_contains(&e.to_string(), &["t", "rows of 30", "block size 32"]);
}

#[test]
fn gguf_tensor_table_round_trips_every_dtype() {
    let mut rng = Rng::new(7);
    let mut w = GgufWriter::new();
    let mut written = Vec::new();
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        // Three rows of 256: every block size divides the row; the odd row count exercises alignment padding.
        let shape = [3u64, 256];
        let bytes = random_tensor_bytes(dtype, 768, 1.0, &mut rng);
        let name = format!("t{i}.{dtype}");
        w.add_tensor(&name, &shape, dtype, bytes.clone()).unwrap();
        written.push((name, dtype, bytes));
    }
    let file = mem("all_dtypes.gguf", w.to_bytes());
    let model = pollster::block_on(gguf::open(&file)).unwrap();
    assert_eq!(model.tensors.len(), DType::ALL.len());
    for (t, (name, dtype, bytes)) in model.tensors.iter().zip(&written) {
        assert_eq!(&t.name, name);
        assert_eq!(t.dtype, *dtype);
        assert_eq!(t.shape, vec![3, 256]);
        assert_eq!(t.n_bytes, 3 * 256 / dtype.block_size() * dtype.block_bytes());
        assert_eq!(t.offset % 32, 0, "{name} offset {}", t.offset);
        let read = pollster::block_on(read_tensor_bytes(std::slice::from_ref(&file), t)).unwrap();
        assert_eq!(&read, bytes, "{name} data");
    }
    assert_eq!(model.summary.params, 768 * DType::ALL.len() as u64);
    assert_eq!(model.summary.bytes_total, written.iter().map(|w| w.2.len() as u64).sum::<u64>());
}

#[test]
fn dtype_byte_sizes_match_ggml() {
    // (dtype, ggml id, bytes per block, elements per block), from ggml-common.h.
    let table = [
        (DType::F32, 0, 4, 1),
        (DType::F16, 1, 2, 1),
        (DType::Q4_0, 2, 18, 32),
        (DType::Q4_1, 3, 20, 32),
        (DType::Q5_0, 6, 22, 32),
        (DType::Q5_1, 7, 24, 32),
        (DType::Q8_0, 8, 34, 32),
        (DType::Q8_1, 9, 36, 32),
        (DType::Q2_K, 10, 84, 256),
        (DType::Q3_K, 11, 110, 256),
        (DType::Q4_K, 12, 144, 256),
        (DType::Q5_K, 13, 176, 256),
        (DType::Q6_K, 14, 210, 256),
        (DType::Q8_K, 15, 292, 256),
        (DType::I8, 24, 1, 1),
        (DType::I16, 25, 2, 1),
        (DType::I32, 26, 4, 1),
        (DType::I64, 27, 8, 1),
        (DType::F64, 28, 8, 1),
        (DType::BF16, 30, 2, 1),
        (DType::MXFP4, 39, 17, 32),
    ];
    assert_eq!(table.len(), DType::ALL.len());
    for (dtype, id, bytes, block) in table {
        assert_eq!(dtype.ggml_id(), id, "{dtype}");
        assert_eq!(DType::from_ggml_id(id), Some(dtype));
        assert_eq!(dtype.bytes_for(256 * 4), Some(256 * 4 / block * bytes), "{dtype}");
        if block > 1 {
            assert_eq!(dtype.bytes_for(block + 1), None, "{dtype}: partial block");
        }
    }
    assert_eq!(DType::Q4_1.bits_per_weight(), 5.0);
    assert_eq!(DType::Q6_K.bits_per_weight(), 6.5625);
}

#[test]
fn gguf_custom_alignment_64() {
    let mut w = GgufWriter::new();
    w.set("general.alignment", MetaValue::U32(64)).unwrap();
    w.add_tensor("a", &[3], DType::F32, vec![1; 12]).unwrap();
    w.add_tensor("b", &[5], DType::F16, vec![2; 10]).unwrap();
    let bytes = w.to_bytes();
    let parsed = parse_header("aligned.gguf", &bytes, bytes.len() as u64).unwrap();
    assert_eq!(parsed.alignment, 64);
    assert_eq!(parsed.data_offset % 64, 0);
    let offsets: Vec<u64> = parsed.tensors.iter().map(|t| t.offset - parsed.data_offset).collect();
    assert_eq!(offsets, vec![0, 64]);
    assert_eq!(&bytes[parsed.tensors[1].offset as usize..][..10], &[2; 10]);
}

#[test]
fn gguf_version_2_header_reads() {
    let mut bytes = small_gguf();
    put_u32(&mut bytes, 4, 2);
    let parsed = parse_header("v2.gguf", &bytes, bytes.len() as u64).unwrap();
    assert_eq!(parsed.version, 2);
    assert_eq!(parsed.tensors.len(), 2);
    assert_eq!(parsed.tensors[1].shape, vec![2, 32]);
}

#[test]
fn gguf_header_past_the_first_read_is_fetched() {
    // About 3 MiB of strings: more than the 1 MiB first read, so open() must grow its prefix twice.
    let tokens: Vec<MetaValue> = (0..100_000).map(|i| s(&format!("token-number-{i:08}"))).collect();
    let mut w = GgufWriter::new();
    w.set("tokenizer.ggml.tokens", MetaValue::Array(tokens)).unwrap();
    w.add_tensor("w", &[64], DType::F32, vec![0; 256]).unwrap();
    let bytes = w.to_bytes();
    assert!(bytes.len() > 2 << 20);
    let needed = match parse_header("big.gguf", &bytes[..1 << 20], bytes.len() as u64) {
        Err(Error::NeedMore { needed }) => needed,
        other => panic!("expected NeedMore, got {other:?}"),
    };
    assert!(needed > 1 << 20 && needed <= bytes.len() as u64, "needed {needed}");
    let model = open_bytes("big.gguf", bytes).unwrap();
    assert_eq!(model.summary.vocab, Some(100_000));
    assert_eq!(model.tensors[0].name, "w");
}

#[test]
fn tiny_llama_gguf_opens_for_every_decodable_dtype() {
    for dtype in DType::ALL.into_iter().filter(|d| d.decodable()) {
        let model = open_bytes("tiny.gguf", tiny_llama_gguf(dtype, 1)).unwrap();
        let s = &model.summary;
        assert_eq!(model.tensors.len(), 2 + 9 * TINY_LAYERS as usize, "{dtype}");
        assert_eq!(s.family, "llama");
        assert_eq!(s.n_layers, Some(TINY_LAYERS));
        assert_eq!(s.d_model, Some(TINY_D_MODEL));
        assert_eq!(s.n_heads, Some(TINY_HEADS));
        assert_eq!(s.n_kv_heads, Some(TINY_KV_HEADS));
        assert_eq!(s.head_dim, Some(TINY_HEAD_DIM));
        assert_eq!(s.d_ffn, Some(TINY_FFN));
        assert_eq!(s.vocab, Some(TINY_VOCAB));
        assert_eq!(s.tied_embeddings, Some(true));
        assert_eq!(model.tensor("blk.1.ffn_down.weight").unwrap().dtype, dtype);
        assert_eq!(model.tensor("blk.1.ffn_down.weight").unwrap().shape, vec![TINY_D_MODEL, TINY_FFN]);
        assert_eq!(model.tensor("output_norm.weight").unwrap().dtype, DType::F32);
    }
}

// ---------- safetensors ----------

#[test]
fn safetensors_single_file() {
    let a: Vec<u8> = [1.0f32, -2.0, 3.5, 0.0, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let b = vec![7u8; 2 * 4 * 2];
    let c = vec![9u8; 8];
    let file = safetensors::write(&[
        ("a", &[2, 3], DType::F32, &a),
        ("b", &[2, 4], DType::BF16, &b),
        ("c", &[4], DType::F16, &c),
    ]);
    let files = [mem("model.safetensors", file)];
    let model = open_mem(&files).unwrap();
    assert_eq!(model.container, Container::Safetensors);
    assert!(model.config.is_none() && model.tokenizer_json.is_none());
    let names: Vec<&str> = model.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"], "file order");
    let t = model.tensor("b").unwrap();
    assert_eq!((t.dtype, t.shape.clone(), t.n_bytes), (DType::BF16, vec![2, 4], 16));
    assert_eq!(pollster::block_on(read_tensor_bytes(&files, model.tensor("a").unwrap())).unwrap(), a);
    assert_eq!(pollster::block_on(read_tensor_bytes(&files, t)).unwrap(), b);
    assert_eq!(model.summary.params, 6 + 8 + 4);
    assert_eq!(model.summary.bytes_by_dtype.get("BF16"), Some(&16));
    assert_eq!(model.summary.tied_embeddings, Some(true), "no lm_head.weight");
}

/// A Llama split over two shards with its index, config.json, tokenizer.json and a stray README.
fn sharded_dir() -> Vec<MemSource> {
    let mut rng = Rng::new(3);
    let emb = random_tensor_bytes(DType::BF16, 300 * 64, 0.1, &mut rng);
    let q = random_tensor_bytes(DType::BF16, 64 * 64, 0.1, &mut rng);
    let head = random_tensor_bytes(DType::F32, 300 * 64, 0.1, &mut rng);
    let shard1 = safetensors::write(&[
        ("model.embed_tokens.weight", &[300, 64], DType::BF16, &emb),
        ("model.layers.0.self_attn.q_proj.weight", &[64, 64], DType::BF16, &q),
    ]);
    let shard2 = safetensors::write(&[("lm_head.weight", &[300, 64], DType::F32, &head)]);
    let index = serde_json::json!({
        "metadata": {"total_size": 0},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"
        }
    });
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 1,
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
        "vocab_size": 300, "max_position_embeddings": 4096, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false
    });
    vec![
        mem("config.json", config.to_string().into_bytes()),
        mem("model-00002-of-00002.safetensors", shard2),
        mem("model.safetensors.index.json", index.to_string().into_bytes()),
        mem("model-00001-of-00002.safetensors", shard1),
        mem("tokenizer.json", br#"{"version":"1.0","model":{"type":"BPE"}}"#.to_vec()),
        mem("README.md", b"# not a model file".to_vec()),
    ]
}

#[test]
fn safetensors_sharded_directory_with_index_config_and_tokenizer() {
    let files = sharded_dir();
    let model = open_mem(&files).unwrap();
    assert_eq!(model.files.len(), 6);
    assert_eq!(model.tensors.len(), 3);
    let head = model.tensor("lm_head.weight").unwrap();
    assert_eq!(model.files[head.file], "model-00002-of-00002.safetensors");
    let emb = model.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(model.files[emb.file], "model-00001-of-00002.safetensors");
    let emb_bytes = pollster::block_on(read_tensor_bytes(&files, emb)).unwrap();
    assert_eq!(emb_bytes, random_tensor_bytes(DType::BF16, 300 * 64, 0.1, &mut Rng::new(3)));
    assert!(model.tokenizer_json.as_deref().unwrap().contains("BPE"));
    assert_eq!(model.config.as_ref().unwrap()["model_type"], "qwen2");

    let s = &model.summary;
    assert_eq!((s.family.as_str(), s.architecture.as_str()), ("qwen2", "qwen2"));
    assert_eq!(s.n_layers, Some(1));
    assert_eq!(s.d_model, Some(64));
    assert_eq!(s.n_heads, Some(4));
    assert_eq!(s.n_kv_heads, Some(2));
    assert_eq!(s.head_dim, Some(16));
    assert_eq!(s.d_ffn, Some(96));
    assert_eq!(s.vocab, Some(300));
    assert_eq!(s.context, Some(4096));
    assert_eq!(s.rope_base, Some(1e6));
    assert_eq!(s.norm_eps, Some(1e-6));
    assert_eq!(s.tied_embeddings, Some(false));
    assert_eq!(s.params, 2 * 300 * 64 + 64 * 64);
    assert_eq!(s.params_by_dtype["BF16"], 300 * 64 + 64 * 64);
    assert_eq!(s.bytes_by_dtype["F32"], 300 * 64 * 4);
    assert_eq!(s.bytes_total, (300 * 64 + 64 * 64) * 2 + 300 * 64 * 4);
    assert!(s.to_text().contains("1 layers, d_model 64, 4 heads (2 KV, head_dim 16)"), "{}", s.to_text());
}

#[test]
fn summary_from_gpt2_config_defaults_ffn_to_4x() {
    let config = serde_json::json!({
        "architectures": ["GPT2LMHeadModel"], "n_layer": 12, "n_embd": 768, "n_head": 12,
        "n_inner": null, "vocab_size": 50257, "n_positions": 1024, "layer_norm_epsilon": 1e-5
    });
    let s = squeeze::formats::ArchSummary::from_config(Some(&config), &[]);
    assert_eq!((s.family.as_str(), s.architecture.as_str()), ("gpt2", "GPT2LMHeadModel"));
    assert_eq!((s.n_layers, s.d_model, s.n_heads, s.n_kv_heads), (Some(12), Some(768), Some(12), Some(12)));
    assert_eq!((s.d_ffn, s.context, s.head_dim), (Some(3072), Some(1024), Some(64)));
    assert_eq!(s.norm_eps, Some(1e-5));
}

#[test]
fn tiny_llama_safetensors_matches_its_config() {
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let model = open_mem(&tiny_llama_safetensors(dtype, 5)).unwrap();
        let s = &model.summary;
        assert_eq!(model.tensors.len(), 2 + 9 * TINY_LAYERS as usize);
        assert!(model.tensors.iter().all(|t| t.dtype == dtype));
        assert_eq!(
            (s.family.as_str(), s.n_layers, s.d_model),
            ("llama", Some(TINY_LAYERS), Some(TINY_D_MODEL))
        );
        assert_eq!((s.n_kv_heads, s.d_ffn, s.vocab), (Some(TINY_KV_HEADS), Some(TINY_FFN), Some(TINY_VOCAB)));
        assert_eq!(s.tied_embeddings, Some(true));
    }
}

// ---------- bad input: one test per class ----------

#[test]
fn bad_gguf_magic() {
    let mut bytes = small_gguf();
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    let (e, msg) = open_err("notes.gguf", bytes);
    assert!(matches!(e, Error::BadFile { .. }));
    assert_contains(&msg, &["notes.gguf", "the first 4 bytes are \"PK\\x03\\x04\"", "starts with \"GGUF\""]);
}

#[test]
fn bad_gguf_version() {
    let mut bytes = small_gguf();
    put_u32(&mut bytes, 4, 1);
    let (e, msg) = open_err("old.gguf", bytes.clone());
    assert!(matches!(e, Error::Unsupported { .. }));
    assert_contains(&msg, &["old.gguf", "GGUF version 1", "versions 2 and 3"]);
    put_u32(&mut bytes, 4, 3u32.swap_bytes());
    assert_contains(&open_err("be.gguf", bytes).1, &["be.gguf", "big-endian"]);
}

#[test]
fn bad_gguf_truncated_header() {
    let bytes = small_gguf();
    let cut = info_pos(&bytes, "blk.3.ffn_up.weight") + 6; // inside the tensor's dims
    let (e, msg) = open_err("cut.gguf", bytes[..cut].to_vec());
    assert!(matches!(e, Error::BadFile { .. }));
    assert_contains(
        &msg,
        &["cut.gguf", "tensor blk.3.ffn_up.weight", "truncated", &format!("file has {cut} bytes")],
    );
}

#[test]
fn bad_gguf_truncated_tensor_data() {
    let bytes = small_gguf();
    let cut = bytes.len() - 100;
    let parsed = parse_header("x", &bytes, bytes.len() as u64).unwrap();
    let end = parsed.tensors[1].offset + parsed.tensors[1].n_bytes;
    let (_, msg) = open_err("cut.gguf", bytes[..cut].to_vec());
    assert_contains(
        &msg,
        &[&format!("cut.gguf: tensor blk.3.ffn_up.weight: data ends at byte {end} but the file has {cut} bytes (truncated?)")],
    );
}

#[test]
fn bad_gguf_impossible_tensor_count() {
    let mut bytes = small_gguf();
    put_u64(&mut bytes, 8, 1 << 60);
    let (_, msg) = open_err("count.gguf", bytes);
    assert_contains(
        &msg,
        &["count.gguf", "tensor count 1152921504606846976 is impossible", "at least 32 bytes"],
    );
}

#[test]
fn bad_gguf_impossible_kv_count() {
    let mut bytes = small_gguf();
    put_u64(&mut bytes, 16, 1 << 60);
    let (_, msg) = open_err("kv.gguf", bytes);
    assert_contains(&msg, &["kv.gguf", "metadata count 1152921504606846976 is impossible"]);
}

#[test]
fn bad_gguf_impossible_array_length() {
    let mut w = GgufWriter::new();
    w.set("tokenizer.ggml.tokens", MetaValue::Array(vec![s("a"), s("b")])).unwrap();
    let mut bytes = w.to_bytes();
    // key length, key, value type 9, element type 8, then the element count.
    let count_at = 24 + 8 + "tokenizer.ggml.tokens".len() + 4 + 4;
    put_u64(&mut bytes, count_at, 1 << 40);
    let (_, msg) = open_err("arr.gguf", bytes);
    assert_contains(
        &msg,
        &["arr.gguf", "metadata key tokenizer.ggml.tokens", "array of 1099511627776 elements"],
    );
}

#[test]
fn bad_gguf_impossible_n_dims() {
    let mut bytes = small_gguf();
    let at = info_pos(&bytes, "first.weight");
    put_u32(&mut bytes, at, 7);
    let (_, msg) = open_err("dims.gguf", bytes);
    assert_contains(&msg, &["dims.gguf", "tensor first.weight", "has 7 dimensions; GGUF allows 1 to 4"]);
}

#[test]
fn bad_gguf_dims_overflow() {
    let mut bytes = small_gguf();
    let at = info_pos(&bytes, "first.weight") + 4;
    put_u64(&mut bytes, at, 1 << 40);
    put_u64(&mut bytes, at + 8, 1 << 40);
    let (_, msg) = open_err("huge.gguf", bytes);
    assert_contains(
        &msg,
        &["huge.gguf", "tensor first.weight", "[1099511627776, 1099511627776]", "overflowing"],
    );
}

#[test]
fn bad_gguf_zero_sized_dim() {
    let mut bytes = small_gguf();
    let at = info_pos(&bytes, "first.weight") + 4;
    put_u64(&mut bytes, at, 0);
    let (_, msg) = open_err("zero.gguf", bytes);
    assert_contains(&msg, &["zero.gguf", "tensor first.weight", "shape [4, 0]", "zero"]);
}

#[test]
fn bad_gguf_offset_past_end_of_file() {
    let mut bytes = small_gguf();
    let len = bytes.len();
    let at = info_pos(&bytes, "blk.3.ffn_up.weight") + 4 + 2 * 8 + 4;
    put_u64(&mut bytes, at, 1 << 20);
    let (_, msg) = open_err("far.gguf", bytes);
    assert_contains(
        &msg,
        &[
            "far.gguf: tensor blk.3.ffn_up.weight: data ends at byte",
            &format!("but the file has {len} bytes (truncated?)"),
        ],
    );
}

#[test]
fn bad_gguf_misaligned_offset() {
    let mut bytes = small_gguf();
    let at = info_pos(&bytes, "blk.3.ffn_up.weight") + 4 + 2 * 8 + 4;
    put_u64(&mut bytes, at, 130);
    let (_, msg) = open_err("skew.gguf", bytes);
    assert_contains(
        &msg,
        &["skew.gguf", "tensor blk.3.ffn_up.weight", "offset 130 is not a multiple of the alignment 32"],
    );
}

#[test]
fn bad_gguf_alignment_value() {
    let mut w = GgufWriter::new();
    w.set("general.alignment", MetaValue::U32(64)).unwrap();
    let mut bytes = w.to_bytes();
    // Fixed header, key length, key, value type, then the value.
    let at = 24 + 8 + "general.alignment".len() + 4;
    put_u32(&mut bytes, at, 48);
    let (_, msg) = open_err("align.gguf", bytes);
    assert_contains(&msg, &["align.gguf", "general.alignment is 48; it must be a power of two"]);
}

#[test]
fn bad_gguf_unknown_ggml_type() {
    let mut bytes = small_gguf();
    let type_at = info_pos(&bytes, "first.weight") + 4 + 2 * 8;
    put_u32(&mut bytes, type_at, 77);
    let (e, msg) = open_err("types.gguf", bytes.clone());
    assert!(matches!(e, Error::Unsupported { .. }));
    assert_contains(&msg, &["types.gguf", "tensor first.weight has ggml type id 77"]);
    put_u32(&mut bytes, type_at, 16);
    assert_contains(&open_err("iq.gguf", bytes).1, &["tensor first.weight has ggml type 16 (IQ2_XXS)"]);
}

#[test]
fn bad_gguf_row_not_a_whole_number_of_blocks() {
    let mut bytes = small_gguf();
    let type_at = info_pos(&bytes, "first.weight") + 4 + 2 * 8;
    put_u32(&mut bytes, type_at, DType::Q8_0.ggml_id());
    let (_, msg) = open_err("rows.gguf", bytes);
    assert_contains(&msg, &["rows.gguf", "tensor first.weight", "rows of 8 elements", "Q8_0 block size 32"]);
}

#[test]
fn bad_gguf_invalid_utf8_value() {
    let mut w = GgufWriter::new();
    w.set("general.name", s("abcd")).unwrap();
    let mut bytes = w.to_bytes();
    let at = bytes.windows(4).position(|w| w == b"abcd").unwrap();
    bytes[at + 1] = 0xff;
    let (_, msg) = open_err("utf.gguf", bytes);
    assert_contains(&msg, &["utf.gguf", "metadata key general.name", "not valid UTF-8"]);
}

#[test]
fn bad_gguf_duplicate_tensor_name() {
    let mut bytes = small_gguf();
    let at = info_pos(&bytes, "blk.3.ffn_up.weight") - "blk.3.ffn_up.weight".len();
    // Rename the second tensor to the first's name, length prefix included. The header gets shorter,
    // but the duplicate is reported before any data offset is checked.
    let second = b"first.weight".to_vec();
    put_u64(&mut bytes, at - 8, second.len() as u64);
    let mut patched = bytes[..at].to_vec();
    patched.extend_from_slice(&second);
    patched.extend_from_slice(&bytes[at + "blk.3.ffn_up.weight".len()..]);
    let (_, msg) = open_err("dup.gguf", patched);
    assert_contains(&msg, &["dup.gguf", "tensor first.weight appears twice"]);
}

#[test]
fn bad_gguf_given_with_other_files() {
    let files = [mem("model.gguf", small_gguf()), mem("config.json", b"{}".to_vec())];
    let e = open_mem(&files).unwrap_err();
    assert_contains(&e.to_string(), &["model.gguf", "on its own", "1 other files"]);
}

#[test]
fn bad_safetensors_dtype() {
    let mut file = safetensors::write(&[("w", &[4], DType::I8, &[0; 4])]);
    let at = file.windows(4).position(|w| w == b"\"I8\"").unwrap();
    file.splice(at..at + 4, b"\"U8\"".iter().copied());
    let (e, msg) = open_err("model.safetensors", file);
    assert!(matches!(e, Error::Unsupported { .. }));
    assert_contains(&msg, &["model.safetensors", "tensor w has dtype U8"]);
}

#[test]
fn bad_safetensors_header_length_larger_than_file() {
    let mut file = safetensors::write(&[("w", &[4], DType::F32, &[0; 16])]);
    let len = file.len();
    file[..8].copy_from_slice(&(1u64 << 32).to_le_bytes());
    let (_, msg) = open_err("model.safetensors", file);
    assert_contains(
        &msg,
        &["model.safetensors", "header length 4294967296 is larger than the file", &format!("{len} bytes")],
    );
}

#[test]
fn bad_safetensors_data_out_of_bounds() {
    let mut file = safetensors::write(&[("w", &[4], DType::F32, &[0; 16])]);
    file.truncate(file.len() - 4);
    let (_, msg) = open_err("model.safetensors", file);
    assert_contains(
        &msg,
        &["model.safetensors", "tensor w", "data_offsets end at 16 but the data section has 12 bytes"],
    );
}

#[test]
fn bad_safetensors_size_disagrees_with_shape() {
    let mut file = safetensors::write(&[("w", &[4], DType::F32, &[0; 16])]);
    let at = file.windows(11).position(|w| w == br#""shape":[4]"#).unwrap();
    file[at + 9] = b'5';
    let (_, msg) = open_err("model.safetensors", file);
    assert_contains(
        &msg,
        &["tensor w", "data_offsets [0, 16] hold 16 bytes but a F32 tensor of shape [5] takes 20"],
    );
}

#[test]
fn bad_safetensors_tensor_in_two_shards() {
    let one = safetensors::write(&[("w", &[4], DType::F32, &[0; 16])]);
    let files = [mem("a.safetensors", one.clone()), mem("b.safetensors", one)];
    let e = open_mem(&files).unwrap_err();
    assert_contains(&e.to_string(), &["b.safetensors", "tensor w is also in a.safetensors"]);
}

#[test]
fn bad_safetensors_index_names_missing_shard() {
    let files: Vec<MemSource> =
        sharded_dir().into_iter().filter(|f| f.name != "model-00002-of-00002.safetensors").collect();
    let e = open_mem(&files).unwrap_err();
    assert_contains(
        &e.to_string(),
        &[
            "model.safetensors.index.json",
            "tensor lm_head.weight is in model-00002-of-00002.safetensors, which was not given",
        ],
    );
}

// ---------- the real model ----------

fn real_model() -> squeeze::formats::ModelHeader {
    let src = FileSource::open(&real_model_path()).unwrap();
    pollster::block_on(open_model(&[src])).unwrap()
}

#[test]
fn real_smollm2_tensor_table() {
    let model = real_model();
    assert_eq!(model.files, vec!["SmolLM2-135M-Instruct.Q4_1.gguf".to_string()]);
    assert_eq!(model.tensors.len(), 272);
    let emb = model.tensor("token_embd.weight").unwrap();
    assert_eq!((emb.dtype, emb.shape.clone()), (DType::Q8_0, vec![49152, 576]));
    let attn_q: Vec<_> = model.tensors.iter().filter(|t| t.name.ends_with(".attn_q.weight")).collect();
    assert_eq!(attn_q.len(), 30);
    assert!(attn_q.iter().all(|t| t.dtype == DType::Q4_1 && t.shape == vec![576, 576]));
    assert!(model.tensor("output.weight").is_err(), "SmolLM2 ties its output to the embedding");
    let len = std::fs::metadata(real_model_path()).unwrap().len();
    assert!(model.tensors.iter().all(|t| t.offset + t.n_bytes <= len));
    match model.metadata.get("tokenizer.ggml.merges") {
        Some(MetaValue::Array(merges)) => assert_eq!(merges.len(), 48900),
        other => panic!("tokenizer.ggml.merges: {other:?}"),
    }
}

#[test]
fn real_smollm2_summary() {
    let model = real_model();
    let s = &model.summary;
    assert_eq!(s.family, "llama");
    assert_eq!(s.architecture, "llama");
    assert_eq!(s.n_layers, Some(30));
    assert_eq!(s.d_model, Some(576));
    assert_eq!(s.n_heads, Some(9));
    assert_eq!(s.n_kv_heads, Some(3));
    assert_eq!(s.head_dim, Some(64));
    assert_eq!(s.d_ffn, Some(1536));
    assert_eq!(s.vocab, Some(49152));
    assert_eq!(s.context, Some(8192));
    assert_eq!(s.rope_base, Some(100000.0));
    assert_eq!(s.norm_eps, Some(1e-5));
    assert_eq!(s.tied_embeddings, Some(true));
    assert_eq!(s.tensor_count, 272);
    assert_eq!(s.params, model.tensors.iter().map(|t| t.n_elements()).sum::<u64>());
    assert_eq!(s.bytes_total, model.tensors.iter().map(|t| t.n_bytes).sum::<u64>());
    assert_eq!(s.params_by_dtype.values().sum::<u64>(), s.params);
    let text = s.to_text();
    assert_contains(
        &text,
        &["family llama", "30 layers, d_model 576, 9 heads (3 KV, head_dim 64), FFN 1536"],
    );
}

#[test]
fn real_smollm2_cut_short_is_refused() {
    let bytes = std::fs::read(real_model_path()).unwrap();
    let (e, msg) = open_err("SmolLM2-135M-Instruct.Q4_1.gguf", bytes[..300_000].to_vec());
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    assert_contains(&msg, &["SmolLM2-135M-Instruct.Q4_1.gguf: metadata key tokenizer.ggml.", "truncated"]);
}
