//! Byte-level BPE: GPT-2's byte-to-character alphabet, and the merge loop llama.cpp runs on each
//! pre-token word (lowest merge rank first, leftmost on ties).
//!
//! Token and merge strings are stored byte-level encoded (a space is "Ġ"); they are decoded to raw bytes once,
//! at construction, so encoding works on the text's own bytes without re-encoding every word.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Bytes GPT-2 keeps as the character of the same code point: printable ASCII and Latin-1.
const fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The other 68 bytes, in order: the n-th of them is written as U+0100 + n.
const SHIFTED_BYTES: [u8; 68] = {
    let mut table = [0u8; 68];
    let (mut b, mut n) = (0usize, 0usize);
    while b < 256 {
        if !is_printable(b as u8) {
            table[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    table
};

/// The byte a byte-level character stands for, `None` for characters outside the alphabet.
fn char_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match u8::try_from(cp) {
        Ok(b) if is_printable(b) => Some(b),
        _ => cp.checked_sub(0x100).and_then(|n| SHIFTED_BYTES.get(n as usize).copied()),
    }
}

/// Raw bytes of a byte-level string; `None` if a character is outside the alphabet (such a string can never
/// come out of BPE on encoded text, which holds only alphabet characters).
pub fn decode_byte_level(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_byte).collect()
}

/// Raw bytes of a byte-level token for display; characters outside the alphabet are kept as their UTF-8.
pub fn decode_byte_level_lossy(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_byte(c) {
            Some(b) => bytes.push(b),
            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

/// A merge: the rank decides the order, `result` is the merged piece.
#[derive(Clone, Copy)]
struct Merge {
    rank: u32,
    result: u32,
}

/// The merge table over interned pieces. A piece is a byte string: vocabulary tokens keep their ids, and
/// strings that only occur inside merges get ids from `n_vocab` up (llama.cpp matches merges by string, so
/// such intermediate strings must be able to merge further even though they are not tokens).
pub struct Bpe {
    n_vocab: u32,
    piece_ids: HashMap<Box<[u8]>, u32>,
    /// Bytes of the pieces past the vocabulary, indexed by `id - n_vocab`.
    extra_pieces: Vec<Box<[u8]>>,
    merges: HashMap<(u32, u32), Merge>,
    byte_pieces: [u32; 256],
    /// Emit a word that is itself a token without merging (llama.cpp's `ignore_merges`, set for Llama 3).
    ignore_merges: bool,
}

/// One symbol of a word being merged; `len == 0` once merged into its left neighbour.
struct Symbol {
    piece: u32,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A possible merge of symbols `left` and `right`, valid while they still hold `pieces`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    left: usize,
    right: usize,
    pieces: (u32, u32),
    result: u32,
}

impl Bpe {
    /// `tokens[id]` are the tokens' raw bytes (`None` for tokens BPE cannot produce); `merges` are in rank
    /// order. Later tokens with the same bytes win, earlier merges of the same pair win, as in llama.cpp.
    pub fn new(tokens: &[Option<Vec<u8>>], merges: &[(Vec<u8>, Vec<u8>)], ignore_merges: bool) -> Bpe {
        let n_vocab = tokens.len() as u32;
        let mut piece_ids = HashMap::with_capacity(tokens.len());
        for (id, bytes) in tokens.iter().enumerate() {
            if let Some(bytes) = bytes {
                piece_ids.insert(bytes.clone().into_boxed_slice(), id as u32);
            }
        }
        let mut bpe = Bpe {
            n_vocab,
            piece_ids,
            extra_pieces: Vec::new(),
            merges: HashMap::with_capacity(merges.len()),
            byte_pieces: [0; 256],
            ignore_merges,
        };
        for b in 0..=255u8 {
            bpe.byte_pieces[b as usize] = bpe.intern(&[b]);
        }
        for (rank, (left, right)) in merges.iter().enumerate() {
            let pair = (bpe.intern(left), bpe.intern(right));
            let result = bpe.intern(&[left.as_slice(), right.as_slice()].concat());
            bpe.merges.entry(pair).or_insert(Merge { rank: rank as u32, result });
        }
        bpe
    }

    fn intern(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.piece_ids.get(bytes) {
            return id;
        }
        let id = self.n_vocab + self.extra_pieces.len() as u32;
        self.extra_pieces.push(bytes.into());
        self.piece_ids.insert(bytes.into(), id);
        id
    }

    /// The token whose bytes are exactly `bytes`.
    fn token(&self, bytes: &[u8]) -> Option<u32> {
        self.piece_ids.get(bytes).copied().filter(|&id| id < self.n_vocab)
    }

    /// Append the tokens of one pre-token word.
    pub fn encode_word(&self, word: &[u8], out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(id) = self.token(word) {
                out.push(id);
                return;
            }
        }
        let symbols = self.merge(word);
        let mut at = Some(0).filter(|_| !symbols.is_empty());
        while let Some(i) = at {
            self.push_piece(symbols[i].piece, out);
            at = symbols[i].next;
        }
    }

    /// Start from single bytes and apply merges, lowest rank first and leftmost among equals.
    fn merge(&self, word: &[u8]) -> Vec<Symbol> {
        let n = word.len();
        let mut symbols: Vec<Symbol> = (0..n)
            .map(|i| Symbol {
                piece: self.byte_pieces[word[i] as usize],
                len: 1,
                prev: i.checked_sub(1),
                next: Some(i + 1).filter(|&j| j < n),
            })
            .collect();
        let mut queue = BinaryHeap::new();
        for i in 1..n {
            self.offer(&symbols, i - 1, i, &mut queue);
        }
        while let Some(Reverse(c)) = queue.pop() {
            let (left, right) = (&symbols[c.left], &symbols[c.right]);
            // Entries go stale when either side has merged since; the pieces tell.
            if left.len == 0 || right.len == 0 || (left.piece, right.piece) != c.pieces {
                continue;
            }
            let (len, next) = (right.len, right.next);
            symbols[c.right].len = 0;
            let merged = &mut symbols[c.left];
            merged.piece = c.result;
            merged.len += len;
            merged.next = next;
            if let Some(next) = next {
                symbols[next].prev = Some(c.left);
            }
            if let Some(prev) = symbols[c.left].prev {
                self.offer(&symbols, prev, c.left, &mut queue);
            }
            if let Some(next) = next {
                self.offer(&symbols, c.left, next, &mut queue);
            }
        }
        symbols
    }

    fn offer(
        &self,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Reverse<Candidate>>,
    ) {
        let pieces = (symbols[left].piece, symbols[right].piece);
        if let Some(m) = self.merges.get(&pieces) {
            queue.push(Reverse(Candidate { rank: m.rank, left, right, pieces, result: m.result }));
        }
    }

    /// Emit a finished symbol. One that is not a token (a merge result missing from the vocabulary) falls back
    /// as llama.cpp does: each of its bytes whose byte-level character is a single UTF-8 byte (printable ASCII)
    /// becomes that character's token, and other bytes are dropped.
    fn push_piece(&self, piece: u32, out: &mut Vec<u32>) {
        let Some(extra) = piece.checked_sub(self.n_vocab) else {
            out.push(piece);
            return;
        };
        for &b in self.extra_pieces[extra as usize].iter() {
            if let Some(id) = self.token(&[b]).filter(|_| b.is_ascii_graphic()) {
                out.push(id);
            }
        }
    }
}
