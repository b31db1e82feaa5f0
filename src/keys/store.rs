//! The key table on SQLite or PostgreSQL. Both get the same DDL (types both understand), created
//! by switchyard when missing and extended in place when a newer version adds columns; list
//! fields and metadata are stored as JSON text. Only the hash of a secret is ever written.

use super::period::Period;
use super::record::{Budget, VirtualKey};
use crate::config::spend_log::Target;
use crate::db::{self, Pool};
use sqlx::Row;
use std::path::PathBuf;

pub const DEFAULT_TABLE: &str = "switchyard_keys";

/// Columns added after the first version, for `ensure_schema` to add to an older table.
const ADDED_COLUMNS: &[(&str, &str)] = &[];

const COLUMNS: &str = "id, name, hash, hint, team, metadata, tiers, models, budget_usd, \
    budget_period, rpm, tpm, max_parallel, expires_ms, disabled, revoked_ms, created_ms, updated_ms";

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn u64_col(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn col_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

/// Binds a key's columns in `COLUMNS` order.
macro_rules! bind_all {
    ($q:expr, $k:expr) => {{
        let k = $k;
        $q.bind(k.id.clone())
            .bind(k.name.clone())
            .bind(k.hash.clone())
            .bind(k.hint.clone())
            .bind(k.team.clone())
            .bind(json_text(&k.metadata))
            .bind(json_text(&k.tiers))
            .bind(json_text(&k.models))
            .bind(k.budget.map(|b| b.usd))
            .bind(k.budget.map(|b| b.period.label()))
            .bind(u64_col(k.rpm))
            .bind(u64_col(k.tpm))
            .bind(u64_col(k.max_parallel))
            .bind(k.expires_ms)
            .bind(k.disabled)
            .bind(k.revoked_ms)
            .bind(k.created_ms)
            .bind(k.updated_ms)
    }};
}

/// Reads one row of `COLUMNS` into a key; a row this version cannot read is an error, not a
/// key with settings silently dropped.
macro_rules! read_row {
    ($r:expr) => {{
        let r = $r;
        let parse = |s: String, col: &str| -> Result<serde_json::Value, sqlx::Error> {
            serde_json::from_str(&s).map_err(|e| sqlx::Error::ColumnDecode {
                index: col.into(),
                source: Box::new(e),
            })
        };
        let list = |v: serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let budget_usd: Option<f64> = r.try_get("budget_usd")?;
        let period: Option<String> = r.try_get("budget_period")?;
        let budget = match budget_usd {
            Some(usd) => {
                let p = Period::parse(period.as_deref().unwrap_or("month")).map_err(|e| {
                    sqlx::Error::ColumnDecode {
                        index: "budget_period".into(),
                        source: e.into(),
                    }
                })?;
                Some(Budget { usd, period: p })
            }
            None => None,
        };
        Ok(VirtualKey {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            hash: r.try_get("hash")?,
            hint: r.try_get("hint")?,
            team: r.try_get("team")?,
            metadata: parse(r.try_get("metadata")?, "metadata")?,
            tiers: list(parse(r.try_get("tiers")?, "tiers")?),
            models: list(parse(r.try_get("models")?, "models")?),
            budget,
            rpm: col_u64(r.try_get("rpm")?),
            tpm: col_u64(r.try_get("tpm")?),
            max_parallel: col_u64(r.try_get("max_parallel")?),
            expires_ms: r.try_get("expires_ms")?,
            disabled: r.try_get("disabled")?,
            revoked_ms: r.try_get("revoked_ms")?,
            created_ms: r.try_get("created_ms")?,
            updated_ms: r.try_get("updated_ms")?,
        })
    }};
}

#[derive(Clone)]
pub struct Store {
    db: Pool,
    /// The SQLite file, kept so a gateway that has no key file yet reads as having no keys,
    /// without creating one just by starting.
    file: Option<PathBuf>,
    /// A plain SQL identifier (checked when the config is loaded).
    table: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a key named {0:?} already exists")]
    Duplicate(String),
    #[error("key store: {0}")]
    Db(#[from] sqlx::Error),
}

impl Store {
    /// Makes the pool without connecting; a SQLite file is created on the first write.
    pub fn connect_lazy(target: &Target, table: &str) -> Result<Store, String> {
        crate::config::spend_log::check_table(table).map_err(|e| format!("keys.table: {e}"))?;
        Ok(Store {
            db: db::connect_lazy(target, true, "key store")?,
            file: match target {
                Target::Sqlite(path) => Some(path.clone()),
                Target::Postgres(_) => None,
            },
            table: table.to_string(),
        })
    }

    /// The teams table beside this keys table, in the same database.
    pub fn teams(&self) -> super::team_store::TeamStore {
        super::team_store::TeamStore {
            db: self.db.clone(),
            file: self.file.clone(),
            table: super::team_store::teams_table(&self.table),
        }
    }

    /// A SQLite store whose file does not exist yet holds no keys.
    pub fn absent(&self) -> bool {
        self.file.as_ref().is_some_and(|p| !p.exists())
    }

    pub async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        let table = &self.table;
        if let Some(file) = &self.file {
            db::make_parent_dir(file);
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                hash TEXT NOT NULL UNIQUE,
                hint TEXT NOT NULL,
                team TEXT,
                metadata TEXT NOT NULL,
                tiers TEXT NOT NULL,
                models TEXT NOT NULL,
                budget_usd DOUBLE PRECISION,
                budget_period TEXT,
                rpm BIGINT,
                tpm BIGINT,
                max_parallel BIGINT,
                expires_ms BIGINT,
                disabled BOOLEAN NOT NULL,
                revoked_ms BIGINT,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL
            )"
        );
        match &self.db {
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(&create).execute(&mut *tx).await?;
                db::add_columns_sqlite(&mut tx, table, ADDED_COLUMNS).await?;
                tx.commit().await
            }
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(&create).execute(&mut *tx).await?;
                db::add_columns_postgres(&mut tx, table, ADDED_COLUMNS).await?;
                tx.commit().await
            }
        }
    }

    pub async fn insert(&self, k: &VirtualKey) -> Result<(), StoreError> {
        let table = &self.table;
        self.write(
            &format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
            k,
        )
        .await
    }

    /// Writes every setting of `k` over the row with its id.
    pub async fn update(&self, k: &VirtualKey) -> Result<(), StoreError> {
        let table = &self.table;
        self.write(
            &format!(
                "UPDATE {table} SET name = $2, hash = $3, hint = $4, team = $5, metadata = $6, \
                 tiers = $7, models = $8, budget_usd = $9, budget_period = $10, rpm = $11, \
                 tpm = $12, max_parallel = $13, expires_ms = $14, disabled = $15, \
                 revoked_ms = $16, created_ms = $17, updated_ms = $18 WHERE id = $1"
            ),
            k,
        )
        .await
    }

    /// Runs `sql` with `k`'s columns bound in `COLUMNS` order. A name another key holds is
    /// `Duplicate`, so callers can tell the user which name to change.
    async fn write(&self, sql: &str, k: &VirtualKey) -> Result<(), StoreError> {
        self.ensure_schema().await?;
        let done = match &self.db {
            Pool::Sqlite(p) => bind_all!(sqlx::query(sql), k).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => bind_all!(sqlx::query(sql), k).execute(p).await.map(|_| ()),
        };
        done.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Duplicate(k.name.clone())
            }
            _ => StoreError::Db(e),
        })
    }

    pub async fn all(&self) -> Result<Vec<VirtualKey>, sqlx::Error> {
        let table = &self.table;
        if self.absent() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {COLUMNS} FROM {table} ORDER BY name");
        match &self.db {
            Pool::Sqlite(p) => {
                let rows = sqlx::query(&sql).fetch_all(p).await?;
                rows.iter().map(|r| read_row!(r)).collect()
            }
            Pool::Postgres(p) => {
                let rows = sqlx::query(&sql).fetch_all(p).await?;
                rows.iter().map(|r| read_row!(r)).collect()
            }
        }
    }

    /// A value that changes whenever (the table must exist: see `ensure_schema`); a sum rather
    /// than a maximum, since every change raises its own key's `updated_ms` but a replica whose
    /// clock is behind may not raise it past another key's a key is added or changed: the cache reloads when it moves.
    pub async fn version(&self) -> Result<(i64, i64), sqlx::Error> {
        let table = &self.table;
        if self.absent() {
            return Ok((0, 0));
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(updated_ms), 0) AS BIGINT) FROM {table}"
        );
        match &self.db {
            Pool::Sqlite(p) => sqlx::query_as(&sql).fetch_one(p).await,
            Pool::Postgres(p) => sqlx::query_as(&sql).fetch_one(p).await,
        }
    }

    pub async fn close(&self) {
        match &self.db {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}
