//! The audit log: who exported client data or changed accounts, and from where.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Db, Result, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub user_id: Option<i64>,
    pub action: String,
    pub detail: String,
    pub address: Option<String>,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
}

impl Db {
    pub async fn audit(
        &self,
        user_id: Option<i64>,
        action: &str,
        detail: &str,
        address: Option<&str>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (user_id, action, detail, address, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(user_id)
            .bind(action)
            .bind(detail)
            .bind(address)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, action, detail, address, at FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
