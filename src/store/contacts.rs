//! Contacts with their phones and tags, and companies' lookup by name.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Scope, Sql, StoreError, like_pattern, now_ms, search_key};

#[derive(Debug, Clone, Serialize, Deserialize, FromRow, ToSchema, PartialEq)]
pub struct Phone {
    /// As entered.
    pub raw: String,
    /// Normalized, used for matching callers.
    pub e164: String,
    /// mobile | work | home | fax | other
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub company_id: Option<i64>,
    pub company_name: Option<String>,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub email: Option<String>,
    pub notes: String,
    #[sqlx(skip)]
    pub tags: Vec<String>,
    #[sqlx(skip)]
    pub phones: Vec<Phone>,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// A contact as written: phones already normalized, tags already cleaned.
#[derive(Debug, Clone, Default)]
pub struct ContactData {
    pub name: String,
    pub company_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub email: Option<String>,
    pub notes: String,
    pub tags: Vec<String>,
    pub phones: Vec<Phone>,
}

#[derive(Debug, Default)]
pub struct ContactFilter {
    pub q: Option<String>,
    pub tag: Option<String>,
    pub owner_id: Option<i64>,
    pub company_id: Option<i64>,
    pub e164: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

const CONTACT_SELECT: &str = "SELECT c.id, c.name, c.company_id, co.name AS company_name, c.owner_id, \
     u.name AS owner_name, c.email, c.notes, c.created_at, c.updated_at \
     FROM contacts c LEFT JOIN companies co ON co.id = c.company_id \
     LEFT JOIN users u ON u.id = c.owner_id WHERE 1 = 1";

impl Db {
    pub async fn create_contact(&self, d: &ContactData) -> Result<Contact> {
        let company_name = self.company_name(d.company_id).await?;
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO contacts (name, company_id, owner_id, email, notes, search_text, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&d.name)
        .bind(d.company_id)
        .bind(d.owner_id)
        .bind(&d.email)
        .bind(&d.notes)
        .bind(contact_search_text(d, company_name.as_deref()))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "contact"))?;
        write_children(&mut tx, id, d).await?;
        tx.commit().await?;
        self.contact(id).await
    }

    pub async fn update_contact(&self, id: i64, d: &ContactData) -> Result<Contact> {
        let company_name = self.company_name(d.company_id).await?;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE contacts SET name = $1, company_id = $2, owner_id = $3, email = $4, notes = $5, \
             search_text = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&d.name)
        .bind(d.company_id)
        .bind(d.owner_id)
        .bind(&d.email)
        .bind(&d.notes)
        .bind(contact_search_text(d, company_name.as_deref()))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "contact"))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM contact_phones WHERE contact_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_children(&mut tx, id, d).await?;
        tx.commit().await?;
        self.contact(id).await
    }

    pub async fn delete_contact(&self, id: i64) -> Result<()> {
        let n = sqlx::query("DELETE FROM contacts WHERE id = $1")
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

    pub async fn contact(&self, id: i64) -> Result<Contact> {
        let mut sql = Sql::new(CONTACT_SELECT);
        sql.push(" AND c.id = ").bind(Arg::I(id));
        let c: Contact = sql
            .query_as()
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut v = vec![c];
        self.fill_contacts(&mut v).await?;
        Ok(v.remove(0))
    }

    pub async fn contacts(&self, scope: Scope, f: &ContactFilter) -> Result<Vec<Contact>> {
        let mut sql = Sql::new(CONTACT_SELECT);
        scope.restrict(&mut sql, "c.owner_id");
        if let Some(q) = f.q.as_deref().filter(|q| !q.trim().is_empty()) {
            sql.push(" AND c.search_text LIKE ")
                .bind(Arg::S(like_pattern(q.trim())))
                .push(" ESCAPE '\\'");
        }
        if let Some(tag) = &f.tag {
            sql.push(" AND c.id IN (SELECT contact_id FROM contact_tags WHERE tag = ")
                .bind(Arg::S(tag.to_lowercase()))
                .push(")");
        }
        if let Some(o) = f.owner_id {
            sql.push(" AND c.owner_id = ").bind(Arg::I(o));
        }
        if let Some(co) = f.company_id {
            sql.push(" AND c.company_id = ").bind(Arg::I(co));
        }
        if let Some(e) = &f.e164 {
            sql.push(" AND c.id IN (SELECT contact_id FROM contact_phones WHERE e164 = ")
                .bind(Arg::S(e.clone()))
                .push(")");
        }
        sql.push(" ORDER BY c.name, c.id LIMIT ")
            .bind(Arg::I(f.limit))
            .push(" OFFSET ")
            .bind(Arg::I(f.offset));
        let mut v: Vec<Contact> = sql.query_as().fetch_all(&self.pool).await?;
        self.fill_contacts(&mut v).await?;
        Ok(v)
    }

    /// Every contact in id order, a page at a time (for export).
    pub async fn contacts_after(&self, after_id: i64, limit: i64) -> Result<Vec<Contact>> {
        let mut sql = Sql::new(CONTACT_SELECT);
        sql.push(" AND c.id > ")
            .bind(Arg::I(after_id))
            .push(" ORDER BY c.id LIMIT ")
            .bind(Arg::I(limit));
        let mut v: Vec<Contact> = sql.query_as().fetch_all(&self.pool).await?;
        self.fill_contacts(&mut v).await?;
        Ok(v)
    }

    async fn fill_contacts(&self, v: &mut [Contact]) -> Result<()> {
        if v.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = v.iter().map(|c| c.id.to_string()).collect();
        let list = ids.join(",");
        let phones: Vec<(i64, String, String, String)> = sqlx::query_as(&format!(
            "SELECT contact_id, raw, e164, kind FROM contact_phones WHERE contact_id IN ({list}) ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        for (cid, raw, e164, kind) in phones {
            if let Some(c) = v.iter_mut().find(|c| c.id == cid) {
                c.phones.push(Phone { raw, e164, kind });
            }
        }
        let tags: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT contact_id, tag FROM contact_tags WHERE contact_id IN ({list}) ORDER BY tag"
        ))
        .fetch_all(&self.pool)
        .await?;
        for (cid, tag) in tags {
            if let Some(c) = v.iter_mut().find(|c| c.id == cid) {
                c.tags.push(tag);
            }
        }
        Ok(())
    }

    /// Contacts holding this normalized number.
    pub async fn contact_ids_by_phone(&self, e164: &str) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT contact_id FROM contact_phones WHERE e164 = $1 ORDER BY contact_id",
        )
        .bind(e164)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every (number, contact) pair, for building the caller index.
    pub async fn all_contact_phones(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT e164, contact_id FROM contact_phones")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn company_name(&self, id: Option<i64>) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM companies WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        name.map(Some)
            .ok_or_else(|| StoreError::Invalid(format!("company {id} does not exist")))
    }
}

fn contact_search_text(d: &ContactData, company: Option<&str>) -> String {
    search_key(&[
        &d.name,
        d.email.as_deref().unwrap_or(""),
        company.unwrap_or(""),
    ])
}

async fn write_children(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    d: &ContactData,
) -> Result<()> {
    for p in &d.phones {
        sqlx::query(
            "INSERT INTO contact_phones (contact_id, raw, e164, kind) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (contact_id, e164) DO NOTHING",
        )
        .bind(id)
        .bind(&p.raw)
        .bind(&p.e164)
        .bind(&p.kind)
        .execute(&mut **tx)
        .await?;
    }
    for t in &d.tags {
        sqlx::query(
            "INSERT INTO contact_tags (contact_id, tag) VALUES ($1, $2) ON CONFLICT (contact_id, tag) DO NOTHING",
        )
        .bind(id)
        .bind(t)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
