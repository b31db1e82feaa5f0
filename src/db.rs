//! The two databases switchyard writes to (the spend log and the key store), opened and extended
//! the same way, so that a setting such as the acquire timeout or WAL mode cannot drift between
//! them. Below `cost` and `keys`; it knows only the config's `Target`.
//!
//! Must not import anything above `config`: the spend log and the key store both sit on it.

use crate::config::spend_log::{Target, redact_url};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use std::path::Path;
use std::time::Duration;

/// A database that does not answer within this is treated as failing; writers retry later.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Makes the pool without connecting. `create` lets the first connection make a missing SQLite
/// file; without it a mistyped path is an error rather than an empty database. `what` names the
/// database in the error (`spend log`, `key store`), which never shows a password.
pub fn connect_lazy(target: &Target, create: bool, what: &str) -> Result<Pool, String> {
    match target {
        Target::Sqlite(path) => {
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(create)
                // Readers (reports, other replicas' reloads) do not block the writer, nor it them.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(2));
            Ok(Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(opts),
            ))
        }
        Target::Postgres(url) => PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy(url)
            .map(Pool::Postgres)
            .map_err(|e| format!("{what} {}: {e}", redact_url(url))),
    }
}

/// SQLite makes the file but not its folder. Best effort: a failure shows up on the first write.
pub fn make_parent_dir(file: &Path) {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
}

/// Adds to a SQLite `table` those of `added` (name, type) it lacks, keeping its rows: a table
/// from an older version reads on, with NULL in the newer columns.
pub async fn add_columns_sqlite(
    tx: &mut SqliteConnection,
    table: &str,
    added: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    if added.is_empty() {
        return Ok(());
    }
    let have: Vec<(String,)> =
        sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(&mut *tx)
            .await?;
    for (column, ty) in added {
        if !have.iter().any(|(n,)| n == column) {
            sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// The same on PostgreSQL. The columns are checked first: ALTER TABLE locks the table even when
/// it changes nothing.
pub async fn add_columns_postgres(
    tx: &mut PgConnection,
    table: &str,
    added: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    if added.is_empty() {
        return Ok(());
    }
    // Unquoted names are folded to lower case by PostgreSQL.
    let have: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::TEXT FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table.to_ascii_lowercase())
    .fetch_all(&mut *tx)
    .await?;
    for (column, ty) in added {
        if !have.iter().any(|(n,)| n == column) {
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {ty}"
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}
