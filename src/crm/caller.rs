//! Who is calling, before any card is looked at: a raw caller ID from the PBX
//! is classified as withheld, an internal extension, one of the company's own
//! numbers, a customer's E.164 number, or not a number — each with its reason.
//!
//! Owns the `[phones]` rules (rewrites, own numbers, extension length) turned
//! into a ready [`Matcher`]. Parsing itself is `crm::phones`; cards are
//! `crm::index`.
//!
//! # Order of the steps
//!
//! 1. Withheld markers (`anonymous`, `<unknown>`, `unavailable`, `restricted`,
//!    `private`, `withheld`, empty; any case, also as the user part of a SIP
//!    URI such as `sip:anonymous@anonymous.invalid`).
//! 2. Cleaning ([`Dialled`]): URI and punctuation go, leaving `+` and digits.
//! 3. Rewrite rules, in the order configured, each on the result of the
//!    previous one; a rule rewrites its first match.
//! 4. Internal extension: no `+` and at most `internal_max_digits` digits
//!    (default 5).
//! 5. International prefixes, then the default region's rules → E.164.
//! 6. One of `own_numbers` → own number; otherwise a customer.
//!
//! # Rewrite rules
//!
//! Rules see the cleaned number (`89161234567`, `+4930123456`), never the
//! raw text, so they need not care about spaces or `sip:`. Examples for
//! `ringside.toml`:
//!
//! ```toml
//! [phones]
//! internal_max_digits = 4
//! own_numbers = ["+7 495 100-00-00", "8 800 100-00-00"]
//!
//! # The trunk puts a `9` (outside-line digit) before the number.
//! [[phones.rewrite]]
//! pattern = '^9(\d{10,})$'
//! replace = '$1'
//!
//! # The trunk sends a Russian number with `+` but the national `8`.
//! [[phones.rewrite]]
//! pattern = '^\+8(\d{10})$'
//! replace = '+7$1'
//!
//! # The trunk adds a `0` in front of a national number.
//! [[phones.rewrite]]
//! pattern = '^0(8\d{10})$'
//! replace = '$1'
//!
//! # A 10-digit number from an American carrier: add the country code.
//! [[phones.rewrite]]
//! pattern = '^(\d{10})$'
//! replace = '+1$1'
//! ```
//!
//! A rule that turns a number into something that is not `+` and digits
//! makes the caller "not a number", with the rule's output in the reason.

use regex::Regex;

use crate::config::PhoneSettings;
use crate::crm::phones::{Dialled, E164, PhoneError, PhoneKey, PhoneNormalizer};

/// Default longest internal extension.
pub const DEFAULT_INTERNAL_MAX_DIGITS: usize = 5;

/// Longest internal extension that can be configured: as long as a number
/// can be (E.164's 15 digits), so any all-digit extension `ringside user add
/// --ext` takes for a phone (`150010002`, a 9-digit account id) can be
/// recognised.
pub const MAX_INTERNAL_DIGITS: usize = 15;

/// Why no number was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Withheld {
    /// Empty caller ID.
    Empty,
    /// `anonymous` (SIP privacy, RFC 3323).
    Anonymous,
    /// `<unknown>` or `unknown`: Asterisk's placeholder when nothing came.
    Unknown,
    /// `unavailable`: the network could not deliver the number.
    Unavailable,
    /// `restricted` or `withheld`: the caller hid it.
    Restricted,
    /// `private`.
    Private,
}

impl Withheld {
    /// Recognizes the markers PBXes and carriers put instead of a number.
    pub fn from_raw(raw: &str) -> Option<Withheld> {
        let s = raw.trim();
        if s.is_empty() {
            return Some(Withheld::Empty);
        }
        // `sip:anonymous@anonymous.invalid`, `"Anonymous" <sip:anonymous@…>`.
        let user = sip_user(s).unwrap_or(s).trim();
        let is = |marker: &str| user.eq_ignore_ascii_case(marker);
        Some(if user.is_empty() {
            Withheld::Empty
        } else if is("anonymous") {
            Withheld::Anonymous
        } else if is("<unknown>") || is("unknown") {
            Withheld::Unknown
        } else if is("unavailable") {
            Withheld::Unavailable
        } else if is("restricted") || is("withheld") {
            Withheld::Restricted
        } else if is("private") {
            Withheld::Private
        } else {
            return None;
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::Empty => "empty",
            Withheld::Anonymous => "anonymous",
            Withheld::Unknown => "unknown",
            Withheld::Unavailable => "unavailable",
            Withheld::Restricted => "restricted",
            Withheld::Private => "private",
        }
    }
}

fn sip_user(s: &str) -> Option<&str> {
    let inner = match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let lower_starts = |p: &str| {
        inner.len() >= p.len()
            && inner.is_char_boundary(p.len())
            && inner[..p.len()].eq_ignore_ascii_case(p)
    };
    let rest = if lower_starts("sip:") {
        &inner[4..]
    } else if lower_starts("sips:") {
        &inner[5..]
    } else if lower_starts("tel:") {
        &inner[4..]
    } else {
        return None;
    };
    let end = rest.find(['@', ';']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A raw caller ID, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No number was presented.
    Withheld(Withheld),
    /// A short internal number (digits as dialled after rewrites).
    Internal(String),
    /// One of the company's own numbers (a DID or trunk calling in).
    OwnNumber(E164),
    /// An outside number: look it up.
    Customer(E164),
    /// Something that is not a phone number, and why.
    NotANumber(PhoneError),
}

/// Invalid `[phones]` settings, reported with the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("`{0}` is not a region such as RU, UA or DE")]
    Region(String),
    #[error("phones.rewrite: `{pattern}`: {message}")]
    Rewrite { pattern: String, message: String },
    #[error("phones.own_numbers: `{number}`: {error}")]
    OwnNumber { number: String, error: PhoneError },
    #[error("phones.internal_max_digits must be between 1 and {MAX_INTERNAL_DIGITS}, not {0}")]
    InternalMaxDigits(usize),
}

#[derive(Debug, Clone)]
struct Rewrite {
    pattern: Regex,
    replace: String,
}

/// The `[phones]` rules of one deployment, compiled once at start and shared
/// by every lookup (it is immutable, `Send` and `Sync`).
#[derive(Debug, Clone)]
pub struct Matcher {
    normalizer: PhoneNormalizer,
    rewrites: Vec<Rewrite>,
    /// Sorted keys of the company's own numbers.
    own: Vec<PhoneKey>,
    internal_max_digits: usize,
}

/// The cheap part of classification, shared by [`Matcher::classify`] and the
/// index's hot path.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    Decided(Caller),
    Number {
        dialled: Dialled,
        fast: Option<PhoneKey>,
    },
}

impl Matcher {
    /// `region` is `RINGSIDE_DEFAULT_REGION`.
    pub fn new(region: &str, settings: &PhoneSettings) -> Result<Matcher, MatcherError> {
        let normalizer =
            PhoneNormalizer::new(region).map_err(|_| MatcherError::Region(region.to_owned()))?;
        let rewrites = settings
            .rewrite
            .iter()
            .map(|rule| {
                Regex::new(&rule.pattern)
                    .map(|pattern| Rewrite {
                        pattern,
                        replace: rule.replace.clone(),
                    })
                    .map_err(|e| MatcherError::Rewrite {
                        pattern: rule.pattern.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let internal_max_digits = settings
            .internal_max_digits
            .unwrap_or(DEFAULT_INTERNAL_MAX_DIGITS);
        if !(1..=MAX_INTERNAL_DIGITS).contains(&internal_max_digits) {
            return Err(MatcherError::InternalMaxDigits(internal_max_digits));
        }
        let mut own = settings
            .own_numbers
            .iter()
            .map(|number| {
                normalizer
                    .normalize(number)
                    .map(|e| e.key())
                    .map_err(|error| MatcherError::OwnNumber {
                        number: number.clone(),
                        error,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        own.sort_unstable();
        own.dedup();
        Ok(Matcher {
            normalizer,
            rewrites,
            own,
            internal_max_digits,
        })
    }

    /// The normalizer for the default region (for numbers typed on cards).
    pub fn normalizer(&self) -> &PhoneNormalizer {
        &self.normalizer
    }

    /// Classifies a raw caller ID. Valid numbers of the common shapes are
    /// decided without the phone-number library (see
    /// `PhoneNormalizer::known_valid`); the answer is always the library's.
    pub fn classify(&self, raw: &str) -> Caller {
        match self.prepare(raw) {
            Prepared::Decided(caller) => caller,
            Prepared::Number { dialled, fast } => {
                match fast.and_then(|key| self.normalizer.known_valid(key)) {
                    Some(e) if self.is_own(e.key()) => Caller::OwnNumber(e),
                    Some(e) => Caller::Customer(e),
                    None => self.resolve(&dialled),
                }
            }
        }
    }

    /// [`Matcher::classify`] with the library for every number: the
    /// reference the fast paths are tested against.
    pub fn classify_with_library(&self, raw: &str) -> Caller {
        match self.prepare(raw) {
            Prepared::Decided(caller) => caller,
            Prepared::Number { dialled, .. } => self.resolve(&dialled),
        }
    }

    pub(crate) fn is_own(&self, key: PhoneKey) -> bool {
        self.own.binary_search(&key).is_ok()
    }

    /// Steps 1–4 plus the fast-path key; no library call.
    pub(crate) fn prepare(&self, raw: &str) -> Prepared {
        // Refuse megabytes of input before any scan of it.
        if raw.len() > crate::crm::phones::MAX_RAW_BYTES {
            return Prepared::Decided(Caller::NotANumber(PhoneError::TooLong));
        }
        if let Some(w) = Withheld::from_raw(raw) {
            return Prepared::Decided(Caller::Withheld(w));
        }
        let mut dialled = match Dialled::parse(raw) {
            Ok(d) => d,
            Err(e) => return Prepared::Decided(Caller::NotANumber(e)),
        };
        for rule in &self.rewrites {
            let rewritten = rule
                .pattern
                .replace(dialled.as_str(), rule.replace.as_str());
            if let std::borrow::Cow::Owned(text) = rewritten {
                dialled = match Dialled::parse(&text) {
                    Ok(d) => d,
                    Err(PhoneError::Empty) | Err(PhoneError::NotANumber(_)) => {
                        return Prepared::Decided(Caller::NotANumber(PhoneError::NotANumber(text)));
                    }
                    Err(e) => return Prepared::Decided(Caller::NotANumber(e)),
                };
            }
        }
        if !dialled.has_plus() && dialled.digits().len() <= self.internal_max_digits {
            return Prepared::Decided(Caller::Internal(dialled.as_str().to_owned()));
        }
        let fast = self.normalizer.fast_key(&dialled);
        Prepared::Number { dialled, fast }
    }

    /// Steps 5–6 through the library.
    pub(crate) fn resolve(&self, dialled: &Dialled) -> Caller {
        match self.normalizer.normalize_dialled(dialled) {
            Ok(e) if self.is_own(e.key()) => Caller::OwnNumber(e),
            Ok(e) => Caller::Customer(e),
            Err(e) => Caller::NotANumber(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RewriteRule;

    fn settings() -> PhoneSettings {
        PhoneSettings {
            rewrite: vec![
                RewriteRule {
                    pattern: r"^9(\d{10,})$".into(),
                    replace: "$1".into(),
                },
                RewriteRule {
                    pattern: r"^\+8(\d{10})$".into(),
                    replace: "+7$1".into(),
                },
            ],
            own_numbers: vec!["+7 495 100-00-00".into()],
            internal_max_digits: None,
        }
    }

    fn e(s: &str) -> E164 {
        PhoneNormalizer::new("RU").unwrap().normalize(s).unwrap()
    }

    #[test]
    fn each_kind_of_caller_is_told_apart() {
        let m = Matcher::new("RU", &settings()).unwrap();
        let cases = [
            ("anonymous", Caller::Withheld(Withheld::Anonymous)),
            ("Anonymous", Caller::Withheld(Withheld::Anonymous)),
            ("<unknown>", Caller::Withheld(Withheld::Unknown)),
            ("UNAVAILABLE", Caller::Withheld(Withheld::Unavailable)),
            ("restricted", Caller::Withheld(Withheld::Restricted)),
            ("private", Caller::Withheld(Withheld::Private)),
            ("", Caller::Withheld(Withheld::Empty)),
            (
                "sip:anonymous@anonymous.invalid",
                Caller::Withheld(Withheld::Anonymous),
            ),
            ("101", Caller::Internal("101".into())),
            ("12345", Caller::Internal("12345".into())),
            ("84951000000", Caller::OwnNumber(e("+74951000000"))),
            ("89161234567", Caller::Customer(e("+79161234567"))),
            ("989161234567", Caller::Customer(e("+79161234567"))),
            ("+89161234567", Caller::Customer(e("+79161234567"))),
        ];
        for (raw, want) in cases {
            assert_eq!(m.classify(raw), want, "{raw:?}");
            assert_eq!(m.classify_with_library(raw), want, "{raw:?}");
        }
        assert!(matches!(m.classify("123456"), Caller::NotANumber(_)));
        assert_eq!(
            m.classify("hello"),
            Caller::NotANumber(PhoneError::UnexpectedCharacter('h'))
        );
    }

    #[test]
    fn bad_settings_name_the_value() {
        let mut s = settings();
        s.rewrite[0].pattern = "(".into();
        assert!(matches!(
            Matcher::new("RU", &s),
            Err(MatcherError::Rewrite { .. })
        ));
        let mut s = settings();
        s.own_numbers.push("not a number".into());
        let err = Matcher::new("RU", &s).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
        let mut s = settings();
        s.internal_max_digits = Some(0);
        assert_eq!(
            Matcher::new("RU", &s).unwrap_err(),
            MatcherError::InternalMaxDigits(0)
        );
        s.internal_max_digits = Some(16);
        assert_eq!(
            Matcher::new("RU", &s).unwrap_err(),
            MatcherError::InternalMaxDigits(16)
        );
        // A 9-digit account id as the phone's extension is internal.
        s.internal_max_digits = Some(9);
        let m = Matcher::new("RU", &s).unwrap();
        assert_eq!(
            m.classify("150010002"),
            Caller::Internal("150010002".into())
        );
        s.internal_max_digits = Some(15);
        assert!(Matcher::new("RU", &s).is_ok());
        assert!(matches!(
            Matcher::new("XX", &settings()),
            Err(MatcherError::Region(_))
        ));
    }

    #[test]
    fn a_rewrite_producing_garbage_is_not_a_number() {
        let mut s = settings();
        s.rewrite = vec![RewriteRule {
            pattern: r"^(\d+)$".into(),
            replace: "x$1".into(),
        }];
        let m = Matcher::new("RU", &s).unwrap();
        assert_eq!(
            m.classify("89161234567"),
            Caller::NotANumber(PhoneError::UnexpectedCharacter('x'))
        );
    }
}
