//! Users, teams, their phone extensions and login sessions.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Db, Result, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub name: String,
    /// agent | supervisor | manager | admin
    pub role: String,
    pub team_id: Option<i64>,
    pub locale: String,
    #[serde(serialize_with = "crate::store::ser_flag")]
    #[schema(value_type = bool)]
    pub active: i64,
    /// Extensions on the phone system that ring this user.
    #[sqlx(skip)]
    pub extensions: Vec<String>,
    /// Devices that ring this user, as Asterisk names them; without any,
    /// `[pbx] device` makes them of the extensions.
    #[sqlx(skip)]
    pub devices: Vec<Device>,
    /// The number a click-to-call shows the customer (else the team's, else
    /// `[pbx] presented_number`).
    pub presented_number: Option<String>,
}

/// One of a user's phones: an endpoint as Asterisk names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, FromRow, ToSchema)]
pub struct Device {
    /// `TECH/endpoint`: `PJSIP/anna-desk`, `SIP/150010002`.
    pub device: String,
    /// The extension people dial to reach it, when there is one.
    #[serde(default)]
    pub extension: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Team {
    pub id: i64,
    pub name: String,
    /// The number its members' click-to-calls show the customer.
    pub presented_number: Option<String>,
}

pub const ROLES: [&str; 4] = ["agent", "supervisor", "manager", "admin"];
pub const LOCALES: [&str; 4] = ["en", "ru", "uk", "de"];

pub struct NewUser<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub team_id: Option<i64>,
    pub locale: &'a str,
    pub password_hash: &'a str,
    pub extensions: &'a [String],
}

#[derive(Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub role: Option<String>,
    pub team_id: Option<Option<i64>>,
    pub locale: Option<String>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
    pub extensions: Option<Vec<String>>,
    pub devices: Option<Vec<Device>>,
    pub presented_number: Option<Option<String>>,
}

const USER_COLS: &str = "id, login, name, role, team_id, locale, active, presented_number";

impl Db {
    pub async fn create_user(&self, u: NewUser<'_>) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (login, name, role, team_id, locale, password_hash, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) RETURNING id",
        )
        .bind(u.login)
        .bind(u.name)
        .bind(u.role)
        .bind(u.team_id)
        .bind(u.locale)
        .bind(u.password_hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "a user with this login"))?;
        for ext in u.extensions {
            sqlx::query("INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)")
                .bind(ext)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, &format!("extension {ext}")))?;
        }
        tx.commit().await?;
        self.user(id).await
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        let mut user: User =
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        user.extensions = self.extensions_of(id).await?;
        user.devices = self.devices_of(id).await?;
        Ok(user)
    }

    async fn devices_of(&self, id: i64) -> Result<Vec<Device>> {
        Ok(sqlx::query_as(
            "SELECT device, extension FROM user_devices WHERE user_id = $1 ORDER BY device",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every active user's devices, as (device, extension, user).
    pub async fn active_devices(&self) -> Result<Vec<(String, Option<String>, i64)>> {
        Ok(sqlx::query_as(
            "SELECT d.device, d.extension, d.user_id FROM user_devices d \
             JOIN users u ON u.id = d.user_id WHERE u.active = 1 ORDER BY d.user_id, d.device",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces a user's devices (and sets the number their click-to-calls
    /// present, when given) after `create_user`.
    pub async fn set_user_phones(
        &self,
        id: i64,
        devices: Option<&[Device]>,
        presented_number: Option<Option<&str>>,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        if let Some(devices) = devices {
            write_devices(&mut tx, id, devices).await?;
        }
        if let Some(n) = presented_number {
            sqlx::query("UPDATE users SET presented_number = $1 WHERE id = $2")
                .bind(n)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await
    }

    /// Sets the number a team's click-to-calls present (`None` clears it).
    pub async fn set_team_presented_number(&self, id: i64, number: Option<&str>) -> Result<Team> {
        let n = sqlx::query("UPDATE teams SET presented_number = $1 WHERE id = $2")
            .bind(number)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(
            sqlx::query_as("SELECT id, name, presented_number FROM teams WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn extensions_of(&self, id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT extension FROM user_extensions WHERE user_id = $1 ORDER BY extension",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The user and password hash for a login, when the account is active.
    pub async fn credentials(&self, login: &str) -> Result<Option<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT id, password_hash FROM users WHERE login = $1 AND active = 1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let mut users: Vec<User> =
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        let exts: Vec<(String, i64)> =
            sqlx::query_as("SELECT extension, user_id FROM user_extensions ORDER BY extension")
                .fetch_all(&self.pool)
                .await?;
        for (ext, uid) in exts {
            if let Some(u) = users.iter_mut().find(|u| u.id == uid) {
                u.extensions.push(ext);
            }
        }
        let devices: Vec<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT device, extension, user_id FROM user_devices ORDER BY device")
                .fetch_all(&self.pool)
                .await?;
        for (device, extension, uid) in devices {
            if let Some(u) = users.iter_mut().find(|u| u.id == uid) {
                u.devices.push(Device { device, extension });
            }
        }
        Ok(users)
    }

    pub async fn update_user(&self, id: i64, c: UserChanges) -> Result<User> {
        let mut tx = self.begin_write().await?;
        // Locks the row on PostgreSQL so that two changes of one user's
        // extensions run one after the other (SQLite's write lock already
        // serializes them).
        let check = match self.backend {
            crate::store::Backend::Sqlite => "SELECT id FROM users WHERE id = $1",
            crate::store::Backend::Postgres => "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        };
        let exists: Option<i64> = sqlx::query_scalar(check)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        exists.ok_or(StoreError::NotFound)?;
        if let Some(v) = c.name {
            sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = c.role {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = c.team_id {
            sqlx::query("UPDATE users SET team_id = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, "team"))?;
        }
        if let Some(v) = c.locale {
            sqlx::query("UPDATE users SET locale = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = c.active {
            sqlx::query("UPDATE users SET active = $1 WHERE id = $2")
                .bind(v as i64)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if !v {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(v) = c.password_hash {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(v)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(exts) = c.extensions {
            sqlx::query("DELETE FROM user_extensions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for ext in &exts {
                sqlx::query("INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)")
                    .bind(ext)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::from_write(e, &format!("extension {ext}")))?;
            }
        }
        if let Some(devices) = c.devices {
            write_devices(&mut tx, id, &devices).await?;
        }
        if let Some(n) = c.presented_number {
            sqlx::query("UPDATE users SET presented_number = $1 WHERE id = $2")
                .bind(n)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await
    }

    /// How many active admins there are.
    pub async fn active_admins(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn user_id_by_login(&self, login: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn create_team(&self, name: &str) -> Result<Team> {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO teams (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(now_ms())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_write(e, "a team with this name"))?;
        Ok(Team {
            id,
            name: name.to_owned(),
            presented_number: None,
        })
    }

    pub async fn teams(&self) -> Result<Vec<Team>> {
        Ok(
            sqlx::query_as("SELECT id, name, presented_number FROM teams ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn create_session(&self, token_hash: &str, user_id: i64, ttl_ms: i64) -> Result<i64> {
        let now = now_ms();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok(now + ttl_ms)
    }

    /// The active user holding an unexpired session with this token hash.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active = 1",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => Ok(Some(self.user(id).await?)),
            None => Ok(None),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn write_devices(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    devices: &[Device],
) -> Result<()> {
    sqlx::query("DELETE FROM user_devices WHERE user_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for d in devices {
        sqlx::query("INSERT INTO user_devices (device, user_id, extension) VALUES ($1, $2, $3)")
            .bind(&d.device)
            .bind(id)
            .bind(&d.extension)
            .execute(&mut **tx)
            .await
            .map_err(|e| StoreError::from_write(e, &format!("device {}", d.device)))?;
    }
    Ok(())
}
