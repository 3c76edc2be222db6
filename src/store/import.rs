//! Statements used by the bulk contact import, run inside its batch transactions
//! so that a row sees the rows imported before it (duplicates merge, not double).

use sqlx::AnyConnection;

use super::contacts::{ContactData, Phone};
use super::{Result, now_ms, search_key};

pub async fn contact_by_phone(conn: &mut AnyConnection, e164: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT contact_id FROM contact_phones WHERE e164 = $1 ORDER BY contact_id LIMIT 1",
    )
    .bind(e164)
    .fetch_optional(conn)
    .await?)
}

pub async fn company_by_name(conn: &mut AnyConnection, name: &str) -> Result<i64> {
    let key = name.trim().to_lowercase();
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM companies WHERE name_key = $1 ORDER BY id LIMIT 1")
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "INSERT INTO companies (name, name_key, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(name.trim())
    .bind(key)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

pub async fn insert_contact(
    conn: &mut AnyConnection,
    d: &ContactData,
    company_name: Option<&str>,
) -> Result<i64> {
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
    .bind(search_key(&[
        &d.name,
        d.email.as_deref().unwrap_or(""),
        company_name.unwrap_or(""),
    ]))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    add_children(conn, id, &d.phones, &d.tags).await?;
    Ok(id)
}

/// Adds what the row knows and the contact lacks: phones, tags, e-mail, company.
pub async fn merge_into(conn: &mut AnyConnection, id: i64, d: &ContactData) -> Result<()> {
    sqlx::query(
        "UPDATE contacts SET email = COALESCE(email, $1), company_id = COALESCE(company_id, $2), \
         owner_id = COALESCE(owner_id, $3), updated_at = $4 WHERE id = $5",
    )
    .bind(&d.email)
    .bind(d.company_id)
    .bind(d.owner_id)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    add_children(conn, id, &d.phones, &d.tags).await
}

async fn add_children(
    conn: &mut AnyConnection,
    id: i64,
    phones: &[Phone],
    tags: &[String],
) -> Result<()> {
    for p in phones {
        sqlx::query(
            "INSERT INTO contact_phones (contact_id, raw, e164, kind) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (contact_id, e164) DO NOTHING",
        )
        .bind(id)
        .bind(&p.raw)
        .bind(&p.e164)
        .bind(&p.kind)
        .execute(&mut *conn)
        .await?;
    }
    for t in tags {
        sqlx::query(
            "INSERT INTO contact_tags (contact_id, tag) VALUES ($1, $2) ON CONFLICT (contact_id, tag) DO NOTHING",
        )
        .bind(id)
        .bind(t)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
