//! Tenants and their access keys.

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};
use rand::Rng as _;
use serde::Serialize;

use crate::{Metadata, on_pool};

/// Default account limits (semantics CONC-5, LIM).
pub const DEFAULT_CONCURRENT_EXECUTIONS: i64 = 100;
/// 75 GB, the guide's per-region code storage limit.
pub const DEFAULT_CODE_STORAGE_BYTES: i64 = 75 * 1024 * 1024 * 1024;

/// A tenant.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(rename = "AccountId")]
    pub account_id: String,
    pub name: String,
    pub concurrent_executions: i64,
    pub code_storage_bytes: i64,
    /// Share of an execution host (percent) the account's running sandboxes may hold; `None`:
    /// the host's default (`exec_host.account_share_percent`).
    pub host_share_percent: Option<i64>,
}

/// What `account create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub name: String,
    pub concurrent_executions: Option<i64>,
    pub code_storage_bytes: Option<i64>,
}

/// Limits an operator may change.
#[derive(Debug, Clone, Default)]
pub struct AccountLimits {
    pub concurrent_executions: Option<i64>,
    pub code_storage_bytes: Option<i64>,
    /// 1-100 sets the account's host share; 0 clears it (the host's default applies).
    pub host_share_percent: Option<i64>,
}

/// A freshly minted key pair; the secret is shown once.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewKey {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    account_id: String,
    secret_enc: String,
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

impl Metadata {
    /// Creates an account with one access key.
    pub async fn create_account(&self, new: NewAccount) -> ApiResult<NewKey> {
        if new.name.is_empty() || new.name.len() > 64 {
            return Err(ApiError::InvalidParameterValue("Account name must be 1-64 characters.".into()));
        }
        let now = now_ms();
        let concurrency = new.concurrent_executions.unwrap_or(DEFAULT_CONCURRENT_EXECUTIONS);
        let storage = new.code_storage_bytes.unwrap_or(DEFAULT_CODE_STORAGE_BYTES);
        if concurrency < 0 || storage < 0 {
            return Err(ApiError::InvalidParameterValue("Limits must not be negative.".into()));
        }
        let account_id = format!("{}{}", random_from(b"123456789", 1), random_from(b"0123456789", 11));
        let sql = "insert into accounts (account_id, name, concurrent_executions, code_storage_bytes, created_at, updated_at) \
                   values ($1, $2, $3, $4, $5, $5) on conflict do nothing";
        let inserted = on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&account_id).bind(&new.name).bind(concurrency).bind(storage).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("insert account")?;
        if inserted == 0 {
            return Err(ApiError::ResourceConflict(format!("Account already exists: {}", new.name)));
        }
        self.create_access_key(&account_id).await
    }

    /// The account with that name, if any.
    pub async fn account_by_name(&self, name: &str) -> ApiResult<Option<Account>> {
        let sql = "select account_id, name, concurrent_executions, code_storage_bytes, host_share_percent from accounts where name = $1";
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, Account>(sql).bind(name).fetch_optional(pool).await)
            .context("load account")?)
    }

    /// One account by id.
    pub async fn account(&self, account_id: &str) -> ApiResult<Account> {
        let sql = "select account_id, name, concurrent_executions, code_storage_bytes, host_share_percent from accounts where account_id = $1";
        on_pool!(&self.store, pool => sqlx::query_as::<_, Account>(sql).bind(account_id).fetch_optional(pool).await)
            .context("load account")?
            .ok_or_else(|| ApiError::ResourceNotFound(format!("Account not found: {account_id}")))
    }

    /// Every account, by name.
    pub async fn list_accounts(&self) -> ApiResult<Vec<Account>> {
        let sql = "select account_id, name, concurrent_executions, code_storage_bytes, host_share_percent from accounts order by name";
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, Account>(sql).fetch_all(pool).await)
            .context("list accounts")?)
    }

    /// Changes an account's limits; absent fields keep their value.
    pub async fn set_limits(&self, account_id: &str, limits: AccountLimits) -> ApiResult<Account> {
        let _invalidates = self.cache.writing();
        let current = self.account(account_id).await?;
        let concurrency = limits.concurrent_executions.unwrap_or(current.concurrent_executions);
        let storage = limits.code_storage_bytes.unwrap_or(current.code_storage_bytes);
        if concurrency < 0 || storage < 0 {
            return Err(ApiError::InvalidParameterValue("Limits must not be negative.".into()));
        }
        let share = match limits.host_share_percent {
            None => current.host_share_percent,
            Some(0) => None,
            Some(p @ 1..=100) => Some(p),
            Some(_) => {
                return Err(ApiError::InvalidParameterValue(
                    "HostSharePercent must be 0-100 (0: the host's default).".into(),
                ));
            }
        };
        let sql = "update accounts set concurrent_executions = $2, code_storage_bytes = $3, host_share_percent = $5, \
                   updated_at = $4 where account_id = $1";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(account_id).bind(concurrency).bind(storage).bind(now_ms()).bind(share).execute(pool).await.map(|_| ()))
        .context("update limits")?;
        self.account(account_id).await
    }

    /// Mints a new access key for an account.
    pub async fn create_access_key(&self, account_id: &str) -> ApiResult<NewKey> {
        let access_key_id = format!("AKLM{}", random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
        let secret = random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40);
        let sealed = self.cipher.seal(&secret)?;
        let now = now_ms();
        let sql = "insert into access_keys (access_key_id, account_id, secret_enc, created_at, updated_at) values ($1, $2, $3, $4, $4)";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&access_key_id).bind(account_id).bind(&sealed).bind(now).execute(pool).await.map(|_| ()))
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                ApiError::ResourceNotFound(format!("Account not found: {account_id}"))
            }
            other => ApiError::Internal(anyhow::Error::new(other).context("insert access key")),
        })?;
        Ok(NewKey { account_id: account_id.to_owned(), access_key_id, secret_access_key: secret })
    }

    /// Revokes one access key of an account.
    pub async fn delete_access_key(&self, account_id: &str, access_key_id: &str) -> ApiResult<()> {
        let sql = "delete from access_keys where account_id = $1 and access_key_id = $2";
        let n = on_pool!(&self.store, pool => sqlx::query(sql).bind(account_id).bind(access_key_id).execute(pool).await.map(|r| r.rows_affected()))
            .context("delete access key")?;
        if n == 0 {
            return Err(ApiError::ResourceNotFound(format!("Access key not found: {access_key_id}")));
        }
        Ok(())
    }

    /// Access key ids of an account.
    pub async fn list_access_keys(&self, account_id: &str) -> ApiResult<Vec<String>> {
        let sql = "select access_key_id from access_keys where account_id = $1 order by created_at";
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(sql).bind(account_id).fetch_all(pool).await)
            .context("list access keys")?)
    }

    /// `(account_id, secret)` for an access key, for SigV4 verification.
    pub async fn lookup_secret(&self, access_key_id: &str) -> ApiResult<Option<(String, String)>> {
        let sql = "select account_id, secret_enc from access_keys where access_key_id = $1";
        let row = on_pool!(&self.store, pool => sqlx::query_as::<_, KeyRow>(sql).bind(access_key_id).fetch_optional(pool).await)
            .context("load access key")?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((r.account_id, self.cipher.open(&r.secret_enc)?))),
        }
    }
}
