//! Pipelines with ordered stages, deals, and the time each deal spent in each stage.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Db, Result, Scope, Sql, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Stage {
    pub id: i64,
    pub pipeline_id: i64,
    pub name: String,
    pub position: i64,
    /// open | won | lost: entering a won/lost stage closes the deal.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Pipeline {
    pub id: i64,
    pub name: String,
    #[sqlx(skip)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Deal {
    pub id: i64,
    pub title: String,
    pub contact_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub pipeline_id: i64,
    pub stage_id: i64,
    pub stage_name: String,
    /// Minor units (kopecks, cents).
    pub amount_minor: i64,
    pub currency: String,
    /// open | won | lost
    pub status: String,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub stage_entered_at: i64,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct StageStay {
    pub stage_id: i64,
    pub stage_name: String,
    #[serde(serialize_with = "crate::store::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub entered_at: i64,
    #[serde(serialize_with = "crate::store::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub left_at: Option<i64>,
    /// Time spent in the stage so far, in seconds.
    #[sqlx(skip)]
    pub seconds: i64,
}

#[derive(Debug, Clone)]
pub struct DealData {
    pub title: String,
    pub contact_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub amount_minor: i64,
    pub currency: String,
}

const DEAL_SELECT: &str = "SELECT d.id, d.title, d.contact_id, d.owner_id, d.pipeline_id, d.stage_id, \
     s.name AS stage_name, d.amount_minor, d.currency, d.status, d.stage_entered_at, d.created_at, \
     d.closed_at FROM deals d JOIN stages s ON s.id = d.stage_id WHERE 1 = 1";

impl Db {
    pub async fn create_pipeline(
        &self,
        name: &str,
        stages: &[(String, String)],
    ) -> Result<Pipeline> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pipelines (name, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "a pipeline with this name"))?;
        for (pos, (stage, outcome)) in stages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO stages (pipeline_id, name, position, outcome) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(stage)
            .bind(pos as i64)
            .bind(outcome)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.pipeline(id).await
    }

    pub async fn pipeline(&self, id: i64) -> Result<Pipeline> {
        let mut p: Pipeline = sqlx::query_as("SELECT id, name FROM pipelines WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        p.stages = sqlx::query_as(
            "SELECT id, pipeline_id, name, position, outcome FROM stages WHERE pipeline_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(p)
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM pipelines ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.pipeline(id).await?);
        }
        Ok(out)
    }

    /// Opens a deal in the first stage of `pipeline_id`.
    pub async fn create_deal(&self, pipeline_id: i64, d: &DealData) -> Result<Deal> {
        let pipeline = self.pipeline(pipeline_id).await.map_err(|e| match e {
            StoreError::NotFound => {
                StoreError::Invalid(format!("pipeline {pipeline_id} does not exist"))
            }
            e => e,
        })?;
        let first = pipeline
            .stages
            .first()
            .ok_or_else(|| StoreError::Invalid("the pipeline has no stages".into()))?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deals (title, contact_id, owner_id, pipeline_id, stage_id, amount_minor, currency, \
             status, stage_entered_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8, $8) RETURNING id",
        )
        .bind(&d.title)
        .bind(d.contact_id)
        .bind(d.owner_id)
        .bind(pipeline_id)
        .bind(first.id)
        .bind(d.amount_minor)
        .bind(&d.currency)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "deal"))?;
        sqlx::query(
            "INSERT INTO deal_stage_history (deal_id, stage_id, entered_at) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(first.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.deal(id).await
    }

    pub async fn update_deal(&self, id: i64, d: &DealData) -> Result<Deal> {
        let n = sqlx::query(
            "UPDATE deals SET title = $1, contact_id = $2, owner_id = $3, amount_minor = $4, currency = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&d.title)
        .bind(d.contact_id)
        .bind(d.owner_id)
        .bind(d.amount_minor)
        .bind(&d.currency)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "deal"))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.deal(id).await
    }

    /// Moves a deal to another stage of its pipeline, closing the current stay.
    /// Returns the deal and the stage it left.
    pub async fn move_deal(&self, id: i64, stage_id: i64) -> Result<(Deal, Stage)> {
        let deal = self.deal(id).await?;
        let pipeline = self.pipeline(deal.pipeline_id).await?;
        let to = pipeline
            .stages
            .iter()
            .find(|s| s.id == stage_id)
            .ok_or_else(|| {
                StoreError::Invalid(format!("stage {stage_id} is not in this deal's pipeline"))
            })?;
        let from = pipeline
            .stages
            .iter()
            .find(|s| s.id == deal.stage_id)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if to.id == deal.stage_id {
            return Err(StoreError::Conflict(
                "the deal is already in this stage".into(),
            ));
        }
        let now = now_ms();
        let closed_at = (to.outcome != "open").then_some(now);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deal_stage_history SET left_at = $1 WHERE deal_id = $2 AND left_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deal_stage_history (deal_id, stage_id, entered_at) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(to.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deals SET stage_id = $1, status = $2, stage_entered_at = $3, closed_at = $4, \
             updated_at = $3 WHERE id = $5",
        )
        .bind(to.id)
        .bind(&to.outcome)
        .bind(now)
        .bind(closed_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((self.deal(id).await?, from))
    }

    pub async fn deal_history(&self, id: i64) -> Result<Vec<StageStay>> {
        let mut v: Vec<StageStay> = sqlx::query_as(
            "SELECT h.stage_id, s.name AS stage_name, h.entered_at, h.left_at FROM deal_stage_history h \
             JOIN stages s ON s.id = h.stage_id WHERE h.deal_id = $1 ORDER BY h.entered_at, h.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        for s in &mut v {
            s.seconds = (s.left_at.unwrap_or(now) - s.entered_at) / 1000;
        }
        Ok(v)
    }

    pub async fn deal(&self, id: i64) -> Result<Deal> {
        let mut sql = Sql::new(DEAL_SELECT);
        sql.push(" AND d.id = ").bind(Arg::I(id));
        sql.query_as()
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn deals(
        &self,
        scope: Scope,
        contact_id: Option<i64>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Deal>> {
        let mut sql = Sql::new(DEAL_SELECT);
        scope.restrict(&mut sql, "d.owner_id");
        if let Some(c) = contact_id {
            sql.push(" AND d.contact_id = ").bind(Arg::I(c));
        }
        if let Some(s) = status {
            sql.push(" AND d.status = ").bind(Arg::S(s.to_owned()));
        }
        sql.push(" ORDER BY d.created_at DESC, d.id DESC LIMIT ")
            .bind(Arg::I(limit))
            .push(" OFFSET ")
            .bind(Arg::I(offset));
        Ok(sql.query_as().fetch_all(&self.pool).await?)
    }
}
