//! Bearer secrets: access tokens, authorization codes, client ids and secrets.
//!
//! A secret is 32 random bytes (256 bits) behind a 2-byte logical shard, sent
//! as 46 characters of unpadded base64url. The shard lets the server find the
//! record with one lookup on one shard; the random part is what makes it a
//! secret. Only [`SecretHash`] (SHA-256 of the text) is ever stored: the
//! secret has 256 bits of entropy, so a fast hash is enough and a stolen
//! database yields nothing usable.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::id::ShardId;

const RANDOM_BYTES: usize = 32;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    shard: ShardId,
    text: String,
}

impl Secret {
    pub fn generate(shard: ShardId) -> Self {
        let mut bytes = [0u8; 2 + RANDOM_BYTES];
        bytes[..2].copy_from_slice(&shard.get().to_be_bytes());
        rand::thread_rng().fill_bytes(&mut bytes[2..]);
        Self {
            shard,
            text: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// Parses a secret a client sent back. `None` for anything that cannot
    /// be one of ours (so it is rejected without touching the store).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 46 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let shard = ShardId::new(u16::from_be_bytes([bytes[0], bytes[1]]))?;
        Some(Self {
            shard,
            text: text.to_owned(),
        })
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.text)
    }

    /// The secret itself, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(shard {}, [redacted])", self.shard)
    }
}

/// SHA-256 of a secret's text: what the store keeps and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// Constant-time comparison, for checking a presented secret against a
    /// stored hash.
    pub fn matches(&self, other: &SecretHash) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_its_shard() {
        let shard = ShardId::new(777).unwrap();
        let s = Secret::generate(shard);
        assert_eq!(s.expose().len(), 46);
        let parsed = Secret::parse(s.expose()).unwrap();
        assert_eq!(parsed.shard(), shard);
        assert_eq!(parsed.hash(), s.hash());
    }

    #[test]
    fn secrets_differ() {
        let shard = ShardId::new(1).unwrap();
        assert_ne!(Secret::generate(shard), Secret::generate(shard));
    }

    #[test]
    fn rejects_foreign_text() {
        assert!(Secret::parse("").is_none());
        assert!(Secret::parse("short").is_none());
        assert!(Secret::parse(&"!".repeat(46)).is_none());
        // 0xFFFF is not a shard.
        let mut bytes = [0u8; 34];
        bytes[0] = 0xff;
        bytes[1] = 0xff;
        assert!(Secret::parse(&URL_SAFE_NO_PAD.encode(bytes)).is_none());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let s = Secret::generate(ShardId::new(2).unwrap());
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
