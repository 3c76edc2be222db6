//! The in-memory caller index: which contacts, companies and leads own each
//! E.164 number, so a ringing call finds its card in microseconds.
//!
//! Owns the number → party map only. The database keeps the truth; the index
//! is built from it at start ([`CallerIndex::build`]) and kept current by the
//! store layer on every write ([`CallerIndex::set_party_numbers`],
//! [`CallerIndex::insert`], [`CallerIndex::remove`],
//! [`CallerIndex::remove_party`]). Classifying the raw caller is `crm::caller`.
//!
//! # Ranking when several parties share a number
//!
//! Contacts outrank companies, companies outrank leads: a person's card beats
//! their company's switchboard, and a lead is shown only when no contact or
//! company has the number. Within the top kind present, one owner is an
//! [`Lookup::Exact`] match and several are [`Lookup::Candidates`] (all of them,
//! ordered by id) — the index never picks one silently. Lower kinds are not
//! listed beside higher ones.
//!
//! # Layout and concurrency
//!
//! The key is the E.164 digits packed into a `u64` ([`PhoneKey`]); the value
//! is one `u64` holding the party kind in its top two bits and the id below,
//! or a marker that sends the rare shared number to a side table. A reverse
//! map (party → its numbers, two inline) makes `remove_party` exact without a
//! scan. About 62 bytes per number at 2 M numbers (measured by the
//! `caller_index` benchmark).
//!
//! Lookups vastly outnumber writes and every write touches one or two map
//! entries, so a single `RwLock` fits: readers share it with one atomic
//! operation, a writer holds it for well under a microsecond. A copy-on-write
//! design (arc-swap) would copy tens of megabytes per contact edit. A full
//! rebuild is prepared outside the lock and swapped in ([`CallerIndex::replace_all`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

use crate::crm::caller::{Caller, Matcher, Prepared, Withheld};
use crate::crm::phones::{E164, PhoneError, PhoneKey};

/// Who owns a number on the CRM side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Party {
    Contact(i64),
    Company(i64),
    Lead(i64),
}

impl Party {
    pub fn id(self) -> i64 {
        match self {
            Party::Contact(id) | Party::Company(id) | Party::Lead(id) => id,
        }
    }

    /// 0 ranks first.
    fn rank(self) -> u8 {
        match self {
            Party::Contact(_) => 0,
            Party::Company(_) => 1,
            Party::Lead(_) => 2,
        }
    }

    fn pack(self) -> Result<u64, IndexError> {
        let id = u64::try_from(self.id()).map_err(|_| IndexError::PartyId(self))?;
        if id > ID_MASK {
            return Err(IndexError::PartyId(self));
        }
        Ok((u64::from(self.rank()) << 62) | id)
    }

    fn unpack(value: u64) -> Option<Party> {
        // Ids are at most 2^62 - 1, so they fit an i64.
        let id = (value & ID_MASK) as i64;
        match value >> 62 {
            0 => Some(Party::Contact(id)),
            1 => Some(Party::Company(id)),
            2 => Some(Party::Lead(id)),
            _ => None,
        }
    }
}

const ID_MASK: u64 = (1 << 62) - 1;
/// Value marking a number with several owners (listed in `shared`).
const SHARED: u64 = 3 << 62;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("{0:?}: ids must be between 0 and 2^62 - 1")]
    PartyId(Party),
}

/// Why a call has no card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// The caller withheld the number.
    Withheld(Withheld),
    /// An internal extension.
    Internal(String),
    /// One of the company's own numbers.
    OwnNumber(E164),
    /// Not a phone number.
    NotANumber(PhoneError),
    /// A valid number nobody in the CRM has: a new lead.
    Unknown(E164),
}

impl NoMatch {
    /// Stable machine-readable reason for the API.
    pub fn code(&self) -> &'static str {
        match self {
            NoMatch::Withheld(_) => "anonymous",
            NoMatch::Internal(_) => "internal",
            NoMatch::OwnNumber(_) => "own_number",
            NoMatch::NotANumber(_) => "not_a_number",
            NoMatch::Unknown(_) => "unknown",
        }
    }

    /// Human-readable detail, e.g. "restricted" or the parse error.
    pub fn detail(&self) -> String {
        match self {
            NoMatch::Withheld(w) => w.as_str().to_owned(),
            NoMatch::Internal(ext) => format!("extension {ext}"),
            NoMatch::OwnNumber(e) => format!("{e} is one of our own numbers"),
            NoMatch::NotANumber(err) => err.to_string(),
            NoMatch::Unknown(e) => format!("no card has {e}"),
        }
    }

    /// The caller's E.164 number, when there is one.
    pub fn number(&self) -> Option<&E164> {
        match self {
            NoMatch::OwnNumber(e) | NoMatch::Unknown(e) => Some(e),
            _ => None,
        }
    }
}

/// The answer to "whose card is this call?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Exactly one party of the best-ranked kind has the number.
    Exact(Party),
    /// Several parties of the best-ranked kind share it; ordered by id.
    Candidates(Vec<Party>),
    /// No card, and why.
    None { reason: NoMatch },
}

impl Lookup {
    /// The API's `match` field: `exact`, `candidates` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Lookup::Exact(_) => "exact",
            Lookup::Candidates(_) => "candidates",
            Lookup::None { .. } => "none",
        }
    }

    /// Every party the answer names (one for `Exact`, none for `None`).
    pub fn parties(&self) -> &[Party] {
        match self {
            Lookup::Exact(p) => std::slice::from_ref(p),
            Lookup::Candidates(ps) => ps,
            Lookup::None { .. } => &[],
        }
    }
}

/// Up to two numbers inline per party; more spill to a side table.
#[derive(Debug, Clone, Copy, Default)]
struct Owned {
    first: u64,
    second: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Number → packed party, or `SHARED`.
    primary: HashMap<u64, u64, KeyHash>,
    /// Numbers with more than one owner; sorted, at least two entries.
    shared: HashMap<u64, Vec<Party>, KeyHash>,
    /// Packed party → its first two numbers (0 = none).
    by_party: HashMap<u64, Owned, KeyHash>,
    /// Packed party → its numbers beyond the second.
    by_party_more: HashMap<u64, Vec<u64>, KeyHash>,
}

impl Inner {
    fn with_capacity(numbers: usize) -> Inner {
        Inner {
            primary: HashMap::with_capacity_and_hasher(numbers, KeyHash::default()),
            shared: HashMap::default(),
            by_party: HashMap::with_capacity_and_hasher(numbers / 2, KeyHash::default()),
            by_party_more: HashMap::default(),
        }
    }

    fn insert(&mut self, key: PhoneKey, party: Party) -> Result<bool, IndexError> {
        let packed = party.pack()?;
        let key = key.get();
        match self.primary.get(&key).copied() {
            None => {
                self.primary.insert(key, packed);
            }
            Some(v) if v == packed => return Ok(false),
            Some(SHARED) => {
                let owners = self.shared.entry(key).or_default();
                match owners.binary_search(&party) {
                    Ok(_) => return Ok(false),
                    Err(at) => owners.insert(at, party),
                }
            }
            Some(v) => {
                let Some(other) = Party::unpack(v) else {
                    return Ok(false);
                };
                let mut owners = vec![other, party];
                owners.sort_unstable();
                self.shared.insert(key, owners);
                self.primary.insert(key, SHARED);
            }
        }
        let owned = self.by_party.entry(packed).or_default();
        if owned.first == 0 {
            owned.first = key;
        } else if owned.second == 0 {
            owned.second = key;
        } else {
            self.by_party_more.entry(packed).or_default().push(key);
        }
        Ok(true)
    }

    fn remove(&mut self, key: PhoneKey, party: Party) -> bool {
        let Ok(packed) = party.pack() else {
            return false;
        };
        let key = key.get();
        match self.primary.get(&key).copied() {
            Some(v) if v == packed => {
                self.primary.remove(&key);
            }
            Some(SHARED) => {
                let Some(owners) = self.shared.get_mut(&key) else {
                    return false;
                };
                let Ok(at) = owners.binary_search(&party) else {
                    return false;
                };
                owners.remove(at);
                if owners.len() == 1 {
                    let last = owners[0];
                    self.shared.remove(&key);
                    if let Ok(v) = last.pack() {
                        self.primary.insert(key, v);
                    }
                }
            }
            _ => return false,
        }
        self.forget_number(packed, key);
        true
    }

    /// Drops `key` from the reverse map of `packed`.
    fn forget_number(&mut self, packed: u64, key: u64) {
        let more = self.by_party_more.get_mut(&packed);
        let refill = match more {
            Some(more) => {
                if let Some(at) = more.iter().position(|&k| k == key) {
                    more.swap_remove(at);
                    None
                } else {
                    more.pop()
                }
            }
            None => None,
        };
        if self
            .by_party_more
            .get(&packed)
            .is_some_and(|more| more.is_empty())
        {
            self.by_party_more.remove(&packed);
        }
        if let Some(owned) = self.by_party.get_mut(&packed) {
            if owned.first == key {
                owned.first = owned.second;
                owned.second = refill.unwrap_or(0);
            } else if owned.second == key {
                owned.second = refill.unwrap_or(0);
            }
            if owned.first == 0 {
                self.by_party.remove(&packed);
            }
        }
    }

    fn numbers_of(&self, packed: u64) -> Vec<u64> {
        let mut keys = Vec::new();
        if let Some(owned) = self.by_party.get(&packed) {
            keys.extend([owned.first, owned.second].into_iter().filter(|&k| k != 0));
        }
        if let Some(more) = self.by_party_more.get(&packed) {
            keys.extend_from_slice(more);
        }
        keys
    }

    fn lookup(&self, key: PhoneKey) -> Option<Lookup> {
        let value = *self.primary.get(&key.get())?;
        if value != SHARED {
            return Party::unpack(value).map(Lookup::Exact);
        }
        let owners = self.shared.get(&key.get())?;
        let best = owners.iter().map(|p| p.rank()).min()?;
        let top: Vec<Party> = owners
            .iter()
            .copied()
            .filter(|p| p.rank() == best)
            .collect();
        Some(match top.as_slice() {
            [one] => Lookup::Exact(*one),
            _ => Lookup::Candidates(top),
        })
    }
}

/// Numbers → parties, shared by every task of the server (wrap in `Arc`).
#[derive(Debug, Default)]
pub struct CallerIndex {
    inner: RwLock<Inner>,
}

impl CallerIndex {
    pub fn new() -> CallerIndex {
        CallerIndex::default()
    }

    /// Builds the index from every (number, owner) pair in the database.
    /// Duplicate pairs are fine; an id outside 0..2^62 is an error.
    pub fn build(
        pairs: impl IntoIterator<Item = (E164, Party)>,
    ) -> Result<CallerIndex, IndexError> {
        Ok(CallerIndex {
            inner: RwLock::new(Self::fill(pairs)?),
        })
    }

    /// Replaces the whole content at once (built outside the lock).
    pub fn replace_all(
        &self,
        pairs: impl IntoIterator<Item = (E164, Party)>,
    ) -> Result<(), IndexError> {
        let fresh = Self::fill(pairs)?;
        *self.write() = fresh;
        Ok(())
    }

    fn fill(pairs: impl IntoIterator<Item = (E164, Party)>) -> Result<Inner, IndexError> {
        let pairs = pairs.into_iter();
        let mut inner = Inner::with_capacity(pairs.size_hint().0);
        for (number, party) in pairs {
            inner.insert(number.key(), party)?;
        }
        Ok(inner)
    }

    /// Gives `number` to `party` as well; `false` if it already had it.
    pub fn insert(&self, number: &E164, party: Party) -> Result<bool, IndexError> {
        self.write().insert(number.key(), party)
    }

    /// Takes `number` from `party`; `false` if it did not have it.
    pub fn remove(&self, number: &E164, party: Party) -> bool {
        self.write().remove(number.key(), party)
    }

    /// Drops every number of `party` (a deleted card); returns how many.
    pub fn remove_party(&self, party: Party) -> usize {
        let Ok(packed) = party.pack() else {
            return 0;
        };
        let mut inner = self.write();
        let keys = inner.numbers_of(packed);
        keys.iter()
            .filter(|&&k| inner.remove(PhoneKey::from_u64(k), party))
            .count()
    }

    /// Makes `numbers` the complete list of `party`'s numbers in one step
    /// (a saved card), so no reader sees a half-edited card.
    pub fn set_party_numbers<'a>(
        &self,
        party: Party,
        numbers: impl IntoIterator<Item = &'a E164>,
    ) -> Result<(), IndexError> {
        let packed = party.pack()?;
        let keys: Vec<PhoneKey> = numbers.into_iter().map(E164::key).collect();
        let mut inner = self.write();
        for old in inner.numbers_of(packed) {
            if !keys.iter().any(|k| k.get() == old) {
                inner.remove(PhoneKey::from_u64(old), party);
            }
        }
        for key in keys {
            inner.insert(key, party)?;
        }
        Ok(())
    }

    /// How many distinct numbers the index holds.
    pub fn len(&self) -> usize {
        self.read().primary.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The card(s) for a number already in E.164.
    pub fn lookup(&self, number: &E164) -> Lookup {
        self.read()
            .lookup(number.key())
            .unwrap_or_else(|| Lookup::None {
                reason: NoMatch::Unknown(number.clone()),
            })
    }

    /// The card(s) for a raw caller ID as the PBX sent it.
    ///
    /// Common shapes are resolved without the phone-number library (see
    /// `PhoneNormalizer::fast_key`); a fast-path key is only trusted when it
    /// is one of the company's own numbers, found in the index (which holds
    /// library-made keys only), or a valid number of the default country by
    /// the library's own rules (`PhoneNormalizer::known_valid`). Everything
    /// else goes through the library.
    pub fn lookup_raw(&self, raw: &str, matcher: &Matcher) -> Lookup {
        let dialled = match matcher.prepare(raw) {
            Prepared::Decided(caller) => return Self::no_card(caller),
            Prepared::Number { dialled, fast } => {
                if let Some(key) = fast {
                    if matcher.is_own(key)
                        && let Ok(e) = matcher.normalizer().normalize_dialled(&dialled)
                    {
                        return Lookup::None {
                            reason: NoMatch::OwnNumber(e),
                        };
                    }
                    if let Some(found) = self.read().lookup(key) {
                        return found;
                    }
                    if let Some(e) = matcher.normalizer().known_valid(key) {
                        return Lookup::None {
                            reason: NoMatch::Unknown(e),
                        };
                    }
                }
                dialled
            }
        };
        match matcher.resolve(&dialled) {
            Caller::Customer(e) => self.lookup(&e),
            other => Self::no_card(other),
        }
    }

    fn no_card(caller: Caller) -> Lookup {
        let reason = match caller {
            Caller::Withheld(w) => NoMatch::Withheld(w),
            Caller::Internal(ext) => NoMatch::Internal(ext),
            Caller::OwnNumber(e) => NoMatch::OwnNumber(e),
            Caller::NotANumber(err) => NoMatch::NotANumber(err),
            Caller::Customer(e) => NoMatch::Unknown(e),
        };
        Lookup::None { reason }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A writer that panicked left a consistent map (every write is a
        // handful of map operations); keep serving rather than failing calls.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hashes the packed keys with the 64-bit MurmurHash3 finalizer: a few
/// multiplications, full avalanche, so the map's low and high bits both mix.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

type KeyHash = BuildHasherDefault<KeyHasher>;

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PhoneSettings;

    fn e(s: &str) -> E164 {
        crate::crm::phones::PhoneNormalizer::new("RU")
            .unwrap()
            .normalize(s)
            .unwrap()
    }

    fn matcher() -> Matcher {
        Matcher::new(
            "RU",
            &PhoneSettings {
                own_numbers: vec!["+74951000000".into()],
                ..PhoneSettings::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn contacts_outrank_companies_and_companies_outrank_leads() {
        let office = e("+74957654321");
        let index = CallerIndex::build([
            (office.clone(), Party::Company(1)),
            (office.clone(), Party::Lead(9)),
            (e("+79161234567"), Party::Lead(9)),
        ])
        .unwrap();
        let m = matcher();
        assert_eq!(
            index.lookup_raw("84957654321", &m),
            Lookup::Exact(Party::Company(1))
        );
        assert_eq!(
            index.lookup_raw("+7 916 123 45 67", &m),
            Lookup::Exact(Party::Lead(9))
        );
        index.insert(&office, Party::Contact(7)).unwrap();
        assert_eq!(
            index.lookup_raw("84957654321", &m),
            Lookup::Exact(Party::Contact(7))
        );
        index.insert(&office, Party::Contact(3)).unwrap();
        let shared = index.lookup_raw("tel:+74957654321", &m);
        assert_eq!(
            shared,
            Lookup::Candidates(vec![Party::Contact(3), Party::Contact(7)])
        );
        assert_eq!(shared.kind(), "candidates");
        assert_eq!(shared.parties().len(), 2);
        assert!(index.remove(&office, Party::Contact(3)));
        assert!(index.remove(&office, Party::Contact(7)));
        assert_eq!(index.lookup(&office), Lookup::Exact(Party::Company(1)));
        assert!(index.remove(&office, Party::Company(1)));
        assert!(index.remove(&office, Party::Lead(9)));
        assert!(!index.remove(&office, Party::Lead(9)));
        assert_eq!(
            index.lookup(&office),
            Lookup::None {
                reason: NoMatch::Unknown(office.clone())
            }
        );
    }

    #[test]
    fn remove_party_drops_every_number_and_only_those() {
        let numbers: Vec<E164> = (0..5).map(|i| e(&format!("+7916123456{i}"))).collect();
        let index = CallerIndex::new();
        for n in &numbers {
            index.insert(n, Party::Contact(1)).unwrap();
        }
        index.insert(&numbers[4], Party::Contact(2)).unwrap();
        assert_eq!(index.len(), 5);
        assert_eq!(index.remove_party(Party::Contact(1)), 5);
        assert_eq!(index.len(), 1);
        assert_eq!(index.lookup(&numbers[4]), Lookup::Exact(Party::Contact(2)));
        assert_eq!(index.remove_party(Party::Contact(1)), 0);
    }

    #[test]
    fn set_party_numbers_replaces_the_list() {
        let (a, b, c) = (e("+79160000001"), e("+79160000002"), e("+79160000003"));
        let index = CallerIndex::build([(a.clone(), Party::Contact(1))]).unwrap();
        index
            .set_party_numbers(Party::Contact(1), [&b, &c])
            .unwrap();
        assert!(matches!(index.lookup(&a), Lookup::None { .. }));
        assert_eq!(index.lookup(&b), Lookup::Exact(Party::Contact(1)));
        assert_eq!(index.lookup(&c), Lookup::Exact(Party::Contact(1)));
        assert_eq!(index.remove_party(Party::Contact(1)), 2);
        assert!(index.is_empty());
    }

    #[test]
    fn every_kind_of_no_card_has_its_reason() {
        let index = CallerIndex::build([(e("+79161234567"), Party::Contact(1))]).unwrap();
        let m = matcher();
        let code = |raw: &str| match index.lookup_raw(raw, &m) {
            Lookup::None { reason } => reason.code(),
            other => panic!("{raw:?} matched {other:?}"),
        };
        assert_eq!(code("anonymous"), "anonymous");
        assert_eq!(code("204"), "internal");
        assert_eq!(code("8 495 100 00 00"), "own_number");
        assert_eq!(code("+7 916 000 00 00"), "unknown");
        assert_eq!(code("12 34 56"), "not_a_number");
        assert_eq!(code(&"9".repeat(200)), "not_a_number");
    }

    #[test]
    fn readers_see_whole_edits_while_a_writer_works() {
        let (a, b) = (e("+79160000001"), e("+79160000002"));
        let index = CallerIndex::build([(a.clone(), Party::Contact(1))]).unwrap();
        let m = matcher();
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..20_000 {
                            // The card keeps `a` through every edit; `b`
                            // comes and goes.
                            assert_eq!(
                                index.lookup_raw("89160000001", &m),
                                Lookup::Exact(Party::Contact(1))
                            );
                            let on_b = index.lookup_raw("89160000002", &m);
                            assert!(
                                matches!(
                                    on_b,
                                    Lookup::Exact(Party::Contact(1))
                                        | Lookup::None {
                                            reason: NoMatch::Unknown(_)
                                        }
                                ),
                                "{on_b:?}"
                            );
                        }
                    })
                })
                .collect();
            for i in 0..2_000 {
                let numbers = if i % 2 == 0 { vec![&a, &b] } else { vec![&a] };
                index.set_party_numbers(Party::Contact(1), numbers).unwrap();
            }
            for r in readers {
                r.join().unwrap();
            }
        });
        assert_eq!(index.len(), 1);
        assert_eq!(index.lookup(&a), Lookup::Exact(Party::Contact(1)));
    }

    #[test]
    fn negative_ids_are_refused() {
        assert_eq!(
            CallerIndex::build([(e("+79161234567"), Party::Contact(-1))]).unwrap_err(),
            IndexError::PartyId(Party::Contact(-1))
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::config::PhoneSettings;
    use crate::crm::phones::PhoneNormalizer;
    use proptest::prelude::*;

    /// Plausible national significant numbers per region; the library decides
    /// which are valid.
    fn number() -> impl Strategy<Value = (&'static str, &'static str, String)> {
        prop_oneof![
            ("9[0-9]{9}|495[0-9]{7}|8(00|12|31|43|46|61|63)[0-9]{7}").prop_map(|n| ("RU", "7", n)),
            ("(50|63|66|67|68|73|93|95|96|97|98|99)[0-9]{7}|44[0-9]{7}")
                .prop_map(|n| ("UA", "380", n)),
            ("30[0-9]{5,8}|1[5-7][0-9]{8,9}|89[0-9]{6,8}|40[0-9]{6,8}|221[0-9]{5,8}")
                .prop_map(|n| ("DE", "49", n)),
            ("[2-9][0-8][0-9][2-9][0-9]{6}").prop_map(|n| ("US", "1", n)),
            ("(416|604|514)[2-9][0-9]{6}").prop_map(|n| ("CA", "1", n)),
            ("20[0-9]{8}|7[1-9][0-9]{8}|161[0-9]{7}").prop_map(|n| ("GB", "44", n)),
        ]
    }

    fn matcher(region: &str) -> Matcher {
        Matcher::new(region, &PhoneSettings::default()).unwrap()
    }

    /// What the library alone says: the reference the fast path must match.
    fn slow_lookup(index: &CallerIndex, raw: &str, m: &Matcher) -> Lookup {
        match m.classify_with_library(raw) {
            Caller::Customer(e) => index.lookup(&e),
            other => CallerIndex::no_card(other),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1500,
            max_global_rejects: 1_000_000,
            ..ProptestConfig::default()
        })]

        /// Any valid number, written in any of the library's formats, finds
        /// its card: national format in its own region, the others from any
        /// region.
        #[test]
        fn every_library_format_finds_the_card(
            (region, cc, nsn) in number(),
            elsewhere in prop::sample::select(&["RU", "UA", "DE", "US", "GB"][..]),
        ) {
            let e164 = PhoneNormalizer::new(region).unwrap().normalize(&format!("+{cc}{nsn}"));
            prop_assume!(e164.is_ok());
            let e164 = e164.unwrap();
            let parsed = crate::crm::phones::library_number(&e164.as_str().as_bytes()[1..]).unwrap();
            let index = CallerIndex::build([
                (e164.clone(), Party::Contact(1)),
                (PhoneNormalizer::new("RU").unwrap().normalize("+74951234567").unwrap(), Party::Contact(2)),
            ]).unwrap();
            let home = matcher(region);
            let away = matcher(elsewhere);
            use phonenumber::Mode;
            for mode in [Mode::E164, Mode::International, Mode::National, Mode::Rfc3966] {
                let text = parsed.format().mode(mode).to_string();
                let want = if e164.as_str() == "+74951234567" { 2 } else { 1 };
                prop_assert_eq!(index.lookup_raw(&text, &home), Lookup::Exact(Party::Contact(want)), "{} in {}", text, region);
                if mode != Mode::National {
                    prop_assert_eq!(index.lookup_raw(&text, &away), Lookup::Exact(Party::Contact(want)), "{} in {}", text, elsewhere);
                }
            }
        }

        /// Whatever arrives, the answer is the library's answer, and input
        /// that cannot be a number is refused with a reason.
        #[test]
        fn arbitrary_input_is_answered_like_the_library_would(
            region in prop::sample::select(&["RU", "UA", "DE", "US", "GB"][..]),
            raw in prop_oneof![
                any::<String>(),
                "[0-9 +()-]{0,30}",
                "(\\+|00|8|0)?[1-9][0-9]{6,12}",
                "[0-9]{150,250}",
                "[a-zA-Z]{1,20}",
                "[٠-٩]{5,15}|[０-９]{5,15}|[०-९]{5,15}",
                "[0-9]{2,6}[\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f][0-9]{2,6}",
            ],
        ) {
            let m = matcher(region);
            let index = CallerIndex::build(
                ["+79161234567", "+380501234567", "+4930123456", "+12125551234", "+442071234567"]
                    .map(|s| (PhoneNormalizer::new("RU").unwrap().normalize(s).unwrap(), Party::Contact(1))),
            ).unwrap();
            let got = index.lookup_raw(&raw, &m);
            prop_assert_eq!(&got, &slow_lookup(&index, &raw, &m));
            prop_assert_eq!(m.classify(&raw), m.classify_with_library(&raw));
            let digits = raw.chars().filter(char::is_ascii_digit).count();
            let refused = digits > 30
                || raw.chars().any(|c| c.is_numeric() && !c.is_ascii_digit())
                || raw.trim().chars().any(char::is_control)
                || (raw.chars().all(|c| c.is_ascii_alphabetic()) && Withheld::from_raw(&raw).is_none() && !raw.is_empty());
            if refused {
                match &got {
                    Lookup::None { reason: NoMatch::NotANumber(err) } => prop_assert!(!err.to_string().is_empty()),
                    other => prop_assert!(false, "{:?} gave {:?}", raw, other),
                }
            }
        }
    }
}

#[cfg(test)]
mod corpus {
    //! Runs `tests/fixtures/caller_id_corpus.tsv` through the index.

    use super::*;
    use crate::config::PhoneSettings;
    use crate::crm::phones::PhoneNormalizer;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize)]
    struct Setup {
        phones: PhoneSettings,
        party: Vec<Card>,
    }

    #[derive(serde::Deserialize)]
    struct Card {
        kind: String,
        id: i64,
        numbers: Vec<String>,
    }

    fn party(kind: &str, id: i64) -> Party {
        match kind {
            "contact" => Party::Contact(id),
            "company" => Party::Company(id),
            "lead" => Party::Lead(id),
            other => panic!("unknown kind {other}"),
        }
    }

    fn parse_party(text: &str) -> Party {
        let (kind, id) = text.split_once(':').expect("KIND:ID");
        party(kind, id.parse().expect("numeric id"))
    }

    /// Undoes the corpus escapes: `\t`, `\n`, `\\`, `\u{HEX}`, and quotes.
    fn unescape(field: &str) -> String {
        let field = field
            .strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or(field);
        let mut out = String::new();
        let mut chars = field.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('u') => {
                    let hex: String = chars
                        .by_ref()
                        .skip_while(|&c| c == '{')
                        .take_while(|&c| c != '}')
                        .collect();
                    let code = u32::from_str_radix(&hex, 16).expect("hex escape");
                    out.push(char::from_u32(code).expect("valid char"));
                }
                other => panic!("unknown escape \\{other:?}"),
            }
        }
        out
    }

    #[test]
    fn every_corpus_row_finds_its_card() {
        let setup: Setup =
            toml::from_str(include_str!("../../tests/fixtures/caller_id_setup.toml")).unwrap();
        let any = PhoneNormalizer::new("RU").unwrap();
        let pairs = setup.party.iter().flat_map(|card| {
            let p = party(&card.kind, card.id);
            let any = &any;
            card.numbers
                .iter()
                .map(move |n| (any.normalize(n).unwrap(), p))
        });
        let index = CallerIndex::build(pairs).unwrap();
        let mut matchers = BTreeMap::new();
        let corpus = include_str!("../../tests/fixtures/caller_id_corpus.tsv");
        let (mut rows, mut failures) = (0, Vec::new());
        for (n, line) in corpus.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') || line.starts_with("region\t") {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "line {}: {line:?}", n + 1);
            let (region, raw, expected, e164) = (cols[0], unescape(cols[1]), cols[2], cols[3]);
            let m = matchers
                .entry(region)
                .or_insert_with(|| Matcher::new(region, &setup.phones).unwrap());
            let got = index.lookup_raw(&raw, m);
            let (verdict, detail) = expected.split_once(' ').expect("verdict and detail");
            let want = match verdict {
                "exact" => Some(Lookup::Exact(parse_party(detail))),
                "candidates" => Some(Lookup::Candidates(
                    detail.split(',').map(parse_party).collect(),
                )),
                "none" => None,
                other => panic!("line {}: unknown verdict {other}", n + 1),
            };
            let ok = match (&want, &got) {
                (Some(want), got) => want == got,
                (None, Lookup::None { reason }) => reason.code() == detail,
                (None, _) => false,
            };
            let caller = m.classify(&raw);
            if caller != m.classify_with_library(&raw) {
                failures.push(format!(
                    "line {}: fast and library classification differ",
                    n + 1
                ));
            }
            let number = match caller {
                Caller::Customer(e) | Caller::OwnNumber(e) => e.as_str().to_owned(),
                _ => "-".to_owned(),
            };
            if !ok || number != e164 {
                failures.push(format!(
                    "line {}: {region} {raw:?}: want {expected} {e164}, got {got:?} {number}",
                    n + 1
                ));
            }
            rows += 1;
        }
        assert!(rows >= 200, "only {rows} rows");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
