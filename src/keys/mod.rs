//! Virtual keys: issued by switchyard (`sk-sy-…`, shown once), stored as SHA-256 hashes in a
//! database (the `keys.database` setting, else the spend log's, else `keys.db` beside the config),
//! each with a name, team, metadata, the tiers and models it may use, a budget per period, rate
//! limits, an expiry and a disabled flag. The gateway keeps them in memory and re-reads the table
//! when it changes (checked every `keys.refresh`, 500 ms by default), so a revocation through
//! another process takes effect within a second and one through this process at once. With shared
//! state in Redis, a change also bumps a counter there that every replica reads every
//! [`NUDGE_EVERY`], so the others re-read the table at once instead of at their next check.
//! Team budgets ([`Team`]) live in a table beside the keys' and are cached, re-read and
//! announced with them.
//!
//! Must not import `dispatch`: the pipeline turns a key's allowed tiers into plain data for it.

mod change;
pub mod cli;
mod period;
mod record;
pub mod secret;
mod store;
mod team;
pub mod team_cli;
mod team_ops;
mod team_store;

pub use change::{Change, Invalid, Known, check_name};
pub use period::Period;
pub use record::{Budget, Unusable, VirtualKey, now_ms, rfc3339};
pub use store::{DEFAULT_TABLE, Store, StoreError};
pub use team::{Team, TeamChange, check_team_name};
pub use team_store::teams_table;

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_REFRESH: Duration = Duration::from_millis(500);
/// How often a replica with shared state looks at the keys' change counter in Redis.
pub const NUDGE_EVERY: Duration = Duration::from_millis(100);
const CHANGES: &str = "keys";

/// The keys as this process last read them.
#[derive(Default)]
struct Cache {
    by_hash: HashMap<String, Arc<VirtualKey>>,
    /// Teams with a budget, by name.
    teams: HashMap<String, Arc<Team>>,
    /// The keys table's version, then the teams table's.
    version: [i64; 4],
}

/// What went wrong with an admin operation, for a CLI message or an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("no key named {0:?}")]
    NotFound(String),
    #[error("no team named {0:?}")]
    NoTeam(String),
    #[error("a key named {0:?} already exists")]
    Duplicate(String),
    #[error("the key store could not be used: {0}")]
    Store(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(n) => OpError::Duplicate(n),
            StoreError::Db(e) => OpError::Store(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Store(e.to_string())
    }
}

pub struct Keys {
    store: Store,
    teams: team_store::TeamStore,
    /// Where the keys live, for log lines (never a password).
    pub describe: String,
    cache: ArcSwap<Cache>,
    /// The table is known to exist (created or checked once per process).
    schema_ready: std::sync::atomic::AtomicBool,
    /// The keys were read at least once.
    read: std::sync::atomic::AtomicBool,
    /// Until the keys were read, ask every caller for one (`keys.database` was set explicitly).
    fail_closed: bool,
    /// Shared state, where changes are announced to the other replicas.
    changes: std::sync::OnceLock<Arc<crate::state::redis::Link>>,
    /// Told of teams that got a budget, or a new period, since the last read.
    new_teams: std::sync::OnceLock<NewTeams>,
}

/// What [`Keys::on_new_teams`] registers.
pub type NewTeams = Box<dyn Fn(Vec<Arc<Team>>) + Send + Sync>;

impl Keys {
    /// `fail_closed`: until the store could be read, requests need a key (see [`Keys::any`]).
    pub fn open(
        target: &crate::config::spend_log::Target,
        table: &str,
        fail_closed: bool,
    ) -> Result<Keys, String> {
        let store = Store::connect_lazy(target, table)?;
        Ok(Keys {
            teams: store.teams(),
            store,
            describe: target.describe(),
            cache: ArcSwap::from_pointee(Cache::default()),
            schema_ready: std::sync::atomic::AtomicBool::new(false),
            read: std::sync::atomic::AtomicBool::new(false),
            fail_closed,
            changes: std::sync::OnceLock::new(),
            new_teams: std::sync::OnceLock::new(),
        })
    }

    /// Announces this process's changes through `link`, and listens for the other replicas'.
    /// Set once, before [`Keys::spawn_refresher`].
    pub fn share_changes(&self, link: Arc<crate::state::redis::Link>) {
        let _ = self.changes.set(link);
    }

    /// Calls `f` with the teams that got a budget (or a new period) at each later read, whether
    /// the change came through this process or another. Set once.
    pub fn on_new_teams(&self, f: NewTeams) {
        let _ = self.new_teams.set(f);
    }

    /// Tells the other replicas to re-read the keys now. Best effort: they also re-read on their
    /// own schedule.
    async fn announce(&self) {
        if let Some(link) = self.changes.get() {
            crate::state::redis::signal::bump(link, CHANGES).await;
        }
    }

    /// Both tables' versions, which move whenever a key or a team changes.
    async fn version(&self) -> Result<[i64; 4], sqlx::Error> {
        let (a, b) = self.store.version().await?;
        let (c, d) = self.teams.version().await?;
        Ok([a, b, c, d])
    }

    /// Re-reads the tables when they changed since the last read.
    pub async fn refresh(&self) -> Result<(), sqlx::Error> {
        self.ready().await?;
        let version = self.version().await?;
        if version != self.cache.load().version {
            self.reload_at(version).await?;
        }
        self.read.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn reload_at(&self, version: [i64; 4]) -> Result<(), sqlx::Error> {
        let by_hash = self
            .store
            .all()
            .await?
            .into_iter()
            .map(|k| (k.hash.clone(), Arc::new(k)))
            .collect();
        let teams = self
            .teams
            .all()
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), Arc::new(t)))
            .collect();
        let teams: HashMap<String, Arc<Team>> = teams;
        let old = self.cache.load();
        let new: Vec<Arc<Team>> = teams
            .values()
            .filter(|t| {
                old.teams
                    .get(&t.name)
                    .is_none_or(|o| o.budget.period != t.budget.period)
            })
            .cloned()
            .collect();
        self.cache.store(Arc::new(Cache {
            by_hash,
            teams,
            version,
        }));
        if let (Some(f), false) = (self.new_teams.get(), new.is_empty()) {
            f(new);
        }
        Ok(())
    }

    /// Creates or migrates the table once, unless the store is a SQLite file not made yet.
    async fn ready(&self) -> Result<(), sqlx::Error> {
        use std::sync::atomic::Ordering;
        if self.schema_ready.load(Ordering::Relaxed) || self.store.absent() {
            return Ok(());
        }
        self.store.ensure_schema().await?;
        self.teams.ensure_schema().await?;
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn reload(&self) {
        // The first write may have just made the file: both tables must exist before reading.
        if let Err(e) = self.ready().await {
            tracing::warn!(error = %e, "key store: re-reading the keys failed");
            return;
        }
        match self.version().await {
            Ok(v) => {
                if let Err(e) = self.reload_at(v).await {
                    tracing::warn!(error = %e, "key store: re-reading the keys failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "key store: re-reading the keys failed"),
        }
    }

    /// Refreshes every `every` until the process ends, and sooner when another replica announced
    /// a change. A store that cannot be read keeps the keys last read (and says so once per
    /// outage).
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let keys = Arc::downgrade(self);
        let nudged = self.changes.get().is_some();
        tokio::spawn(async move {
            let mut failing = false;
            let mut tick = tokio::time::interval(if nudged {
                every.min(NUDGE_EVERY)
            } else {
                every
            });
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_check = tokio::time::Instant::now();
            let mut seen: Option<i64> = None;
            loop {
                tick.tick().await;
                let Some(k) = keys.upgrade() else { return };
                if let Some(link) = k.changes.get() {
                    let now = crate::state::redis::signal::read(link, CHANGES).await;
                    // The first value read counts as news too: a change announced between
                    // this process's first read of the table and its first read of the counter
                    // would otherwise wait for the schedule.
                    let announced = now.is_some() && now != seen;
                    if now.is_some() {
                        seen = now;
                    }
                    if !announced && last_check.elapsed() < every {
                        continue;
                    }
                }
                last_check = tokio::time::Instant::now();
                match k.refresh().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(store = %k.describe, "key store readable again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(store = %k.describe, error = %e, "key store unreadable; keeping the keys last read");
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// The key a client presented, if switchyard issued it (in whatever state it is now).
    pub fn lookup(&self, presented: &str) -> Option<Arc<VirtualKey>> {
        if !presented.starts_with(secret::PREFIX) {
            return None;
        }
        self.cache
            .load()
            .by_hash
            .get(&secret::hash(presented))
            .cloned()
    }

    /// Every key as last read, for gauges.
    pub fn cached(&self) -> Vec<Arc<VirtualKey>> {
        self.cache.load().by_hash.values().cloned().collect()
    }

    /// Any key was ever issued (revoked ones count): from then on every request needs a key.
    /// A store that was never read counts as having keys when it was configured explicitly
    /// (`keys.database`), so an outage at start does not open the gateway; the default store
    /// (the spend log's database) keeps the spend log's rule that its outage fails no request.
    pub fn any(&self) -> bool {
        !self.cache.load().by_hash.is_empty()
            || (self.fail_closed && !self.read.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub async fn list(&self) -> Result<Vec<VirtualKey>, OpError> {
        self.ready().await?;
        Ok(self.store.all().await?)
    }

    pub async fn show(&self, name: &str) -> Result<VirtualKey, OpError> {
        self.list()
            .await?
            .into_iter()
            .find(|k| k.name == name)
            .ok_or_else(|| OpError::NotFound(name.to_string()))
    }

    /// Issues a key; returns it and its secret, which is not kept anywhere.
    pub async fn create(&self, change: &Change) -> Result<(VirtualKey, String), OpError> {
        let Some(name) = change.name.clone() else {
            return Err(OpError::Invalid(Invalid {
                field: "name".into(),
                message: "`name` is required".into(),
            }));
        };
        let now = now_ms();
        let secret = secret::generate();
        let mut k = VirtualKey::new(
            uuid::Uuid::new_v4().to_string(),
            name,
            secret::hash(&secret),
            secret::hint(&secret),
            now,
        );
        change.apply(&mut k).map_err(OpError::Invalid)?;
        self.store.insert(&k).await?;
        self.reload().await;
        self.announce().await;
        Ok((k, secret))
    }

    pub async fn update(&self, name: &str, change: &Change) -> Result<VirtualKey, OpError> {
        let mut k = self.show(name).await?;
        change.apply(&mut k).map_err(OpError::Invalid)?;
        k.updated_ms = now_ms().max(k.updated_ms + 1);
        self.store.update(&k).await?;
        self.reload().await;
        self.announce().await;
        Ok(k)
    }

    /// Revoked for good: the row stays, so spend reports keep its name.
    pub async fn revoke(&self, name: &str) -> Result<VirtualKey, OpError> {
        let mut k = self.show(name).await?;
        if k.revoked_ms.is_none() {
            let now = now_ms().max(k.updated_ms + 1);
            k.revoked_ms = Some(now);
            k.updated_ms = now;
            self.store.update(&k).await?;
        }
        self.reload().await;
        self.announce().await;
        Ok(k)
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}
