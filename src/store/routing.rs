//! Routing rules as stored, and the few reads the router caches (users with
//! their team and extensions) or needs per caller (owners by number).

use sqlx::FromRow;

use super::{Db, Result, StoreError, now_ms};

/// One row of `routing_rules`; the router parses it into a typed rule.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct RuleRow {
    pub id: i64,
    pub priority: i64,
    pub name: String,
    pub kind: String,
    pub enabled: i64,
    pub match_number: Option<String>,
    pub timezone: Option<String>,
    pub days: Option<String>,
    pub open_minute: Option<i64>,
    pub close_minute: Option<i64>,
    pub target: Option<String>,
    pub outside_target: Option<String>,
}

/// A rule as written (already validated by the router).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleData {
    pub priority: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub match_number: Option<String>,
    pub timezone: Option<String>,
    pub days: Option<String>,
    pub open_minute: Option<i64>,
    pub close_minute: Option<i64>,
    pub target: Option<String>,
    pub outside_target: Option<String>,
}

impl From<&RuleRow> for RuleData {
    fn from(r: &RuleRow) -> Self {
        RuleData {
            priority: r.priority,
            name: r.name.clone(),
            kind: r.kind.clone(),
            enabled: r.enabled != 0,
            match_number: r.match_number.clone(),
            timezone: r.timezone.clone(),
            days: r.days.clone(),
            open_minute: r.open_minute,
            close_minute: r.close_minute,
            target: r.target.clone(),
            outside_target: r.outside_target.clone(),
        }
    }
}

/// A user as the router sees them.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct RoutingUser {
    pub id: i64,
    pub login: String,
    pub team_id: Option<i64>,
    pub active: i64,
    /// The first extension (in text order), if any.
    #[sqlx(skip)]
    pub extension: Option<String>,
}

/// The managers who take leads no rule assigns.
#[derive(Debug, Clone, Default)]
pub struct LeadTakers {
    /// Active managers, ascending, with their team.
    pub managers: Vec<(i64, Option<i64>)>,
    /// The team of the call's first user in one.
    pub team: Option<i64>,
}

const COLS: &str = "id, priority, name, kind, enabled, match_number, timezone, days, \
                    open_minute, close_minute, target, outside_target";

impl Db {
    pub async fn routing_rules(&self) -> Result<Vec<RuleRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLS} FROM routing_rules ORDER BY priority, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn routing_rule(&self, id: i64) -> Result<RuleRow> {
        sqlx::query_as(&format!("SELECT {COLS} FROM routing_rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn create_routing_rule(&self, d: &RuleData) -> Result<RuleRow> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO routing_rules (priority, name, kind, enabled, match_number, timezone, days, \
             open_minute, close_minute, target, outside_target, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        )
        .bind(d.priority)
        .bind(&d.name)
        .bind(&d.kind)
        .bind(i64::from(d.enabled))
        .bind(&d.match_number)
        .bind(&d.timezone)
        .bind(&d.days)
        .bind(d.open_minute)
        .bind(d.close_minute)
        .bind(&d.target)
        .bind(&d.outside_target)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "routing rule"))?;
        self.routing_rule(id).await
    }

    pub async fn update_routing_rule(&self, id: i64, d: &RuleData) -> Result<RuleRow> {
        let n = sqlx::query(
            "UPDATE routing_rules SET priority = $1, name = $2, kind = $3, enabled = $4, \
             match_number = $5, timezone = $6, days = $7, open_minute = $8, close_minute = $9, \
             target = $10, outside_target = $11, updated_at = $12 WHERE id = $13",
        )
        .bind(d.priority)
        .bind(&d.name)
        .bind(&d.kind)
        .bind(i64::from(d.enabled))
        .bind(&d.match_number)
        .bind(&d.timezone)
        .bind(&d.days)
        .bind(d.open_minute)
        .bind(d.close_minute)
        .bind(&d.target)
        .bind(&d.outside_target)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "routing rule"))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.routing_rule(id).await
    }

    pub async fn delete_routing_rule(&self, id: i64) -> Result<()> {
        let n = sqlx::query("DELETE FROM routing_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Every user with team, active flag and first extension, ordered by id.
    pub async fn routing_users(&self) -> Result<Vec<RoutingUser>> {
        let mut users: Vec<RoutingUser> =
            sqlx::query_as("SELECT id, login, team_id, active FROM users ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let exts: Vec<(String, i64)> =
            sqlx::query_as("SELECT extension, user_id FROM user_extensions ORDER BY extension")
                .fetch_all(&self.pool)
                .await?;
        for (ext, uid) in exts {
            if let Ok(i) = users.binary_search_by_key(&uid, |u| u.id)
                && users[i].extension.is_none()
            {
                users[i].extension = Some(ext);
            }
        }
        Ok(users)
    }

    /// Who may take a lead no rule assigns: every active manager (ascending,
    /// with their team) and the team of the first of `users` in one.
    pub async fn lead_takers(&self, users: &[i64]) -> Result<LeadTakers> {
        let managers: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, team_id FROM users WHERE role = 'manager' AND active = 1 ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut team = None;
        for &u in users {
            let t: Option<Option<i64>> =
                sqlx::query_scalar("SELECT team_id FROM users WHERE id = $1")
                    .bind(u)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(Some(t)) = t {
                team = Some(t);
                break;
            }
        }
        Ok(LeadTakers { managers, team })
    }

    /// Whether the user exists and is active.
    pub async fn user_is_active(&self, id: i64) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND active = 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Whether a team with this id exists.
    pub async fn team_exists(&self, id: i64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM teams WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Who holds this number, in one read: every contact with it as
    /// `('c', contact id, owner id)` by id, then the newest open (new or
    /// qualified) lead with it as `('l', lead id, manager id)`.
    pub async fn number_holders(&self, e164: &str) -> Result<Vec<(String, i64, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT k, id, owner FROM (\
               SELECT 'c' AS k, c.id AS id, c.owner_id AS owner, 0 AS ord, 0 AS at FROM contacts c \
                 JOIN contact_phones p ON p.contact_id = c.id WHERE p.e164 = $1 \
               UNION ALL \
               SELECT 'l', id, manager_id, 1, created_at FROM leads \
                 WHERE phone_e164 = $1 AND status IN ('new', 'qualified') \
             ) h ORDER BY ord, at DESC, id",
        )
        .bind(e164)
        .fetch_all(&self.pool)
        .await?)
    }
}
