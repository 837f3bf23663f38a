//! Who may call the protected routes: pure functions over the `Authorization` header and the
//! configured credentials, so every rule is unit-tested without a host.

use subtle::ConstantTimeEq;

/// The configured API keys, from a comma-separated list.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    /// Parses `key1, key2,,key3`: entries are trimmed and empty ones ignored, so a trailing
    /// comma or a blank variable never turns the empty string into a valid key.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether `token` is one of the keys. Every key is compared, each in constant time, so
    /// the timing does not tell how much of a key a guess got right, nor which key matched.
    pub fn contains(&self, token: &str) -> bool {
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.as_bytes().ct_eq(token.as_bytes())
            })
            .into()
    }
}

/// Everything a bearer token may be checked against.
// JWT verification (HS256 with a configured secret) joins here as a second field.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub api_keys: ApiKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("The Authorization header is missing; send `Authorization: Bearer <token>`.")]
    MissingHeader,
    #[error(
        "The Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`."
    )]
    NotBearer,
    #[error("The bearer token is not valid.")]
    InvalidToken,
}

/// The token of an `Authorization: Bearer <token>` header; the scheme name is case-insensitive.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(AuthError::MissingHeader)?;
    let (scheme, token) = header
        .split_once(char::is_whitespace)
        .ok_or(AuthError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

/// Accepts the request if its bearer token matches the credentials.
pub fn authorize(header: Option<&str>, credentials: &Credentials) -> Result<(), AuthError> {
    let token = bearer_token(header)?;
    if credentials.api_keys.contains(token) {
        Ok(())
    } else {
        Err(AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(keys: &str) -> Credentials {
        Credentials {
            api_keys: ApiKeys::parse(keys),
        }
    }

    #[test]
    fn keys_are_trimmed_and_empty_entries_ignored() {
        let keys = ApiKeys::parse(" alpha ,, beta,\t,");
        assert!(keys.contains("alpha"));
        assert!(keys.contains("beta"));
        assert!(!keys.contains(""));
        assert!(!keys.contains(" alpha "));
        assert!(!keys.contains("alph"));
        assert!(!keys.contains("alphaa"));
    }

    #[test]
    fn an_empty_list_accepts_nothing() {
        assert!(!ApiKeys::parse("").contains(""));
        assert_eq!(
            authorize(Some("Bearer x"), &credentials(" , ")),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let creds = credentials("secret");
        for header in [
            "Bearer secret",
            "bearer secret",
            "BEARER secret",
            "  Bearer   secret  ",
        ] {
            assert_eq!(authorize(Some(header), &creds), Ok(()), "{header:?}");
        }
    }

    #[test]
    fn missing_or_foreign_headers_are_rejected() {
        let creds = credentials("secret");
        assert_eq!(authorize(None, &creds), Err(AuthError::MissingHeader));
        assert_eq!(authorize(Some("  "), &creds), Err(AuthError::MissingHeader));
        assert_eq!(authorize(Some("secret"), &creds), Err(AuthError::NotBearer));
        assert_eq!(authorize(Some("Bearer"), &creds), Err(AuthError::NotBearer));
        assert_eq!(
            authorize(Some("Bearer   "), &creds),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            authorize(Some("Basic c2VjcmV0"), &creds),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            authorize(Some("Bearersecret"), &creds),
            Err(AuthError::NotBearer)
        );
    }

    #[test]
    fn unknown_tokens_are_rejected() {
        let creds = credentials("secret,other");
        assert_eq!(authorize(Some("Bearer other"), &creds), Ok(()));
        assert_eq!(
            authorize(Some("Bearer Secret"), &creds),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            authorize(Some("Bearer secret,other"), &creds),
            Err(AuthError::InvalidToken)
        );
    }
}
