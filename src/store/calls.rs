//! The call log: one row per finished call (with the phones it rang and who
//! talked when), claimed once by the node that logs it, read back filtered
//! and scoped for the API, and the agent's wrap-up on it.
//!
//! Owns the SQL of `calls`, `call_rings` and `call_segments`. It knows call
//! records only as plain values; what a call means is `calls::CallSession`'s.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Scope, Sql, now_ms};
use crate::crm::index::Party;

/// A finished call as it is claimed.
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    pub call_id: String,
    /// inbound | outbound | internal
    pub direction: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: Option<String>,
    pub did: Option<String>,
    pub queue: Option<String>,
    pub originator: Option<String>,
    pub originator_user_id: Option<i64>,
    pub agent: Option<String>,
    pub agent_user_id: Option<i64>,
    /// answered | abandoned | no_answer | busy | failed
    pub disposition: String,
    pub cause: Option<(i64, String)>,
    pub recording: Option<String>,
    /// JSON array of `{from, to, kind}`.
    pub transfers: serde_json::Value,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub ring_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// Extensions rung, first ring first, each with the users who had it.
    pub rings: Vec<(String, Vec<i64>)>,
    pub segments: Vec<NewSegment>,
    /// A wrap-up given while the call was still going.
    pub wrapup: Option<WrapUp>,
    /// live | recovered | uncertain (see `calls::CallTimes`).
    pub times: String,
}

#[derive(Debug, Clone)]
pub struct NewSegment {
    pub extension: String,
    pub user_id: Option<i64>,
    pub started_at: i64,
    pub ended_at: i64,
}

/// The agent's disposition and note for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapUp {
    pub code: Option<String>,
    pub note: Option<String>,
    pub by: i64,
    pub at: i64,
}

/// A logged call as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Call {
    pub id: i64,
    /// The PBX's id for the whole call (Asterisk: `Linkedid`).
    pub call_id: String,
    /// inbound | outbound | internal
    pub direction: String,
    /// E.164 where the number parses, else as the PBX sent it; the agent's
    /// extension for outbound and internal calls.
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: Option<String>,
    pub did: Option<String>,
    pub queue: Option<String>,
    /// The agent's extension that placed an outbound or internal call, and its user.
    pub originator: Option<String>,
    pub originator_user_id: Option<i64>,
    /// The extension that finally talked to the caller, and its user.
    pub agent: Option<String>,
    pub agent_user_id: Option<i64>,
    /// Extensions whose phones rang, first ring first.
    pub rang: Vec<String>,
    /// Users whose phones rang.
    pub rang_user_ids: Vec<i64>,
    /// Who was connected to the caller when, across transfers.
    pub segments: Vec<CallSegment>,
    /// `[{from, to, kind: blind|attended}]`
    #[schema(value_type = Vec<Object>)]
    pub transfers: serde_json::Value,
    #[serde(serialize_with = "super::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "super::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<i64>,
    #[serde(serialize_with = "super::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<i64>,
    pub ring_s: f64,
    /// From the first answer to the end, holds and transfers included.
    pub talk_s: f64,
    pub hold_s: f64,
    /// What the PBX says happened: answered | abandoned | no_answer | busy | failed
    pub disposition: String,
    /// How the PBX said the call ended (Q.850 for Asterisk).
    pub cause: Option<CallCause>,
    pub recording: Option<String>,
    /// The card the call is on.
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// The agent's disposition code and note, once given.
    pub wrapup: Option<CallWrapUp>,
    /// Where the times come from: `live` (seen as it happened), `recovered`
    /// (the call ended or happened while the PBX link was down; its times
    /// were read from the PBX's CDR), `uncertain` (it ended while the link
    /// was down and nothing said when: `ended_at` is the last moment it was
    /// known up, `ring_s`/`talk_s` are lower bounds).
    pub times: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallSegment {
    pub agent: String,
    pub user_id: Option<i64>,
    #[serde(serialize_with = "super::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "super::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub ended_at: i64,
    pub talk_s: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallCause {
    pub code: i64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallWrapUp {
    /// A code of `GET /dispositions`.
    pub disposition: Option<String>,
    pub note: Option<String>,
    pub user_id: Option<i64>,
    #[serde(serialize_with = "super::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<i64>,
}

#[derive(Debug, FromRow)]
struct CallRow {
    id: i64,
    call_id: String,
    direction: String,
    caller: String,
    caller_name: Option<String>,
    callee: Option<String>,
    did: Option<String>,
    queue: Option<String>,
    originator: Option<String>,
    originator_user_id: Option<i64>,
    agent: Option<String>,
    agent_user_id: Option<i64>,
    disposition: String,
    cause_code: Option<i64>,
    cause_text: Option<String>,
    recording: Option<String>,
    transfers: String,
    started_at: i64,
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    ring_ms: i64,
    talk_ms: i64,
    hold_ms: i64,
    contact_id: Option<i64>,
    lead_id: Option<i64>,
    wrapup_code: Option<String>,
    wrapup_note: Option<String>,
    wrapup_by: Option<i64>,
    wrapup_at: Option<i64>,
    times: String,
}

const COLS: &str = "calls.id, calls.call_id, direction, caller, caller_name, callee, did, queue, \
     originator, originator_user_id, agent, agent_user_id, disposition, cause_code, cause_text, \
     recording, transfers, calls.started_at, answered_at, calls.ended_at, ring_ms, talk_ms, hold_ms, \
     contact_id, lead_id, wrapup_code, wrapup_note, wrapup_by, wrapup_at, times";

/// Who reads the call log.
#[derive(Debug, Clone, Copy)]
pub enum CallScope {
    /// Managers and admins.
    All,
    /// Calls that rang (or were taken, placed or talked on by) this user, or
    /// sit on a card they may see.
    Agent { user_id: i64, team_id: Option<i64> },
    /// The same for every member of the team (the supervisor's own when
    /// they have none).
    Supervisor { user_id: i64, team_id: Option<i64> },
}

/// Filters of `GET /calls`; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    /// Rang this user's phone, or was answered, placed or talked on by them.
    pub user_id: Option<i64>,
    pub direction: Option<String>,
    pub disposition: Option<String>,
    pub wrapup: Option<String>,
    /// Started at or after (ms).
    pub since: Option<i64>,
    /// Started before (ms).
    pub until: Option<i64>,
    /// (started_at, id) of the last call of the previous page.
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

/// `(... involves <who>)`: the call rang, was answered, placed or talked on
/// by a user matched by `who` (e.g. `= $3`, `IN (SELECT …)`).
fn push_involves(sql: &mut Sql, who: &dyn Fn(&mut Sql)) {
    sql.push("(calls.agent_user_id ");
    who(sql);
    sql.push(" OR calls.originator_user_id ");
    who(sql);
    sql.push(
        " OR EXISTS (SELECT 1 FROM call_rings r WHERE r.call_id = calls.call_id AND r.user_id ",
    );
    who(sql);
    sql.push(
        ") OR EXISTS (SELECT 1 FROM call_segments g WHERE g.call_id = calls.call_id AND g.user_id ",
    );
    who(sql);
    sql.push("))");
}

impl CallScope {
    fn restrict(&self, sql: &mut Sql) {
        let (user_id, team_id, supervisor) = match *self {
            CallScope::All => return,
            CallScope::Agent { user_id, team_id } => (user_id, team_id, false),
            CallScope::Supervisor { user_id, team_id } => (user_id, team_id, true),
        };
        sql.push(" AND (");
        match (supervisor, team_id) {
            (true, Some(team)) => push_involves(sql, &|s: &mut Sql| {
                s.push("IN (SELECT id FROM users WHERE team_id = ")
                    .bind(Arg::I(team))
                    .push(")");
            }),
            _ => push_involves(sql, &|s: &mut Sql| {
                s.push("= ").bind(Arg::I(user_id));
            }),
        }
        // The card: visible as contacts and leads are (unowned, own, team's).
        let cards = Scope::Team { user_id, team_id };
        sql.push(" OR EXISTS (SELECT 1 FROM contacts c WHERE c.id = calls.contact_id");
        cards.restrict(sql, "c.owner_id");
        sql.push(") OR EXISTS (SELECT 1 FROM leads l WHERE l.id = calls.lead_id");
        cards.restrict(sql, "l.manager_id");
        sql.push("))");
    }
}

impl Db {
    /// Writes the call if no one has yet. `true` means this writer claimed
    /// it and owns its outputs (lead, callback, timeline entry); `false`
    /// that it was logged already (a replay, a reconnect, another node).
    pub async fn claim_call(&self, c: &NewCall) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let won: Option<i64> = sqlx::query_scalar(
            "INSERT INTO calls (call_id, direction, caller, caller_name, callee, did, queue, \
             originator, originator_user_id, agent, agent_user_id, disposition, cause_code, cause_text, \
             recording, transfers, started_at, answered_at, ended_at, ring_ms, talk_ms, hold_ms, \
             contact_id, lead_id, wrapup_code, wrapup_note, wrapup_by, wrapup_at, created_at, times) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30) \
             ON CONFLICT (call_id) DO NOTHING RETURNING id",
        )
        .bind(&c.call_id)
        .bind(&c.direction)
        .bind(&c.caller)
        .bind(c.caller_name.as_deref())
        .bind(c.callee.as_deref())
        .bind(c.did.as_deref())
        .bind(c.queue.as_deref())
        .bind(c.originator.as_deref())
        .bind(c.originator_user_id)
        .bind(c.agent.as_deref())
        .bind(c.agent_user_id)
        .bind(&c.disposition)
        .bind(c.cause.as_ref().map(|(code, _)| *code))
        .bind(c.cause.as_ref().map(|(_, text)| text.as_str()))
        .bind(c.recording.as_deref())
        .bind(c.transfers.to_string())
        .bind(c.started_at)
        .bind(c.answered_at)
        .bind(c.ended_at)
        .bind(c.ring_ms)
        .bind(c.talk_ms)
        .bind(c.hold_ms)
        .bind(c.contact_id)
        .bind(c.lead_id)
        .bind(c.wrapup.as_ref().and_then(|w| w.code.as_deref()))
        .bind(c.wrapup.as_ref().and_then(|w| w.note.as_deref()))
        .bind(c.wrapup.as_ref().map(|w| w.by))
        .bind(c.wrapup.as_ref().map(|w| w.at))
        .bind(now_ms())
        .bind(if c.times.is_empty() { "live" } else { c.times.as_str() })
        .fetch_optional(&mut *tx)
        .await?;
        if won.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        for (position, (ext, users)) in c.rings.iter().enumerate() {
            let users: Vec<Option<i64>> = match users.as_slice() {
                [] => vec![None],
                u => u.iter().copied().map(Some).collect(),
            };
            for user in users {
                sqlx::query(
                    "INSERT INTO call_rings (call_id, position, extension, user_id) VALUES ($1, $2, $3, $4)",
                )
                .bind(&c.call_id)
                .bind(position as i64)
                .bind(ext)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (position, g) in c.segments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO call_segments (call_id, position, extension, user_id, started_at, ended_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.call_id)
            .bind(position as i64)
            .bind(&g.extension)
            .bind(g.user_id)
            .bind(g.started_at)
            .bind(g.ended_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a claimed call on a card (a lead made for its caller).
    pub async fn set_call_card(
        &self,
        call_id: &str,
        contact_id: Option<i64>,
        lead_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE calls SET contact_id = $1, lead_id = $2 WHERE call_id = $3")
            .bind(contact_id)
            .bind(lead_id)
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores the agent's wrap-up on a logged call: a code replaces the
    /// previous one, an absent code or note keeps it. `false`: no such call
    /// (yet).
    pub async fn wrap_up_call(&self, call_id: &str, w: &WrapUp) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE calls SET wrapup_code = COALESCE($1, wrapup_code), \
             wrapup_note = COALESCE($2, wrapup_note), wrapup_by = $3, wrapup_at = $4 \
             WHERE call_id = $5",
        )
        .bind(w.code.as_deref())
        .bind(w.note.as_deref())
        .bind(w.by)
        .bind(w.at)
        .bind(call_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The card a logged call is on.
    pub async fn call_party(&self, call_id: &str) -> Result<Option<Party>> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT contact_id, lead_id FROM calls WHERE call_id = $1")
                .bind(call_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some((Some(c), _)) => Some(Party::Contact(c)),
            Some((None, Some(l))) => Some(Party::Lead(l)),
            _ => None,
        })
    }

    /// Moves a logged call, and its timeline entry, to a contact's card.
    pub async fn relink_call(&self, call_id: &str, contact_id: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let calls = sqlx::query("UPDATE calls SET contact_id = $1 WHERE call_id = $2")
            .bind(contact_id)
            .bind(call_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let entries = sqlx::query("UPDATE activities SET contact_id = $1 WHERE call_id = $2")
            .bind(contact_id)
            .bind(call_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(calls + entries > 0)
    }

    /// Newest first, as `scope` may see them.
    pub async fn calls(&self, scope: CallScope, f: &CallFilter) -> Result<Vec<Call>> {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM calls WHERE 1 = 1"));
        scope.restrict(&mut sql);
        if let Some(id) = f.contact_id {
            sql.push(" AND calls.contact_id = ").bind(Arg::I(id));
        }
        if let Some(id) = f.lead_id {
            sql.push(" AND calls.lead_id = ").bind(Arg::I(id));
        }
        if let Some(u) = f.user_id {
            sql.push(" AND ");
            push_involves(&mut sql, &|s: &mut Sql| {
                s.push("= ").bind(Arg::I(u));
            });
        }
        if let Some(d) = &f.direction {
            sql.push(" AND direction = ").bind(Arg::S(d.clone()));
        }
        if let Some(d) = &f.disposition {
            sql.push(" AND disposition = ").bind(Arg::S(d.clone()));
        }
        if let Some(w) = &f.wrapup {
            sql.push(" AND wrapup_code = ").bind(Arg::S(w.clone()));
        }
        if let Some(t) = f.since {
            sql.push(" AND calls.started_at >= ").bind(Arg::I(t));
        }
        if let Some(t) = f.until {
            sql.push(" AND calls.started_at < ").bind(Arg::I(t));
        }
        if let Some((t, id)) = f.before {
            sql.push(" AND (calls.started_at < ")
                .bind(Arg::I(t))
                .push(" OR (calls.started_at = ")
                .bind(Arg::I(t))
                .push(" AND calls.id < ")
                .bind(Arg::I(id))
                .push("))");
        }
        sql.push(" ORDER BY calls.started_at DESC, calls.id DESC LIMIT ")
            .bind(Arg::I(f.limit));
        let rows: Vec<CallRow> = sql.query_as().fetch_all(&self.pool).await?;
        self.with_parts(rows).await
    }

    /// One call, if `scope` may see it.
    pub async fn call(&self, scope: CallScope, call_id: &str) -> Result<Option<Call>> {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM calls WHERE calls.call_id = "));
        sql.bind(Arg::S(call_id.to_owned()));
        scope.restrict(&mut sql);
        let rows: Vec<CallRow> = sql.query_as().fetch_all(&self.pool).await?;
        Ok(self.with_parts(rows).await?.pop())
    }

    /// Whether the call is logged (whoever may see it).
    pub async fn call_exists(&self, call_id: &str) -> Result<bool> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM calls WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.is_some())
    }

    /// Adds the rung phones and talk segments to each row.
    async fn with_parts(&self, rows: Vec<CallRow>) -> Result<Vec<Call>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = |sql: &mut Sql| {
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Arg::S(r.call_id.clone()));
            }
            sql.push(")");
        };
        let mut q = Sql::new(
            "SELECT call_id, position, extension, user_id FROM call_rings WHERE call_id IN (",
        );
        ids(&mut q);
        q.push(" ORDER BY call_id, position, user_id");
        let rings: Vec<(String, i64, String, Option<i64>)> =
            q.query_as().fetch_all(&self.pool).await?;
        let mut q = Sql::new(
            "SELECT call_id, position, extension, user_id, started_at, ended_at \
             FROM call_segments WHERE call_id IN (",
        );
        ids(&mut q);
        q.push(" ORDER BY call_id, position");
        let segments: Vec<(String, i64, String, Option<i64>, i64, i64)> =
            q.query_as().fetch_all(&self.pool).await?;
        let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut rang: Vec<String> = Vec::new();
                let mut rang_user_ids: Vec<i64> = Vec::new();
                let mut last = None;
                for (_, pos, ext, user) in rings.iter().filter(|x| x.0 == r.call_id) {
                    if last != Some(*pos) {
                        rang.push(ext.clone());
                        last = Some(*pos);
                    }
                    if let Some(u) = user
                        && !rang_user_ids.contains(u)
                    {
                        rang_user_ids.push(*u);
                    }
                }
                let segments = segments
                    .iter()
                    .filter(|g| g.0 == r.call_id)
                    .map(|(_, _, ext, user, start, end)| CallSegment {
                        agent: ext.clone(),
                        user_id: *user,
                        started_at: *start,
                        ended_at: *end,
                        talk_s: secs(end - start),
                    })
                    .collect();
                let wrapup =
                    (r.wrapup_code.is_some() || r.wrapup_note.is_some()).then(|| CallWrapUp {
                        disposition: r.wrapup_code.clone(),
                        note: r.wrapup_note.clone(),
                        user_id: r.wrapup_by,
                        at: r.wrapup_at,
                    });
                Call {
                    id: r.id,
                    transfers: serde_json::from_str(&r.transfers)
                        .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
                    call_id: r.call_id,
                    direction: r.direction,
                    caller: r.caller,
                    caller_name: r.caller_name,
                    callee: r.callee,
                    did: r.did,
                    queue: r.queue,
                    originator: r.originator,
                    originator_user_id: r.originator_user_id,
                    agent: r.agent,
                    agent_user_id: r.agent_user_id,
                    rang,
                    rang_user_ids,
                    segments,
                    started_at: r.started_at,
                    answered_at: r.answered_at,
                    ended_at: r.ended_at,
                    ring_s: secs(r.ring_ms),
                    talk_s: secs(r.talk_ms),
                    hold_s: secs(r.hold_ms),
                    disposition: r.disposition,
                    cause: r.cause_code.map(|code| CallCause {
                        code,
                        text: r.cause_text.unwrap_or_default(),
                    }),
                    recording: r.recording,
                    contact_id: r.contact_id,
                    lead_id: r.lead_id,
                    wrapup,
                    times: r.times,
                }
            })
            .collect())
    }
}
