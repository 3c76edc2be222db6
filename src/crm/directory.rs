//! Who is calling: the server's caller index kept in step with the database,
//! and the card a ringing call shows (owner, company, tags, recent activity,
//! open deals and tasks).
//!
//! Owns the index's life: built at start, updated by the API on each write to
//! a phone number, and re-synchronised from the database every few seconds so
//! writes made elsewhere (another node, `ringside import`) are seen too. The
//! number → party map itself is `crm::index`; classifying the raw caller is
//! `crm::caller`.

use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::crm::caller::{Caller, Matcher};
use crate::crm::index::{CallerIndex, Lookup, NoMatch, Party};
use crate::crm::phones::E164;
use crate::store::cards::{
    CARD_ACTIVITIES, CARD_NOTES_KEPT, CardActivity, CardDeal, CardOf, CardRow, CardTask,
    PhoneTablesMark, UserRef, part,
};
use crate::store::{Db, StoreError};

/// How far back a re-sync looks before the newest change it saw, so a write
/// stamped by a node whose clock lags a little is still picked up.
const CLOCK_SLACK_MS: i64 = 5_000;

/// The caller index with the rules that read raw numbers into it.
pub struct Callers {
    index: CallerIndex,
    matcher: Matcher,
    mark: Mutex<PhoneTablesMark>,
    rebuilds: std::sync::atomic::AtomicU64,
}

impl Callers {
    /// Builds the index from every number in the database.
    pub async fn load(db: &Db, config: &Config) -> anyhow::Result<Callers> {
        let matcher = Matcher::new(&config.default_region, &config.phones)
            .map_err(|e| anyhow::anyhow!("phones: {e}"))?;
        let callers = Callers {
            index: CallerIndex::new(),
            matcher,
            mark: Mutex::new(PhoneTablesMark::default()),
            rebuilds: Default::default(),
        };
        callers.rebuild(db).await?;
        Ok(callers)
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// How many distinct numbers the index holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// How often the whole index was read again (at start, and when cards
    /// were deleted outside this process).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The card(s) for a raw caller ID, as the PBX or a user typed it.
    pub fn lookup(&self, raw: &str) -> Lookup {
        self.index.lookup_raw(raw, &self.matcher)
    }

    /// The card(s) for a number already in E.164.
    pub fn lookup_e164(&self, number: &E164) -> Lookup {
        self.index.lookup(number)
    }

    /// The caller's number in E.164, when it is one.
    pub fn e164(&self, raw: &str) -> Option<E164> {
        match self.matcher.classify(raw) {
            Caller::Customer(e) | Caller::OwnNumber(e) => Some(e),
            _ => None,
        }
    }

    /// Reads every number again and swaps the new index in at once.
    pub async fn rebuild(&self, db: &Db) -> Result<usize, StoreError> {
        let mark = db.phone_tables_mark().await?;
        let mut pairs = Vec::new();
        let tables = [
            (
                db.all_contact_phones().await?,
                Party::Contact as fn(i64) -> Party,
            ),
            (db.all_company_phones().await?, Party::Company),
            (db.open_lead_phones().await?, Party::Lead),
        ];
        for (rows, party) in tables {
            pairs.extend(
                rows.into_iter()
                    .filter_map(|(n, id)| E164::from_stored(&n).ok().map(|e| (e, party(id)))),
            );
        }
        self.index
            .replace_all(pairs)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = mark;
        self.rebuilds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.index.len())
    }

    /// Brings the index up to date with writes made outside this process.
    /// Returns true when anything was re-read.
    pub async fn sync(&self, db: &Db) -> Result<bool, StoreError> {
        let now = db.phone_tables_mark().await?;
        let seen = *self.mark.lock().unwrap_or_else(|p| p.into_inner());
        if now == seen {
            return Ok(false);
        }
        // Rows gone: something was deleted; only a rebuild finds what.
        if now.contacts < seen.contacts || now.companies < seen.companies || now.leads < seen.leads
        {
            self.rebuild(db).await?;
            return Ok(true);
        }
        if now.contacts_changed != seen.contacts_changed || now.contacts != seen.contacts {
            let rows = db
                .contact_phones_changed(seen.contacts_changed - CLOCK_SLACK_MS)
                .await?;
            self.apply(rows, Party::Contact);
        }
        if now.companies_changed != seen.companies_changed || now.companies != seen.companies {
            let rows = db
                .company_phones_changed(seen.companies_changed - CLOCK_SLACK_MS)
                .await?;
            self.apply(rows, Party::Company);
        }
        if now.leads_changed != seen.leads_changed || now.leads != seen.leads {
            let rows = db
                .lead_phones_changed(seen.leads_changed - CLOCK_SLACK_MS)
                .await?;
            self.apply(rows, Party::Lead);
        }
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(true)
    }

    fn apply(&self, rows: Vec<(i64, Option<String>)>, party: fn(i64) -> Party) {
        let mut by_party: std::collections::BTreeMap<i64, Vec<E164>> = Default::default();
        for (id, number) in rows {
            let numbers = by_party.entry(id).or_default();
            if let Some(e) = number.and_then(|n| E164::from_stored(&n).ok()) {
                numbers.push(e);
            }
        }
        for (id, numbers) in by_party {
            if let Err(e) = self.index.set_party_numbers(party(id), numbers.iter()) {
                tracing::warn!(id, error = %e, "caller index: cannot take a party's numbers");
            }
        }
    }

    /// Makes `numbers` (stored E.164 strings) the whole list of a party's numbers.
    pub fn set_numbers<'a>(&self, party: Party, numbers: impl IntoIterator<Item = &'a str>) {
        let parsed: Vec<E164> = numbers
            .into_iter()
            .filter_map(|n| E164::from_stored(n).ok())
            .collect();
        if let Err(e) = self.index.set_party_numbers(party, parsed.iter()) {
            tracing::warn!(?party, error = %e, "caller index: cannot take a party's numbers");
        }
    }

    /// Forgets a card this process deleted. The row count the re-sync last
    /// saw drops with it, so the re-sync does not take this delete for one
    /// made elsewhere and rebuild the whole index.
    pub fn remove(&self, party: Party) {
        self.index.remove_party(party);
        let mut seen = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        match party {
            Party::Contact(_) => seen.contacts -= 1,
            Party::Company(_) => seen.companies -= 1,
            Party::Lead(_) => seen.leads -= 1,
        }
    }

    /// Keeps the index in step with the database until the process ends.
    pub fn spawn_sync(self: std::sync::Arc<Self>, db: Db, every: std::time::Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.sync(&db).await {
                    Ok(true) => tracing::debug!(numbers = self.len(), "caller index re-synced"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "caller index re-sync failed"),
                }
            }
        });
    }
}

/// A company or contact as a card names it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct NamedRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CardPhone {
    pub raw: String,
    pub e164: String,
}

/// What an agent sees about a caller.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Card {
    /// contact | company | lead
    pub kind: &'static str,
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<NamedRef>,
    /// The contact's owner; the lead's manager.
    pub owner: Option<UserRef>,
    pub tags: Vec<String>,
    pub phones: Vec<CardPhone>,
    /// Leads only: new | qualified | converted | lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Leads only: where the lead came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Newest first: the newest three notes at least (when there are), then
    /// the newest calls and other events, five in all.
    pub activities: Vec<CardActivity>,
    pub deals: Vec<CardDeal>,
    pub tasks: Vec<CardTask>,
    /// Set when the user may not see the card: only its name, company and
    /// owner are given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limited: bool,
}

impl Card {
    /// The card as a user who may not see it gets it: who it is, their
    /// company and owner, nothing else.
    pub fn limit(&mut self) {
        self.email = None;
        self.tags.clear();
        self.phones.clear();
        self.status = None;
        self.source = None;
        self.activities.clear();
        self.deals.clear();
        self.tasks.clear();
        self.limited = true;
    }

    /// The contact, lead or company this card shows.
    pub fn party(&self) -> Party {
        match self.kind {
            "lead" => Party::Lead(self.id),
            "company" => Party::Company(self.id),
            _ => Party::Contact(self.id),
        }
    }
}

/// Builds the card of one party; `None` when it no longer exists. One read:
/// the card is on the way to a ringing agent's screen.
pub async fn card(db: &Db, party: Party) -> Result<Option<Card>, StoreError> {
    let of = match party {
        Party::Contact(id) => CardOf::Contact(id),
        Party::Lead(id) => CardOf::Lead(id),
        Party::Company(id) => CardOf::Company(id),
    };
    Ok(card_from_rows(party, db.card_rows(of).await?))
}

fn card_from_rows(party: Party, rows: Vec<CardRow>) -> Option<Card> {
    let mut rows = rows.into_iter();
    let head = rows.next().filter(|r| r.part == part::HEAD)?;
    let (kind, id) = match party {
        Party::Contact(id) => ("contact", id),
        Party::Lead(id) => ("lead", id),
        Party::Company(id) => ("company", id),
    };
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let owner = match (head.i3, &head.s4, &head.s5) {
        (Some(id), Some(login), Some(name)) => Some(UserRef {
            id,
            login: login.clone(),
            name: name.clone(),
        }),
        _ => None,
    };
    let mut card = Card {
        kind,
        id,
        name: text(&head.s1),
        email: head.s2.clone(),
        company: None,
        owner: None,
        tags: Vec::new(),
        phones: Vec::new(),
        status: None,
        source: None,
        activities: Vec::new(),
        deals: Vec::new(),
        tasks: Vec::new(),
        limited: false,
    };
    // Leads and companies keep their one number on the head row.
    let own_phone = head
        .s3
        .clone()
        .zip(head.s6.clone())
        .map(|(raw, e164)| CardPhone { raw, e164 })
        .into_iter();
    match party {
        Party::Contact(_) => {
            card.company = head
                .i2
                .zip(head.s3.clone())
                .map(|(id, name)| NamedRef { id, name });
            card.owner = owner;
        }
        Party::Lead(_) => {
            card.owner = owner;
            card.phones = own_phone.collect();
            card.status = Some(text(&head.s7));
            card.source = Some(text(&head.s8));
        }
        Party::Company(_) => {
            card.email = None;
            card.phones = own_phone.collect();
        }
    }
    let mut activities = Vec::new();
    for r in rows {
        match r.part {
            part::PHONE => card.phones.push(CardPhone {
                raw: text(&r.s1),
                e164: text(&r.s2),
            }),
            part::TAG => card.tags.push(text(&r.s1)),
            part::ACTIVITY => {
                let call =
                    r.s4.as_deref()
                        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
                let field = |k: &str| {
                    call.as_ref()
                        .and_then(|c| c.get(k))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                activities.push(CardActivity {
                    id: r.i1.unwrap_or_default(),
                    kind: text(&r.s1),
                    body: text(&r.s2),
                    at: r.i2.unwrap_or_default(),
                    author_id: r.i3,
                    author_name: r.s3,
                    direction: field("direction"),
                    disposition: field("disposition"),
                });
            }
            part::DEAL => card.deals.push(CardDeal {
                id: r.i1.unwrap_or_default(),
                title: text(&r.s1),
                amount_minor: r.i2.unwrap_or_default(),
                currency: text(&r.s2),
                stage_id: r.i3.unwrap_or_default(),
                stage_name: text(&r.s3),
                pipeline_id: r.i4.unwrap_or_default(),
                pipeline_name: text(&r.s4),
            }),
            part::TASK => card.tasks.push(CardTask {
                id: r.i1.unwrap_or_default(),
                title: text(&r.s1),
                kind: r.s2.clone().unwrap_or_else(|| "task".to_owned()),
                due_at: r.i2,
                assignee_id: r.i3,
            }),
            _ => {}
        }
    }
    card.activities = card_activities(activities);
    Some(card)
}

/// The card's activities from the newest notes and the newest others (each
/// newest first, merged by time): up to [`CARD_NOTES_KEPT`] notes are kept
/// whatever happened since, the rest of the [`CARD_ACTIVITIES`] go to the
/// newest others, and notes fill any room left.
fn card_activities(merged: Vec<CardActivity>) -> Vec<CardActivity> {
    let notes = merged.iter().filter(|a| a.kind == "note").count();
    let others = merged.len() - notes;
    let keep_others = others.min(CARD_ACTIVITIES - notes.min(CARD_NOTES_KEPT));
    let keep_notes = notes.min(CARD_ACTIVITIES - keep_others);
    let (mut n, mut o) = (0, 0);
    merged
        .into_iter()
        .filter(|a| {
            let (seen, cap) = if a.kind == "note" {
                (&mut n, keep_notes)
            } else {
                (&mut o, keep_others)
            };
            *seen += 1;
            *seen <= cap
        })
        .collect()
}

/// Why a lookup found no card.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Reason {
    /// anonymous | internal | own_number | not_a_number | unknown
    pub code: &'static str,
    pub detail: String,
}

impl From<&NoMatch> for Reason {
    fn from(n: &NoMatch) -> Reason {
        Reason {
            code: n.code(),
            detail: n.detail(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct NumberView {
    /// As received.
    pub raw: String,
    pub e164: Option<String>,
}

/// The answer to "whose card is this number?", with the cards filled in.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Identified {
    /// exact | candidates | none
    #[serde(rename = "match")]
    pub matched: &'static str,
    pub number: NumberView,
    /// The one contact, on an exact match.
    pub contact: Option<Card>,
    /// The one lead, on an exact match of an open lead's number.
    pub lead: Option<Card>,
    /// The one company, on an exact match of a switchboard number.
    pub company: Option<Card>,
    /// Every card sharing the number, when there are several.
    pub candidates: Vec<Card>,
    pub reason: Option<Reason>,
}

impl Identified {
    /// The single party an exact match names.
    pub fn party(&self) -> Option<Party> {
        if let Some(c) = &self.contact {
            Some(Party::Contact(c.id))
        } else if let Some(l) = &self.lead {
            Some(Party::Lead(l.id))
        } else {
            self.company.as_ref().map(|c| Party::Company(c.id))
        }
    }
}

/// Looks a raw number up and fills in the cards.
pub async fn identify(db: &Db, callers: &Callers, raw: &str) -> Result<Identified, StoreError> {
    let found = callers.lookup(raw);
    let e164 = match &found {
        Lookup::None { reason } => reason.number().map(|e| e.as_str().to_owned()),
        _ => callers.e164(raw).map(|e| e.as_str().to_owned()),
    };
    let mut out = Identified {
        matched: found.kind(),
        number: NumberView {
            raw: raw.to_owned(),
            e164,
        },
        contact: None,
        lead: None,
        company: None,
        candidates: Vec::new(),
        reason: None,
    };
    match found {
        Lookup::Exact(party) => match card(db, party).await? {
            Some(c) => match party {
                Party::Contact(_) => out.contact = Some(c),
                Party::Lead(_) => out.lead = Some(c),
                Party::Company(_) => out.company = Some(c),
            },
            None => {
                // Deleted a moment ago; the index catches up on its next sync.
                out.matched = "none";
                out.reason = Some(Reason {
                    code: "unknown",
                    detail: "the card was deleted".into(),
                });
            }
        },
        Lookup::Candidates(parties) => {
            for p in parties {
                if let Some(c) = card(db, p).await? {
                    out.candidates.push(c);
                }
            }
        }
        Lookup::None { reason } => out.reason = Some(Reason::from(&reason)),
    }
    Ok(out)
}
