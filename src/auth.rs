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

/// Slows password guessing without handing an attacker a lockout.
///
/// The main brake is per login *and* address: after `pair_free` failures
/// that pair waits `pair_delay`, doubling with each further failure up to
/// the window, so one address guessing one login gets a dozen tries in 15
/// minutes while the real user at another address is not held up at all.
/// Behind it are ceilings counted over the window: failures of one login
/// from any address (many addresses guessing together), and failures from
/// one address for any login (spraying), both set high enough that a
/// colleague's typos or an office behind one NAT address never reach them.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_login: u32,
    per_address: u32,
    pair_free: u32,
    pair_delay: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

impl LoginLimiter {
    /// Ceilings of `per_login` and `per_address` failures per `window`, and
    /// the pair brake: 5 free failures, then 30 s doubling.
    pub fn new(window: Duration, per_login: u32, per_address: u32) -> Self {
        Self::with_pairs(window, per_login, per_address, 5, Duration::from_secs(30))
    }

    pub fn with_pairs(
        window: Duration,
        per_login: u32,
        per_address: u32,
        pair_free: u32,
        pair_delay: Duration,
    ) -> Self {
        Self {
            window,
            per_login,
            per_address,
            pair_free,
            pair_delay,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when this login from this address must wait.
    pub fn blocked(&self, login: &str, address: &str) -> Option<Duration> {
        self.blocked_at(login, address, Instant::now())
    }

    /// [`LoginLimiter::blocked`] at a given moment (tests pass their clock).
    pub fn blocked_at(&self, login: &str, address: &str, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let ceiling = |key: String, limit: u32| {
            map.get(&key).and_then(|f| {
                let age = now.saturating_duration_since(f.first);
                (f.count >= limit && age < self.window).then(|| self.window - age)
            })
        };
        let pair = map.get(&pair_key(login, address)).and_then(|f| {
            let until = f.last + self.pair_wait(f.count)?;
            (now < until).then(|| until - now)
        });
        [
            pair,
            ceiling(login_key(login), self.per_login),
            ceiling(addr_key(address), self.per_address),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// How long a pair with `count` failures waits after its last one.
    fn pair_wait(&self, count: u32) -> Option<Duration> {
        let over = count.checked_sub(self.pair_free)?;
        let wait = self.pair_delay.saturating_mul(1u32 << over.min(20));
        Some(wait.min(self.window))
    }

    pub fn failed(&self, login: &str, address: &str) {
        self.failed_at(login, address, Instant::now())
    }

    /// [`LoginLimiter::failed`] at a given moment.
    pub fn failed_at(&self, login: &str, address: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            let keep = 2 * self.window;
            map.retain(|_, f| now.saturating_duration_since(f.last) < keep);
        }
        let fresh = Failures {
            count: 0,
            first: now,
            last: now,
        };
        // A ceiling counts the failures of one window, then starts over.
        for key in [login_key(login), addr_key(address)] {
            let f = map.entry(key).or_insert(fresh);
            if now.saturating_duration_since(f.first) >= self.window {
                *f = fresh;
            }
            f.count += 1;
            f.last = now;
        }
        // A pair's count runs on while it keeps failing (its waits grow, to
        // one window at most), and is forgotten two windows after its last
        // failure.
        let f = map.entry(pair_key(login, address)).or_insert(fresh);
        if now.saturating_duration_since(f.last) >= 2 * self.window {
            *f = fresh;
        }
        f.count += 1;
        f.last = now;
    }

    /// Forgets the login's failures counted against its ceiling.
    pub fn succeeded(&self, login: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&login_key(login));
    }

    /// A login from this address succeeded: its pair starts afresh too.
    pub fn succeeded_from(&self, login: &str, address: &str) {
        self.succeeded(login);
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&pair_key(login, address));
    }
}

fn pair_key(login: &str, address: &str) -> String {
    format!("p:{address} {}", key_login(login))
}

/// The login as counted: folded, and cut short so a megabyte-long "login"
/// does not become a megabyte-long key (logins are at most 64 characters).
fn key_login(login: &str) -> String {
    login.chars().take(128).collect::<String>().to_lowercase()
}

fn login_key(login: &str) -> String {
    format!("l:{}", key_login(login))
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

    const MIN: Duration = Duration::from_secs(60);

    /// The defaults of the server: ceilings of 100 per login, 300 per address.
    fn server() -> LoginLimiter {
        LoginLimiter::new(15 * MIN, 100, 300)
    }

    #[test]
    fn guessing_from_one_address_waits_longer_each_time_and_others_do_not_wait() {
        let l = server();
        let t0 = Instant::now();
        for i in 0..5 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(l.blocked_at("anna", "6.6.6.6", t), None);
            l.failed_at("anna", "6.6.6.6", t);
        }
        let last = t0 + Duration::from_secs(4);
        // The sixth try waits 30 s after the fifth failure…
        assert_eq!(
            l.blocked_at("anna", "6.6.6.6", last),
            Some(Duration::from_secs(30))
        );
        // …but Anna from her own address does not wait at all.
        assert_eq!(l.blocked_at("anna", "10.0.0.7", last), None);
        assert_eq!(l.blocked_at("boris", "6.6.6.6", last), None);
        // Each further failure doubles the wait: 60 s, 120 s, … up to 15 minutes.
        let mut t = last;
        for expected in [60, 120, 240, 480, 900, 900] {
            t += l.blocked_at("anna", "6.6.6.6", t).unwrap();
            assert_eq!(l.blocked_at("anna", "6.6.6.6", t), None);
            l.failed_at("anna", "6.6.6.6", t);
            assert_eq!(
                l.blocked_at("anna", "6.6.6.6", t),
                Some(Duration::from_secs(expected))
            );
        }
        // So in an hour one address gets about a dozen guesses, not thousands.
        // A success from the pair clears it.
        l.succeeded_from("anna", "6.6.6.6");
        assert_eq!(l.blocked_at("anna", "6.6.6.6", t), None);
    }

    #[test]
    fn an_office_behind_one_address_is_not_locked_out_by_its_typos() {
        let l = server();
        let t0 = Instant::now();
        for i in 0..100 {
            l.failed_at(&format!("user{i}"), "192.0.2.1", t0);
        }
        assert_eq!(l.blocked_at("boris", "192.0.2.1", t0), None);
        // A spraying address hits its ceiling, for the rest of the window.
        for i in 100..300 {
            l.failed_at(&format!("user{i}"), "192.0.2.1", t0);
        }
        assert_eq!(l.blocked_at("boris", "192.0.2.1", t0 + MIN), Some(14 * MIN));
        assert_eq!(l.blocked_at("boris", "192.0.2.1", t0 + 15 * MIN), None);
    }

    #[test]
    fn many_addresses_guessing_one_login_meet_its_ceiling() {
        let l = server();
        let t0 = Instant::now();
        for i in 0..99 {
            l.failed_at("anna", &format!("203.0.113.{i}"), t0);
        }
        assert_eq!(l.blocked_at("anna", "10.0.0.7", t0), None);
        l.failed_at("anna", "203.0.113.200", t0);
        assert_eq!(l.blocked_at("anna", "10.0.0.7", t0), Some(15 * MIN));
        assert_eq!(l.blocked_at("anna", "10.0.0.7", t0 + 15 * MIN), None);
    }
}
