//! The tokenizer written out in the other format: a GGUF's `tokenizer.ggml.*` as a Hugging Face
//! tokenizer.json and tokenizer_config.json, a tokenizer.json's as GGUF metadata — so that an export
//! carries the tokenizer its format expects, and reads back to the same token ids.

use super::load::{LLAMA3_REGEX, QWEN2_REGEX};
use super::{PreTokenizer, TokenKind, Tokenizer};
use crate::error::{Error, Result};
use crate::formats::MetaValue;
use serde_json::{json, Map, Value};

impl Tokenizer {
    /// tokenizer.json: every token in `model.vocab`, the special ones also in `added_tokens` (as Hugging
    /// Face writes them), the merges, and the pre-tokenizer steps [`Tokenizer::from_tokenizer_json`]
    /// recognises as this one. Refused when two ordinary tokens share a text, which a vocab map cannot hold.
    pub fn to_tokenizer_json(&self) -> Result<String> {
        let mut vocab = Map::new();
        let mut added = Vec::new();
        for (id, (text, &kind)) in self.texts.iter().zip(&self.kinds).enumerate() {
            let special = matches!(kind, TokenKind::Control | TokenKind::Unknown);
            if special || kind == TokenKind::UserDefined {
                added.push(json!({"id": id, "content": text, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": special}));
            } else if vocab.contains_key(text) {
                return Err(Error::Invalid(format!(
                    "token {id} {text:?} repeats the text of token {}; tokenizer.json's vocab cannot hold both",
                    vocab[text]
                )));
            }
            vocab.entry(text.clone()).or_insert(json!(id));
        }
        let merges: Vec<[&str; 2]> = self.merges.iter().map(|(a, b)| [a.as_str(), b.as_str()]).collect();
        let json = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer_json(self.pre),
            "post_processor": self.post_processor_json(),
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": self.ignore_merges,
                "vocab": vocab,
                "merges": merges,
            },
        });
        Ok(json.to_string())
    }

    /// tokenizer_config.json: what tokenizer.json cannot say — BOS, EOS, padding, whether BOS is added,
    /// the chat template.
    pub fn to_tokenizer_config(&self) -> Value {
        let text = |id: u32| json!(self.texts[id as usize]);
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "add_eos_token": false,
            "bos_token": text(self.bos),
            "eos_token": text(self.eos),
            "pad_token": self.pad.map_or(Value::Null, text),
            "clean_up_tokenization_spaces": false,
        });
        if let Some(template) = &self.chat_template {
            config["chat_template"] = json!(template);
        }
        config
    }

    /// The `tokenizer.ggml.*` metadata llama.cpp reads for this byte-level BPE tokenizer.
    pub fn to_gguf_metadata(&self) -> Vec<(String, MetaValue)> {
        let strings =
            |items: Vec<String>| MetaValue::Array(items.into_iter().map(MetaValue::String).collect());
        let mut meta = vec![
            ("tokenizer.ggml.model", MetaValue::String("gpt2".into())),
            ("tokenizer.ggml.pre", MetaValue::String(self.pre.gguf_name().into())),
            ("tokenizer.ggml.tokens", strings(self.texts.clone())),
            (
                "tokenizer.ggml.token_type",
                MetaValue::Array(self.kinds.iter().map(|k| MetaValue::I32(k.gguf_code())).collect()),
            ),
            ("tokenizer.ggml.merges", strings(self.merges.iter().map(|(a, b)| format!("{a} {b}")).collect())),
            ("tokenizer.ggml.bos_token_id", MetaValue::U32(self.bos)),
            ("tokenizer.ggml.eos_token_id", MetaValue::U32(self.eos)),
        ];
        if let Some(pad) = self.pad {
            meta.push(("tokenizer.ggml.padding_token_id", MetaValue::U32(pad)));
        }
        meta.push(("tokenizer.ggml.add_bos_token", MetaValue::Bool(self.add_bos)));
        if let Some(template) = &self.chat_template {
            meta.push(("tokenizer.chat_template", MetaValue::String(template.clone())));
        }
        meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// BOS put before every text when the model asks for it; otherwise byte-level offsets only.
    fn post_processor_json(&self) -> Value {
        if !self.add_bos {
            return json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
        }
        let bos = &self.texts[self.bos as usize];
        let special = |type_id: u32| json!({"SpecialToken": {"id": bos, "type_id": type_id}});
        let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
        json!({
            "type": "TemplateProcessing",
            "single": [special(0), sequence("A", 0)],
            "pair": [special(0), sequence("A", 0), special(1), sequence("B", 1)],
            "special_tokens": {bos.as_str(): {"id": bos, "ids": [self.bos], "tokens": [bos]}},
        })
    }
}

/// The pre_tokenizer steps Hugging Face writes for each type.
fn pre_tokenizer_json(pre: PreTokenizer) -> Value {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |regex: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]})
    };
    match pre {
        PreTokenizer::Gpt2 => byte_level(true),
        PreTokenizer::SmolLm => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level(true),
        ]}),
        PreTokenizer::Llama3 => split(LLAMA3_REGEX),
        PreTokenizer::Qwen2 => split(QWEN2_REGEX),
    }
}
