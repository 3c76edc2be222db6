//! The timeline: calls, notes, finished tasks and stage changes on a contact,
//! lead or deal, newest first, paged by a (time, id) cursor.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Sql, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Activity {
    pub id: i64,
    /// call | note | task_done | stage_change | lead_converted
    pub kind: String,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub author_id: Option<i64>,
    pub body: String,
    /// Kind-specific details (JSON object).
    #[serde(serialize_with = "ser_json")]
    #[schema(value_type = Object)]
    pub payload: String,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: i64,
}

fn ser_json<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(v).unwrap_or(serde_json::Value::Null);
    serde::Serialize::serialize(&value, s)
}

#[derive(Debug, Clone, Default)]
pub struct NewActivity {
    pub kind: String,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub author_id: Option<i64>,
    /// The PBX's call id: an activity with one is written at most once.
    pub call_id: Option<String>,
    pub body: String,
    pub payload: serde_json::Value,
    /// Defaults to now.
    pub occurred_at: Option<i64>,
}

/// Whose timeline to read.
#[derive(Debug, Clone, Copy)]
pub enum Timeline {
    Contact(i64),
    Lead(i64),
    Deal(i64),
}

impl Db {
    pub async fn add_activity(&self, a: &NewActivity) -> Result<Activity> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO activities (kind, contact_id, lead_id, deal_id, author_id, body, payload, occurred_at, created_at, call_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&a.kind)
        .bind(a.contact_id)
        .bind(a.lead_id)
        .bind(a.deal_id)
        .bind(a.author_id)
        .bind(&a.body)
        .bind(a.payload.to_string())
        .bind(a.occurred_at.unwrap_or_else(now_ms))
        .bind(now_ms())
        .bind(a.call_id.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "activity"))?;
        self.activity(id).await
    }

    pub async fn activity(&self, id: i64) -> Result<Activity> {
        sqlx::query_as(
            "SELECT id, kind, contact_id, lead_id, deal_id, author_id, body, payload, occurred_at \
             FROM activities WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Newest first. `before` is the (occurred_at, id) of the last item of the previous page.
    pub async fn timeline(
        &self,
        of: Timeline,
        before: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<Activity>> {
        let mut sql = Sql::new(
            "SELECT id, kind, contact_id, lead_id, deal_id, author_id, body, payload, occurred_at \
             FROM activities WHERE ",
        );
        match of {
            Timeline::Contact(id) => sql.push("contact_id = ").bind(Arg::I(id)),
            Timeline::Lead(id) => sql.push("lead_id = ").bind(Arg::I(id)),
            Timeline::Deal(id) => sql.push("deal_id = ").bind(Arg::I(id)),
        };
        if let Some((t, id)) = before {
            sql.push(" AND (occurred_at < ")
                .bind(Arg::I(t))
                .push(" OR (occurred_at = ")
                .bind(Arg::I(t))
                .push(" AND id < ")
                .bind(Arg::I(id))
                .push("))");
        }
        sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
            .bind(Arg::I(limit));
        Ok(sql.query_as().fetch_all(&self.pool).await?)
    }
}
