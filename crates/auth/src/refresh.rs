//! Refresh tokens: 256 random bits, shown to the client once; only their
//! SHA-256 is stored, so a leaked table signs nobody in.

use sha2::{Digest, Sha256};

/// A new refresh token and the hash to store for it.
pub fn generate() -> (String, String) {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random source works");
    let token = format!("rt_{}", hex::encode(secret));
    let hash = hash(&token);
    (token, hash)
}

/// What is stored for `token`.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_only_as_their_hash() {
        let (first, first_hash) = generate();
        let (second, _) = generate();
        assert_ne!(first, second);
        assert_eq!((first.len(), first_hash.len()), (67, 64));
        assert_eq!(hash(&first), first_hash);
        assert!(!first_hash.contains(&first[3..]));
    }
}
