//! Who a caller is. Access tokens are HS256 JWTs naming the subject, its
//! role and (for staff) its restaurant, signed with the first configured key
//! and verified with any of them by key id, so keys rotate without logging
//! anyone out; the server checks every call with them, the gateway at the
//! edge too. Passwords are argon2id hashes ([`password`]); refresh tokens
//! are random and stored hashed ([`refresh`]).

pub mod password;
pub mod refresh;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foodfast_domain::access::{Principal, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Issuer written into and required from every token.
const ISSUER: &str = "foodfast";

/// One signing/verification key. `kid` goes into the token header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

impl TokenKey {
    /// Parses `kid:secret` (the secret at least 32 bytes of text).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kid, secret) = text.split_once(':').ok_or("a key is written kid:secret")?;
        if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("key id {kid:?} must be letters, digits, '-' or '_'"));
        }
        if secret.len() < 32 {
            return Err(format!("the secret of key {kid:?} must be at least 32 characters"));
        }
        Ok(Self { kid: kid.to_string(), secret: secret.as_bytes().to_vec() })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<Uuid>,
    iss: String,
    iat: u64,
    exp: u64,
}

/// Verifies tokens (and mints them, for `foodfast token` and the tests).
#[derive(Clone)]
pub struct Tokens {
    signing: Option<(String, EncodingKey)>,
    verifying: Arc<HashMap<String, DecodingKey>>,
    validation: Validation,
}

impl Tokens {
    pub fn new(keys: &[TokenKey]) -> Self {
        let signing = keys.first().map(|key| (key.kid.clone(), EncodingKey::from_secret(&key.secret)));
        let verifying = keys.iter().map(|key| (key.kid.clone(), DecodingKey::from_secret(&key.secret))).collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self { signing, verifying: Arc::new(verifying), validation }
    }

    /// A signed access token for `principal`, valid for `ttl`.
    pub fn mint(&self, principal: &Principal, ttl: Duration) -> Result<String, String> {
        let (kid, key) = self.signing.as_ref().ok_or("no signing key is configured (FOODFAST_AUTH_KEYS)")?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: principal.user_id,
            role: principal.role.as_str().to_string(),
            rid: principal.restaurant_id,
            iss: ISSUER.to_string(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        let header = Header { kid: Some(kid.clone()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, &claims, key).map_err(|err| err.to_string())
    }

    /// The principal a token names, or why it is not accepted.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenRefused> {
        let invalid = |message: String| TokenRefused::Invalid(message);
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("the bearer token is not a JWT".into()))?;
        let kid = header.kid.ok_or_else(|| invalid("the bearer token has no key id".into()))?;
        let key = self
            .verifying
            .get(&kid)
            .ok_or_else(|| invalid(format!("the bearer token's key {kid:?} is not accepted")))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRefused::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                invalid("the bearer token's signature is invalid".into())
            }
            _ => invalid(format!("the bearer token is invalid: {err}")),
        })?;
        let claims = data.claims;
        let role = Role::parse(&claims.role)
            .ok_or_else(|| invalid(format!("the bearer token's role {:?} is unknown", claims.role)))?;
        if role == Role::RestaurantStaff && claims.rid.is_none() {
            return Err(invalid("a restaurant staff token must name its restaurant".into()));
        }
        Ok(Principal { user_id: claims.sub, role, restaurant_id: claims.rid })
    }
}

/// Why a bearer token is not accepted. Only an expired one is worth a
/// refresh; anything else needs a new sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefused {
    Expired,
    Invalid(String),
}

impl std::fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenRefused::Expired => f.write_str("the bearer token has expired; refresh it"),
            TokenRefused::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TokenRefused {}

/// The token of an `authorization` header value, `Bearer <token>`.
pub fn bearer(authorization: &str) -> Result<&str, &'static str> {
    authorization.strip_prefix("Bearer ").map(str::trim).ok_or("the authorization header must be `Bearer <token>`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str) -> TokenKey {
        TokenKey::parse(&format!("{kid}:{}", "s".repeat(32) + kid)).unwrap()
    }

    fn customer() -> Principal {
        Principal { user_id: Uuid::new_v4(), role: Role::Customer, restaurant_id: None }
    }

    #[test]
    fn a_minted_token_verifies_to_its_principal() {
        let tokens = Tokens::new(&[key("k1")]);
        let principal =
            Principal { user_id: Uuid::new_v4(), role: Role::RestaurantStaff, restaurant_id: Some(Uuid::new_v4()) };
        let token = tokens.mint(&principal, Duration::from_secs(60)).unwrap();
        assert_eq!(tokens.verify(&token).unwrap(), principal);
    }

    #[test]
    fn tokens_of_a_previous_key_verify_while_it_is_configured() {
        let old = Tokens::new(&[key("old")]);
        let token = old.mint(&customer(), Duration::from_secs(60)).unwrap();
        assert!(Tokens::new(&[key("new"), key("old")]).verify(&token).is_ok());
        let err = Tokens::new(&[key("new")]).verify(&token).unwrap_err().to_string();
        assert!(err.contains("\"old\" is not accepted"), "{err}");
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() {
        let tokens = Tokens::new(&[key("k1")]);
        let token = tokens.mint(&customer(), Duration::from_secs(60)).unwrap();
        // The signature's first character carries six whole bits (its last one only some).
        let at = token.rfind('.').unwrap() + 1;
        let replacement = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
        let err = tokens.verify(&tampered).unwrap_err().to_string();
        assert!(err.contains("signature"), "{err}");

        let forged = Tokens::new(&[TokenKey::parse(&format!("k1:{}", "x".repeat(40))).unwrap()]);
        let forged = forged.mint(&customer(), Duration::from_secs(60)).unwrap();
        assert!(tokens.verify(&forged).unwrap_err().to_string().contains("signature"));

        let expired =
            Claims { sub: Uuid::new_v4(), role: "customer".into(), rid: None, iss: ISSUER.into(), iat: 1, exp: 2 };
        let header = Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) };
        let expired = jsonwebtoken::encode(&header, &expired, &EncodingKey::from_secret(&key("k1").secret)).unwrap();
        assert_eq!(tokens.verify(&expired).unwrap_err(), TokenRefused::Expired);
        assert!(tokens.verify("not-a-token").is_err());
    }

    #[test]
    fn the_bearer_scheme_is_required() {
        assert_eq!(bearer("Bearer abc "), Ok("abc"));
        assert!(bearer("Basic abc").is_err());
    }

    #[test]
    fn key_text_is_checked() {
        assert!(TokenKey::parse("nocolon").is_err());
        assert!(TokenKey::parse("k1:short").is_err());
        assert!(TokenKey::parse("bad kid:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_err());
    }
}
