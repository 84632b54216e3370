//! Pre-tokenizers: split text into the words BPE runs on, exactly as llama.cpp does for each
//! `tokenizer.ggml.pre` type. The regexes need lookahead (`\s+(?!\S)`), which the `regex` crate lacks, so each
//! is a hand-written scanner over code points, mirroring llama.cpp's own scanners in `src/unicode.cpp`.

use super::unicode_table::CLASS_RANGES;

/// The only character properties the supported regexes test: `\p{L}`, `\p{N}` and `\s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharClass {
    Letter,
    Number,
    Whitespace,
    Other,
}

/// The class llama.cpp gives `c` (its tables, not Rust's, so that rare characters split the same way).
pub fn char_class(c: char) -> CharClass {
    let cp = c as u32;
    // The first range starts at 0, so some range always contains `cp`.
    let i = CLASS_RANGES.partition_point(|&(start, _)| start <= cp);
    CLASS_RANGES[i - 1].1
}

/// The regex list llama.cpp applies for a pre-tokenizer type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (`tokenizer.ggml.pre` "gpt-2").
    Gpt2,
    /// `\p{N}` first, so every digit is a word of its own, then the GPT-2 regex on each remaining piece
    /// ("smollm", also starcoder and others in llama.cpp).
    SmolLm,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|
    /// \s+(?!\S)|\s+` ("llama-bpe": Llama 3).
    Llama3,
    /// As [`PreTokenizer::Llama3`] with `\p{N}` instead of `\p{N}{1,3}`: one digit per word ("qwen2").
    Qwen2,
}

impl PreTokenizer {
    /// The type for a `tokenizer.ggml.pre` value, with the aliases llama.cpp accepts for it.
    pub fn from_gguf_name(name: &str) -> Option<PreTokenizer> {
        match name {
            "gpt-2" | "gpt2" => Some(PreTokenizer::Gpt2),
            "smollm" => Some(PreTokenizer::SmolLm),
            "llama-bpe" | "llama3" | "llama-v3" => Some(PreTokenizer::Llama3),
            "qwen2" | "deepseek-r1-qwen" => Some(PreTokenizer::Qwen2),
            _ => None,
        }
    }

    /// The `tokenizer.ggml.pre` value llama.cpp writes for this type.
    pub fn gguf_name(self) -> &'static str {
        match self {
            PreTokenizer::Gpt2 => "gpt-2",
            PreTokenizer::SmolLm => "smollm",
            PreTokenizer::Llama3 => "llama-bpe",
            PreTokenizer::Qwen2 => "qwen2",
        }
    }

    /// Split `text` into words; concatenated they give back `text`.
    pub fn split(self, text: &str) -> Vec<&str> {
        let cpts: Vec<Cpt> = text.chars().map(|ch| Cpt { ch, class: char_class(ch) }).collect();
        let mut lens = Vec::new();
        match self {
            PreTokenizer::Gpt2 => scan(&cpts, gpt2_word_end, &mut lens),
            PreTokenizer::SmolLm => {
                for piece in digit_pieces(&cpts) {
                    scan(piece, gpt2_word_end, &mut lens);
                }
            }
            PreTokenizer::Llama3 => scan(&cpts, |p, pos| llama3_word_end(p, pos, 3), &mut lens),
            PreTokenizer::Qwen2 => scan(&cpts, |p, pos| llama3_word_end(p, pos, 1), &mut lens),
        }
        to_slices(text, &lens)
    }
}

#[derive(Clone, Copy)]
struct Cpt {
    ch: char,
    class: CharClass,
}

/// Cut `piece` into words, appending their lengths (in code points). `word_end` gives the end of the word
/// starting at `pos`. llama.cpp runs its scanners on each piece from the previous regex separately, so a
/// word never crosses a piece boundary and lookahead sees the piece's end as the end of the text.
fn scan(piece: &[Cpt], word_end: impl Fn(&[Cpt], usize) -> usize, lens: &mut Vec<usize>) {
    let mut pos = 0;
    while pos < piece.len() {
        let end = word_end(piece, pos);
        lens.push(end - pos);
        pos = end;
    }
}

/// Byte slices of `text` for consecutive words of `lens` code points each.
fn to_slices<'t>(text: &'t str, lens: &[usize]) -> Vec<&'t str> {
    let mut starts = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len()));
    let mut start = starts.next().unwrap_or(0);
    lens.iter()
        .map(|&len| {
            let end = starts.nth(len - 1).unwrap_or(text.len());
            let word = &text[start..end];
            start = end;
            word
        })
        .collect()
}

/// The regex `\p{N}` as a first pass: each number character is a piece, and so is each run between them.
fn digit_pieces(cpts: &[Cpt]) -> Vec<&[Cpt]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, c) in cpts.iter().enumerate() {
        if c.class == CharClass::Number {
            if start < i {
                pieces.push(&cpts[start..i]);
            }
            pieces.push(&cpts[i..i + 1]);
            start = i + 1;
        }
    }
    if start < cpts.len() {
        pieces.push(&cpts[start..]);
    }
    pieces
}

/// Class at `i`, `None` past the end of the piece.
fn class_at(p: &[Cpt], i: usize) -> Option<CharClass> {
    p.get(i).map(|c| c.class)
}

/// End of the run of `class` characters starting at `from`.
fn run_end(p: &[Cpt], from: usize, class: CharClass) -> usize {
    from + p[from..].iter().take_while(|c| c.class == class).count()
}

fn is_cr_lf(ch: char) -> bool {
    ch == '\r' || ch == '\n'
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `pos`, its length if it matches. With `fold_case` it is llama3's
/// `(?i:...)`: ASCII folding suffices, since llama.cpp's lowercase table maps no other character onto these
/// letters (only U+0130 and U+212A map into ASCII, to 'i' and 'k').
fn contraction(p: &[Cpt], pos: usize, fold_case: bool) -> Option<usize> {
    if p[pos].ch != '\'' {
        return None;
    }
    let at = |i: usize| p.get(pos + i).map(|c| if fold_case { c.ch.to_ascii_lowercase() } else { c.ch });
    match (at(1)?, at(2)) {
        ('s' | 't' | 'm' | 'd', _) => Some(2),
        ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l')) => Some(3),
        _ => None,
    }
}

/// `\s+(?!\S)|\s+` at `pos`, which must be whitespace: the whole run, less its last character when a
/// non-space follows in this piece (that character then leads the next word, as in " word").
fn whitespace_end(p: &[Cpt], pos: usize) -> usize {
    let end = run_end(p, pos, CharClass::Whitespace);
    if end - pos > 1 && end < p.len() {
        end - 1
    } else {
        end
    }
}

/// The GPT-2 regex: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
fn gpt2_word_end(p: &[Cpt], pos: usize) -> usize {
    if let Some(len) = contraction(p, pos, false) {
        return pos + len;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
    let first = pos + usize::from(p[pos].ch == ' ');
    match class_at(p, first) {
        Some(class @ (CharClass::Letter | CharClass::Number | CharClass::Other)) => run_end(p, first, class),
        // `p[pos]` is whitespace here: either the space, or a whitespace character itself.
        _ => whitespace_end(p, pos),
    }
}

/// The Llama 3 regex, and with `max_digits` 1 the Qwen2 one: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|
/// [^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
fn llama3_word_end(p: &[Cpt], pos: usize, max_digits: usize) -> usize {
    if let Some(len) = contraction(p, pos, true) {
        return pos + len;
    }
    let Cpt { ch, class } = p[pos];
    // `[^\r\n\p{L}\p{N}]?\p{L}+`: letters, maybe led by one character that is none of those.
    if !is_cr_lf(ch)
        && class != CharClass::Number
        && (class == CharClass::Letter || class_at(p, pos + 1) == Some(CharClass::Letter))
    {
        return run_end(p, pos + 1, CharClass::Letter);
    }
    // `\p{N}{1,3}`: a longer run of digits becomes several words.
    if class == CharClass::Number {
        return run_end(p, pos, CharClass::Number).min(pos + max_digits);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`: punctuation and symbols, with the line breaks right after them.
    let first = pos + usize::from(ch == ' ');
    if class_at(p, first) == Some(CharClass::Other) {
        let end = run_end(p, first, CharClass::Other);
        return end + p[end..].iter().take_while(|c| is_cr_lf(c.ch)).count();
    }
    // `\s*[\r\n]+`: whitespace through its last line break.
    let ws_end = run_end(p, pos, CharClass::Whitespace);
    if let Some(last_break) = (pos..ws_end).rev().find(|&i| is_cr_lf(p[i].ch)) {
        return last_break + 1;
    }
    whitespace_end(p, pos)
}
