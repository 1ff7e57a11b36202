//! Reserved concurrency per function (PutFunctionConcurrency and friends).

use anyhow::Context as _;
use lamina_common::{ApiResult, time::now_ms};

use crate::{Metadata, on_pool};

impl Metadata {
    /// The function's reservation, if any.
    pub async fn reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<Option<i64>> {
        let sql = "select reserved from function_concurrency where account_id = $1 and function_name = $2";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>(sql).bind(account_id).bind(name).fetch_optional(pool).await)
            .context("load reserved concurrency")?)
    }

    /// Sum of the reservations of the account's functions other than `except`.
    pub async fn reserved_total(&self, account_id: &str, except: Option<&str>) -> ApiResult<i64> {
        let sql = "select cast(coalesce(sum(reserved), 0) as bigint) from function_concurrency \
                   where account_id = $1 and function_name <> $2";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(account_id).bind(except.unwrap_or("")).fetch_one(pool).await)
        .context("sum reserved concurrency")?)
    }

    /// Sets a reservation.
    pub async fn put_reserved_concurrency(&self, account_id: &str, name: &str, reserved: i64) -> ApiResult<()> {
        let sql = "insert into function_concurrency (account_id, function_name, reserved, created_at, updated_at) \
                   values ($1, $2, $3, $4, $4) on conflict (account_id, function_name) \
                   do update set reserved = $3, updated_at = $4";
        on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).bind(reserved).bind(now_ms())
            .execute(pool).await.map(|_| ()))
        .context("store reserved concurrency")?;
        Ok(())
    }

    /// Removes a reservation.
    pub async fn delete_reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<()> {
        let sql = "delete from function_concurrency where account_id = $1 and function_name = $2";
        on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(name).execute(pool).await.map(|_| ()))
            .context("delete reserved concurrency")?;
        Ok(())
    }
}
