//! Companies: the organisations contacts work for.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Sql, StoreError, like_pattern, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Company {
    pub id: i64,
    pub name: String,
    pub phone_raw: Option<String>,
    pub phone_e164: Option<String>,
    pub website: Option<String>,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CompanyData {
    pub name: String,
    pub phone_raw: Option<String>,
    pub phone_e164: Option<String>,
    pub website: Option<String>,
}

const COLS: &str = "id, name, phone_raw, phone_e164, website, created_at";

impl Db {
    pub async fn create_company(&self, d: &CompanyData) -> Result<Company> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO companies (name, name_key, phone_raw, phone_e164, website, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&d.name)
        .bind(d.name.trim().to_lowercase())
        .bind(&d.phone_raw)
        .bind(&d.phone_e164)
        .bind(&d.website)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.company(id).await
    }

    pub async fn update_company(&self, id: i64, d: &CompanyData) -> Result<Company> {
        let n = sqlx::query(
            "UPDATE companies SET name = $1, name_key = $2, phone_raw = $3, phone_e164 = $4, website = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&d.name)
        .bind(d.name.trim().to_lowercase())
        .bind(&d.phone_raw)
        .bind(&d.phone_e164)
        .bind(&d.website)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.company(id).await
    }

    pub async fn delete_company(&self, id: i64) -> Result<()> {
        let n = sqlx::query("DELETE FROM companies WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    pub async fn company(&self, id: i64) -> Result<Company> {
        sqlx::query_as(&format!("SELECT {COLS} FROM companies WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn companies(
        &self,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Company>> {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM companies WHERE 1 = 1"));
        if let Some(q) = q.filter(|q| !q.trim().is_empty()) {
            sql.push(" AND name_key LIKE ")
                .bind(Arg::S(like_pattern(q.trim())))
                .push(" ESCAPE '\\'");
        }
        sql.push(" ORDER BY name, id LIMIT ")
            .bind(Arg::I(limit))
            .push(" OFFSET ")
            .bind(Arg::I(offset));
        Ok(sql.query_as().fetch_all(&self.pool).await?)
    }

    /// The company with this name (case-insensitive), created when missing.
    pub async fn company_by_name_or_create(&self, name: &str) -> Result<i64> {
        let key = name.trim().to_lowercase();
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE name_key = $1 ORDER BY id LIMIT 1")
                .bind(&key)
                .fetch_optional(&self.pool)
                .await?;
        match found {
            Some(id) => Ok(id),
            None => Ok(self
                .create_company(&CompanyData {
                    name: name.trim().to_owned(),
                    ..Default::default()
                })
                .await?
                .id),
        }
    }
}
