//! Who may call the protected routes: pure functions over the `Authorization` header, the
//! configured credentials and the current time, so every rule is unit-tested without a host.
//!
//! A bearer token is accepted if it is one of the API keys, or an HS256 JSON Web Token signed
//! with the JWT secret whose `exp` and `nbf` (when present) hold at the current time, give or
//! take [`JWT_LEEWAY_SECONDS`] of clock skew between the token's issuer and this service.
//!
//! JWTs are read by `jsonwebtoken` (structure, header, `crit`, the algorithm allow-list, the
//! signature). Its cryptography is pluggable: the provider here does HMAC-SHA-256 (RustCrypto's
//! `hmac`) and nothing else, since this service accepts HS256 only; the crate's own provider
//! would link RSA, ECDSA and EdDSA into the component for algorithms every token is refused for.
//! `exp` and `nbf` are checked here, against the request's own clock (`now`), which the crate's
//! validation cannot be given.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as DecodeError, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const JWT_LEEWAY_SECONDS: u64 = 30;

/// The configured API keys, from a comma-separated list, held as their SHA-256 digests: equal
/// lengths, so comparing a token with a key in constant time does not stop early on a length
/// mismatch and tell how long the key is.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    /// Parses `key1, key2,,key3`: entries are trimmed and empty ones ignored, so a trailing
    /// comma or a blank variable never turns the empty string into a valid key.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| Sha256::digest(key).into())
                .collect(),
        )
    }

    /// Whether `token` is one of the keys. Every key is compared, each in constant time, so
    /// the timing does not tell how much of a key a guess got right, nor which key matched.
    pub fn contains(&self, token: &str) -> bool {
        let token: [u8; 32] = Sha256::digest(token).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&token)
            })
            .into()
    }
}

/// Secrets stay out of debug output, and so out of any log line that formats credentials.
impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

/// The HMAC key JWTs are signed with; never empty.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// `None` for an empty secret: that disables JWTs rather than accepting tokens signed with
    /// an empty key.
    pub fn new(secret: Vec<u8>) -> Option<Self> {
        (!secret.is_empty()).then_some(Self(secret))
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// Everything a bearer token may be checked against.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub api_keys: ApiKeys,
    /// `None` disables JWTs.
    pub jwt_secret: Option<JwtSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("The Authorization header is missing; send `Authorization: Bearer <token>`.")]
    MissingHeader,
    #[error(
        "The Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`."
    )]
    NotBearer,
    #[error(
        "The bearer token is not valid: it is neither an API key nor a JWT this service accepts."
    )]
    InvalidToken,
    #[error("The bearer token is not a valid JWT: {0}.")]
    Jwt(#[from] JwtError),
}

/// Why a JWT was refused. The reasons name no part of the token or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error(
        "it is not three base64url parts holding a JSON header (with a known `alg` and no \
         `crit` extensions) and JSON claims"
    )]
    Malformed,
    #[error("only the HS256 algorithm is accepted")]
    Algorithm,
    #[error("the signature does not match")]
    Signature,
    #[error("the `{0}` claim is not a number")]
    ClaimType(&'static str),
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet")]
    NotYetValid,
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

/// What an accepted token grants beyond the request itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// When (unix seconds) the token stops being accepted: a JWT's `exp`. `None` for an API key (accepted
    /// until the keys change) and for routes open to everyone. An answer others may reuse for this token
    /// (a shared cache keyed by it) must not outlive it.
    pub expires_at: Option<u64>,
}

/// Accepts the request if its bearer token is an API key or a valid JWT at `now` (unix seconds).
pub fn authorize(
    header: Option<&str>,
    credentials: &Credentials,
    now: u64,
) -> Result<Grant, AuthError> {
    let token = bearer_token(header)?;
    if credentials.api_keys.contains(token) {
        return Ok(Grant::default());
    }
    match &credentials.jwt_secret {
        // An API key has no dots; anything with them is judged (and explained) as a JWT.
        Some(secret) if token.contains('.') => Ok(verify_jwt(token, secret, now)?),
        _ => Err(AuthError::InvalidToken),
    }
}

/// Checks an HS256 JWT: its structure, the algorithm, the signature (in constant time, before
/// the claims are even parsed) and then `exp` and `nbf` at `now`.
pub fn verify_jwt(token: &str, secret: &JwtSecret, now: u64) -> Result<Grant, JwtError> {
    // Installing fails only when a provider is already installed, which is then this one.
    let _ = HS256_ONLY.install_default();
    let key = DecodingKey::from_secret(&secret.0).map_err(|_| JwtError::Signature)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(refusal)?
        .claims;
    let now = now as f64;
    let leeway = JWT_LEEWAY_SECONDS as f64;
    let exp = numeric_claim(&claims, "exp")?;
    if let Some(exp) = exp {
        if now >= exp + leeway {
            return Err(JwtError::Expired);
        }
    }
    if let Some(nbf) = numeric_claim(&claims, "nbf")? {
        if now + leeway < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(Grant {
        // Without the leeway: reuse ends when the token's own lifetime does. (`as` saturates.)
        expires_at: exp.map(|exp| exp.floor() as u64),
    })
}

fn refusal(error: DecodeError) -> JwtError {
    match error.kind() {
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => JwtError::Algorithm,
        ErrorKind::InvalidSignature => JwtError::Signature,
        _ => JwtError::Malformed,
    }
}

/// `jsonwebtoken`'s cryptography for this service: HS256 verification only.
static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
    verifier_factory: hs256_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn hs256_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mac = Hmac::<Sha256>::new_from_slice(key.try_get_as_bytes()?)
        .map_err(|_| ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(Hs256Verifier(mac)))
}

struct Hs256Verifier(Hmac<Sha256>);

impl Verifier<Vec<u8>> for Hs256Verifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        // `verify_slice` compares in constant time.
        mac.verify_slice(signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional), if present.
fn numeric_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(JwtError::ClaimType(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn credentials(keys: &str) -> Credentials {
        Credentials {
            api_keys: ApiKeys::parse(keys),
            jwt_secret: None,
        }
    }

    fn authorize(header: Option<&str>, credentials: &Credentials) -> Result<(), AuthError> {
        super::authorize(header, credentials, NOW).map(drop)
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

    #[test]
    fn debug_output_hides_the_secrets() {
        let credentials = Credentials {
            api_keys: ApiKeys::parse("key-one,key-two"),
            jwt_secret: JwtSecret::new(b"jwt-secret".to_vec()),
        };
        let shown = format!("{credentials:?}");
        assert!(
            !shown.contains("key-one") && !shown.contains("jwt-secret"),
            "{shown}"
        );
    }

    mod jwt {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use hmac::{Hmac, Mac};
        use sha2::{Sha256, Sha384, Sha512};

        use super::*;

        const SECRET: &[u8] = b"test-secret";

        fn b64(bytes: &[u8]) -> String {
            URL_SAFE_NO_PAD.encode(bytes)
        }

        fn signed<M: Mac + hmac::digest::KeyInit>(
            header: &str,
            claims: &str,
            secret: &[u8],
        ) -> String {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            format!("{input}.{}", b64(&mac.finalize().into_bytes()))
        }

        fn hs256(claims: &str) -> String {
            signed::<Hmac<Sha256>>(r#"{"alg":"HS256","typ":"JWT"}"#, claims, SECRET)
        }

        fn verify(token: &str) -> Result<(), JwtError> {
            verify_jwt(token, &JwtSecret::new(SECRET.to_vec()).unwrap(), NOW).map(drop)
        }

        fn with_jwt() -> Credentials {
            Credentials {
                api_keys: ApiKeys::parse("an-api-key"),
                jwt_secret: JwtSecret::new(SECRET.to_vec()),
            }
        }

        #[test]
        fn a_known_vector_verifies() {
            // RFC 7515 appendix A.1 uses a binary key; this vector is the widely published
            // `your-256-bit-secret` example token.
            let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
            let secret = JwtSecret::new(b"your-256-bit-secret".to_vec()).unwrap();
            assert_eq!(verify_jwt(token, &secret, NOW), Ok(Grant::default()));
            let other = JwtSecret::new(b"your-256-bit-secreT".to_vec()).unwrap();
            assert_eq!(verify_jwt(token, &other, NOW), Err(JwtError::Signature));
        }

        #[test]
        fn a_jwt_grants_until_its_exp_and_an_api_key_without_end() {
            let creds = with_jwt();
            let until = |token: &str| {
                super::super::authorize(Some(&format!("Bearer {token}")), &creds, NOW)
            };
            let jwt = hs256(&format!(r#"{{"exp":{}.9}}"#, NOW + 60));
            assert_eq!(
                until(&jwt),
                Ok(Grant {
                    expires_at: Some(NOW + 60)
                })
            );
            assert_eq!(until(&hs256("{}")), Ok(Grant { expires_at: None }));
            assert_eq!(until("an-api-key"), Ok(Grant { expires_at: None }));
        }

        #[test]
        fn time_claims_hold_within_the_leeway() {
            let exp = |offset: i64| hs256(&format!(r#"{{"exp":{}}}"#, NOW as i64 + offset));
            let nbf = |offset: i64| hs256(&format!(r#"{{"nbf":{}}}"#, NOW as i64 + offset));
            assert_eq!(verify(&exp(600)), Ok(()));
            assert_eq!(verify(&exp(-29)), Ok(()), "within the leeway");
            assert_eq!(verify(&exp(-30)), Err(JwtError::Expired));
            assert_eq!(verify(&exp(-120)), Err(JwtError::Expired));
            assert_eq!(verify(&nbf(-10)), Ok(()));
            assert_eq!(verify(&nbf(30)), Ok(()), "within the leeway");
            assert_eq!(verify(&nbf(31)), Err(JwtError::NotYetValid));
            assert_eq!(
                verify(&hs256(&format!(r#"{{"exp":{}.5}}"#, NOW + 60))),
                Ok(())
            );
            assert_eq!(verify(&hs256(r#"{"sub":"no time claims"}"#)), Ok(()));
            assert_eq!(
                verify(&hs256(r#"{"exp":"tomorrow"}"#)),
                Err(JwtError::ClaimType("exp"))
            );
            assert_eq!(
                verify(&hs256(r#"{"nbf":null}"#)),
                Err(JwtError::ClaimType("nbf"))
            );
        }

        #[test]
        fn other_algorithms_are_refused_even_when_signed_with_the_secret() {
            let claims = r#"{"sub":"x"}"#;
            // Algorithms the library knows are refused as such; names it does not know (`none`
            // in any case, a missing `alg`) leave the header unreadable.
            assert_eq!(
                verify(&signed::<Hmac<Sha256>>(
                    r#"{"alg":"RS256"}"#,
                    claims,
                    SECRET
                )),
                Err(JwtError::Algorithm)
            );
            for header in [
                r#"{"alg":"none"}"#,
                r#"{"alg":"NONE"}"#,
                r#"{"typ":"JWT"}"#,
                r#"{"alg":"hs256"}"#,
            ] {
                assert_eq!(
                    verify(&signed::<Hmac<Sha256>>(header, claims, SECRET)),
                    Err(JwtError::Malformed),
                    "{header}"
                );
            }
            let longer_hashes = [
                signed::<Hmac<Sha512>>(r#"{"alg":"HS512"}"#, claims, SECRET),
                signed::<Hmac<Sha384>>(r#"{"alg":"HS384"}"#, claims, SECRET),
            ];
            for token in longer_hashes {
                assert_eq!(verify(&token), Err(JwtError::Algorithm), "{token}");
            }
            let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()));
            assert_eq!(verify(&unsigned), Err(JwtError::Malformed));
            let unsigned_hs256 =
                format!("{}.{}.", b64(br#"{"alg":"HS256"}"#), b64(claims.as_bytes()));
            assert_eq!(verify(&unsigned_hs256), Err(JwtError::Signature));
            let critical =
                signed::<Hmac<Sha256>>(r#"{"alg":"HS256","crit":["exp"]}"#, claims, SECRET);
            assert_eq!(verify(&critical), Err(JwtError::Malformed));
        }

        #[test]
        fn tampering_and_malformation_are_refused() {
            let token = hs256(r#"{"sub":"user"}"#);
            let (signing_input, signature) = token.rsplit_once('.').unwrap();
            let (header, _) = signing_input.split_once('.').unwrap();
            let forged = format!("{header}.{}.{signature}", b64(br#"{"sub":"admin"}"#));
            assert_eq!(verify(&forged), Err(JwtError::Signature));
            assert_eq!(
                verify(&format!("{signing_input}.")),
                Err(JwtError::Signature)
            );
            assert_eq!(
                verify(&signed::<Hmac<Sha256>>(r#"{"alg":"HS256"}"#, "{}", b"")),
                Err(JwtError::Signature)
            );
            for malformed in [
                signing_input.to_owned(),
                format!("{token}.e30"),
                "!!!.@@@.###".to_owned(),
                "..".to_owned(),
                token.replacen('.', "==.", 1),
                signed::<Hmac<Sha256>>("not json", "{}", SECRET),
                signed::<Hmac<Sha256>>(r#""HS256""#, "{}", SECRET),
                signed::<Hmac<Sha256>>(r#"{"alg":"HS256"}"#, "not json", SECRET),
                signed::<Hmac<Sha256>>(r#"{"alg":"HS256"}"#, "[1,2,3]", SECRET),
                signed::<Hmac<Sha256>>(r#"{"alg":"HS256"}"#, &"[".repeat(10_000), SECRET),
            ] {
                assert!(
                    matches!(
                        verify(&malformed),
                        Err(JwtError::Malformed | JwtError::Signature)
                    ),
                    "{malformed}"
                );
            }
            assert_eq!(verify(&"[".repeat(100)), Err(JwtError::Malformed));
        }

        #[test]
        fn keys_and_tokens_together() {
            let credentials = with_jwt();
            let token = hs256(&format!(r#"{{"exp":{}}}"#, NOW + 60));
            assert_eq!(
                authorize(Some(&format!("Bearer {token}")), &credentials),
                Ok(())
            );
            assert_eq!(authorize(Some("Bearer an-api-key"), &credentials), Ok(()));
            assert_eq!(
                authorize(Some("Bearer nope"), &credentials),
                Err(AuthError::InvalidToken)
            );
            assert_eq!(
                authorize(
                    Some(&format!(
                        "Bearer {}",
                        hs256(&format!(r#"{{"exp":{}}}"#, NOW - 600))
                    )),
                    &credentials
                ),
                Err(AuthError::Jwt(JwtError::Expired))
            );
            // Without a secret, even a token signed with the empty key is refused.
            let disabled = credentials_without_secret();
            let empty_key = signed::<Hmac<Sha256>>(r#"{"alg":"HS256"}"#, "{}", b"");
            assert_eq!(
                authorize(Some(&format!("Bearer {token}")), &disabled),
                Err(AuthError::InvalidToken)
            );
            assert_eq!(
                authorize(Some(&format!("Bearer {empty_key}")), &disabled),
                Err(AuthError::InvalidToken)
            );
            assert!(JwtSecret::new(Vec::new()).is_none());
        }

        fn credentials_without_secret() -> Credentials {
            Credentials {
                jwt_secret: None,
                ..with_jwt()
            }
        }

        #[test]
        fn reasons_never_repeat_the_token() {
            let token = hs256(r#"{"exp":1}"#);
            let error = authorize(Some(&format!("Bearer {token}")), &with_jwt()).unwrap_err();
            let message = error.to_string();
            assert!(
                !message.contains(&token[..10]) && !message.contains("test-secret"),
                "{message}"
            );
        }
    }
}
