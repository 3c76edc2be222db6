//! Which users each phone rings, both ways, in memory, so a ringing phone
//! costs no database read on its way to the agent's screen.
//!
//! Owns the device <-> user map: a user's devices (endpoints as Asterisk
//! names them, `PJSIP/anna-desk`, `SIP/150010002`, each optionally with the
//! extension people dial), their extensions, and the `[pbx] device` pattern
//! that names the device of an extension for users without devices of their
//! own. Everything that names an agent's phone or finds the agent of a
//! channel asks here: pops, call-log attribution, agent state, click-to-call,
//! queue pause, queue membership. A phone is known to the call tracker by its
//! key: its extension when it has one, else the device name.
//!
//! Loaded at start, updated by each user write made through the API, and
//! re-read every few seconds so writes made elsewhere (`ringside user`,
//! another node) are seen too. An extension the map does not know is asked
//! of the database once and remembered, so a user added a moment ago
//! elsewhere is rung at once. The database keeps the truth; this never
//! writes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::DevicePattern;
use crate::store::users::{Device, User};
use crate::store::{Db, StoreError};

#[derive(Default)]
struct Map {
    /// Phone key (extension, or device name for a device without one) → users.
    by_key: HashMap<String, Vec<i64>>,
    /// (technology in lower case, endpoint) → (phone key, device as written).
    devices: HashMap<(String, String), (String, String)>,
    /// Each user's own devices, as written.
    of_user: HashMap<i64, Vec<Device>>,
    /// Each user's extensions.
    exts: HashMap<i64, Vec<String>>,
}

impl Map {
    fn add(&mut self, user: i64, exts: &[String], devices: &[Device]) {
        for ext in exts {
            push_user(self.by_key.entry(ext.clone()).or_default(), user);
        }
        for d in devices {
            let key = phone_key(d);
            push_user(self.by_key.entry(key.clone()).or_default(), user);
            if let Some(id) = device_id(&d.device) {
                self.devices.insert(id, (key, d.device.clone()));
            }
        }
        if !exts.is_empty() {
            self.exts.insert(user, exts.to_vec());
        }
        if !devices.is_empty() {
            self.of_user.insert(user, devices.to_vec());
        }
    }

    fn remove(&mut self, user: i64) {
        for users in self.by_key.values_mut() {
            users.retain(|u| *u != user);
        }
        self.by_key.retain(|_, users| !users.is_empty());
        if let Some(devices) = self.of_user.remove(&user) {
            for d in devices {
                if let Some(id) = device_id(&d.device) {
                    self.devices.remove(&id);
                }
            }
        }
        self.exts.remove(&user);
    }
}

fn push_user(users: &mut Vec<i64>, user: i64) {
    if !users.contains(&user) {
        users.push(user);
        users.sort_unstable();
    }
}

/// What the call tracker calls a device's phone: its extension, else its name.
fn phone_key(d: &Device) -> String {
    d.extension.clone().unwrap_or_else(|| d.device.clone())
}

/// A device or channel as (technology in lower case, endpoint name):
/// `PJSIP/anna-desk-0000001a` → (`pjsip`, `anna-desk`).
fn device_id(channel: &str) -> Option<(String, String)> {
    let (tech, name) = crate::telephony::ami::mapper::endpoint(channel)?;
    (!name.is_empty()).then(|| (tech.to_ascii_lowercase(), name.to_owned()))
}

pub struct Extensions {
    map: RwLock<Map>,
    /// The device of an extension for users without devices of their own.
    pattern: DevicePattern,
    /// Bumped by every change made here, so a re-read that overlapped one
    /// does not put back what it changed.
    writes: AtomicU64,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions::with_pattern(DevicePattern::default())
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("pattern", &self.pattern)
            .field("phones", &self.read().by_key.len())
            .finish()
    }
}

impl Extensions {
    pub fn with_pattern(pattern: DevicePattern) -> Extensions {
        Extensions {
            map: RwLock::default(),
            pattern,
            writes: AtomicU64::new(0),
        }
    }

    /// Reads every active user's extensions and devices.
    pub async fn load(db: &Db) -> Result<Extensions, StoreError> {
        Self::load_with(db, DevicePattern::default()).await
    }

    /// The same, naming devices of extensions by `pattern` (`[pbx] device`).
    pub async fn load_with(db: &Db, pattern: DevicePattern) -> Result<Extensions, StoreError> {
        let ext = Extensions::with_pattern(pattern);
        ext.reload(db).await?;
        Ok(ext)
    }

    /// The active users whose phone is `key` (an extension, or a device
    /// name for a device without one).
    pub async fn users(&self, db: &Db, key: &str) -> Result<Vec<i64>, StoreError> {
        if let Some(users) = self.read().by_key.get(key) {
            return Ok(users.clone());
        }
        let users = db.users_for_extension(key).await?;
        if !users.is_empty() {
            self.writes.fetch_add(1, Ordering::AcqRel);
            let mut map = self.write();
            for u in &users {
                push_user(map.by_key.entry(key.to_owned()).or_default(), *u);
            }
        }
        Ok(users)
    }

    /// The phone key of a channel or interface (`PJSIP/anna-desk-0000001a`,
    /// `Local/101@from-queue/n`, `SIP/150010002`) when it is a known
    /// phone: one of the users' devices, or the device `[pbx] device`
    /// makes of a known extension, or a known extension as the endpoint.
    pub fn phone_of(&self, channel: &str) -> Option<String> {
        let id = device_id(channel)?;
        let map = self.read();
        if let Some((key, _)) = map.devices.get(&id) {
            return Some(key.clone());
        }
        if let Some(ext) = self.pattern.ext_of(&format!("{}/{}", id.0, id.1))
            && map.by_key.contains_key(&ext)
        {
            return Some(ext);
        }
        map.by_key.contains_key(&id.1).then_some(id.1)
    }

    /// The active users a channel or queue-member interface belongs to.
    pub fn users_of_device(&self, channel: &str) -> Vec<i64> {
        let Some(key) = self.phone_of(channel) else {
            return Vec::new();
        };
        self.read().by_key.get(&key).cloned().unwrap_or_default()
    }

    /// The same, asking the database about an extension the map does not
    /// know yet (a user added a moment ago elsewhere).
    pub async fn users_of_interface(&self, db: &Db, channel: &str) -> Vec<i64> {
        let users = self.users_of_device(channel);
        if !users.is_empty() {
            return users;
        }
        let Some((tech, name)) = device_id(channel) else {
            return Vec::new();
        };
        let ext = self
            .pattern
            .ext_of(&format!("{tech}/{name}"))
            .unwrap_or(name);
        self.users(db, &ext).await.unwrap_or_default()
    }

    /// The devices that ring a user, as the PBX is to be told them: their
    /// own devices, then `[pbx] device` of each extension none of them has.
    pub fn devices_of(&self, user: &User) -> Vec<String> {
        let mut out: Vec<String> = user.devices.iter().map(|d| d.device.clone()).collect();
        for ext in &user.extensions {
            if !user
                .devices
                .iter()
                .any(|d| d.extension.as_deref() == Some(ext.as_str()))
            {
                out.push(self.pattern.device(ext));
            }
        }
        out
    }

    /// How many devices ring the user with this id, as the map knows them.
    pub fn device_count(&self, user: i64) -> usize {
        let map = self.read();
        let own = map.of_user.get(&user);
        let mut n = own.map_or(0, Vec::len);
        for ext in map.exts.get(&user).into_iter().flatten() {
            if !own
                .into_iter()
                .flatten()
                .any(|d| d.extension.as_deref() == Some(ext.as_str()))
            {
                n += 1;
            }
        }
        n
    }

    /// Takes a user's extensions, devices and active flag after a write.
    pub fn set_user(&self, user: &User) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let mut map = self.write();
        map.remove(user.id);
        if user.active != 0 {
            map.add(user.id, &user.extensions, &user.devices);
        }
    }

    /// Reads the whole map again and swaps it in, unless a change was made
    /// here meanwhile (the next re-read brings that in).
    pub async fn reload(&self, db: &Db) -> Result<bool, StoreError> {
        let before = self.writes.load(Ordering::Acquire);
        let mut exts: HashMap<i64, Vec<String>> = HashMap::new();
        for (ext, user) in db.active_extensions().await? {
            exts.entry(user).or_default().push(ext);
        }
        let mut devices: HashMap<i64, Vec<Device>> = HashMap::new();
        for (device, extension, user) in db.active_devices().await? {
            devices
                .entry(user)
                .or_default()
                .push(Device { device, extension });
        }
        let mut fresh = Map::default();
        let mut users: Vec<i64> = exts.keys().chain(devices.keys()).copied().collect();
        users.sort_unstable();
        users.dedup();
        for u in users {
            fresh.add(
                u,
                exts.get(&u).map_or(&[][..], Vec::as_slice),
                devices.get(&u).map_or(&[][..], Vec::as_slice),
            );
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
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
        assert!(ext.read().by_key.contains_key("102"));
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
        assert!(!ext.read().by_key.contains_key("101"));
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

    #[tokio::test]
    async fn devices_find_their_user_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("x.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let anna = user(&db, "anna", &[]).await;
        let anna = db
            .set_user_phones(
                anna.id,
                Some(&[
                    Device {
                        device: "PJSIP/anna-desk".into(),
                        extension: Some("101".into()),
                    },
                    Device {
                        device: "SIP/150010002".into(),
                        extension: None,
                    },
                ]),
                None,
            )
            .await
            .unwrap();
        let boris = user(&db, "boris", &["7"]).await;
        let ext = Extensions::load_with(&db, DevicePattern::parse("SIP/1500{ext}").unwrap())
            .await
            .unwrap();
        assert_eq!(
            ext.phone_of("PJSIP/anna-desk-0000001a").as_deref(),
            Some("101")
        );
        assert_eq!(
            ext.phone_of("sip/150010002-00000002").as_deref(),
            Some("SIP/150010002")
        );
        assert_eq!(ext.users_of_device("SIP/150010002"), [anna.id]);
        assert_eq!(ext.users(&db, "101").await.unwrap(), [anna.id]);
        // The pattern read the other way: SIP/15007 is extension 7.
        assert_eq!(ext.phone_of("SIP/15007-0000000a").as_deref(), Some("7"));
        assert_eq!(ext.users_of_device("SIP/15007"), [boris.id]);
        assert_eq!(ext.phone_of("PJSIP/trunk-0000000c"), None);
        assert_eq!(ext.devices_of(&anna), ["PJSIP/anna-desk", "SIP/150010002"]);
        assert_eq!(ext.devices_of(&boris), ["SIP/15007"]);
        assert_eq!(ext.device_count(anna.id), 2);
    }
}
