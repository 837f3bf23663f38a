//! The ASCII fast path against the `tokenizers` crate: everything the component reads of a text's
//! tokens (ids, counts, offsets, words, spellings, both truncations) is the same with the fast path
//! as with the crate alone, on the shared questions and reference texts, edge cases, long texts
//! and random ASCII.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::ascii_wordpiece::AsciiWordPiece;
use super::tokenize::{self, TextTokenizer, Truncation, MAX_TOKENS, TOKENIZER_JSON};
use super::{model_sequence, Input};

/// The embedded tokenizer as the component serves with it, fast path and all.
fn fast() -> &'static TextTokenizer {
    tokenize::shared().unwrap()
}

/// The embedded tokenizer with every text going to the crate.
fn library() -> &'static TextTokenizer {
    static LIBRARY: OnceLock<TextTokenizer> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        TextTokenizer::from_json(TOKENIZER_JSON)
            .unwrap()
            .without_fast_path()
    })
}

fn sequence<'t>(
    tokenizer: &TextTokenizer,
    text: &'t str,
    truncation: Truncation,
) -> Result<(Vec<u32>, Option<&'t str>), String> {
    model_sequence(tokenizer, Input::Text(text), truncation).map_err(|e| e.to_string())
}

/// What the fast path gives for `text` is what the library gives: the ids, and every token with
/// where it was read (everything else the component reads of a text's tokens is computed from
/// these, by the same code whichever gave them).
fn assert_same_tokens(fast: &TextTokenizer, library: &TextTokenizer, text: &str) {
    assert_eq!(
        fast.encode(text).unwrap(),
        library.encode(text).unwrap(),
        "{text:?}"
    );
    for special in [true, false] {
        assert_eq!(
            fast.located(text, special).unwrap(),
            library.located(text, special).unwrap(),
            "{text:?}"
        );
    }
}

/// Every answer of `fast` about `text` is `library`'s.
fn assert_identical(fast: &TextTokenizer, library: &TextTokenizer, text: &str) {
    assert_same_tokens(fast, library, text);
    for special in [true, false] {
        assert_eq!(
            fast.tokens(text, special).unwrap(),
            library.tokens(text, special).unwrap(),
            "{text:?}"
        );
    }
    let ids = fast.encode(text).unwrap();
    assert_eq!(
        fast.keep_end(text).unwrap(),
        library.keep_end(text).unwrap(),
        "{text:?}"
    );
    for kept in [2, ids.len() / 2, ids.len().min(MAX_TOKENS)] {
        assert_eq!(
            fast.covered_prefix(text, kept).unwrap(),
            library.covered_prefix(text, kept).unwrap(),
            "{text:?}, {kept} kept"
        );
    }
    for truncation in [Truncation::Refuse, Truncation::Right, Truncation::Left] {
        assert_eq!(
            sequence(fast, text, truncation),
            sequence(library, text, truncation),
            "{text:?}, {truncation:?}"
        );
    }
}

/// `text` goes through the fast path, and gives what the crate gives.
fn assert_fast_and_identical(text: &str) {
    assert!(fast().fast_path_takes(text), "{text:?} left to the crate");
    assert_identical(fast(), library(), text);
}

/// `text` goes to the crate, and so gives what the crate gives.
fn assert_left_to_the_library(text: &str) {
    assert!(
        !fast().fast_path_takes(text),
        "{text:?} taken by the fast path"
    );
    assert_identical(fast(), library(), text);
}

fn questions() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/load/questions.json");
    serde_json::from_slice(&std::fs::read(path).expect("the shared questions")).unwrap()
}

fn shared_reference(file: &str) -> Value {
    let path = format!("{}/../shared/reference/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).expect("the shared reference")).unwrap()
}

/// Every text of the shared reference files: the embedded items and the similarity sentences.
fn reference_texts() -> Vec<String> {
    let embeddings = shared_reference("all-minilm-l6-v2.embeddings.json");
    let similarity = shared_reference("all-minilm-l6-v2.similarity.json");
    let items = embeddings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["text"]);
    let sentences = [
        &similarity["paraphrase_mining"]["sentences"],
        &similarity["cos_sim"]["a"],
        &similarity["cos_sim"]["b"],
    ]
    .into_iter()
    .flat_map(|list| list.as_array().unwrap());
    items
        .chain(sentences)
        .map(|text| text.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_shared_question_tokenizes_as_the_library_does() {
    let questions = questions();
    let (ascii, other): (Vec<_>, Vec<_>) = questions.iter().partition(|q| q.is_ascii());
    // Both paths are exercised: the shared questions hold a few non-ASCII ones.
    assert!(
        ascii.len() > 1000 && !other.is_empty(),
        "{} ASCII, {} other",
        ascii.len(),
        other.len()
    );
    ascii.iter().for_each(|q| assert_fast_and_identical(q));
    other.iter().for_each(|q| assert_left_to_the_library(q));
}

#[test]
fn every_reference_text_tokenizes_as_the_library_does() {
    let texts = reference_texts();
    assert!(
        texts.len() > 50,
        "only {} reference texts read",
        texts.len()
    );
    for text in &texts {
        if text.is_ascii() {
            assert_fast_and_identical(text);
        } else {
            assert_left_to_the_library(text);
        }
    }
}

#[test]
fn edge_cases_tokenize_as_the_library_does() {
    let long_word = "a".repeat(100);
    for text in [
        "",
        " ",
        "   \t\n\r  ",
        "!!!",
        " . , ; ?!",
        "\"quoted\" (parens) {braces} <angle> `tick` ~tilde^ |pipe| \\back/ _under_ @at #hash $d %p &a *s +p =e",
        "don't won't can't",
        "C++ and C# are languages",
        "e-mail addresses like a@b.com",
        "9,192,631,770 times 3.14 and 1e-9",
        "UPPER lower MiXeD 123abc ABC123",
        "tab\tseparated\nnew\rline\r\nend",
        "\u{0}",
        "\u{7f}",
        "a\u{7f}b",
        "\u{0}hello\u{1f}world\u{7f}",
        "\u{1}\u{7}\u{1f}\t",
        "a\u{b}b a\u{c}b x\u{1c}y\u{1d}z\u{1e}w\u{1f}v",
        "un\u{0}believ\u{7f}ably tok\u{1}en\u{2}ization",
        "\u{7f}\u{7f}!\u{0}\u{0}",
        "[cls] [sep] [unk] [CLS [SEP [ ] ][",
        "[unused0] ##ing ## #",
        "tokenization unbelievably antidisestablishmentarianism",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &long_word,
        &format!("{long_word}a"),
        &format!("{long_word}\u{0}\u{0}"),
        &format!("{}\u{0}{}", "a".repeat(50), "a".repeat(51)),
        &format!("x{long_word}!y {long_word}"),
        &"z".repeat(2000),
    ] {
        assert_fast_and_identical(text);
    }
    for text in [
        "naïve café",
        "東京は日本の首都です。",
        "🙂",
        "ascii then é",
        "a\u{fffd}b",
        "[CLS]",
        "hello [SEP] world",
        "x[UNK]y",
        "[PAD][MASK]",
        "a [CLS] and a \u{0} [SEP]",
    ] {
        assert_left_to_the_library(text);
    }
}

#[test]
fn long_texts_truncate_as_the_library_does() {
    let questions = questions();
    let joined: Vec<String> = questions
        .chunks(40)
        .take(10)
        .map(|chunk| chunk.join(" "))
        .collect();
    for text in joined.iter().filter(|text| text.is_ascii()) {
        assert!(fast().encode(text).unwrap().len() > MAX_TOKENS);
        assert_fast_and_identical(text);
    }
    for words in [
        MAX_TOKENS - 3,
        MAX_TOKENS - 2,
        MAX_TOKENS - 1,
        MAX_TOKENS,
        300,
    ] {
        assert_fast_and_identical(&"word ".repeat(words));
    }
    for text in [
        "unbelievably ".repeat(200),
        "tokenization playing, owners' resumes ".repeat(40),
        format!("{} end", "antidisestablishmentarianism ".repeat(50)),
        format!("{}{}", "a ".repeat(250), "x".repeat(150)),
        "a\u{0}b\tc\u{7f}d. ".repeat(300),
        "!?".repeat(400),
    ] {
        assert_fast_and_identical(&text);
    }
}

/// Fragments of ASCII text that reach every branch: any byte, words the vocabulary has whole
/// or in pieces, control characters, runs of spaces, added tokens, words about as long as
/// WordPiece takes.
fn ascii_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        4 => (0..128u8).prop_map(|byte| char::from(byte).to_string()),
        4 => "[a-zA-Z0-9]{1,14}",
        2 => prop::sample::select(&[
            "tokenization", "Unbelievably", "playing", "the", "##ing", "[CLS]", "[SEP]", "[UNK]",
            "[cls]", "don't", "3.14", "a@b.com",
        ][..]).prop_map(str::to_owned),
        2 => "[ \t\r\n\u{0}-\u{1f}\u{7f}]{1,3}",
        1 => "[a-z\u{0}\u{7f}]{96,104}",
    ];
    prop::collection::vec(fragment, 0..24).prop_map(|fragments| fragments.concat())
}

/// The embedded tokenizer.json with another WordPiece vocabulary and word limit, to reach what
/// the model's own vocabulary never does on ASCII: words with no entry for some part.
fn small_vocabulary(continuations: bool) -> (TextTokenizer, TextTokenizer) {
    let mut vocab = json!({
        "[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
        "a": 1, "b": 2, "ab": 3, "abc": 4, "x": 5, "1": 6, "!": 7, "?": 8, "ba": 9,
    });
    if continuations {
        for (entry, id) in [
            ("##b", 10),
            ("##c", 11),
            ("##bc", 12),
            ("##a", 13),
            ("##1", 14),
        ] {
            vocab[entry] = json!(id);
        }
    }
    let mut tokenizer: Value = serde_json::from_slice(TOKENIZER_JSON).unwrap();
    tokenizer["model"]["vocab"] = vocab;
    tokenizer["model"]["max_input_chars_per_word"] = json!(6);
    let json = serde_json::to_vec(&tokenizer).unwrap();
    let parse = || TextTokenizer::from_json(&json).unwrap();
    (parse(), parse().without_fast_path())
}

fn small_vocabulary_text() -> impl Strategy<Value = String> {
    "([abcxyAB1!?.]|\\[CLS\\]|[ \t\u{0}\u{7f}]){0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_ascii_text_tokenizes_as_the_library_does(text in ascii_text()) {
        let added = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        if !added.iter().any(|token| text.contains(token)) {
            prop_assert!(fast().fast_path_takes(&text));
        }
        assert_same_tokens(fast(), library(), &text);
    }

    #[test]
    fn words_a_small_vocabulary_cannot_spell_are_unknown_as_in_the_library(
        text in small_vocabulary_text()
    ) {
        static SMALL: OnceLock<[(TextTokenizer, TextTokenizer); 2]> = OnceLock::new();
        for (fast, library) in SMALL.get_or_init(|| [small_vocabulary(true), small_vocabulary(false)]) {
            prop_assert_eq!(fast.fast_path_takes(&text), !text.contains("[CLS]"));
            assert_same_tokens(fast, library, &text);
        }
    }
}

#[test]
fn a_small_vocabulary_makes_unknown_words_whole() {
    let (fast, library) = small_vocabulary(true);
    // The crate's ids, once the fast path is shown to give them too.
    let ids = |text| {
        assert!(fast.fast_path_takes(text), "{text:?} left to the crate");
        assert_same_tokens(&fast, &library, text);
        let framed = library.encode(text).unwrap();
        framed[1..framed.len() - 1].to_vec()
    };
    // abc: whole; ab|##x is not an entry, so the word is [UNK]; "Ab\0C" is "abc".
    assert_eq!(ids("abc abx Ab\u{0}C"), [4, 100, 4]);
    // Continuations (##bc, ##1) until one is missing (##x).
    assert_eq!(ids("abcbc ba1 abcx"), [4, 12, 9, 14, 100]);
    assert_eq!(
        ids("c ! . bbbbbb bbbbbbb"),
        [100, 7, 100, 2, 10, 10, 10, 10, 10, 100]
    );
    let (fast, library) = small_vocabulary(false);
    assert_same_tokens(&fast, &library, "ab abc abb");
    assert_eq!(library.encode("ab abc abb").unwrap(), [101, 3, 4, 100, 102]);
}

#[test]
fn a_pipeline_the_fast_path_does_not_reproduce_is_left_to_the_library() {
    let mut json: Value = serde_json::from_slice(TOKENIZER_JSON).unwrap();
    json["normalizer"]["lowercase"] = json!(false);
    let json = serde_json::to_vec(&json).unwrap();
    let library = tokenizers::Tokenizer::from_bytes(&json).unwrap();
    assert_eq!(
        AsciiWordPiece::of(&library).err().map(|e| e.to_string()),
        Some("no ASCII fast path: the normalizer does not clean and lowercase".to_owned())
    );
    let tokenizer = TextTokenizer::from_json(&json).unwrap();
    assert!(!tokenizer.fast_path_takes("Hello World"));
    // The vocabulary is lowercase: unlowercased, both words are unknown.
    assert_eq!(
        tokenizer.encode("Hello World").unwrap(),
        [101, 100, 100, 102]
    );
    assert_eq!(
        fast().encode("Hello World").unwrap(),
        [101, 7592, 2088, 102]
    );
}
