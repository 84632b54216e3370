//! Exports that change container: a Hugging Face Llama with its tokenizer files written as GGUF — llama.cpp's
//! names, interleaved q/k rows, hyperparameters and tokenizer metadata, the same perplexity — and back;
//! the real SmolLM2 GGUF through safetensors (tokenizer.json and tokenizer_config.json built from its
//! metadata, the same token ids on Hamlet) back to GGUF: every tensor bit for bit, the tokenizer metadata
//! as it was, and llama.cpp's llama-perplexity giving the source file's figure (when it is installed:
//! `LLAMA_PERPLEXITY=/path/to/llama-perplexity` or on the PATH).

mod common;

use common::export::{
    export, in_file, llama_cpp_ppl, llama_perplexity, load_mem, open, ppl, quiet, stored, tokens,
};
use common::{gpu, real_model_path, tiny_llama_meta, tiny_llama_safetensors, TINY_VOCAB};
use squeeze::export::{hf_rows_from_gguf, write_file, Export, ExportFormat};
use squeeze::formats::source::FileSource;
use squeeze::formats::{DType, MemSource, MetaValue};
use squeeze::model::config::{ModelConfig, Role};
use squeeze::model::{load, tokenizer};

/// A tokenizer.json over the tiny vocabulary (`<t0>` … `<t299>`, two merges) and its tokenizer_config.json.
fn tiny_tokenizer_files() -> [MemSource; 2] {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..TINY_VOCAB).map(|i| (format!("<t{i}>"), serde_json::json!(i))).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "added_tokens": [{"id": 1, "content": "<t1>", "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "vocab": vocab, "merges": ["< t", "<t 1"]},
    });
    let config = serde_json::json!({"bos_token": "<t0>", "eos_token": {"content": "<t1>"}, "add_bos_token": true,
        "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"});
    [
        MemSource { name: "tokenizer.json".into(), bytes: tokenizer.to_string().into_bytes() },
        MemSource { name: "tokenizer_config.json".into(), bytes: config.to_string().into_bytes() },
    ]
}

#[test]
fn hugging_face_llama_exported_as_gguf_takes_llama_cpp_names_rotary_order_and_metadata() {
    let gpu = gpu();
    let mut files = tiny_llama_safetensors(DType::F32, 17);
    files.extend(tiny_tokenizer_files());
    let original = load_mem(&gpu, &files);
    let (plan, file) = export(&gpu, &original, &original, None, ExportFormat::Gguf);
    let back = open("model-squeezed.gguf", file.clone());

    // Names and the interleaved q/k rows: the inverse of the GGUF → safetensors mapping.
    let (hf, gguf) =
        (ModelConfig::from_header(&original.header).unwrap(), ModelConfig::from_header(&back).unwrap());
    assert_eq!(back.tensors.len(), original.header.tensors.len());
    for l in 0..2 {
        for (role, heads) in [(Role::Q, 4), (Role::K, 2), (Role::V, 0), (Role::Up, 0)] {
            let (from, to) = (hf.layer_name(l, role), gguf.layer_name(l, role));
            let src = stored(&gpu, &original, &from);
            let out = in_file(&file, &back, &to);
            let rows = back.tensor(&to).unwrap().shape[0] as usize;
            let row = src.len() / rows;
            let hf_from_gguf: Vec<usize> = match heads {
                0 => (0..rows).collect(),
                h => hf_rows_from_gguf(rows, h),
            };
            for (r, &g) in hf_from_gguf.iter().enumerate() {
                assert_eq!(&out[g * row..(g + 1) * row], &src[r * row..(r + 1) * row], "{to} row {g}");
            }
        }
    }
    let reason = |name: &str| plan.tensors.iter().find(|t| t.out_name == name).unwrap().reason.clone();
    assert_eq!(
        reason("blk.0.attn_q.weight").as_deref(),
        Some("rows put in llama.cpp's interleaved rotary order")
    );
    assert!(back.tensor("output.weight").is_err(), "tied embeddings: no output head");
    assert!(plan.notes.iter().any(|n| n.contains("metadata built from config.json")), "{:?}", plan.notes);

    // Hyperparameters from config.json, the tokenizer from tokenizer.json and tokenizer_config.json.
    let meta = |key: &str| back.metadata.get(key).cloned().unwrap_or_else(|| panic!("{key} missing"));
    for (key, value) in tiny_llama_meta() {
        if key != "general.name" {
            assert_eq!(meta(key), value, "{key}");
        }
    }
    assert_eq!(meta("tokenizer.ggml.model"), MetaValue::String("gpt2".into()));
    assert_eq!(meta("tokenizer.ggml.pre"), MetaValue::String("gpt-2".into()));
    assert_eq!(
        meta("tokenizer.ggml.merges"),
        MetaValue::Array(vec![MetaValue::String("< t".into()), MetaValue::String("<t 1".into())])
    );
    let MetaValue::Array(types) = meta("tokenizer.ggml.token_type") else { panic!("token_type") };
    assert_eq!(
        (types[0].clone(), types[1].clone()),
        (MetaValue::I32(1), MetaValue::I32(3)),
        "<t1> is a control token"
    );
    assert_eq!(
        (meta("tokenizer.ggml.bos_token_id"), meta("tokenizer.ggml.eos_token_id")),
        (MetaValue::U32(0), MetaValue::U32(1))
    );
    assert_eq!(meta("tokenizer.ggml.add_bos_token"), MetaValue::Bool(true));
    let (want, got) = (tokenizer(&original.header).unwrap(), tokenizer(&back).unwrap());
    let text = "<t5><t1><t7>< t";
    assert_eq!(got.encode(text, true, true), want.encode(text, true, true));
    assert_eq!(got.chat_template(), want.chat_template());

    // The same function, and back to safetensors: the source's bytes.
    let exported = load_mem(&gpu, &[MemSource { name: "model-squeezed.gguf".into(), bytes: file }]);
    let ids = tokens(256, 6);
    let (before, after) = (ppl(&gpu, &original, &ids, 64, 3, None), ppl(&gpu, &exported, &ids, 64, 3, None));
    assert!((before - after).abs() < 1e-5 * before, "PPL {before} as safetensors, {after} as GGUF");
    let (plan, file) = export(&gpu, &exported, &exported, None, ExportFormat::Safetensors);
    let again = open("model-squeezed-squeezed.safetensors", file.clone());
    for t in &original.header.tensors {
        assert_eq!(in_file(&file, &again, &t.name), stored(&gpu, &original, &t.name), "{}", t.name);
    }
    assert!(
        plan.notes.iter().any(|n| n.contains("tokenizer.json and tokenizer_config.json built")),
        "{:?}",
        plan.notes
    );
    assert_eq!(tokenizer(&again).unwrap().encode(text, true, true), want.encode(text, true, true));
}

#[test]
fn smollm2_through_safetensors_and_back_to_gguf_is_the_same_file_for_llama_cpp() {
    // The Q4_1 blocks are stored as they are both ways; only names, q/k row order and metadata change.
    const CTX: usize = 128;
    const CHUNKS: usize = 4;
    let gpu = gpu();
    let path = real_model_path();
    let original = pollster::block_on(load(&gpu, &[FileSource::open(&path).unwrap()], &mut quiet)).unwrap();
    let text_path = path.parent().unwrap().parent().unwrap().join("texts/hamlet_gut.txt");
    let text = std::fs::read_to_string(&text_path).unwrap();

    // GGUF → safetensors: tokenizer.json and tokenizer_config.json come along and tokenize alike.
    let (plan, file) = export(&gpu, &original, &original, None, ExportFormat::Safetensors);
    assert!(
        plan.notes.iter().any(|n| n.contains("tokenizer.json and tokenizer_config.json built")),
        "{:?}",
        plan.notes
    );
    let hf = load_mem(&gpu, &[MemSource { name: "smollm2.safetensors".into(), bytes: file }]);
    assert!(hf.header.tokenizer_json.is_some() && hf.header.tokenizer_config.is_some());
    let (tok, hf_tok) = (tokenizer(&original.header).unwrap(), tokenizer(&hf.header).unwrap());
    let ids = tok.encode(&text, tok.adds_bos(), false);
    assert!(ids.len() > 30_000, "{} tokens", ids.len());
    assert_eq!(hf_tok.encode(&text, hf_tok.adds_bos(), false), ids);
    assert_eq!((hf_tok.bos(), hf_tok.eos(), hf_tok.vocab_size()), (tok.bos(), tok.eos(), tok.vocab_size()));
    assert_eq!(hf_tok.chat_template(), tok.chat_template());
    let bos = tok.adds_bos().then(|| tok.bos());
    let (before, after) =
        (ppl(&gpu, &original, &ids, CTX, CHUNKS, bos), ppl(&gpu, &hf, &ids, CTX, CHUNKS, bos));
    eprintln!("SmolLM2 Q4_1: PPL {before} as GGUF, {after} as safetensors");
    assert!((before - after).abs() < 1e-5 * before, "PPL {before} as GGUF, {after} as safetensors");

    // … → GGUF: every tensor bit for bit under its GGUF name and shape, and the tokenizer as it was.
    let out = std::env::temp_dir().join(format!("squeeze-smollm2-hf-{}.gguf", std::process::id()));
    let mut e = Export::new(&hf, &hf, None, ExportFormat::Gguf).unwrap();
    pollster::block_on(write_file(&gpu, &mut e, &hf, &out)).unwrap();
    drop(hf);
    let file = std::fs::read(&out).unwrap();
    let back = open("smollm2.gguf", file.clone());
    assert_eq!(back.tensors.len(), original.header.tensors.len());
    for t in &original.header.tensors {
        let got = back.tensor(&t.name).unwrap();
        assert_eq!((got.dtype, &got.shape), (t.dtype, &t.shape), "{}", t.name);
        assert!(in_file(&file, &back, &t.name) == stored(&gpu, &original, &t.name), "{} differs", t.name);
    }
    drop(file);
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
        "llama.context_length",
        "llama.embedding_length",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.rope.dimension_count",
        "llama.attention.layer_norm_rms_epsilon",
    ] {
        assert_eq!(
            back.metadata.get(key).map(normalised),
            original.header.metadata.get(key).map(normalised),
            "{key}"
        );
    }

    // llama.cpp computes the same perplexity on the round-tripped file as on the source.
    match llama_perplexity() {
        Some(bin) => {
            let (source, exported) = (
                llama_cpp_ppl(&bin, &path, &text_path, CTX, CHUNKS),
                llama_cpp_ppl(&bin, &out, &text_path, CTX, CHUNKS),
            );
            eprintln!("SmolLM2 Q4_1 in llama.cpp: PPL {source} from the source file, {exported} after the round trip");
            assert_eq!(source, exported);
        }
        None => eprintln!("\n*** SKIPPING the llama.cpp comparison: llama-perplexity not found. ***\n"),
    }
    std::fs::remove_file(&out).unwrap();
}

/// A metadata value with integer types unified (llama.cpp's converter and Squeeze may pick different
/// widths for the same number).
fn normalised(v: &MetaValue) -> String {
    let int: Option<i128> = match *v {
        MetaValue::U8(x) => Some(x.into()),
        MetaValue::I8(x) => Some(x.into()),
        MetaValue::U16(x) => Some(x.into()),
        MetaValue::I16(x) => Some(x.into()),
        MetaValue::U32(x) => Some(x.into()),
        MetaValue::I32(x) => Some(x.into()),
        MetaValue::U64(x) => Some(x.into()),
        MetaValue::I64(x) => Some(x.into()),
        _ => None,
    };
    match (int, v) {
        (Some(i), _) => i.to_string(),
        (None, MetaValue::Array(items)) => items.iter().map(normalised).collect::<Vec<_>>().join(","),
        (None, other) => format!("{other:?}"),
    }
}
