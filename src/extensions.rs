//! Which active users each phone extension rings, in memory, so a ringing
//! phone costs no database read on its way to the agent's screen.
//!
//! Owns the extension → users map: loaded at start, updated by each user
//! write made through the API, and re-read every few seconds so writes made
//! elsewhere (`ringside user`, another node) are seen too. An extension the
//! map does not know is asked of the database once and remembered, so a
//! user added a moment ago elsewhere is rung at once. The database keeps the
//! truth; this never writes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::users::User;
use crate::store::{Db, StoreError};

#[derive(Default)]
pub struct Extensions {
    map: RwLock<HashMap<String, Vec<i64>>>,
    /// Bumped by every change made here, so a re-read that overlapped one
    /// does not put back what it changed.
    writes: AtomicU64,
}

impl Extensions {
    /// Reads every active user's extensions.
    pub async fn load(db: &Db) -> Result<Extensions, StoreError> {
        let ext = Extensions::default();
        ext.reload(db).await?;
        Ok(ext)
    }

    /// The active users whose phone is `extension`.
    pub async fn users(&self, db: &Db, extension: &str) -> Result<Vec<i64>, StoreError> {
        if let Some(users) = self.read().get(extension) {
            return Ok(users.clone());
        }
        let users = db.users_for_extension(extension).await?;
        if !users.is_empty() {
            self.writes.fetch_add(1, Ordering::AcqRel);
            self.write().insert(extension.to_owned(), users.clone());
        }
        Ok(users)
    }

    /// Takes a user's extensions and active flag after a write.
    pub fn set_user(&self, user: &User) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut map = self.write();
        for users in map.values_mut() {
            users.retain(|u| *u != user.id);
        }
        if user.active != 0 {
            for ext in &user.extensions {
                let users = map.entry(ext.clone()).or_default();
                users.push(user.id);
                users.sort_unstable();
            }
        }
        map.retain(|_, users| !users.is_empty());
    }

    /// Reads the whole map again and swaps it in, unless a change was made
    /// here meanwhile (the next re-read brings that in).
    pub async fn reload(&self, db: &Db) -> Result<bool, StoreError> {
        let before = self.writes.load(Ordering::Acquire);
        let mut fresh: HashMap<String, Vec<i64>> = HashMap::new();
        for (ext, user) in db.active_extensions().await? {
            fresh.entry(ext).or_default().push(user);
        }
        let mut map = self.write();
        if self.writes.load(Ordering::Acquire) != before {
            return Ok(false);
        }
        *map = fresh;
        Ok(true)
    }

    /// Keeps the map in step with the database until the process ends.
    pub fn spawn_sync(self: Arc<Self>, db: Db, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.reload(&db).await {
                    tracing::warn!(error = %e, "extension map re-read failed");
                }
            }
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<i64>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<i64>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::{NewUser, UserChanges};

    async fn user(db: &Db, login: &str, exts: &[&str]) -> User {
        let exts: Vec<String> = exts.iter().map(|e| e.to_string()).collect();
        db.create_user(NewUser {
            login,
            name: login,
            role: "agent",
            team_id: None,
            locale: "en",
            password_hash: "x",
            extensions: &exts,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn follows_writes_here_and_finds_users_added_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("x.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let anna = user(&db, "anna", &["101", "201"]).await;
        let ext = Extensions::load(&db).await.unwrap();
        assert_eq!(ext.users(&db, "101").await.unwrap(), [anna.id]);
        // Added elsewhere after the load: asked of the database, then known.
        let boris = user(&db, "boris", &["102"]).await;
        assert_eq!(ext.users(&db, "102").await.unwrap(), [boris.id]);
        assert!(ext.read().contains_key("102"));
        // A write through the API moves the extension at once.
        let moved = db
            .update_user(
                anna.id,
                UserChanges {
                    extensions: Some(vec!["301".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ext.set_user(&moved);
        assert_eq!(ext.users(&db, "301").await.unwrap(), [anna.id]);
        assert!(!ext.read().contains_key("101"));
        // Deactivated elsewhere: gone after the next re-read.
        db.update_user(
            boris.id,
            UserChanges {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(ext.users(&db, "102").await.unwrap(), [boris.id]);
        assert!(ext.reload(&db).await.unwrap());
        assert_eq!(ext.users(&db, "102").await.unwrap(), Vec::<i64>::new());
        assert_eq!(ext.users(&db, "301").await.unwrap(), [anna.id]);
    }
}
