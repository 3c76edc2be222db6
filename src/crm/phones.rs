//! Phone numbers as Ringside stores and compares them: parsed once at the edge
//! into E.164 (`+79161234567`), with the configured default region for numbers
//! written the national way (`8 916 123-45-67`, `030 123456`).
//!
//! Owns normalization only; the caller index and lookups live elsewhere.

use std::fmt;

use phonenumber::country;

/// A number in E.164 form, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct E164(String);

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the number is empty")]
    Empty,
    #[error("the number is too long")]
    TooLong,
    #[error("`{0}` is not a phone number")]
    NotANumber(String),
}

/// Normalizes raw numbers for one default region.
#[derive(Debug, Clone)]
pub struct PhoneNormalizer {
    region: country::Id,
}

impl PhoneNormalizer {
    /// `region` must be a valid ISO 3166 code (checked by the config loader).
    pub fn new(region: &str) -> Result<Self, PhoneError> {
        let region = region
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| PhoneError::NotANumber(region.to_owned()))?;
        Ok(Self { region })
    }

    pub fn normalize(&self, raw: &str) -> Result<E164, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.len() > 64 {
            return Err(PhoneError::TooLong);
        }
        let mut s = trimmed;
        for scheme in ["tel:", "sip:", "sips:"] {
            if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
                s = &s[scheme.len()..];
            }
        }
        if let Some(at) = s.find('@') {
            s = &s[..at];
        }
        let mut digits = String::with_capacity(s.len() + 1);
        for (i, c) in s.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 || digits.is_empty() => digits.push('+'),
                ' ' | '-' | '(' | ')' | '.' | '/' | '\t' => {}
                _ => return Err(PhoneError::NotANumber(raw.to_owned())),
            }
        }
        if digits.trim_start_matches('+').is_empty() {
            return Err(PhoneError::NotANumber(raw.to_owned()));
        }
        if let Some(rest) = digits.strip_prefix("00") {
            digits = format!("+{rest}");
        } else if self.region == country::Id::RU
            && let Some(rest) = digits.strip_prefix("810")
        {
            digits = format!("+{rest}");
        }
        let parsed = phonenumber::parse(Some(self.region), &digits)
            .map_err(|_| PhoneError::NotANumber(raw.to_owned()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::NotANumber(raw.to_owned()));
        }
        Ok(E164(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_forms_agree() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        for raw in [
            "8-916-123-45-67",
            "+7 (916) 123-45-67",
            "89161234567",
            "007 916 1234567",
            "810 7 916 123 45 67",
            "tel:+79161234567",
            "sip:+79161234567@pbx.local",
        ] {
            assert_eq!(ru.normalize(raw).unwrap().as_str(), "+79161234567", "{raw}");
        }
        let de = PhoneNormalizer::new("DE").unwrap();
        assert_eq!(
            de.normalize("030 1234567").unwrap().as_str(),
            "+49301234567"
        );
        assert_eq!(
            de.normalize("004930 1234567").unwrap().as_str(),
            "+49301234567"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        for raw in ["", "abc", "+", "1".repeat(200).as_str(), "9161\u{0}234567"] {
            assert!(ru.normalize(raw).is_err(), "{raw:?}");
        }
    }
}
