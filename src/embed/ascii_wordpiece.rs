//! The tokenizer's pipeline (BertNormalizer, BertPreTokenizer, WordPiece) for ASCII text, in one
//! pass over its bytes: the same tokens the `tokenizers` crate gives, without its per-call
//! strings, alignment tables and hashing. Other texts are left to the crate.
//!
//! On ASCII the pipeline reduces to byte classes: clean-text removes the control characters but
//! tab, newline and carriage return, which become spaces; lowercasing is ASCII's; accents and CJK
//! characters do not occur. A word is a run of letters and digits (the removed bytes inside it
//! join its parts), each punctuation character is a word of its own, and WordPiece takes the
//! longest vocabulary entry at each position, `##` entries after a word's start, or makes the
//! whole word `[UNK]` when some position has none or the word is too long.

use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{Model, Tokenizer};

use super::vocab_trie::{Node, VocabTrie, ROOT};

/// Where the fast path writes a text's tokens: their ids alone, or with where each was read.
pub trait Pieces {
    /// How many tokens were written, to come back to.
    fn mark(&self) -> usize;
    /// Forgets the tokens written since `mark`.
    fn rewind(&mut self, mark: usize);
    /// A token of word number `word`, read at `offsets` (bytes of the text, end exclusive).
    fn push_token(&mut self, id: u32, offsets: (usize, usize), word: u32);
}

impl Pieces for Vec<u32> {
    fn mark(&self) -> usize {
        self.len()
    }

    fn rewind(&mut self, mark: usize) {
        self.truncate(mark);
    }

    #[inline]
    fn push_token(&mut self, id: u32, _: (usize, usize), _: u32) {
        self.push(id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    /// Removed by clean-text: a control character other than tab, newline, carriage return.
    Removed,
    /// Whitespace, which separates words.
    Space,
    /// ASCII punctuation, a word of its own.
    Punctuation,
    /// A letter or digit (or a non-ASCII byte, which never gets here).
    Word,
}

const fn class_of(byte: u8) -> ByteClass {
    match byte {
        b'\t' | b'\n' | b'\r' | b' ' => ByteClass::Space,
        0..=0x1f | 0x7f => ByteClass::Removed,
        _ if byte.is_ascii_punctuation() => ByteClass::Punctuation,
        _ => ByteClass::Word,
    }
}

const CLASSES: [ByteClass; 256] = {
    let mut classes = [ByteClass::Word; 256];
    let mut byte = 0;
    while byte < 256 {
        classes[byte] = class_of(byte as u8);
        byte += 1;
    }
    classes
};

#[inline]
fn class(byte: u8) -> ByteClass {
    CLASSES[usize::from(byte)]
}

/// Why a tokenizer has no fast path: it is not the pipeline this module reproduces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no ASCII fast path: {0}")]
pub struct Unsupported(&'static str);

pub struct AsciiWordPiece {
    /// Every ASCII vocabulary entry: only those can spell part of an ASCII word.
    vocab: VocabTrie,
    /// Where entries that continue a word (`##…`) go on, if any does.
    continuation: Option<Node>,
    unknown: u32,
    max_word_chars: usize,
    /// Texts with these bytes go to the crate: non-ASCII bytes, and the first bytes of its added
    /// tokens (`[CLS]`, …), which it reads in the raw text before normalizing.
    stops: [bool; 256],
    added_tokens: Vec<String>,
}

impl AsciiWordPiece {
    /// The fast path of `tokenizer`, whose normalizer, pre-tokenizer and model must be the ones
    /// this module reproduces (all-MiniLM-L6-v2's are).
    pub fn of(tokenizer: &Tokenizer) -> Result<Self, Unsupported> {
        let Some(NormalizerWrapper::BertNormalizer(normalizer)) = tokenizer.get_normalizer() else {
            return Err(Unsupported("the normalizer is not BertNormalizer"));
        };
        if !(normalizer.clean_text && normalizer.lowercase) {
            return Err(Unsupported("the normalizer does not clean and lowercase"));
        }
        let Some(PreTokenizerWrapper::BertPreTokenizer(_)) = tokenizer.get_pre_tokenizer() else {
            return Err(Unsupported("the pre-tokenizer is not BertPreTokenizer"));
        };
        let ModelWrapper::WordPiece(wordpiece) = tokenizer.get_model() else {
            return Err(Unsupported("the model is not WordPiece"));
        };
        let added = tokenizer.get_added_tokens_decoder();
        if added.values().any(|token| token.normalized) {
            return Err(Unsupported("an added token is matched after normalization"));
        }
        let entries = wordpiece.get_vocab();
        let unknown = *entries
            .get(&wordpiece.unk_token)
            .ok_or(Unsupported("the unknown token is not in the vocabulary"))?;
        let vocab = VocabTrie::new(
            entries
                .iter()
                .filter(|(key, _)| key.is_ascii())
                .map(|(key, &id)| (key.as_bytes(), id)),
        );
        let continuation = vocab.descend(ROOT, wordpiece.continuing_subword_prefix.as_bytes());
        let added_tokens: Vec<String> = added
            .into_values()
            .map(|token| token.content)
            .filter(|content| !content.is_empty())
            .collect();
        let mut stops = [false; 256];
        stops[0x80..].fill(true);
        for content in &added_tokens {
            stops[usize::from(content.as_bytes()[0])] = true;
        }
        Ok(Self {
            vocab,
            continuation,
            unknown,
            max_word_chars: wordpiece.max_input_chars_per_word,
            stops,
            added_tokens,
        })
    }

    /// Writes the tokens of `text` (without `[CLS]` and `[SEP]`) to `out` and says true, or
    /// writes nothing and says false when `text` is not ASCII or has an added token.
    pub fn tokenize(&self, text: &str, out: &mut impl Pieces) -> bool {
        if !self.handles(text) {
            return false;
        }
        let text = text.as_bytes();
        let mut word = 0;
        let mut at = 0;
        while at < text.len() {
            match class(text[at]) {
                ByteClass::Space | ByteClass::Removed => at += 1,
                ByteClass::Punctuation => {
                    self.push_word(text, at, at, 1, word, out);
                    word += 1;
                    at += 1;
                }
                ByteClass::Word => {
                    let (first, mut last, mut chars) = (at, at, 0);
                    while at < text.len() {
                        match class(text[at]) {
                            ByteClass::Word => (last, chars) = (at, chars + 1),
                            ByteClass::Removed => {}
                            ByteClass::Space | ByteClass::Punctuation => break,
                        }
                        at += 1;
                    }
                    self.push_word(text, first, last, chars, word, out);
                    word += 1;
                }
            }
        }
        true
    }

    fn handles(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes.iter().enumerate().all(|(at, &byte)| {
            !self.stops[usize::from(byte)]
                || (byte.is_ascii()
                    && !self
                        .added_tokens
                        .iter()
                        .any(|token| bytes[at..].starts_with(token.as_bytes())))
        })
    }

    /// WordPiece on the word whose `chars` letters and digits (or one punctuation character) are
    /// in `text[first..=last]`, between bytes that clean-text removes.
    fn push_word(
        &self,
        text: &[u8],
        first: usize,
        last: usize,
        chars: usize,
        word: u32,
        out: &mut impl Pieces,
    ) {
        let mark = out.mark();
        if chars <= self.max_word_chars {
            let (mut start, mut node) = (first, ROOT);
            while let Some((end, id)) = self.longest_entry(text, start, last, node) {
                out.push_token(id, (start, end + 1), word);
                if end == last {
                    return;
                }
                start = end + 1;
                while class(text[start]) == ByteClass::Removed {
                    start += 1;
                }
                match self.continuation {
                    Some(continuation) => node = continuation,
                    None => break,
                }
            }
        }
        out.rewind(mark);
        out.push_token(self.unknown, (first, last + 1), word);
    }

    /// The longest vocabulary entry that extends `node`'s prefix with the start of
    /// `text[start..=last]` (lowercased, removed bytes skipped): where it ends and its id.
    #[inline]
    fn longest_entry(
        &self,
        text: &[u8],
        start: usize,
        last: usize,
        mut node: Node,
    ) -> Option<(usize, u32)> {
        let mut longest = None;
        for (at, &byte) in text.iter().enumerate().take(last + 1).skip(start) {
            if class(byte) == ByteClass::Removed {
                continue;
            }
            match self.vocab.child(node, byte.to_ascii_lowercase()) {
                Some(child) => node = child,
                None => break,
            }
            if let Some(id) = self.vocab.id(node) {
                longest = Some((at, id));
            }
        }
        longest
    }
}
