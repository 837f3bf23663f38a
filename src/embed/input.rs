//! What a request asks to embed, as the pipeline and the cache key see it.

/// One thing to embed: a text, or token ids of the model's vocabulary without `[CLS]`/`[SEP]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}
