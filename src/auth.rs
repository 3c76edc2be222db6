//! Passwords, bearer tokens and the failed-login limiter. No HTTP, no SQL.
//!
//! Tokens are 256 random bits handed to the client once; only their SHA-256
//! is stored, so a copy of the database does not let anyone log in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("the password is too long")]
    TooLong,
}

pub fn check_password_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Argon2id with the crate's recommended parameters.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > 1024 {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fresh token and the hash to store for it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for demo users and generated accounts.
pub fn random_password() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Counts failed logins per key (a login name, an address) in a sliding window.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_login: u32,
    per_address: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_login: u32, per_address: u32) -> Self {
        Self {
            window,
            per_login,
            per_address,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when either key has used up its failures.
    pub fn blocked(&self, login: &str, address: &str) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let check = |key: String, limit: u32| {
            map.get(&key).and_then(|(n, since)| {
                let age = now.duration_since(*since);
                (*n >= limit && age < self.window).then(|| self.window - age)
            })
        };
        check(login_key(login), self.per_login).or(check(addr_key(address), self.per_address))
    }

    pub fn failed(&self, login: &str, address: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        for key in [login_key(login), addr_key(address)] {
            let e = map.entry(key).or_insert((0, now));
            if now.duration_since(e.1) >= self.window {
                *e = (0, now);
            }
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, login: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&login_key(login));
    }
}

fn login_key(login: &str) -> String {
    format!("l:{}", login.to_lowercase())
}

fn addr_key(address: &str) -> String {
    format!("a:{address}")
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn limiter_blocks_after_limit_and_resets_on_success() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 10);
        for _ in 0..3 {
            assert!(l.blocked("anna", "1.2.3.4").is_none());
            l.failed("anna", "1.2.3.4");
        }
        assert!(l.blocked("Anna", "5.6.7.8").is_some());
        assert!(l.blocked("boris", "1.2.3.4").is_none());
        l.succeeded("anna");
        assert!(l.blocked("anna", "9.9.9.9").is_none());
    }
}
