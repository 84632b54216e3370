//! Building a [`Tokenizer`] from GGUF metadata (`tokenizer.ggml.*`) or from a Hugging Face tokenizer.json,
//! with the defaults llama.cpp uses for byte-level BPE vocabularies.

use super::{PreTokenizer, TokenKind, Tokenizer, Vocab};
use crate::error::{Error, Result};
use crate::formats::MetaValue;
use serde_json::Value;
use std::collections::BTreeMap;

const GGUF: &str = "GGUF tokenizer metadata";
const TOKENIZER_JSON: &str = "tokenizer.json";
const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";

/// The pre-tokenizer regexes as tokenizer.json files write them, for recognising the known ones.
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
pub(super) const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub(super) const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's BOS and EOS for a gpt2 vocabulary whose metadata names none.
const GPT2_DEFAULT_BOS_EOS: u32 = 11;

/// Tokens that end a turn, in order of preference, for picking EOS from a tokenizer.json (which does not say).
const EOS_CANDIDATES: [&str; 5] = ["<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "</s>"];

impl Tokenizer {
    /// The tokenizer a GGUF file carries. Only byte-level BPE (`tokenizer.ggml.model` "gpt2") with the
    /// "gpt-2", "smollm", "llama-bpe" or "qwen2" pre-tokenizer is supported.
    pub fn from_gguf(metadata: &BTreeMap<String, MetaValue>) -> Result<Tokenizer> {
        let meta = Meta(metadata);
        let pre = gguf_pre_tokenizer(&meta)?;
        let texts = meta.strings("tokenizer.ggml.tokens")?.ok_or_else(|| missing("tokenizer.ggml.tokens"))?;
        let merges =
            meta.strings("tokenizer.ggml.merges")?.ok_or_else(|| missing("tokenizer.ggml.merges"))?;
        Ok(Tokenizer::build(Vocab {
            merges: merges.iter().filter_map(|m| split_merge(m)).collect(),
            pre,
            // llama.cpp skips merging words that are whole tokens for Llama 3, and adds BOS for it by default.
            ignore_merges: pre == PreTokenizer::Llama3,
            bos: gguf_special_id(&meta, "tokenizer.ggml.bos_token_id", texts.len())?,
            eos: gguf_special_id(&meta, "tokenizer.ggml.eos_token_id", texts.len())?,
            pad: meta.u32("tokenizer.ggml.padding_token_id")?.filter(|&id| (id as usize) < texts.len()),
            add_bos: meta.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(pre == PreTokenizer::Llama3),
            chat_template: meta.str("tokenizer.chat_template")?.map(str::to_string),
            kinds: gguf_token_kinds(&meta, texts.len())?,
            texts,
        }))
    }

    /// A Hugging Face tokenizer.json with a BPE model and a byte-level pre-tokenizer that matches one of the
    /// supported llama.cpp pre-tokenizers, without tokenizer_config.json: see
    /// [`Tokenizer::from_hugging_face`].
    pub fn from_tokenizer_json(text: &str) -> Result<Tokenizer> {
        Tokenizer::from_hugging_face(text, None)
    }

    /// A Hugging Face tokenizer.json, with its tokenizer_config.json when given. Added tokens become
    /// special tokens (control ones if marked `special`). BOS, EOS, padding, whether BOS is added and the
    /// chat template come from tokenizer_config.json; without it EOS is guessed — the first added token
    /// among `<|eot_id|>`, `<|im_end|>`, `<|endoftext|>`, `<|end_of_text|>`, `</s>` — BOS is the token the
    /// post-processor template puts first (and then added), else EOS, as in GPT-2, and there is no chat
    /// template.
    pub fn from_hugging_face(text: &str, config: Option<&Value>) -> Result<Tokenizer> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| Error::bad_file(TOKENIZER_JSON, format!("not JSON: {e}")))?;
        let model = &json["model"];
        match model["type"].as_str() {
            Some("BPE") => {}
            other => return Err(unsupported(TOKENIZER_JSON, format!("model.type {other:?} (only BPE)"))),
        }
        let pre = pre_from_json(&json["pre_tokenizer"])?;
        let (texts, kinds) = json_vocab(model, &json["added_tokens"])?;
        let id_of = |name: &str| texts.iter().position(|t| t == name).map(|id| id as u32);
        let null = Value::Null;
        let config = config.unwrap_or(&null);
        // tokenizer_config.json writes a token as its text or as {"content": text, ...}.
        let configured = |key: &str| -> Result<Option<u32>> {
            let value = &config[key];
            let Some(name) = value.as_str().or_else(|| value["content"].as_str()) else { return Ok(None) };
            id_of(name).map(Some).ok_or_else(|| {
                Error::bad_file(TOKENIZER_CONFIG_JSON, format!("{key} {name:?} is not in tokenizer.json"))
            })
        };
        let template_bos = json_bos(&json["post_processor"]).and_then(&id_of);
        let guessed_eos = || {
            EOS_CANDIDATES
                .iter()
                .filter_map(|name| id_of(name))
                .find(|&id| kinds[id as usize] != TokenKind::Normal)
                .ok_or_else(|| {
                    let what = format!(
                        "no end-of-text token among the added tokens (looked for {EOS_CANDIDATES:?})"
                    );
                    unsupported(TOKENIZER_JSON, what)
                })
        };
        let eos = match configured("eos_token")? {
            Some(id) => id,
            None => guessed_eos()?,
        };
        Ok(Tokenizer::build(Vocab {
            merges: json_merges(&model["merges"])?,
            pre,
            ignore_merges: model["ignore_merges"].as_bool().unwrap_or(false),
            bos: configured("bos_token")?.or(template_bos).unwrap_or(eos),
            eos,
            pad: configured("pad_token")?,
            add_bos: config["add_bos_token"].as_bool().unwrap_or(template_bos.is_some()),
            chat_template: config["chat_template"].as_str().map(str::to_string),
            texts,
            kinds,
        }))
    }
}

/// The pre-tokenizer of a byte-level BPE vocabulary; anything else is unsupported.
fn gguf_pre_tokenizer(meta: &Meta) -> Result<PreTokenizer> {
    let model =
        meta.str("tokenizer.ggml.model")?.ok_or_else(|| unsupported(GGUF, "no tokenizer.ggml.model"))?;
    if model != "gpt2" {
        let what = format!("tokenizer.ggml.model '{model}' (only 'gpt2', byte-level BPE, is supported)");
        return Err(unsupported(GGUF, what));
    }
    let name = meta.str("tokenizer.ggml.pre")?.ok_or_else(|| {
        unsupported(GGUF, "no tokenizer.ggml.pre (llama.cpp's 'default' pre-tokenizer is not implemented)")
    })?;
    PreTokenizer::from_gguf_name(name).ok_or_else(|| {
        let supported = "supported: gpt-2, smollm, llama-bpe, qwen2 and their aliases";
        unsupported(GGUF, format!("tokenizer.ggml.pre '{name}' ({supported})"))
    })
}

/// Token types from `tokenizer.ggml.token_type`; all normal when it is absent, as in llama.cpp.
fn gguf_token_kinds(meta: &Meta, n_vocab: usize) -> Result<Vec<TokenKind>> {
    match meta.ints("tokenizer.ggml.token_type")? {
        Some(codes) if codes.len() < n_vocab => {
            let problem = format!("{} token types for {n_vocab} tokens", codes.len());
            Err(Error::bad_file(GGUF, problem))
        }
        Some(codes) => Ok(codes.into_iter().take(n_vocab).map(TokenKind::from_gguf).collect()),
        None => Ok(vec![TokenKind::Normal; n_vocab]),
    }
}

/// BOS or EOS: the stored id, or llama.cpp's gpt2 default when it is absent or out of range.
fn gguf_special_id(meta: &Meta, key: &str, n_vocab: usize) -> Result<u32> {
    let id = meta.u32(key)?.filter(|&id| (id as usize) < n_vocab).unwrap_or(GPT2_DEFAULT_BOS_EOS);
    if id as usize >= n_vocab {
        let problem = format!("no usable {key}, and the default {id} is outside the {n_vocab} tokens");
        return Err(Error::bad_file(GGUF, problem));
    }
    Ok(id)
}

fn unsupported(file: &str, what: impl Into<String>) -> Error {
    Error::unsupported(file, what)
}

fn missing(key: &str) -> Error {
    Error::bad_file(GGUF, format!("{key} is missing"))
}

/// A merge rule "a b": llama.cpp splits at the first space after the first byte, so a merge whose left
/// side starts with a space still parses. Rules without a space are skipped.
fn split_merge(rule: &str) -> Option<(String, String)> {
    let at = rule.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((rule[..at].to_string(), rule[at + 1..].to_string()))
}

/// Typed reads of GGUF metadata: a missing key is `None`, a key of the wrong type is an error naming it.
struct Meta<'m>(&'m BTreeMap<String, MetaValue>);

impl<'m> Meta<'m> {
    fn wrong_type(key: &str, expected: &str, found: &MetaValue) -> Error {
        Error::bad_file(GGUF, format!("{key} should be {expected}, found {}", type_name(found)))
    }

    fn str(&self, key: &str) -> Result<Option<&'m str>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(MetaValue::String(s)) => Ok(Some(s)),
            Some(other) => Err(Self::wrong_type(key, "a string", other)),
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.0.get(key) else { return Ok(None) };
        let items = match value {
            MetaValue::Array(items) => items,
            other => return Err(Self::wrong_type(key, "an array of strings", other)),
        };
        let strings = items.iter().map(|item| match item {
            MetaValue::String(s) => Ok(s.clone()),
            other => Err(Self::wrong_type(key, "an array of strings", other)),
        });
        strings.collect::<Result<Vec<_>>>().map(Some)
    }

    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(value) = self.0.get(key) else { return Ok(None) };
        let items = match value {
            MetaValue::Array(items) => items,
            other => return Err(Self::wrong_type(key, "an array of integers", other)),
        };
        let ints =
            items.iter().map(|item| int(item).ok_or_else(|| Self::wrong_type(key, "an integer", item)));
        ints.collect::<Result<Vec<_>>>().map(Some)
    }

    fn u32(&self, key: &str) -> Result<Option<u32>> {
        let Some(value) = self.0.get(key) else { return Ok(None) };
        let id = int(value).and_then(|i| u32::try_from(i).ok());
        id.map(Some).ok_or_else(|| Self::wrong_type(key, "a token id", value))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(MetaValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(Self::wrong_type(key, "a bool", other)),
        }
    }
}

fn int(value: &MetaValue) -> Option<i64> {
    match *value {
        MetaValue::U8(v) => Some(v.into()),
        MetaValue::I8(v) => Some(v.into()),
        MetaValue::U16(v) => Some(v.into()),
        MetaValue::I16(v) => Some(v.into()),
        MetaValue::U32(v) => Some(v.into()),
        MetaValue::I32(v) => Some(v.into()),
        MetaValue::U64(v) => i64::try_from(v).ok(),
        MetaValue::I64(v) => Some(v),
        _ => None,
    }
}

fn type_name(value: &MetaValue) -> &'static str {
    match value {
        MetaValue::U8(_) => "u8",
        MetaValue::I8(_) => "i8",
        MetaValue::U16(_) => "u16",
        MetaValue::I16(_) => "i16",
        MetaValue::U32(_) => "u32",
        MetaValue::I32(_) => "i32",
        MetaValue::F32(_) => "f32",
        MetaValue::Bool(_) => "bool",
        MetaValue::String(_) => "string",
        MetaValue::Array(_) => "array",
        MetaValue::U64(_) => "u64",
        MetaValue::I64(_) => "i64",
        MetaValue::F64(_) => "f64",
    }
}

/// The supported pre-tokenizer a tokenizer.json pre_tokenizer amounts to, judged by its steps.
fn pre_from_json(pre: &Value) -> Result<PreTokenizer> {
    let steps: Vec<String> = match pre["pretokenizers"].as_array() {
        Some(steps) if pre["type"] == "Sequence" => steps.iter().map(describe_step).collect(),
        _ => vec![describe_step(pre)],
    };
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let split = |regex: &str| format!("Split({regex})");
    let known = [
        (vec!["ByteLevel(regex)".to_string()], PreTokenizer::Gpt2),
        (vec![split(GPT2_REGEX), "ByteLevel".into()], PreTokenizer::Gpt2),
        (vec!["Digits(individual)".into(), "ByteLevel(regex)".into()], PreTokenizer::SmolLm),
        (vec![split(LLAMA3_REGEX), "ByteLevel".into()], PreTokenizer::Llama3),
        (vec![split(QWEN2_REGEX), "ByteLevel".into()], PreTokenizer::Qwen2),
    ];
    known.into_iter().find(|(sig, _)| *sig == steps).map(|(_, pre)| pre).ok_or_else(|| {
        unsupported(
            TOKENIZER_JSON,
            format!("pre_tokenizer [{}] matches no known pre-tokenizer", steps.join(", ")),
        )
    })
}

/// A pre-tokenizer step as a short signature: its type and the settings that change the split.
fn describe_step(step: &Value) -> String {
    match step["type"].as_str().unwrap_or("none") {
        "ByteLevel" if step["use_regex"].as_bool().unwrap_or(true) => "ByteLevel(regex)".into(),
        "Digits" if step["individual_digits"].as_bool().unwrap_or(false) => "Digits(individual)".into(),
        "Split" => {
            let pattern = &step["pattern"];
            let regex = pattern["Regex"].as_str().or_else(|| pattern["String"].as_str()).unwrap_or("?");
            format!("Split({regex})")
        }
        other => other.to_string(),
    }
}

/// Token strings by id from model.vocab and added_tokens, which must cover every id below the largest.
fn json_vocab(model: &Value, added: &Value) -> Result<(Vec<String>, Vec<TokenKind>)> {
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| Error::bad_file(TOKENIZER_JSON, "model.vocab is not an object"))?;
    let mut entries: Vec<(u64, String, TokenKind)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id =
            id.as_u64().ok_or_else(|| Error::bad_file(TOKENIZER_JSON, format!("vocab id of {text:?}")))?;
        entries.push((id, text.clone(), TokenKind::Normal));
    }
    for token in added.as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (token["id"].as_u64(), token["content"].as_str()) else {
            return Err(Error::bad_file(
                TOKENIZER_JSON,
                format!("added token without id or content: {token}"),
            ));
        };
        let special = token["special"].as_bool().unwrap_or(false);
        let kind = if special { TokenKind::Control } else { TokenKind::UserDefined };
        entries.push((id, text.to_string(), kind));
    }
    let n = entries.iter().map(|e| e.0 + 1).max().unwrap_or(0) as usize;
    let mut slots: Vec<Option<(String, TokenKind)>> = vec![None; n];
    for (id, text, kind) in entries {
        slots[id as usize] = Some((text, kind));
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(id, slot)| {
            slot.ok_or_else(|| Error::bad_file(TOKENIZER_JSON, format!("no token has id {id}")))
        })
        .collect::<Result<Vec<_>>>()
        .map(|tokens| tokens.into_iter().unzip())
}

/// model.merges: "a b" strings (older files) or ["a", "b"] pairs (newer ones).
fn json_merges(merges: &Value) -> Result<Vec<(String, String)>> {
    let rules =
        merges.as_array().ok_or_else(|| Error::bad_file(TOKENIZER_JSON, "model.merges is not a list"))?;
    let pair = |rule: &Value| match rule {
        Value::String(s) => split_merge(s),
        Value::Array(p) => match p.as_slice() {
            [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
            _ => None,
        },
        _ => None,
    };
    rules
        .iter()
        .map(|r| pair(r).ok_or_else(|| Error::bad_file(TOKENIZER_JSON, format!("bad merge {r}"))))
        .collect()
}

/// The special token a TemplateProcessing post-processor puts before a single sequence, if any.
fn json_bos(post: &Value) -> Option<&str> {
    let processors = match post["processors"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![post],
    };
    let template = processors.into_iter().find(|p| p["type"] == "TemplateProcessing")?;
    template["single"].as_array()?.first()?["SpecialToken"]["id"].as_str()
}
