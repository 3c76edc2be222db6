//! The reads behind a caller's card (recent activities, open deals and tasks,
//! owners) and behind the caller index (which numbers belong to whom, and
//! what changed since the index last looked).

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Db, Result, StoreError};

/// A user as a card shows them.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema, PartialEq)]
pub struct UserRef {
    pub id: i64,
    pub login: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema, PartialEq)]
pub struct CardActivity {
    pub id: i64,
    pub kind: String,
    pub body: String,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    pub author_id: Option<i64>,
    pub author_name: Option<String>,
    /// Calls only: inbound | outbound | internal, from the call record, so
    /// the console can say what happened in the agent's language.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Calls only: what the PBX says happened (answered, abandoned, no_answer, busy, failed).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
}

/// How many activities a card shows, and how many of them are kept for the
/// newest notes, so a run of calls never pushes the agent's notes off.
pub const CARD_ACTIVITIES: usize = 5;
pub const CARD_NOTES_KEPT: usize = 3;

#[derive(Debug, Clone, Serialize, FromRow, ToSchema, PartialEq)]
pub struct CardDeal {
    pub id: i64,
    pub title: String,
    pub amount_minor: i64,
    pub currency: String,
    pub stage_id: i64,
    pub stage_name: String,
    pub pipeline_id: i64,
    pub pipeline_name: String,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema, PartialEq)]
pub struct CardTask {
    pub id: i64,
    pub title: String,
    /// `task`, or `callback` for the one made for a missed call.
    pub kind: String,
    #[serde(serialize_with = "crate::store::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<i64>,
    pub assignee_id: Option<i64>,
}

/// Whose timeline a card reads.
#[derive(Debug, Clone, Copy)]
pub enum CardOf {
    Contact(i64),
    Lead(i64),
    Company(i64),
}

/// One row of a card read in a single query: `part` says which piece of the
/// card it carries (see [`Db::card_rows`]), the other columns are that
/// piece's values, in the order the piece lists them.
#[derive(Debug, Clone, FromRow)]
pub struct CardRow {
    pub part: i64,
    pub i1: Option<i64>,
    pub i2: Option<i64>,
    pub i3: Option<i64>,
    pub i4: Option<i64>,
    pub s1: Option<String>,
    pub s2: Option<String>,
    pub s3: Option<String>,
    pub s4: Option<String>,
    pub s5: Option<String>,
    pub s6: Option<String>,
    pub s7: Option<String>,
    pub s8: Option<String>,
}

/// The pieces of a card, by `part`.
pub mod part {
    /// The card's own row: contact, lead or company, with its company and owner.
    pub const HEAD: i64 = 0;
    pub const PHONE: i64 = 1;
    pub const TAG: i64 = 2;
    pub const ACTIVITY: i64 = 3;
    pub const DEAL: i64 = 4;
    pub const TASK: i64 = 5;
}

/// One `SELECT` of the card's union: `part`, three sort keys, four integers
/// and eight texts (unused ones typed NULLs, which both backends need).
fn card_select(part: i64, sort: &[&str], ints: &[&str], texts: &[&str], rest: &str) -> String {
    let mut cols = vec![format!("CAST({part} AS BIGINT) AS part")];
    for (name, exprs, n, ty) in [
        ("o", sort, 3, "BIGINT"),
        ("i", ints, 4, "BIGINT"),
        ("s", texts, 8, "TEXT"),
    ] {
        for i in 0..n {
            let e = exprs.get(i).copied().unwrap_or("NULL");
            cols.push(format!("CAST({e} AS {ty}) AS {name}{}", i + 1));
        }
    }
    format!("SELECT {} {rest}", cols.join(", "))
}

/// The whole card of `of` in one statement, so a screen pop waits for one
/// round trip to the database instead of six. Pieces and order are those
/// of the separate reads (`card_activities`, `card_deals`, `card_tasks`).
fn card_sql(of: CardOf) -> String {
    use part::*;
    let head = match of {
        CardOf::Contact(_) => card_select(
            HEAD,
            &[],
            &["c.id", "c.company_id", "u.id"],
            &["c.name", "c.email", "co.name", "u.login", "u.name"],
            "FROM contacts c LEFT JOIN companies co ON co.id = c.company_id \
             LEFT JOIN users u ON u.id = c.owner_id WHERE c.id = $1",
        ),
        CardOf::Lead(_) => card_select(
            HEAD,
            &[],
            &["l.id", "NULL", "u.id"],
            &[
                "l.name",
                "l.email",
                "l.phone_raw",
                "u.login",
                "u.name",
                "l.phone_e164",
                "l.status",
                "l.source",
            ],
            "FROM leads l LEFT JOIN users u ON u.id = l.manager_id WHERE l.id = $1",
        ),
        CardOf::Company(_) => card_select(
            HEAD,
            &[],
            &["id"],
            &["name", "NULL", "phone_raw", "NULL", "NULL", "phone_e164"],
            "FROM companies WHERE id = $1",
        ),
    };
    let mut parts = vec![head];
    if let CardOf::Contact(_) = of {
        parts.push(card_select(
            PHONE,
            &["p.id"],
            &[],
            &["p.raw", "p.e164"],
            "FROM contact_phones p WHERE p.contact_id = $1",
        ));
        parts.push(card_select(
            TAG,
            &[],
            &[],
            &["t.tag"],
            "FROM contact_tags t WHERE t.contact_id = $1",
        ));
    }
    let activities = match of {
        CardOf::Contact(_) => {
            "FROM activities a LEFT JOIN users u ON u.id = a.author_id \
                               WHERE a.contact_id = $1"
        }
        CardOf::Lead(_) => {
            "FROM activities a LEFT JOIN users u ON u.id = a.author_id \
                            WHERE a.lead_id = $1"
        }
        CardOf::Company(_) => {
            "FROM activities a JOIN contacts c ON c.id = a.contact_id \
                               LEFT JOIN users u ON u.id = a.author_id WHERE c.company_id = $1"
        }
    };
    // The newest notes and the newest of everything else apart (five each);
    // the card keeps up to three notes and fills the rest with the newest
    // others (see `directory::card_from_rows`).
    let newest = |kind: &str| {
        format!(
            "SELECT * FROM (SELECT a.id, a.kind, a.body, a.occurred_at AS at, a.author_id, \
             u.name AS author_name, CASE WHEN a.kind = 'call' THEN a.payload END AS payload \
             {activities} AND {kind} ORDER BY a.occurred_at DESC, a.id DESC LIMIT 5) y"
        )
    };
    parts.push(card_select(
        ACTIVITY,
        &["-x.at", "-x.id"],
        &["x.id", "x.at", "x.author_id"],
        &["x.kind", "x.body", "x.author_name", "x.payload"],
        &format!(
            "FROM ({} UNION ALL {}) x",
            newest("a.kind = 'note'"),
            newest("a.kind <> 'note'")
        ),
    ));
    let deals = match of {
        CardOf::Contact(_) => "d.contact_id = $1",
        CardOf::Company(_) => "d.contact_id IN (SELECT id FROM contacts WHERE company_id = $1)",
        CardOf::Lead(_) => "d.id = (SELECT deal_id FROM leads WHERE id = $1)",
    };
    parts.push(card_select(
        DEAL,
        &["-x.id"],
        &["x.id", "x.amount_minor", "x.stage_id", "x.pipeline_id"],
        &["x.title", "x.currency", "x.stage_name", "x.pipeline_name"],
        &format!(
            "FROM (SELECT d.id, d.title, d.amount_minor, d.currency, d.stage_id, s.name AS stage_name, \
             d.pipeline_id, p.name AS pipeline_name \
             FROM deals d JOIN stages s ON s.id = d.stage_id JOIN pipelines p ON p.id = d.pipeline_id \
             WHERE d.status = 'open' AND {deals} ORDER BY d.id DESC LIMIT 10) x"
        ),
    ));
    let tasks = match of {
        CardOf::Contact(_) => Some("contact_id"),
        CardOf::Lead(_) => Some("lead_id"),
        CardOf::Company(_) => None,
    };
    if let Some(col) = tasks {
        // Dated and undated tasks apart, so each is a walk along the
        // open-task index rather than a sort of every open task.
        let open = |dated: &str, order: &str| {
            format!(
                "SELECT * FROM (SELECT id, title, kind, due_at, assignee_id, \
                 CASE WHEN due_at IS NULL THEN 1 ELSE 0 END AS undated FROM tasks \
                 WHERE {col} = $1 AND done = 0 AND due_at IS {dated} ORDER BY {order} LIMIT 10) t"
            )
        };
        parts.push(card_select(
            TASK,
            &["x.undated", "x.due_at", "x.id"],
            &["x.id", "x.due_at", "x.assignee_id"],
            &["x.title", "x.kind"],
            &format!(
                "FROM ({} UNION ALL {} ORDER BY undated, due_at, id LIMIT 10) x",
                open("NOT NULL", "due_at, id"),
                open("NULL", "id")
            ),
        ));
    }
    format!(
        "{} ORDER BY part, o1, o2, o3, s1",
        parts.join(" UNION ALL ")
    )
}

/// Row counts and the newest change of the tables the caller index mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhoneTablesMark {
    pub contacts: i64,
    pub contacts_changed: i64,
    pub companies: i64,
    pub companies_changed: i64,
    pub leads: i64,
    pub leads_changed: i64,
}

impl Db {
    pub async fn user_ref(&self, id: i64) -> Result<Option<UserRef>> {
        Ok(
            sqlx::query_as("SELECT id, login, name FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every piece of a card in one round trip (see [`part`]); no head row
    /// when the contact, lead or company does not exist.
    pub async fn card_rows(&self, of: CardOf) -> Result<Vec<CardRow>> {
        let id = match of {
            CardOf::Contact(id) | CardOf::Lead(id) | CardOf::Company(id) => id,
        };
        Ok(sqlx::query_as(&card_sql(of))
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The newest `limit` activities, newest first, with their authors' names.
    pub async fn card_activities(&self, of: CardOf, limit: i64) -> Result<Vec<CardActivity>> {
        let (col, id) = match of {
            CardOf::Contact(id) => ("contact_id", id),
            CardOf::Lead(id) => ("lead_id", id),
            CardOf::Company(id) => {
                return Ok(sqlx::query_as(
                    "SELECT a.id, a.kind, a.body, a.occurred_at AS at, a.author_id, u.name AS author_name \
                     FROM activities a JOIN contacts c ON c.id = a.contact_id \
                     LEFT JOIN users u ON u.id = a.author_id \
                     WHERE c.company_id = $1 ORDER BY a.occurred_at DESC, a.id DESC LIMIT $2",
                )
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?);
            }
        };
        Ok(sqlx::query_as(&format!(
            "SELECT a.id, a.kind, a.body, a.occurred_at AS at, a.author_id, u.name AS author_name \
             FROM activities a LEFT JOIN users u ON u.id = a.author_id \
             WHERE a.{col} = $1 ORDER BY a.occurred_at DESC, a.id DESC LIMIT $2"
        ))
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Open deals of a contact (or of every contact of a company), newest first.
    pub async fn card_deals(&self, of: CardOf) -> Result<Vec<CardDeal>> {
        let filter = match of {
            CardOf::Contact(_) => "d.contact_id = $1",
            CardOf::Company(_) => "d.contact_id IN (SELECT id FROM contacts WHERE company_id = $1)",
            CardOf::Lead(_) => "d.id = (SELECT deal_id FROM leads WHERE id = $1)",
        };
        let id = match of {
            CardOf::Contact(id) | CardOf::Lead(id) | CardOf::Company(id) => id,
        };
        Ok(sqlx::query_as(&format!(
            "SELECT d.id, d.title, d.amount_minor, d.currency, d.stage_id, s.name AS stage_name, \
             d.pipeline_id, p.name AS pipeline_name \
             FROM deals d JOIN stages s ON s.id = d.stage_id JOIN pipelines p ON p.id = d.pipeline_id \
             WHERE d.status = 'open' AND {filter} ORDER BY d.id DESC LIMIT 10"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Open tasks about a contact or lead, soonest due first.
    pub async fn card_tasks(&self, of: CardOf) -> Result<Vec<CardTask>> {
        let (col, id) = match of {
            CardOf::Contact(id) => ("contact_id", id),
            CardOf::Lead(id) => ("lead_id", id),
            CardOf::Company(_) => return Ok(Vec::new()),
        };
        Ok(sqlx::query_as(&format!(
            "SELECT id, title, kind, due_at, assignee_id FROM tasks WHERE {col} = $1 AND done = 0 \
             ORDER BY due_at IS NULL, due_at, id LIMIT 10"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// What the caller index compares to notice writes made elsewhere
    /// (another node, the import command).
    pub async fn phone_tables_mark(&self) -> Result<PhoneTablesMark> {
        // One round trip; each MAX reads the end of its `*_updated` index and
        // each COUNT the smallest index, so a re-sync every few seconds stays
        // cheap at a million contacts (a combined COUNT/MAX scans the table).
        let (contacts, contacts_changed, companies, companies_changed, leads, leads_changed): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM contacts), \
                    (SELECT COALESCE(MAX(updated_at), 0) FROM contacts), \
                    (SELECT COUNT(*) FROM companies), \
                    (SELECT COALESCE(MAX(updated_at), 0) FROM companies), \
                    (SELECT COUNT(*) FROM leads), \
                    (SELECT COALESCE(MAX(updated_at), 0) FROM leads)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PhoneTablesMark {
            contacts,
            contacts_changed,
            companies,
            companies_changed,
            leads,
            leads_changed,
        })
    }

    /// Every company number.
    pub async fn all_company_phones(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT phone_e164, id FROM companies WHERE phone_e164 IS NOT NULL AND phone_e164 <> ''",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Contacts changed at or after `since`, each with its numbers (a contact
    /// with no numbers left appears once with `None`).
    pub async fn contact_phones_changed(&self, since: i64) -> Result<Vec<(i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT c.id, p.e164 FROM contacts c LEFT JOIN contact_phones p ON p.contact_id = c.id \
             WHERE c.updated_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn company_phones_changed(&self, since: i64) -> Result<Vec<(i64, Option<String>)>> {
        Ok(
            sqlx::query_as("SELECT id, phone_e164 FROM companies WHERE updated_at >= $1")
                .bind(since)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Leads changed at or after `since`; the number is `None` once the lead
    /// is converted (its card is the contact's from then on).
    pub async fn lead_phones_changed(&self, since: i64) -> Result<Vec<(i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT id, CASE WHEN status = 'converted' THEN NULL ELSE phone_e164 END \
             FROM leads WHERE updated_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The owner a call from this party is routed to: the contact's owner,
    /// the lead's manager; companies have none.
    pub async fn party_owner(&self, kind: &str, id: i64) -> Result<Option<i64>> {
        let sql = match kind {
            "contact" => "SELECT owner_id FROM contacts WHERE id = $1",
            "lead" => "SELECT manager_id FROM leads WHERE id = $1",
            _ => return Ok(None),
        };
        Ok(sqlx::query_scalar::<_, Option<i64>>(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }
}

impl Db {
    /// Active users whose phone is `extension`.
    pub async fn users_for_extension(&self, extension: &str) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT e.user_id FROM user_extensions e JOIN users u ON u.id = e.user_id \
             WHERE e.extension = $1 AND u.active = 1",
        )
        .bind(extension)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every active user's extensions, as (extension, user) pairs in user order.
    pub async fn active_extensions(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT e.extension, e.user_id FROM user_extensions e JOIN users u ON u.id = e.user_id \
             WHERE u.active = 1 ORDER BY e.user_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Who watches an agent's state: the supervisors of the agent's team.
    pub async fn supervisors_of(&self, user_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT s.id FROM users s JOIN users a ON a.team_id = s.team_id \
             WHERE a.id = $1 AND s.role = 'supervisor' AND s.active = 1 AND s.id <> a.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// The customer's open callback after a missed call was counted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedCallback {
    pub task_id: i64,
    /// 1 when this miss made the callback.
    pub missed_calls: i64,
}

impl Db {
    /// Counts a missed call on the customer's open callback, making it when
    /// they have none: one statement, so misses logged at the same moment
    /// (on one node or several) still leave one open callback, held by the
    /// unique indexes of open callbacks per contact and per lead. The title,
    /// due time and call stay those of the first miss; an assignee is only
    /// filled in when the callback had none. `None` when this call has a
    /// callback already.
    pub async fn create_callback_task(
        &self,
        call_id: &str,
        title: &str,
        due_at: i64,
        assignee_id: Option<i64>,
        contact_id: Option<i64>,
        lead_id: Option<i64>,
    ) -> Result<Option<MissedCallback>> {
        let conflict = match (contact_id, lead_id) {
            (Some(_), _) => {
                "ON CONFLICT (contact_id) WHERE kind = 'callback' AND done = 0 AND contact_id IS NOT NULL \
                 DO UPDATE SET missed_calls = COALESCE(tasks.missed_calls, 1) + 1, \
                 assignee_id = COALESCE(tasks.assignee_id, excluded.assignee_id)"
            }
            (None, Some(_)) => {
                "ON CONFLICT (lead_id) WHERE kind = 'callback' AND done = 0 AND contact_id IS NULL \
                 AND lead_id IS NOT NULL \
                 DO UPDATE SET missed_calls = COALESCE(tasks.missed_calls, 1) + 1, \
                 assignee_id = COALESCE(tasks.assignee_id, excluded.assignee_id)"
            }
            (None, None) => "ON CONFLICT (call_id) DO NOTHING",
        };
        let row: Option<(i64, Option<i64>)> = match sqlx::query_as(&format!(
            "INSERT INTO tasks (title, due_at, assignee_id, contact_id, lead_id, done, created_at, kind, call_id, missed_calls) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, 'callback', $7, 1) {conflict} RETURNING id, missed_calls"
        ))
        .bind(title)
        .bind(due_at)
        .bind(assignee_id)
        .bind(contact_id)
        .bind(lead_id)
        .bind(super::now_ms())
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await
        {
            Ok(row) => row,
            Err(e) => {
                return match StoreError::from_write(e, "callback") {
                    // This call made a callback already (a replay of the call).
                    StoreError::Conflict(_) => Ok(None),
                    e => Err(e),
                };
            }
        };
        Ok(row.map(|(task_id, missed)| MissedCallback {
            task_id,
            missed_calls: missed.unwrap_or(1),
        }))
    }

    /// Closes the open callback tasks of a contact or lead (the customer was
    /// reached); returns each closed task's id and when the call it was made
    /// for ended (the task's creation when that call is not logged).
    pub async fn close_callbacks(
        &self,
        contact_id: Option<i64>,
        lead_id: Option<i64>,
        at: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let open: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT t.id, COALESCE(c.ended_at, c.started_at, t.created_at) FROM tasks t \
             LEFT JOIN calls c ON c.call_id = t.call_id WHERE t.kind = 'callback' AND t.done = 0 \
             AND ((t.contact_id IS NOT NULL AND t.contact_id = $1) OR (t.lead_id IS NOT NULL AND t.lead_id = $2))",
        )
        .bind(contact_id)
        .bind(lead_id)
        .fetch_all(&self.pool)
        .await?;
        let mut closed = Vec::with_capacity(open.len());
        for (id, missed) in open {
            // Only the writer that flips the flag reports the task closed.
            let n =
                sqlx::query("UPDATE tasks SET done = 1, done_at = $1 WHERE id = $2 AND done = 0")
                    .bind(at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            if n > 0 {
                closed.push((id, missed));
            }
        }
        Ok(closed)
    }
}
