//! Tasks: things a user must do by a time, linked to a contact or lead.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Scope, Sql, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Task {
    pub id: i64,
    pub title: String,
    /// `task`, or `callback` for the one made for a missed call (its title,
    /// "Call back …", is written in English; consoles may word it themselves).
    pub kind: String,
    /// The missed call a callback task was made for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// How many missed calls a callback stands for: a customer has one open
    /// callback, made by their first missed call (`call_id`, and the due
    /// time counts from it), and each later miss adds one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed_calls: Option<i64>,
    #[serde(serialize_with = "crate::store::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<i64>,
    pub assignee_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
    #[serde(serialize_with = "crate::store::ser_flag")]
    #[schema(value_type = bool)]
    pub done: i64,
    #[serde(serialize_with = "crate::store::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub done_at: Option<i64>,
    pub created_by: Option<i64>,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct TaskData {
    pub title: String,
    pub due_at: Option<i64>,
    pub assignee_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub lead_id: Option<i64>,
}

const COLS: &str = "id, title, kind, call_id, missed_calls, due_at, assignee_id, contact_id, lead_id, done, done_at, created_by, created_at";

impl Db {
    pub async fn create_task(&self, d: &TaskData, created_by: Option<i64>) -> Result<Task> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (title, due_at, assignee_id, contact_id, lead_id, done, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) RETURNING id",
        )
        .bind(&d.title)
        .bind(d.due_at)
        .bind(d.assignee_id)
        .bind(d.contact_id)
        .bind(d.lead_id)
        .bind(created_by)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "task"))?;
        self.task(id).await
    }

    pub async fn update_task(&self, id: i64, d: &TaskData) -> Result<Task> {
        let n = sqlx::query(
            "UPDATE tasks SET title = $1, due_at = $2, assignee_id = $3, contact_id = $4, lead_id = $5 WHERE id = $6",
        )
        .bind(&d.title)
        .bind(d.due_at)
        .bind(d.assignee_id)
        .bind(d.contact_id)
        .bind(d.lead_id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "task"))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.task(id).await
    }

    /// Sets the done flag; returns the task and whether it changed.
    pub async fn set_task_done(&self, id: i64, done: bool) -> Result<(Task, bool)> {
        let n =
            sqlx::query("UPDATE tasks SET done = $1, done_at = $2 WHERE id = $3 AND done <> $1")
                .bind(done as i64)
                .bind(done.then(now_ms))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(|e| match StoreError::from_write(e, "task") {
                    // Reopening a callback while the customer has another open one.
                    StoreError::Conflict(_) => StoreError::Conflict(
                        "the customer has an open callback already; add to that one".into(),
                    ),
                    e => e,
                })?
                .rows_affected();
        Ok((self.task(id).await?, n > 0))
    }

    pub async fn task(&self, id: i64) -> Result<Task> {
        sqlx::query_as(&format!("SELECT {COLS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Open tasks first by due time (overdue first), then done ones.
    pub async fn tasks(
        &self,
        scope: Scope,
        assignee_id: Option<i64>,
        contact_id: Option<i64>,
        done: Option<bool>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Task>> {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM tasks WHERE 1 = 1"));
        scope.restrict(&mut sql, "assignee_id");
        if let Some(a) = assignee_id {
            sql.push(" AND assignee_id = ").bind(Arg::I(a));
        }
        if let Some(c) = contact_id {
            sql.push(" AND contact_id = ").bind(Arg::I(c));
        }
        if let Some(d) = done {
            sql.push(" AND done = ").bind(Arg::I(d as i64));
        }
        sql.push(" ORDER BY done, CASE WHEN due_at IS NULL THEN 1 ELSE 0 END, due_at, id LIMIT ")
            .bind(Arg::I(limit))
            .push(" OFFSET ")
            .bind(Arg::I(offset));
        Ok(sql.query_as().fetch_all(&self.pool).await?)
    }
}
