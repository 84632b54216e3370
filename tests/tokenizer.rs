//! Tokenizer tests: token ids equal to llama.cpp's on the real SmolLM2 vocabulary (ids recorded in
//! tests/data/tokenizer_cases.json), round trips, the streaming decoder, the chat template, the
//! pre-tokenizer splits on hand-made strings, a tiny hand-written tokenizer.json, and the tokenizer written out
//! as tokenizer.json or GGUF metadata and read back. No GPU needed.

mod common;

use serde_json::{json, Value};
use squeeze::error::Error;
use squeeze::formats::source::FileSource;
use squeeze::formats::{open_model, MetaValue};
use squeeze::model::tokenizer::{char_class, CharClass, PreTokenizer, StreamDecoder, Tokenizer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

// ---------- helpers ----------

fn real_metadata() -> &'static BTreeMap<String, MetaValue> {
    static META: OnceLock<BTreeMap<String, MetaValue>> = OnceLock::new();
    META.get_or_init(|| {
        let src = FileSource::open(&common::real_model_path()).unwrap();
        pollster::block_on(open_model(&[src])).unwrap().metadata
    })
}

fn real() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::from_gguf(real_metadata()).unwrap())
}

struct Case {
    name: String,
    /// The `tokenizer.ggml.pre` llama.cpp tokenized it with (the vocabulary is SmolLM2's throughout).
    pre: String,
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tokenizer_cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases: Vec<Case> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            pre: c["pre"].as_str().unwrap_or("smollm").to_string(),
            text: c["text"].as_str().unwrap().to_string(),
            parse_special: c["parse_special"].as_bool().unwrap(),
            ids: serde_json::from_value(c["ids"].clone()).unwrap(),
        })
        .collect();
    assert!(cases.len() >= 20, "only {} cases in {path}", cases.len());
    cases
}

/// SmolLM2's tokenizer with another pre-tokenizer, as llama.cpp loads a copy of the GGUF whose
/// `tokenizer.ggml.pre` was rewritten.
fn with_pre(pre: &str) -> Tokenizer {
    let mut meta = real_metadata().clone();
    meta.insert("tokenizer.ggml.pre".into(), MetaValue::String(pre.into()));
    Tokenizer::from_gguf(&meta).unwrap()
}

/// The cases, and SmolLM2's tokenizer with each pre-tokenizer they were recorded with.
fn cases_and_tokenizers() -> (Vec<Case>, BTreeMap<String, Tokenizer>) {
    let cases = cases();
    let pres: BTreeSet<&str> = cases.iter().map(|c| c.pre.as_str()).collect();
    let tokenizers = pres.into_iter().map(|pre| (pre.to_string(), with_pre(pre))).collect();
    (cases, tokenizers)
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case named {name}"))
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should contain {p:?}");
    }
}

fn pieces(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| String::from_utf8_lossy(tok.token_bytes(id)).into_owned()).collect()
}

// ---------- the real SmolLM2 tokenizer against llama.cpp ----------

#[test]
fn encode_matches_llama_cpp() {
    let (cases, tokenizers) = cases_and_tokenizers();
    for c in &cases {
        let tok = &tokenizers[&c.pre];
        let ids = tok.encode(&c.text, false, c.parse_special);
        if ids != c.ids {
            let first =
                ids.iter().zip(&c.ids).position(|(a, b)| a != b).unwrap_or(ids.len().min(c.ids.len()));
            panic!(
                "case {}: ids differ from llama.cpp at {first}\n ours:      {:?}\n llama.cpp: {:?}",
                c.name,
                pieces(tok, &ids),
                pieces(tok, &c.ids)
            );
        }
    }
}

/// Written out as tokenizer.json + tokenizer_config.json and as GGUF metadata, and read back, SmolLM2's
/// tokenizer with each recorded pre-tokenizer still gives llama.cpp's ids.
#[test]
fn tokenizer_written_as_tokenizer_json_or_gguf_metadata_reads_back_the_same() {
    let (cases, tokenizers) = cases_and_tokenizers();
    assert!(tokenizers.len() >= 4, "pre-tokenizers recorded: {:?}", tokenizers.keys());
    for (pre, tok) in &tokenizers {
        let json = tok.to_tokenizer_json().unwrap();
        let from_json = Tokenizer::from_hugging_face(&json, Some(&tok.to_tokenizer_config())).unwrap();
        let meta: BTreeMap<String, MetaValue> = tok.to_gguf_metadata().into_iter().collect();
        let from_meta = Tokenizer::from_gguf(&meta).unwrap();
        for back in [&from_json, &from_meta] {
            assert_eq!(back.pre_tokenizer(), tok.pre_tokenizer(), "{pre}");
            assert_eq!((back.bos(), back.eos(), back.adds_bos()), (tok.bos(), tok.eos(), tok.adds_bos()));
            assert_eq!((back.vocab_size(), back.chat_template()), (tok.vocab_size(), tok.chat_template()));
            for c in cases.iter().filter(|c| c.pre == *pre) {
                assert_eq!(back.encode(&c.text, false, c.parse_special), c.ids, "case {} ({pre})", c.name);
            }
        }
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"] {
            assert_eq!(meta.get(key), real_metadata().get(key), "{key}");
        }
    }
}

#[test]
fn decode_inverts_encode() {
    let (cases, tokenizers) = cases_and_tokenizers();
    for c in &cases {
        let tok = &tokenizers[&c.pre];
        assert_eq!(tok.decode(&tok.encode(&c.text, false, c.parse_special)), c.text, "case {}", c.name);
    }
}

#[test]
fn special_ids_and_flags() {
    let tok = real();
    assert_eq!((tok.bos(), tok.eos()), (1, 2));
    assert!(!tok.adds_bos(), "SmolLM2 sets tokenizer.ggml.add_bos_token = false");
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.pre_tokenizer(), PreTokenizer::SmolLm);
    assert!(tok.is_control(1) && tok.is_control(2) && !tok.is_control(100));
    assert_eq!(tok.encode("hi", true, true)[0], 1);
    assert_eq!(tok.encode("", true, true), vec![1]);
    assert_eq!(tok.decode(&[1, 2]), "<|im_start|><|im_end|>");
}

#[test]
fn stream_decoder_holds_back_split_characters() {
    let tok = real();
    for name in ["emoji", "cjk", "scripts", "accents"] {
        let c = case(name);
        let mut decoder = StreamDecoder::new();
        let mut text = String::new();
        let mut held_back = 0;
        for &id in &c.ids {
            let piece = decoder.push(tok, id);
            assert!(!piece.contains('\u{FFFD}'), "case {name}: token {id} gave {piece:?}");
            held_back += usize::from(piece.is_empty());
            text.push_str(&piece);
        }
        assert_eq!(decoder.flush(), "", "case {name}");
        assert_eq!(text, c.text, "case {name}");
        if name == "emoji" {
            assert!(held_back > 0, "the emoji case should split characters across tokens");
        }
    }
}

#[test]
fn stream_decoder_flushes_an_unfinished_character_lossily() {
    let tok = real();
    let ids = tok.encode("👍", false, false);
    assert!(ids.len() > 1, "👍 should take several byte tokens, got {ids:?}");
    let mut decoder = StreamDecoder::new();
    assert_eq!(decoder.push(tok, ids[0]), "");
    assert_eq!(decoder.flush(), "\u{FFFD}");
    assert_eq!(decoder.flush(), "");
}

#[test]
fn chat_template_formats_chatml() {
    let tok = real();
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    let conversation = [
        ("system".to_string(), "You are terse.".to_string()),
        ("user".to_string(), "What is 2+2?".to_string()),
    ];
    assert_eq!(
        tok.apply_chat_template(&conversation, true).unwrap(),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // Without a system message, SmolLM2's template writes its own.
    let question = [("user".to_string(), "Hi".to_string())];
    assert_eq!(
        tok.apply_chat_template(&question, false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n"
    );
    let ids = tok.encode(&tok.apply_chat_template(&conversation, true).unwrap(), false, true);
    assert_eq!(ids[..2], [1, 9690], "<|im_start|> then 'system'");
    assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 3);
}

#[test]
fn non_chatml_template_is_unsupported() {
    let mut meta = real_metadata().clone();
    let llama3 = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>{% endfor %}";
    meta.insert("tokenizer.chat_template".into(), MetaValue::String(llama3.into()));
    let e = Tokenizer::from_gguf(&meta).unwrap().apply_chat_template(&[], true).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert_contains(&e.to_string(), &["Llama 3", "only ChatML"]);
    meta.remove("tokenizer.chat_template");
    let e = Tokenizer::from_gguf(&meta).unwrap().apply_chat_template(&[], true).unwrap_err();
    assert_contains(&e.to_string(), &["no tokenizer.chat_template"]);
}

#[test]
fn unsupported_gguf_tokenizers_are_named() {
    let with = |key: &str, value: &str| {
        let mut meta = real_metadata().clone();
        meta.insert(key.to_string(), MetaValue::String(value.to_string()));
        Tokenizer::from_gguf(&meta).err().expect("should be refused")
    };
    let e = with("tokenizer.ggml.model", "llama");
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert_contains(&e.to_string(), &["tokenizer.ggml.model 'llama'"]);
    assert_contains(&with("tokenizer.ggml.pre", "falcon").to_string(), &["tokenizer.ggml.pre 'falcon'"]);
    let mut meta = real_metadata().clone();
    meta.remove("tokenizer.ggml.pre");
    assert_contains(&Tokenizer::from_gguf(&meta).err().unwrap().to_string(), &["no tokenizer.ggml.pre"]);
}

#[test]
fn long_text_encodes_fast_and_consistently() {
    let tok = real();
    let verse = case("shakespeare");
    let reps = 100_000 / verse.text.len() + 1;
    let text = verse.text.repeat(reps);
    let start = std::time::Instant::now();
    let ids = tok.encode(&text, false, true);
    let seconds = start.elapsed().as_secs_f64();
    // The verse ends in a newline and starts with a letter, so copies tokenize independently.
    assert_eq!(ids, verse.ids.repeat(reps));
    let limit = if cfg!(debug_assertions) { 5.0 } else { 1.0 };
    assert!(seconds < limit, "{} bytes took {seconds:.2} s", text.len());
}

// ---------- pre-tokenizers on hand-made strings ----------

fn split(pre: PreTokenizer, text: &str) -> Vec<&str> {
    let words = pre.split(text);
    assert_eq!(words.concat(), text, "{pre:?} must cover the text");
    words
}

#[test]
fn gpt2_splits() {
    let pre = PreTokenizer::Gpt2;
    assert_eq!(split(pre, "Hello world's  end\n"), ["Hello", " world", "'s", " ", " end", "\n"]);
    assert_eq!(split(pre, "abc 12345 x"), ["abc", " 12345", " x"]);
    // Contractions are case-sensitive here.
    assert_eq!(split(pre, "HELLO'S"), ["HELLO", "'", "S"]);
    assert_eq!(split(pre, "\tfoo ?!x"), ["\t", "foo", " ?!", "x"]);
    assert_eq!(split(pre, "a   "), ["a", "   "]);
    assert!(split(pre, "").is_empty());
}

#[test]
fn smollm_splits_digits_first() {
    let pre = PreTokenizer::SmolLm;
    assert_eq!(split(pre, "abc 12345 x"), ["abc", " ", "1", "2", "3", "4", "5", " x"]);
    // A whitespace run before a digit ends its piece, so no space is split off for the digit.
    assert_eq!(split(pre, "a  1"), ["a", "  ", "1"]);
    assert_eq!(split(pre, "x²½"), ["x", "²", "½"]);
}

#[test]
fn llama3_and_qwen2_splits() {
    let llama3 = PreTokenizer::Llama3;
    assert_eq!(split(llama3, "abc 12345 x"), ["abc", " ", "123", "45", " x"]);
    assert_eq!(split(llama3, "HELLO'S  world!!\n\n  x"), ["HELLO", "'S", " ", " world", "!!\n\n", " ", " x"]);
    assert_eq!(split(llama3, "\tfoo"), ["\tfoo"]);
    assert_eq!(split(llama3, "a \n b"), ["a", " \n", " b"]);
    assert_eq!(split(llama3, "(x)"), ["(x", ")"]);
    let qwen2 = PreTokenizer::Qwen2;
    assert_eq!(split(qwen2, "abc 12345 x"), ["abc", " ", "1", "2", "3", "4", "5", " x"]);
}

#[test]
fn character_classes_follow_llama_cpp() {
    assert_eq!(char_class('ß'), CharClass::Letter);
    assert_eq!(char_class('日'), CharClass::Letter);
    assert_eq!(char_class('²'), CharClass::Number);
    assert_eq!(char_class('\u{3000}'), CharClass::Whitespace);
    assert_eq!(char_class('\u{a0}'), CharClass::Whitespace);
    // llama.cpp counts neither the zero-width space nor combining marks as whitespace or letters.
    assert_eq!(char_class('\u{200b}'), CharClass::Other);
    assert_eq!(char_class('\u{301}'), CharClass::Other);
    assert_eq!(char_class('👍'), CharClass::Other);
}

// ---------- tokenizer.json ----------

/// A byte-level BPE over "a", "b" and the space ("Ġ"), with one control and one user-defined token.
fn tiny_tokenizer_json() -> Value {
    json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 6, "content": "<|endoftext|>", "special": true},
            {"id": 7, "content": "<tool>", "special": false}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "trim_offsets": false},
        "model": {
            "type": "BPE",
            "vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġa": 4, "Ġab": 5},
            "merges": ["a b", "Ġ a", "Ġa b"]
        }
    })
}

#[test]
fn tokenizer_json_encodes_by_merge_rank() {
    let tok = Tokenizer::from_tokenizer_json(&tiny_tokenizer_json().to_string()).unwrap();
    assert_eq!(tok.pre_tokenizer(), PreTokenizer::Gpt2);
    assert_eq!(tok.vocab_size(), 8);
    // " ab": "a b" (rank 0) merges before "Ġ a" (rank 1), leaving "Ġ" + "ab".
    assert_eq!(tok.encode("ab ab", false, false), [3, 2, 3]);
    assert_eq!(tok.encode("ab<|endoftext|>", false, true), [3, 6]);
    // User-defined tokens are matched even without parse_special.
    assert_eq!(tok.encode("ab<tool>", false, false), [3, 7]);
    assert_eq!(tok.decode(&[3, 2, 3, 6]), "ab ab<|endoftext|>");
    assert_eq!((tok.eos(), tok.bos(), tok.adds_bos()), (6, 6, false));
    assert!(tok.is_control(6) && !tok.is_control(7));
    assert!(tok.chat_template().is_none());
}

#[test]
fn tokenizer_json_maps_known_pre_tokenizers() {
    let with_pre = |pre: Value| {
        let mut json = tiny_tokenizer_json();
        json["pre_tokenizer"] = pre;
        Tokenizer::from_tokenizer_json(&json.to_string())
    };
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false});
    let smollm = json!({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
    ]});
    assert_eq!(with_pre(smollm).unwrap().pre_tokenizer(), PreTokenizer::SmolLm);
    let llama3_regex = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let llama3 = json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": llama3_regex}, "behavior": "Isolated", "invert": false},
        byte_level
    ]});
    assert_eq!(with_pre(llama3).unwrap().pre_tokenizer(), PreTokenizer::Llama3);
    let e = with_pre(json!({"type": "Whitespace"})).err().unwrap();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert_contains(&e.to_string(), &["tokenizer.json", "pre_tokenizer [Whitespace]"]);
}

#[test]
fn tokenizer_json_bos_comes_from_the_template() {
    let mut json = tiny_tokenizer_json();
    json["post_processor"] = json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<tool>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]});
    let tok = Tokenizer::from_tokenizer_json(&json.to_string()).unwrap();
    assert_eq!((tok.bos(), tok.adds_bos()), (7, true));
    assert_eq!(tok.encode("ab", tok.adds_bos(), true), [7, 3]);
}

#[test]
fn tokenizer_json_without_bpe_is_unsupported() {
    let mut json = tiny_tokenizer_json();
    json["model"]["type"] = json!("WordPiece");
    let e = Tokenizer::from_tokenizer_json(&json.to_string()).err().unwrap();
    assert_contains(&e.to_string(), &["tokenizer.json", "WordPiece"]);
}
