//! Reading typed TOML files with one-line errors that point at `file:line:column`.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;

/// Reads and deserializes `path`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, path)
}

/// Deserializes `text`, naming `path` in errors.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|error| {
        // toml's own Display draws a multi-line snippet; start-up errors are one line, so keep the message
        // and turn the span into a position.
        let message = error.message().trim().replace('\n', " ");
        match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                anyhow!("{}:{line}:{column}: {message}", path.display())
            }
            None => anyhow!("{}: {message}", path.display()),
        }
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only the parse result matters")]
    struct Config {
        name: String,
    }

    #[test]
    fn errors_point_at_the_offending_line() {
        let error = parse::<Config>("name = \"a\"\nother = 1\n", Path::new("x.toml")).unwrap_err();
        let error = error.to_string();
        assert!(
            error.starts_with("x.toml:2:1: unknown field `other`"),
            "{error}"
        );
        assert!(!error.contains('\n'));
    }

    #[test]
    fn syntax_errors_are_one_line_too() {
        let error = parse::<Config>("name = \n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("x.toml:1:"), "{error}");
        assert!(!error.contains('\n'));
    }
}
