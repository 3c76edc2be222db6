//! Routing: where a call (or a new lead) goes — to the owner of the caller,
//! by caller prefix, by dialled number, by office hours, or to a team member
//! in turn or by load — and the two ways a PBX asks: `GET /api/v1/route` and
//! the FastAGI server (`agi`).
//!
//! Owns the routing rules (stored in `routing_rules`, cached here and
//! reloaded on every write through the API or CLI and every few seconds, so
//! CLI edits and user changes reach a running server), the round-robin turn
//! of each team, the decision ([`engine::decide`], pure and synchronous), and
//! who takes a new lead: the rules, as for a call to the same line, else the
//! managers in turn.
//! Caller-ID parsing is `crm::caller`; SQL is `store::routing`.

pub mod agi;
pub mod engine;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::crm::caller::{Caller, Matcher};
use crate::crm::phones::{E164, PhoneNormalizer};
use crate::http::AppState;
use crate::store::Db;
use engine::{CallerOwner, Purpose, RoundRobin, RouteContext, RouteRequest, RouteUser, RuleSet};
use rules::Rule;

/// How often the cached rules and users are re-read from the database.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Users and teams as routing needs them, read from the database.
#[derive(Debug, Default)]
pub struct Directory {
    pub users: HashMap<i64, RouteUser>,
    /// Team → member ids, ascending.
    pub teams: HashMap<i64, Vec<i64>>,
}

/// A call that may give a new lead: what the rules look at, and who the
/// call rang or reached (the one who answered first), whose team's
/// managers take the lead when no rule names anyone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeadCall<'a> {
    /// The caller ID as the PBX sent it.
    pub caller: &'a str,
    /// The dialled number as the PBX sent it.
    pub did: Option<&'a str>,
    pub users: &'a [i64],
}

/// The turn key of "every manager" among the teams' turns.
const ALL_MANAGERS: i64 = i64::MIN;

/// The routing service: cached rules and users, the round-robin turns.
pub struct Routing {
    rules: RwLock<Arc<RuleSet>>,
    directory: RwLock<Arc<Directory>>,
    rr: RoundRobin,
    /// The managers' turn at new leads no rule assigns (per team, and
    /// [`ALL_MANAGERS`]).
    lead_turns: RoundRobin,
    matcher: Matcher,
    default_target: Option<String>,
    device: crate::config::DevicePattern,
    /// Held across a reload's read and swap, so a slow periodic reload that
    /// read the table before a write cannot swap its older copy in after the
    /// write's own reload.
    reloading: tokio::sync::Mutex<()>,
    /// Added to the system clock: `routing.clock` set at start (tests
    /// use it to route as if at a chosen time).
    clock_offset: chrono::TimeDelta,
}

/// The answer to "where should this call go".
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RouteAnswer {
    /// What to dial: `PJSIP/101`, `Queue/support`; null when no rule matched
    /// and no default target is configured.
    pub target: Option<String>,
    /// The user who will ring, when the target is a user.
    pub user: Option<RoutedUser>,
    /// The rule that decided; null for the default target.
    pub rule: Option<RoutedRule>,
    pub contact_id: Option<i64>,
    pub company_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// Owner of the caller's contact, or manager of their open lead.
    pub owner_id: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RoutedUser {
    pub id: i64,
    pub login: String,
    pub extension: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RoutedRule {
    pub id: i64,
    pub name: String,
    pub kind: String,
}

/// The live context: the cached directory plus this caller's owner.
struct Live<'a> {
    dir: &'a Directory,
    presence: &'a crate::presence::Presence,
    owner: Option<CallerOwner>,
    now: DateTime<Utc>,
}

impl RouteContext for Live<'_> {
    fn caller_owner(&self) -> Option<CallerOwner> {
        self.owner
    }
    fn user(&self, id: i64) -> Option<&RouteUser> {
        self.dir.users.get(&id)
    }
    fn is_available(&self, user_id: i64) -> bool {
        // A phone rings whether or not its owner has a tab open, so only a
        // pause or a call in progress takes an agent out of rotation.
        use crate::presence::AgentState::*;
        // A phone the PBX says cannot ring is not offered either.
        matches!(self.presence.state_of(user_id), Available | Offline)
            && self.presence.phone_reachable(user_id)
    }
    fn active_calls(&self, user_id: i64) -> usize {
        self.presence.active_calls(user_id)
    }
    fn team_members(&self, team_id: i64) -> &[i64] {
        self.dir
            .teams
            .get(&team_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// A dialled number in the form DID rules compare: E.164 when it parses in
/// the default region, else its digits (and a leading `+`).
pub fn did_key(normalizer: &PhoneNormalizer, raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(e) = normalizer.normalize(raw) {
        return e.as_str().to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        if c.is_ascii_digit() || (c == '+' && i == 0) {
            out.push(c);
        }
    }
    out
}

impl Routing {
    pub fn new(config: &Config) -> anyhow::Result<Routing> {
        let matcher = Matcher::new(&config.default_region, &config.phones)
            .map_err(|e| anyhow::anyhow!("phones: {e}"))?;
        Ok(Routing {
            rules: RwLock::new(Arc::new(RuleSet::new(
                Vec::new(),
                config.routing.default_target.clone(),
                &config.pbx.device,
            ))),
            directory: RwLock::new(Arc::new(Directory::default())),
            rr: RoundRobin::default(),
            lead_turns: RoundRobin::default(),
            matcher,
            default_target: config.routing.default_target.clone(),
            device: config.pbx.device.clone(),
            reloading: tokio::sync::Mutex::new(()),
            clock_offset: config
                .routing
                .clock
                .map(|start| start - Utc::now())
                .unwrap_or_default(),
        })
    }

    /// The time office-hours rules compare with.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// The rules in force.
    pub fn rule_set(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn round_robin(&self) -> &RoundRobin {
        &self.rr
    }

    /// Parses stored rows into the rule set (a row that no longer parses is
    /// skipped with a warning rather than stopping routing).
    pub fn compile(&self, rows: &[crate::store::routing::RuleRow]) -> RuleSet {
        let normalizer = self.matcher.normalizer();
        let rules: Vec<Rule> = rows
            .iter()
            .filter_map(
                |row| match Rule::from_row(row, |n| did_key(normalizer, n)) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(rule = row.id, error = %e, "routing rule skipped");
                        None
                    }
                },
            )
            .collect();
        RuleSet::new(rules, self.default_target.clone(), &self.device)
    }

    /// Re-reads rules, users and teams.
    pub async fn reload(&self, db: &Db) -> crate::store::Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let rows = db.routing_rules().await?;
        let users = db.routing_users().await?;
        let set = self.compile(&rows);
        let mut dir = Directory::default();
        for u in users {
            if let Some(team) = u.team_id {
                dir.teams.entry(team).or_default().push(u.id);
            }
            dir.users.insert(
                u.id,
                RouteUser {
                    id: u.id,
                    login: u.login,
                    extension: u.extension,
                    active: u.active != 0,
                },
            );
        }
        for members in dir.teams.values_mut() {
            members.sort_unstable();
        }
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        *self.directory.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(dir);
        Ok(())
    }

    /// Keeps the cache current with changes made elsewhere (CLI, user edits).
    pub fn spawn_refresh(self: &Arc<Self>, db: Db) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.reload(&db).await {
                    tracing::warn!(error = %e, "routing rules could not be reloaded");
                }
            }
        })
    }

    /// The caller's CRM record and its owner: the one contact with the
    /// number, else the newest open lead. Several contacts sharing the number
    /// give no owner (never guessed).
    async fn caller_owner(&self, state: &AppState, e164: &E164) -> Option<CallerOwner> {
        // A number on no card (most first-time callers) needs no read: the
        // caller index is kept in step with every write to phones.
        if let crate::crm::index::Lookup::None { .. } = state.callers.lookup_e164(e164) {
            return None;
        }
        let holders = match state.db.number_holders(e164.as_str()).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "routing: owner lookup failed");
                return None;
            }
        };
        let contacts = holders.iter().filter(|h| h.0 == "c").count();
        match (contacts, holders.first()) {
            (1, Some((_, id, owner))) => Some(CallerOwner {
                contact_id: Some(*id),
                owner_id: *owner,
                ..Default::default()
            }),
            (0, Some((_, id, manager))) => Some(CallerOwner {
                lead_id: Some(*id),
                owner_id: *manager,
                ..Default::default()
            }),
            _ => None,
        }
    }

    /// Where a call from `caller` to `did` (both raw, as the PBX sends them) goes.
    pub async fn route(&self, state: &AppState, caller: &str, did: &str) -> RouteAnswer {
        self.route_for(state, caller, did, Purpose::Call).await
    }

    /// Who a new lead from this call goes to: the rules, evaluated as for
    /// the call itself (caller, dialled number, hours; rules whose target is
    /// a raw PBX target are passed over, users need no extension and may be
    /// on a call), else the next active manager in turn — among the managers
    /// of the team of the users the call rang when that team has any, else
    /// among all. `None` only when there is no active manager at all.
    pub async fn assign_lead(&self, state: &AppState, call: &LeadCall<'_>) -> Option<i64> {
        let routed = self
            .route_for(state, call.caller, call.did.unwrap_or(""), Purpose::Lead)
            .await;
        if let Some(u) = routed.user {
            return Some(u.id);
        }
        // Read, not cached: a manager added a moment ago takes leads at once,
        // and a lead is made once per new caller, not once per ring.
        let managers = match state.db.lead_takers(call.users).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the managers who take leads");
                return None;
            }
        };
        self.next_manager(&managers)
    }

    /// The next manager in turn, in the team of the first of the call's
    /// users who is in one when that team has an active manager, else among
    /// all active managers.
    fn next_manager(&self, m: &crate::store::routing::LeadTakers) -> Option<i64> {
        let in_team: Vec<i64> = match m.team {
            Some(t) => m
                .managers
                .iter()
                .filter(|(_, team)| *team == Some(t))
                .map(|(id, _)| *id)
                .collect(),
            None => Vec::new(),
        };
        match m.team {
            Some(t) if !in_team.is_empty() => self.lead_turns.pick(t, &in_team, |_| true, |_| 0),
            _ => {
                let all: Vec<i64> = m.managers.iter().map(|(id, _)| *id).collect();
                self.lead_turns.pick(ALL_MANAGERS, &all, |_| true, |_| 0)
            }
        }
    }

    async fn route_for(
        &self,
        state: &AppState,
        caller: &str,
        did: &str,
        purpose: Purpose,
    ) -> RouteAnswer {
        let e164 = match self.matcher.classify(caller) {
            Caller::Customer(e) => Some(e),
            _ => None,
        };
        let owner = match &e164 {
            Some(e) => self.caller_owner(state, e).await,
            None => None,
        };
        let set = self.rule_set();
        let did = did.trim();
        let did_key = (!did.is_empty() && set.has_did_rules())
            .then(|| did_key(self.matcher.normalizer(), did));
        let dir = self.directory();
        let ctx = Live {
            dir: &dir,
            presence: &state.presence,
            owner,
            now: self.now(),
        };
        let req = RouteRequest {
            caller_e164: e164.as_ref().map(|e| e.as_str()),
            did_key: did_key.as_deref(),
            purpose,
        };
        let d = engine::decide(&set, &req, &ctx, &self.rr);
        let owner = owner.unwrap_or_default();
        RouteAnswer {
            target: d.target,
            user: d
                .user_id
                .and_then(|id| dir.users.get(&id))
                .map(|u| RoutedUser {
                    id: u.id,
                    login: u.login.clone(),
                    extension: u.extension.clone(),
                }),
            rule: d.rule.map(|r| RoutedRule {
                id: r.id,
                name: r.name,
                kind: r.kind.to_owned(),
            }),
            contact_id: owner.contact_id,
            company_id: owner.company_id,
            lead_id: owner.lead_id,
            owner_id: owner.owner_id,
            reason: d.reason,
        }
    }
}
