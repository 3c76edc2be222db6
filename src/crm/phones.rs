//! Phone numbers as Ringside stores and compares them: parsed once at the edge
//! into E.164 (`+79161234567`), with the configured default region for numbers
//! written the national way (`8 916 123-45-67`, `030 123456`).
//!
//! Owns the text → number step only: cleaning what a PBX or a person typed
//! ([`Dialled`]), the library-backed [`PhoneNormalizer`], and the packed
//! [`PhoneKey`] the caller index is keyed by. Classification of callers lives
//! in `crm::caller`, the index in `crm::index`.
//!
//! The `phonenumber` crate (pinned: the fast path and the fixes below are
//! checked against its exact behaviour) keeps its metadata in one process-wide
//! table decoded on first use, about 2 MB and 60 ms; [`PhoneNormalizer::new`]
//! forces that load so no caller pays for it. Every regular expression the
//! library runs goes through one mutex-guarded cache of 100 patterns, so its
//! calls serialize across threads and cost microseconds. The caller index
//! therefore uses [`PhoneNormalizer::fast_key`] and [`CodeRules`] (the
//! library's own validity patterns, compiled once) and falls back to the
//! library only for shapes they do not cover.

use std::fmt;

use phonenumber::country;

/// E.164 has at most 15 digits; with an international prefix (`810`, `011`)
/// and a `+` a real number never needs more than this many cleaned bytes.
const MAX_DIALLED: usize = 24;

/// Raw input longer than this is rejected before it is looked at; room for a
/// long display name and SIP URI, far below anything costly to scan.
pub(crate) const MAX_RAW_BYTES: usize = 512;

/// A number in E.164 form, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct E164(String);

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes back a number this crate wrote to the database, checking only
    /// its shape (`+`, 1..=15 digits, not starting with `0`).
    ///
    /// For loading the caller index at start: every stored number went
    /// through [`PhoneNormalizer::normalize`] when it was written, and the
    /// library would cost microseconds per number (seconds for millions).
    pub fn from_stored(stored: &str) -> Result<E164, PhoneError> {
        match stored.as_bytes() {
            [b'+', digits @ ..] if PhoneKey::from_digits(digits).is_some() => {
                Ok(E164(stored.to_owned()))
            }
            _ => Err(PhoneError::NotANumber(stored.to_owned())),
        }
    }

    /// The number as people write it, grouped the way its country does:
    /// `+7 916 123-45-67`, `+49 30 123456`; the bare E.164 form when the
    /// library does not know how to group it.
    pub fn international(&self) -> String {
        phonenumber::parse(None, &self.0)
            .ok()
            .filter(phonenumber::is_valid)
            .map(|n| {
                n.format()
                    .mode(phonenumber::Mode::International)
                    .to_string()
            })
            .unwrap_or_else(|| self.0.clone())
    }

    /// The packed form the caller index uses.
    pub fn key(&self) -> PhoneKey {
        // Valid by construction: `+` then 1..=15 digits, the first not `0`.
        let value = self.0[1..]
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        PhoneKey(value)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The digits of an E.164 number packed into a `u64` (15 digits < 2⁵⁰).
///
/// E.164 numbers never start with `0`, so the integer is unambiguous. Only
/// keys that came from a valid [`E164`] are ever stored in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneKey(u64);

impl PhoneKey {
    pub fn get(self) -> u64 {
        self.0
    }

    /// Rebuilds a key the index stored (it came from [`E164::key`]).
    pub(crate) fn from_u64(value: u64) -> PhoneKey {
        PhoneKey(value)
    }

    /// The number this key stands for, written `+DIGITS`.
    pub fn to_e164_string(self) -> String {
        format!("+{}", self.0)
    }

    /// Packs 1..=15 ASCII digits not starting with `0`.
    fn from_digits(digits: &[u8]) -> Option<PhoneKey> {
        if digits.is_empty() || digits.len() > 15 || digits[0] == b'0' {
            return None;
        }
        let mut value = 0u64;
        for &b in digits {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u64::from(b - b'0');
        }
        Some(PhoneKey(value))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the number is empty")]
    Empty,
    #[error("the number is too long")]
    TooLong,
    #[error("the number contains a control character")]
    ControlCharacter,
    #[error("the number contains the non-ASCII digit `{0}`; write it with 0-9")]
    NonAsciiDigit(char),
    #[error("the number contains `{0}`, which is not part of a phone number")]
    UnexpectedCharacter(char),
    #[error("`{0}` is not a phone number")]
    NotANumber(String),
}

/// A raw number reduced to what matters for parsing: an optional leading `+`
/// and ASCII digits, at most 24 bytes, kept on the stack.
///
/// Accepts what PBXes and people write: `tel:` and `sip:`/`sips:` URIs (the
/// user part is taken; `;` parameters are dropped), a display name with the
/// URI in angle brackets, and the separators space (any Unicode white space),
/// `-`, `‐`…`―`, `(`, `)`, `.`, `/`. Rejected, each with its own error:
/// control characters, digits from other scripts (`٣`, `９` — deliberately not
/// converted: no PBX sends them and a card should not silently store them),
/// letters and other symbols, anything over 512 bytes before cleaning or
/// over 24 characters after it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dialled {
    buf: [u8; MAX_DIALLED],
    len: u8,
}

impl fmt::Debug for Dialled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dialled({:?})", self.as_str())
    }
}

impl Dialled {
    pub fn parse(raw: &str) -> Result<Dialled, PhoneError> {
        if raw.len() > MAX_RAW_BYTES {
            return Err(PhoneError::TooLong);
        }
        let s = user_part(raw.trim());
        if s.chars().any(|c| c.is_control()) {
            return Err(PhoneError::ControlCharacter);
        }
        let mut out = Dialled {
            buf: [0; MAX_DIALLED],
            len: 0,
        };
        for c in s.chars() {
            match c {
                '0'..='9' => out.push(c as u8)?,
                '+' if out.len == 0 => out.push(b'+')?,
                '-' | '(' | ')' | '.' | '/' | '\u{2010}'..='\u{2015}' => {}
                c if c.is_whitespace() => {}
                c if c.is_numeric() => return Err(PhoneError::NonAsciiDigit(c)),
                c => return Err(PhoneError::UnexpectedCharacter(c)),
            }
        }
        if out.digits().is_empty() {
            return Err(if out.len == 0 {
                PhoneError::Empty
            } else {
                PhoneError::NotANumber(raw.to_owned())
            });
        }
        Ok(out)
    }

    fn push(&mut self, b: u8) -> Result<(), PhoneError> {
        let i = usize::from(self.len);
        if i == MAX_DIALLED {
            return Err(PhoneError::TooLong);
        }
        self.buf[i] = b;
        self.len += 1;
        Ok(())
    }

    /// `+` (when present) and the digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever pushed.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Whether the number was written with a leading `+`.
    pub fn has_plus(&self) -> bool {
        self.len > 0 && self.buf[0] == b'+'
    }

    /// The digits without the `+`.
    pub fn digits(&self) -> &[u8] {
        let start = usize::from(self.has_plus());
        &self.buf[start..usize::from(self.len)]
    }
}

/// The user part of a `tel:`/`sip:`/`sips:` URI, possibly inside `"Name" <…>`;
/// anything else is returned as is.
fn user_part(s: &str) -> &str {
    let mut s = s;
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>'))
        && open < close
    {
        s = s[open + 1..close].trim();
    }
    let mut uri = false;
    for scheme in ["tel:", "sip:", "sips:"] {
        if s.len() >= scheme.len()
            && s.is_char_boundary(scheme.len())
            && s[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            s = &s[scheme.len()..];
            uri = true;
            break;
        }
    }
    if uri {
        if let Some(at) = s.find('@') {
            s = &s[..at];
        }
        if let Some(semi) = s.find(';') {
            s = &s[..semi];
        }
    }
    s
}

/// How the number was written once international prefixes are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form<'a> {
    /// Country code first: written with `+`, `00`, or the region's own
    /// international prefix (`810` in RU, `011` in US/CA).
    International(&'a [u8]),
    /// Anything else: to be read with the default region's rules.
    National(&'a [u8]),
}

/// What the fast path knows about a region's numbering plan.
#[derive(Debug, Clone, Copy)]
struct Plan {
    country_code: &'static [u8],
    national_prefix: u8,
    /// Length of a national significant number when the plan is closed
    /// (every number has it); `None` for open plans such as Germany's.
    fixed_len: Option<usize>,
    /// International prefix other than `00`, if any.
    intl_prefix: Option<&'static [u8]>,
}

/// Parses with the library; `Some` only for a valid number without extension
/// whose E.164 form the index can pack.
fn library(region: Option<country::Id>, prefix: &str, digits: &[u8]) -> Option<E164> {
    let text = format!("{prefix}{}", std::str::from_utf8(digits).ok()?);
    let parsed = phonenumber::parse(region, text).ok()?;
    if parsed.extension().is_some() || !phonenumber::is_valid(&parsed) {
        return None;
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    PhoneKey::from_digits(e164.as_bytes().get(1..)?)?;
    Some(E164(e164))
}

/// Checks `digits` (country code first, no prefixes) against the metadata
/// exactly as written, without the library's prefix stripping.
///
/// The library offers no constructor for a number, but its `PhoneNumber` is
/// `Deserialize`; the representation is fixed by the pinned version and
/// covered by `exact_numbers_bypass_the_prefix_stripping`.
fn exact_international(digits: &[u8]) -> Option<E164> {
    let key = PhoneKey::from_digits(digits)?;
    let number = library_number(digits)?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    (e164 == key.to_e164_string()).then_some(E164(e164))
}

/// The library's number for `digits` (country code first), split at the
/// country code as written; `None` for an unknown country code.
pub(crate) fn library_number(digits: &[u8]) -> Option<phonenumber::PhoneNumber> {
    let text = std::str::from_utf8(digits).ok()?;
    let (code, national) = (1..=3.min(text.len() - 1)).find_map(|k| {
        let code: u16 = text[..k].parse().ok()?;
        phonenumber::metadata::DATABASE
            .region(&code)
            .map(|_| (code, &text[k..]))
    })?;
    let zeros = national.bytes().take_while(|&b| b == b'0').count();
    let value: u64 = national[zeros..].parse().ok()?;
    serde_json::from_value(serde_json::json!({
        "code": { "value": code, "source": "plus" },
        "national": { "value": ((zeros as u64) << 56) | value },
        "extension": null,
        "carrier": null,
    }))
    .ok()
}

/// The library's validity test (`is_valid`: pick the region by leading
/// digits, then the general pattern and one number-type pattern must match
/// at the start, with a possible length) for one country code, on regexes
/// compiled from the library's own metadata. The library runs the same
/// patterns through one mutex-guarded cache of 100 entries shared by all
/// threads, which makes every unknown caller wait on every other.
#[derive(Debug)]
pub struct CodeRules {
    code_digits: String,
    regions: Vec<RegionRules>,
}

#[derive(Debug)]
struct RegionRules {
    leading: Option<regex::Regex>,
    general: Pattern,
    types: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    regex: regex::Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn compile(d: &phonenumber::metadata::Descriptor) -> Option<Pattern> {
        Some(Pattern {
            regex: anchored(d.national_number().as_str())?,
            lengths: d.possible_length().to_vec(),
        })
    }

    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.regex.is_match(national)
    }
}

/// A metadata pattern that must match at the start (the library's
/// `find(..).start() == 0`).
fn anchored(source: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(&format!("^(?:{source})"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

impl CodeRules {
    /// The rules for `code`, compiled on first use and shared afterwards.
    pub fn shared(code: u16) -> Option<std::sync::Arc<CodeRules>> {
        type Compiled = std::collections::HashMap<u16, Option<std::sync::Arc<CodeRules>>>;
        static COMPILED: std::sync::LazyLock<std::sync::RwLock<Compiled>> =
            std::sync::LazyLock::new(Default::default);
        if let Some(rules) = COMPILED
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&code)
        {
            return rules.clone();
        }
        COMPILED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_insert_with(|| CodeRules::compile(code).map(std::sync::Arc::new))
            .clone()
    }

    fn compile(code: u16) -> Option<CodeRules> {
        let db = &phonenumber::metadata::DATABASE;
        let regions = db
            .region(&code)?
            .into_iter()
            .map(|id| {
                let meta = db.by_id(id)?;
                let d = meta.descriptors();
                Some(RegionRules {
                    leading: match meta.leading_digits() {
                        Some(re) => Some(anchored(re.as_str())?),
                        None => None,
                    },
                    general: Pattern::compile(d.general())?,
                    types: [
                        d.premium_rate(),
                        d.toll_free(),
                        d.shared_cost(),
                        d.voip(),
                        d.personal_number(),
                        d.pager(),
                        d.uan(),
                        d.voicemail(),
                        d.fixed_line(),
                        d.mobile(),
                    ]
                    .into_iter()
                    .flatten()
                    .map(Pattern::compile)
                    .collect::<Option<Vec<_>>>()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        if regions.len() == 1 && db.region(&code)?.first() == Some(&"001") {
            return None;
        }
        Some(CodeRules {
            code_digits: code.to_string(),
            regions,
        })
    }

    /// Whether `national` (digits after the country code) is a valid number.
    pub fn is_valid(&self, national: &str) -> bool {
        let region = match self.regions.as_slice() {
            [one] => Some(one),
            all => all.iter().find(|r| match &r.leading {
                Some(leading) => leading.is_match(national),
                None => r.number_type_known(national),
            }),
        };
        region.is_some_and(|r| r.number_type_known(national))
    }
}

impl RegionRules {
    fn number_type_known(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

fn plan_for(region: country::Id) -> Option<Plan> {
    use country::Id;
    let plan = |country_code, national_prefix, fixed_len, intl_prefix| Plan {
        country_code,
        national_prefix,
        fixed_len,
        intl_prefix,
    };
    Some(match region {
        Id::RU => plan(b"7", b'8', Some(10), Some(&b"810"[..])),
        Id::UA => plan(b"380", b'0', Some(9), None),
        Id::DE => plan(b"49", b'0', None, None),
        Id::GB => plan(b"44", b'0', None, None),
        Id::US | Id::CA => plan(b"1", b'1', Some(10), Some(&b"011"[..])),
        _ => return None,
    })
}

/// Normalizes raw numbers for one default region.
#[derive(Debug, Clone)]
pub struct PhoneNormalizer {
    region: country::Id,
    plan: Option<Plan>,
    /// The library's validity rules for the default region's country code,
    /// compiled once (see [`CodeRules`]).
    rules: Option<std::sync::Arc<CodeRules>>,
}

impl PhoneNormalizer {
    /// `region` must be a valid ISO 3166 code (checked by the config loader).
    ///
    /// Forces the library's metadata table to load, so the first caller after
    /// start does not pay for it.
    pub fn new(region: &str) -> Result<Self, PhoneError> {
        let region: country::Id = region
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| PhoneError::NotANumber(region.to_owned()))?;
        let _ = phonenumber::metadata::DATABASE.by_id(region.as_ref());
        let plan = plan_for(region);
        let rules = plan
            .and_then(|p| std::str::from_utf8(p.country_code).ok()?.parse().ok())
            .and_then(CodeRules::shared);
        Ok(Self {
            region,
            plan,
            rules,
        })
    }

    /// The default region, e.g. `RU`.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// Parses a raw number; the only way an [`E164`] is made.
    pub fn normalize(&self, raw: &str) -> Result<E164, PhoneError> {
        self.normalize_dialled(&Dialled::parse(raw)?)
            .map_err(|e| match e {
                PhoneError::NotANumber(_) => PhoneError::NotANumber(raw.to_owned()),
                e => e,
            })
    }

    /// [`PhoneNormalizer::normalize`] for an already cleaned number.
    ///
    /// The library (0.3.10) strips the national prefix even where it is the
    /// first digit of the area code — `+7 812 …` (St Petersburg), `+7 800 …`,
    /// every Russian `8xx` code — and then calls the number invalid. So a
    /// number whose country code is known (written internationally, or
    /// national with its trunk prefix or bare in RU, UA, DE, GB, US/CA) is
    /// first checked digit for digit against the metadata as written; the
    /// library's own parser handles everything else.
    pub fn normalize_dialled(&self, dialled: &Dialled) -> Result<E164, PhoneError> {
        let found = match self.form(dialled) {
            Form::International(digits) => {
                exact_international(digits).or_else(|| library(None, "+", digits))
            }
            Form::National(digits) => {
                let plan = self.plan;
                plan.and_then(|p| match digits {
                    [first, rest @ ..] if *first == p.national_prefix => {
                        exact_international(&[p.country_code, rest].concat())
                    }
                    // A closed plan's number with its country code but no `+`.
                    _ if p.fixed_len.map(|n| n + p.country_code.len()) == Some(digits.len())
                        && digits.starts_with(p.country_code) =>
                    {
                        exact_international(digits)
                    }
                    _ => None,
                })
                .or_else(|| library(Some(self.region), "", digits))
                .or_else(|| {
                    plan.and_then(|p| exact_international(&[p.country_code, digits].concat()))
                })
            }
        };
        found.ok_or_else(|| PhoneError::NotANumber(dialled.as_str().to_owned()))
    }

    /// The number for a fast-path `key` that is valid, decided without the
    /// library's global lock. `None` when it is invalid or its country code
    /// has no compiled rules (non-geographic codes): ask the library.
    ///
    /// A key outside the default country code can only come from a number
    /// written internationally; such a country's rules are compiled on its
    /// first caller (a few milliseconds, once per process).
    ///
    /// Agrees with [`PhoneNormalizer::normalize_dialled`] because a valid
    /// fast-path key is what the library reads (`fast_key_agrees_with_library`)
    /// and [`CodeRules`] is the library's validity test
    /// (`code_rules_agree_with_library`).
    pub fn known_valid(&self, key: PhoneKey) -> Option<E164> {
        let digits = key.get().to_string();
        let (rules, national) = match &self.rules {
            Some(rules) if digits.starts_with(rules.code_digits.as_str()) => {
                (rules.clone(), &digits[rules.code_digits.len()..])
            }
            _ => (1..=3.min(digits.len() - 1)).find_map(|k| {
                let code: u16 = digits[..k].parse().ok()?;
                phonenumber::metadata::DATABASE.region(&code)?;
                Some((CodeRules::shared(code)?, &digits[k..]))
            })?,
        };
        rules.is_valid(national).then(|| E164(key.to_e164_string()))
    }

    /// Splits off an international prefix: `+`, `00`, and the region's own
    /// (`810` for RU, `011` for US/CA).
    pub fn form<'a>(&self, dialled: &'a Dialled) -> Form<'a> {
        let digits = dialled.digits();
        if dialled.has_plus() {
            return Form::International(digits);
        }
        if let Some(rest) = digits.strip_prefix(b"00") {
            return Form::International(rest);
        }
        if let Some(prefix) = self.plan.and_then(|p| p.intl_prefix)
            && let Some(rest) = digits.strip_prefix(prefix)
        {
            return Form::International(rest);
        }
        Form::National(digits)
    }

    /// The key the library would give for the common shapes in the default
    /// region, computed without the library (tens of nanoseconds instead of
    /// microseconds and a global lock).
    ///
    /// This is a candidate, not a verdict: it is only to be trusted when it is
    /// found among keys that came from valid [`E164`] numbers (the index, the
    /// company's own numbers). The property test `fast_key_agrees_with_library`
    /// checks that whenever the candidate is a valid number, the library reads
    /// the same input as that very number. `None` means "ask the library".
    ///
    /// Shapes: `+CC…` / `00CC…` / region prefix (all as written); the national
    /// prefix followed by the national number (`8 916…`, `0 30…`, `1 212…`);
    /// in closed plans (RU, UA, US/CA) the bare national number (`916…`) and
    /// the country code glued to it (`7916…`, `380…`, `1212…`).
    pub fn fast_key(&self, dialled: &Dialled) -> Option<PhoneKey> {
        match self.form(dialled) {
            Form::International(digits) => PhoneKey::from_digits(digits),
            Form::National(digits) => {
                let plan = self.plan?;
                let cc = plan.country_code;
                let with_cc = |nsn: &[u8]| -> Option<PhoneKey> {
                    let mut buf = [0u8; 16];
                    let len = cc.len() + nsn.len();
                    if len > 15 {
                        return None;
                    }
                    buf[..cc.len()].copy_from_slice(cc);
                    buf[cc.len()..len].copy_from_slice(nsn);
                    PhoneKey::from_digits(&buf[..len])
                };
                match plan.fixed_len {
                    Some(n) => {
                        if digits.len() == n + 1 && digits[0] == plan.national_prefix {
                            with_cc(&digits[1..])
                        } else if digits.len() == n && !digits.starts_with(cc) {
                            // A bare number that begins like the country code
                            // is read by the library as country code first.
                            with_cc(digits)
                        } else if digits.len() == n + cc.len() && digits.starts_with(cc) {
                            PhoneKey::from_digits(digits)
                        } else {
                            None
                        }
                    }
                    None => match digits {
                        [p, nsn @ ..]
                            if *p == plan.national_prefix
                                && nsn.len() >= 5
                                && nsn.first() != Some(&b'0') =>
                        {
                            with_cc(nsn)
                        }
                        _ => None,
                    },
                }
            }
        }
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
            "tel:+7-916-123-45-67;phone-context=example.com",
            "sip:+79161234567@pbx.local",
            "sips:89161234567@pbx.local;user=phone",
            "\"Ivan\" <sip:+79161234567@10.0.0.1>",
            "\"Romashka LLC, Accounts Department, Moscow office\" \
             <sip:+79161234567@trunk-01.provider.example.com:5061;transport=tls;user=phone>",
            "8.916.123.45.67",
            "8/916/1234567",
            "8\u{a0}916\u{a0}123\u{2011}45\u{2011}67",
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
        let us = PhoneNormalizer::new("US").unwrap();
        assert_eq!(
            us.normalize("011 49 30 1234567").unwrap().as_str(),
            "+49301234567"
        );
    }

    #[test]
    fn garbage_is_an_error_that_says_why() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        let cases: [(&str, PhoneError); 8] = [
            ("", PhoneError::Empty),
            ("  ", PhoneError::Empty),
            ("+", PhoneError::NotANumber("+".into())),
            ("9161\u{0}234567", PhoneError::ControlCharacter),
            ("8916\u{1b}1234567", PhoneError::ControlCharacter),
            ("８９１６１２３４５６７", PhoneError::NonAsciiDigit('８')),
            ("8916abc4567", PhoneError::UnexpectedCharacter('a')),
            (
                "+7 916 123 45 67 ext 5",
                PhoneError::UnexpectedCharacter('e'),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(ru.normalize(raw), Err(want), "{raw:?}");
        }
        assert_eq!(ru.normalize(&"1".repeat(200)), Err(PhoneError::TooLong));
        assert_eq!(ru.normalize(&"1".repeat(30)), Err(PhoneError::TooLong));
        assert!(matches!(
            ru.normalize("12345"),
            Err(PhoneError::NotANumber(_))
        ));
    }

    #[test]
    fn exact_numbers_bypass_the_prefix_stripping() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        for (raw, want) in [
            ("+7 812 333-44-55", "+78123334455"),
            ("8 (812) 333-44-55", "+78123334455"),
            ("8123334455", "+78123334455"),
            ("8 800 123-45-67", "+78001234567"),
            ("+7 843 123-45-67", "+78431234567"),
        ] {
            assert_eq!(ru.normalize(raw).map(|e| e.0), Ok(want.to_owned()), "{raw}");
        }
        assert_eq!(
            exact_international(b"390612345678").map(|e| e.0),
            Some("+390612345678".to_owned()),
            "Italian numbers keep their leading zero"
        );
        assert_eq!(exact_international(b"490301234567"), None);
        let de = PhoneNormalizer::new("DE").unwrap();
        assert_eq!(
            de.normalize("+49 (0)30 1234567").map(|e| e.0),
            Ok("+49301234567".to_owned())
        );
    }

    #[test]
    fn keys_pack_and_unpack() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        let e = ru.normalize("89161234567").unwrap();
        assert_eq!(e.key().get(), 79_161_234_567);
        assert_eq!(e.key().to_e164_string(), "+79161234567");
        assert_eq!(E164::from_stored("+79161234567"), Ok(e));
        assert!(E164::from_stored("79161234567").is_err());
        assert!(E164::from_stored("+0123").is_err());
        assert!(E164::from_stored("+7916123456789012").is_err());
        assert_eq!(PhoneKey::from_digits(b"0123"), None);
        assert_eq!(PhoneKey::from_digits(b"1234567890123456"), None);
    }

    #[test]
    fn fast_key_covers_common_shapes() {
        let ru = PhoneNormalizer::new("RU").unwrap();
        for raw in ["89161234567", "79161234567", "9161234567", "+79161234567"] {
            let d = Dialled::parse(raw).unwrap();
            assert_eq!(ru.fast_key(&d), Some(PhoneKey(79_161_234_567)), "{raw}");
        }
        let de = PhoneNormalizer::new("DE").unwrap();
        let d = Dialled::parse("030 123456").unwrap();
        assert_eq!(de.fast_key(&d), Some(PhoneKey(4_930_123_456)));
        let d = Dialled::parse("30 123456").unwrap();
        assert_eq!(de.fast_key(&d), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const REGIONS: [&str; 6] = ["RU", "UA", "DE", "US", "CA", "GB"];

    /// Prefixes that make the fast path take each of its branches.
    const PREFIXES: [&str; 12] = [
        "", "+", "00", "8", "0", "1", "7", "380", "49", "44", "810", "011",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The compiled rules say "valid" exactly when the library does.
        #[test]
        fn code_rules_agree_with_library(
            code in prop::sample::select(&[7u16, 380, 49, 1, 44, 39, 33, 48, 375, 86][..]),
            lead in "[0-9]",
            rest in "[0-9]{3,12}",
        ) {
            let rules = CodeRules::shared(code).unwrap();
            let national = format!("{lead}{rest}");
            let digits = format!("{code}{national}");
            prop_assert_eq!(
                rules.is_valid(&national),
                exact_international(digits.as_bytes()).is_some(),
                "+{}", digits
            );
        }

        /// Whenever the fast path's candidate is a valid number, the library
        /// reads the same input as exactly that number. This is what lets the
        /// index trust a fast-path key it finds.
        #[test]
        fn fast_key_agrees_with_library(
            region in prop::sample::select(&REGIONS[..]),
            prefix in prop::sample::select(&PREFIXES[..]),
            lead in "[1-9]",
            rest in "[0-9]{3,13}",
        ) {
            let n = PhoneNormalizer::new(region).unwrap();
            let raw = format!("{prefix}{lead}{rest}");
            let Ok(dialled) = Dialled::parse(&raw) else { return Ok(()) };
            if let Some(key) = n.fast_key(&dialled) {
                let candidate = key.to_e164_string();
                if n.normalize(&candidate).ok().map(|e| e.key()) == Some(key) {
                    let library = n.normalize_dialled(&dialled);
                    prop_assert_eq!(
                        library.as_ref().map(E164::as_str),
                        Ok(candidate.as_str()),
                        "{} in {}", raw, region
                    );
                }
            }
        }
    }
}
