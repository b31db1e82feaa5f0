//! The teams table, beside the keys table in the same database: one row per team with a budget.
//! Its name follows the keys table's (`switchyard_keys` → `switchyard_teams`, `acme` →
//! `acme_teams`), so a config that moves its keys moves its teams with them.

use super::period::Period;
use super::record::Budget;
use super::team::Team;
use crate::db::Pool;
use sqlx::Row;
use std::path::PathBuf;

/// The teams table that goes with the keys table `keys_table` (a plain identifier, so the
/// result is one too).
pub fn teams_table(keys_table: &str) -> String {
    let stem = keys_table.strip_suffix("_keys").unwrap_or(keys_table);
    format!("{stem}_teams")
}

const COLUMNS: &str = "name, budget_usd, budget_period, created_ms, updated_ms";

#[derive(Clone)]
pub struct TeamStore {
    pub(super) db: Pool,
    /// The SQLite file: until it exists there are no teams (see `Store::absent`).
    pub(super) file: Option<PathBuf>,
    pub(super) table: String,
}

/// Reads one row of `COLUMNS`; a period this version cannot read is an error, not a team with
/// its budget silently changed.
macro_rules! read_row {
    ($r:expr) => {{
        let r = $r;
        let period: String = r.try_get("budget_period")?;
        let period = Period::parse(&period).map_err(|e| sqlx::Error::ColumnDecode {
            index: "budget_period".into(),
            source: e.into(),
        })?;
        Ok(Team {
            name: r.try_get("name")?,
            budget: Budget {
                usd: r.try_get("budget_usd")?,
                period,
            },
            created_ms: r.try_get("created_ms")?,
            updated_ms: r.try_get("updated_ms")?,
        })
    }};
}

impl TeamStore {
    fn absent(&self) -> bool {
        self.file.as_ref().is_some_and(|p| !p.exists())
    }

    pub async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        if let Some(file) = &self.file {
            crate::db::make_parent_dir(file);
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                name TEXT PRIMARY KEY,
                budget_usd DOUBLE PRECISION NOT NULL,
                budget_period TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL
            )",
            self.table
        );
        match &self.db {
            Pool::Sqlite(p) => sqlx::query(&create).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query(&create).execute(p).await.map(|_| ()),
        }
    }

    /// Writes `t` over the row of its name, or adds it.
    pub async fn put(&self, t: &Team) -> Result<(), sqlx::Error> {
        self.ensure_schema().await?;
        let sql = format!(
            "INSERT INTO {} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE \
             SET budget_usd = excluded.budget_usd, budget_period = excluded.budget_period, \
             updated_ms = excluded.updated_ms",
            self.table
        );
        macro_rules! bound {
            () => {
                sqlx::query(&sql)
                    .bind(t.name.clone())
                    .bind(t.budget.usd)
                    .bind(t.budget.period.label())
                    .bind(t.created_ms)
                    .bind(t.updated_ms)
            };
        }
        match &self.db {
            Pool::Sqlite(p) => bound!().execute(p).await.map(|_| ()),
            Pool::Postgres(p) => bound!().execute(p).await.map(|_| ()),
        }
    }

    /// Whether there was a row to remove.
    pub async fn remove(&self, name: &str) -> Result<bool, sqlx::Error> {
        if self.absent() {
            return Ok(false);
        }
        self.ensure_schema().await?;
        let sql = format!("DELETE FROM {} WHERE name = $1", self.table);
        let n = match &self.db {
            Pool::Sqlite(p) => sqlx::query(&sql)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected(),
            Pool::Postgres(p) => sqlx::query(&sql)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    pub async fn all(&self) -> Result<Vec<Team>, sqlx::Error> {
        if self.absent() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {COLUMNS} FROM {} ORDER BY name", self.table);
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

    /// Moves whenever a team is set or removed (row count, and the sum of `updated_ms`, which a
    /// set raises), like the keys table's.
    pub async fn version(&self) -> Result<(i64, i64), sqlx::Error> {
        if self.absent() {
            return Ok((0, 0));
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(updated_ms), 0) AS BIGINT) FROM {}",
            self.table
        );
        match &self.db {
            Pool::Sqlite(p) => sqlx::query_as(&sql).fetch_one(p).await,
            Pool::Postgres(p) => sqlx::query_as(&sql).fetch_one(p).await,
        }
    }
}
