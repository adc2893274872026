//! Password hashing with argon2id, off the async threads.
//!
//! Hashing costs tens of milliseconds of CPU on purpose; doing it on a tokio
//! worker would stall every request sharing that thread, so it runs on the
//! blocking pool. A semaphore bounds how many hashes run at once so a burst
//! of sign-ins cannot eat all memory (each hash takes 19 MiB).

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::{CoreError, CoreResult};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified against when an account
    /// does not exist, so a wrong username costs as long as a wrong password
    /// (no account enumeration by timing).
    decoy: Arc<String>,
}

impl Passwords {
    pub fn new(max_concurrent: usize) -> CoreResult<Self> {
        let decoy = hash_now(&format!("{:x}", rand::random::<u128>()))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    pub async fn hash(&self, password: String) -> CoreResult<String> {
        let _permit = self.acquire().await?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))?
    }

    /// Checks `password` against `hash`, or against the decoy when there is
    /// no account (and then always answers `false`).
    pub async fn verify(&self, password: String, hash: Option<String>) -> CoreResult<bool> {
        let _permit = self.acquire().await?;
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))?;
        Ok(ok && real)
    }

    async fn acquire(&self) -> CoreResult<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| CoreError::Unavailable("shutting down".into()))
    }
}

fn hash_now(password: &str) -> CoreResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoys_never_match() {
        let p = Passwords::new(2).expect("init");
        let h = p.hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(p
            .verify("correct horse".into(), Some(h.clone()))
            .await
            .expect("verify"));
        assert!(!p
            .verify("wrong horse".into(), Some(h))
            .await
            .expect("verify"));
        assert!(!p.verify("anything".into(), None).await.expect("verify"));
        assert!(!p
            .verify("x".into(), Some("not a hash".into()))
            .await
            .expect("verify"));
    }
}
