//! Spin's variable names and component variable templates (`"Bearer {{ token }}"`): parsed while the
//! manifest is read, rendered when variables are resolved.

use std::collections::HashMap;

use anyhow::{bail, Result};

/// Checks Spin's rule for variable names: a lowercase letter, then lowercase letters, digits or `_`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("invalid variable name `{name}`: use lowercase letters, digits and `_`, starting with a letter");
    }
    Ok(())
}

/// A component variable's value: literal text with `{{ name }}` references to application variables.
#[derive(Debug, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, PartialEq)]
enum Part {
    Literal(String),
    Reference(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let Some(len) = rest[start..].find("}}") else {
                bail!("unclosed `{{{{` in template `{text}`");
            };
            let name = rest[start + 2..start + len].trim();
            validate_name(name)?;
            parts.push(Part::Reference(name.to_string()));
            rest = &rest[start + len + 2..];
        }
        if rest.contains("}}") {
            bail!("unopened `}}}}` in template `{text}`");
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self(parts))
    }

    /// The application variables the template reads.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|part| match part {
            Part::Reference(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills in the references; `None` if one of them has no value.
    pub fn render(&self, values: &HashMap<&str, String>) -> Option<String> {
        self.0
            .iter()
            .map(|part| match part {
                Part::Literal(text) => Some(text.as_str()),
                Part::Reference(name) => values.get(name.as_str()).map(String::as_str),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_literals_and_references() {
        let template = Template::parse("Bearer {{ token }}!").unwrap();
        assert_eq!(template.references().collect::<Vec<_>>(), ["token"]);
        assert_eq!(Template::parse("plain").unwrap().references().count(), 0);
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("close }}").is_err());
        assert!(Template::parse("{{ Bad }}").is_err());
    }
}
