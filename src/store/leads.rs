//! Leads: unknown callers and other prospects, until they become contacts.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Scope, Sql, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Lead {
    pub id: i64,
    pub name: String,
    pub phone_raw: Option<String>,
    pub phone_e164: Option<String>,
    pub email: Option<String>,
    /// call | web | import | manual | …
    pub source: String,
    /// new | qualified | converted | lost
    pub status: String,
    pub manager_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub notes: String,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LeadData {
    pub name: String,
    pub phone_raw: Option<String>,
    pub phone_e164: Option<String>,
    pub email: Option<String>,
    pub source: String,
    pub status: String,
    pub manager_id: Option<i64>,
    pub notes: String,
}

pub const LEAD_STATUSES: [&str; 4] = ["new", "qualified", "converted", "lost"];

const COLS: &str = "id, name, phone_raw, phone_e164, email, source, status, manager_id, contact_id, \
                    deal_id, notes, created_at, updated_at";

impl Db {
    pub async fn create_lead(&self, d: &LeadData) -> Result<Lead> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO leads (name, phone_raw, phone_e164, email, source, status, manager_id, notes, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        )
        .bind(&d.name)
        .bind(&d.phone_raw)
        .bind(&d.phone_e164)
        .bind(&d.email)
        .bind(&d.source)
        .bind(&d.status)
        .bind(d.manager_id)
        .bind(&d.notes)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "lead"))?;
        self.lead(id).await
    }

    pub async fn update_lead(&self, id: i64, d: &LeadData) -> Result<Lead> {
        let n = sqlx::query(
            "UPDATE leads SET name = $1, phone_raw = $2, phone_e164 = $3, email = $4, source = $5, \
             status = $6, manager_id = $7, notes = $8, updated_at = $9 WHERE id = $10",
        )
        .bind(&d.name)
        .bind(&d.phone_raw)
        .bind(&d.phone_e164)
        .bind(&d.email)
        .bind(&d.source)
        .bind(&d.status)
        .bind(d.manager_id)
        .bind(&d.notes)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "lead"))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.lead(id).await
    }

    pub async fn lead(&self, id: i64) -> Result<Lead> {
        sqlx::query_as(&format!("SELECT {COLS} FROM leads WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn leads(
        &self,
        scope: Scope,
        status: Option<&str>,
        manager_id: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Lead>> {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM leads WHERE 1 = 1"));
        scope.restrict(&mut sql, "manager_id");
        if let Some(s) = status {
            sql.push(" AND status = ").bind(Arg::S(s.to_owned()));
        }
        if let Some(m) = manager_id {
            sql.push(" AND manager_id = ").bind(Arg::I(m));
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(Arg::I(limit))
            .push(" OFFSET ")
            .bind(Arg::I(offset));
        Ok(sql.query_as().fetch_all(&self.pool).await?)
    }

    /// The oldest lead not yet converted with this number, as the caller
    /// index would find it once it has caught up with other writers.
    pub async fn open_lead_for(&self, e164: &str) -> Result<Option<Lead>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM leads WHERE phone_e164 = $1 AND status <> 'converted' ORDER BY id LIMIT 1",
        )
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => Ok(Some(self.lead(id).await?)),
            None => Ok(None),
        }
    }

    /// Every (number, lead) pair of leads not yet converted, for the caller index.
    pub async fn open_lead_phones(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT phone_e164, id FROM leads WHERE phone_e164 IS NOT NULL AND status <> 'converted'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks a lead converted into `contact_id` (and `deal_id` when a deal was opened).
    pub async fn mark_lead_converted(
        &self,
        id: i64,
        contact_id: i64,
        deal_id: Option<i64>,
    ) -> Result<Lead> {
        let n = sqlx::query(
            "UPDATE leads SET status = 'converted', contact_id = $1, deal_id = $2, updated_at = $3 \
             WHERE id = $4 AND status <> 'converted'",
        )
        .bind(contact_id)
        .bind(deal_id)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict("the lead is already converted".into()));
        }
        self.lead(id).await
    }
}
