//! The two databases behind the spend log. Both get the same table (the DDL uses only types both
//! understand), the same batched multi-row INSERT in one transaction, and the same aggregates for
//! reports, so a report reads the same from either.

use super::{Line, SpendRecord, Target};
use crate::db::{self, Pool};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, QueryBuilder, Sqlite};

#[derive(Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

type TotalsRow = (Option<String>, i64, i64, i64, i64, i64, i64, f64, f64);

/// Columns added after the first release, with their type, in the order they were added. Each is
/// nullable, so rows written before it read as NULL, and `ensure_schema` adds the missing ones to
/// an existing table in place (SQLite and PostgreSQL alike), keeping its rows.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("stream_end", "TEXT"),
    ("key_name", "TEXT"),
    ("team", "TEXT"),
    ("endpoint", "TEXT"),
];

impl Store {
    /// Makes the pool without connecting. `create` makes a missing SQLite file (the gateway);
    /// without it a mistyped path is an error rather than an empty report.
    pub fn connect_lazy(target: &Target, create: bool) -> Result<Store, String> {
        if let (Target::Sqlite(path), true) = (target, create) {
            db::make_parent_dir(path);
        }
        Ok(match db::connect_lazy(target, create, "spend log")? {
            Pool::Sqlite(p) => Store::Sqlite(p),
            Pool::Postgres(p) => Store::Postgres(p),
        })
    }

    pub async fn ensure_schema(&self, table: &str) -> Result<(), sqlx::Error> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                unix_ms BIGINT NOT NULL,
                request_id TEXT NOT NULL,
                api_key TEXT,
                caller TEXT,
                task_type TEXT,
                tier TEXT,
                model TEXT,
                deployment TEXT,
                route_layer TEXT,
                route TEXT,
                stream BOOLEAN NOT NULL,
                stream_end TEXT,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                counterfactual_usd DOUBLE PRECISION NOT NULL,
                cost_estimated BOOLEAN NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL,
                upstream_ms DOUBLE PRECISION NOT NULL,
                attempts INTEGER NOT NULL,
                status INTEGER NOT NULL,
                key_name TEXT,
                team TEXT,
                endpoint TEXT
            )"
        );
        let index = format!("CREATE INDEX IF NOT EXISTS {table}_unix_ms ON {table} (unix_ms)");
        match self {
            Store::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(&create).execute(&mut *tx).await?;
                sqlx::query(&index).execute(&mut *tx).await?;
                // A table from an older version lacks the newer columns: add them in place.
                db::add_columns_sqlite(&mut tx, table, ADDED_COLUMNS).await?;
                tx.commit().await
            }
            Store::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(&create).execute(&mut *tx).await?;
                sqlx::query(&index).execute(&mut *tx).await?;
                db::add_columns_postgres(&mut tx, table, ADDED_COLUMNS).await?;
                tx.commit().await
            }
        }
    }

    /// All rows in one statement inside one transaction: a batch is written whole or not at all.
    pub async fn insert(&self, table: &str, rows: &[SpendRecord]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let head = format!(
            "INSERT INTO {table} (unix_ms, request_id, api_key, caller, task_type, tier, model, \
             deployment, route_layer, route, stream, stream_end, prompt_tokens, completion_tokens, cached_tokens, \
             cost_usd, counterfactual_usd, cost_estimated, latency_ms, upstream_ms, attempts, status, \
             key_name, team, endpoint) "
        );
        // The same binding code for both databases; only the builder's type differs.
        macro_rules! run {
            ($db:ty, $pool:expr) => {{
                let mut qb = QueryBuilder::<$db>::new(head);
                qb.push_values(rows, |mut b, r| {
                    b.push_bind(r.unix_ms)
                        .push_bind(&r.request_id)
                        .push_bind(&r.api_key)
                        .push_bind(&r.caller)
                        .push_bind(&r.task_type)
                        .push_bind(&r.tier)
                        .push_bind(&r.model)
                        .push_bind(&r.deployment)
                        .push_bind(&r.route_layer)
                        .push_bind(&r.route)
                        .push_bind(r.stream)
                        .push_bind(&r.stream_end)
                        .push_bind(r.prompt_tokens)
                        .push_bind(r.completion_tokens)
                        .push_bind(r.cached_tokens)
                        .push_bind(r.cost_usd)
                        .push_bind(r.counterfactual_usd)
                        .push_bind(r.cost_estimated)
                        .push_bind(r.latency_ms)
                        .push_bind(r.upstream_ms)
                        .push_bind(r.attempts)
                        .push_bind(r.status)
                        .push_bind(&r.key_name)
                        .push_bind(&r.team)
                        .push_bind(&r.endpoint);
                });
                let mut tx = $pool.begin().await?;
                qb.build().execute(&mut *tx).await?;
                tx.commit().await
            }};
        }
        match self {
            Store::Sqlite(p) => run!(Sqlite, p),
            Store::Postgres(p) => run!(Postgres, p),
        }
    }

    /// Sums of the rows since `since_ms`, grouped by `column` (`tier`, `model`, `task_type`) or,
    /// with `None`, one group of everything. Largest cost first.
    pub async fn totals(
        &self,
        table: &str,
        column: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<Line>, sqlx::Error> {
        let key = match column {
            Some(
                c @ ("tier" | "model" | "task_type" | "deployment" | "api_key" | "key_name"
                | "team"),
            ) => c,
            Some(_) => return Err(sqlx::Error::Protocol("unknown report column".into())),
            None => "CAST(NULL AS TEXT)",
        };
        let group = if column.is_some() {
            format!("GROUP BY {key}")
        } else {
            String::new()
        };
        // Casts keep the result types the same on both databases (PostgreSQL sums BIGINTs as
        // NUMERIC); COALESCE covers an empty table.
        let sql = format!(
            "SELECT {key},
                CAST(COUNT(*) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN cost_estimated THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION),
                CAST(COALESCE(SUM(counterfactual_usd), 0) AS DOUBLE PRECISION)
             FROM {table} WHERE unix_ms >= $1 {group}
             ORDER BY 8 DESC, 1"
        );
        let rows: Vec<TotalsRow> = match self {
            Store::Sqlite(p) => sqlx::query_as(&sql).bind(since_ms).fetch_all(p).await?,
            Store::Postgres(p) => sqlx::query_as(&sql).bind(since_ms).fetch_all(p).await?,
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                Line::summed(
                    r.0,
                    Line {
                        requests: r.1,
                        errors: r.2,
                        estimated: r.3,
                        input_tokens: r.4,
                        output_tokens: r.5,
                        cached_tokens: r.6,
                        cost_usd: r.7,
                        counterfactual_usd: r.8,
                        ..Line::default()
                    },
                )
            })
            .collect())
    }

    /// What the rows of one virtual key (by name) cost since `since_ms`.
    pub async fn key_spend(
        &self,
        table: &str,
        key_name: &str,
        since_ms: i64,
    ) -> Result<f64, sqlx::Error> {
        self.spend_where(table, "key_name", key_name, since_ms)
            .await
    }

    /// What the team's keys spent since `since_ms`, whatever their own budgets.
    pub async fn team_spend(
        &self,
        table: &str,
        team: &str,
        since_ms: i64,
    ) -> Result<f64, sqlx::Error> {
        self.spend_where(table, "team", team, since_ms).await
    }

    /// The dollars of rows whose `column` (a name fixed in this file) is `value`.
    async fn spend_where(
        &self,
        table: &str,
        column: &str,
        key_name: &str,
        since_ms: i64,
    ) -> Result<f64, sqlx::Error> {
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM {table} \
             WHERE {column} = $1 AND unix_ms >= $2"
        );
        let (usd,): (f64,) = match self {
            Store::Sqlite(p) => {
                sqlx::query_as(&sql)
                    .bind(key_name)
                    .bind(since_ms)
                    .fetch_one(p)
                    .await?
            }
            Store::Postgres(p) => {
                sqlx::query_as(&sql)
                    .bind(key_name)
                    .bind(since_ms)
                    .fetch_one(p)
                    .await?
            }
        };
        Ok(usd)
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}
