//! The model's tokenizer: byte-level BPE (GPT-2 style) built from GGUF metadata or a Hugging Face
//! tokenizer.json, producing the same token ids as llama.cpp, plus decoding, a streaming decoder that never
//! splits a character, and the ChatML chat template.

mod bpe;
mod chat;
mod convert;
mod load;
mod pretokenize;
mod unicode_table;

pub use pretokenize::{char_class, CharClass, PreTokenizer};

use bpe::Bpe;

/// A token's type, as GGUF's `tokenizer.ggml.token_type` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    /// Unused, and types llama.cpp does not know: never matched in text, decoded to nothing.
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(code: i64) -> TokenKind {
        match code {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            6 => TokenKind::Byte,
            _ => TokenKind::Unused,
        }
    }

    /// The `tokenizer.ggml.token_type` number.
    fn gguf_code(self) -> i32 {
        match self {
            TokenKind::Normal => 1,
            TokenKind::Unknown => 2,
            TokenKind::Control => 3,
            TokenKind::UserDefined => 4,
            TokenKind::Unused => 5,
            TokenKind::Byte => 6,
        }
    }

    /// Matched as a whole wherever its text appears (llama.cpp's special-token cache).
    fn is_special(self) -> bool {
        matches!(self, TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown)
    }
}

/// Everything a loader reads before the tokenizer is built.
struct Vocab {
    /// Token strings as stored: byte-level encoded for normal tokens, literal for special ones.
    texts: Vec<String>,
    kinds: Vec<TokenKind>,
    /// Byte-level encoded merge pairs, in rank order.
    merges: Vec<(String, String)>,
    pre: PreTokenizer,
    ignore_merges: bool,
    bos: u32,
    eos: u32,
    pad: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

/// A byte-level BPE tokenizer that encodes text to the ids llama.cpp produces for the same vocabulary.
pub struct Tokenizer {
    /// Token strings as stored.
    texts: Vec<String>,
    kinds: Vec<TokenKind>,
    /// What each token decodes to.
    bytes: Vec<Vec<u8>>,
    bpe: Bpe,
    /// The merge rules as stored, in rank order, for writing the tokenizer out in the other format.
    merges: Vec<(String, String)>,
    ignore_merges: bool,
    pre: PreTokenizer,
    /// Special tokens, longest text first: the order llama.cpp carves them out of the text in.
    specials: Vec<u32>,
    bos: u32,
    eos: u32,
    pad: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

/// A stretch of input: text still to pre-tokenize, or a special token found in it.
enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}

impl Tokenizer {
    fn build(v: Vocab) -> Tokenizer {
        let bpe_tokens: Vec<Option<Vec<u8>>> = v.texts.iter().map(|t| bpe::decode_byte_level(t)).collect();
        let merges: Vec<(Vec<u8>, Vec<u8>)> = v
            .merges
            .iter()
            .filter_map(|(a, b)| Some((bpe::decode_byte_level(a)?, bpe::decode_byte_level(b)?)))
            .collect();
        let bytes = v.texts.iter().zip(&v.kinds).map(|(text, &kind)| token_bytes(text, kind)).collect();
        let mut specials: Vec<u32> = (0..v.texts.len() as u32)
            .filter(|&id| v.kinds[id as usize].is_special() && !v.texts[id as usize].is_empty())
            .collect();
        specials.sort_by_key(|&id| std::cmp::Reverse(v.texts[id as usize].len()));
        Tokenizer {
            bpe: Bpe::new(&bpe_tokens, &merges, v.ignore_merges),
            merges: v.merges,
            ignore_merges: v.ignore_merges,
            texts: v.texts,
            kinds: v.kinds,
            bytes,
            pre: v.pre,
            specials,
            bos: v.bos,
            eos: v.eos,
            pad: v.pad,
            add_bos: v.add_bos,
            chat_template: v.chat_template,
        }
    }

    /// Token ids for `text`. `add_bos` prepends the BOS token (pass [`Tokenizer::adds_bos`] to do what the
    /// model asks for); with `parse_special`, control tokens written in the text (`<|im_start|>`) become
    /// their ids. User-defined tokens are matched either way, as in llama.cpp.
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        if add_bos {
            ids.push(self.bos);
        }
        for fragment in self.split_special(text, parse_special) {
            match fragment {
                Fragment::Special(id) => ids.push(id),
                Fragment::Text(text) => {
                    for word in self.pre.split(text) {
                        self.bpe.encode_word(word.as_bytes(), &mut ids);
                    }
                }
            }
        }
        ids
    }

    /// Carve special tokens out of `text`, longest first, each at every place it occurs in the text left
    /// over by the longer ones (llama.cpp's `tokenizer_st_partition`).
    fn split_special<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = if text.is_empty() { vec![] } else { vec![Fragment::Text(text)] };
        for &id in &self.specials {
            let kind = self.kinds[id as usize];
            if !parse_special && kind != TokenKind::UserDefined {
                continue;
            }
            let needle = self.texts[id as usize].as_str();
            fragments = fragments
                .into_iter()
                .flat_map(|fragment| match fragment {
                    Fragment::Text(t) if t.contains(needle) => split_on(t, needle, id),
                    other => vec![other],
                })
                .collect();
        }
        fragments
    }

    /// The text of `ids`, with special tokens written out; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes `id` stands for (nothing for ids outside the vocabulary).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    pub fn bos(&self) -> u32 {
        self.bos
    }

    pub fn eos(&self) -> u32 {
        self.eos
    }

    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }

    /// Whether the model wants BOS prepended (`tokenizer.ggml.add_bos_token`).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.kinds.get(id as usize) == Some(&TokenKind::Control)
    }
}

/// What a token decodes to: normal and byte tokens are byte-level encoded, special ones are literal.
fn token_bytes(text: &str, kind: TokenKind) -> Vec<u8> {
    match kind {
        TokenKind::Normal | TokenKind::Byte => bpe::decode_byte_level_lossy(text),
        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown => text.as_bytes().to_vec(),
        TokenKind::Unused => Vec::new(),
    }
}

/// `text` cut at every occurrence of `needle`, which becomes token `id`.
fn split_on<'t>(text: &'t str, needle: &str, id: u32) -> Vec<Fragment<'t>> {
    let mut out = Vec::new();
    let mut rest = 0;
    for (at, _) in text.match_indices(needle) {
        if at > rest {
            out.push(Fragment::Text(&text[rest..at]));
        }
        out.push(Fragment::Special(id));
        rest = at + needle.len();
    }
    if rest < text.len() {
        out.push(Fragment::Text(&text[rest..]));
    }
    out
}

/// Turns generated ids into text as they arrive, holding back the bytes of a character split across tokens
/// until it is complete, so no piece ever ends in broken UTF-8.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// The text that `id` completes (possibly empty). Bytes that can never become valid UTF-8 are emitted as
    /// U+FFFD at once; only an incomplete character at the end is held back.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending.extend_from_slice(tokenizer.token_bytes(id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is still held back, with an unfinished character as U+FFFD; call once generation ends.
    pub fn flush(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}
