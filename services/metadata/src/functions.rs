//! Functions and their versions.

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};

use lamina_common::names::{function_arn, qualified_arn};

use crate::aliases::AliasRow;
use crate::store::{in_tx, locked};
use crate::{Metadata, on_pool};

/// One stored version of a function (`$LATEST` or a number), as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FunctionRow {
    pub account_id: String,
    pub function_name: String,
    pub version: String,
    pub description: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub memory_size: i64,
    pub timeout: i64,
    /// JSON object of variables, if any were set.
    pub environment: Option<String>,
    /// JSON of the VpcConfig as given, if any.
    pub vpc_config: Option<String>,
    /// Lowercase hex SHA-256 of the zip.
    pub code_sha256: String,
    pub code_size: i64,
    pub revision_id: String,
    /// Epoch milliseconds.
    pub last_modified: i64,
    /// `EphemeralStorage.Size` in MB (the sandbox's `/tmp`).
    pub ephemeral_storage: i64,
    /// `DeadLetterConfig.TargetArn`: where failed Event invocations go, if set.
    pub dead_letter_arn: Option<String>,
}

/// Everything CreateFunction stores for `$LATEST`.
#[derive(Debug, Clone)]
pub struct NewFunction {
    pub function_name: String,
    pub description: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub memory_size: i64,
    pub timeout: i64,
    pub environment: Option<String>,
    pub vpc_config: Option<String>,
    pub code_sha256: String,
    pub code_size: i64,
    pub ephemeral_storage: i64,
    pub dead_letter_arn: Option<String>,
}

/// A stored code package, as `$LATEST` refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRef {
    /// Lowercase hex SHA-256 of the zip.
    pub sha256_hex: String,
    pub size: i64,
}

/// What UpdateFunctionConfiguration / UpdateFunctionCode change in `$LATEST`; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionPatch {
    pub description: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub memory_size: Option<i64>,
    pub timeout: Option<i64>,
    /// `Some(None)` removes the variables; `Some(Some(json))` replaces them.
    pub environment: Option<Option<String>>,
    /// `Some(None)` removes the VpcConfig; `Some(Some(json))` replaces it.
    pub vpc_config: Option<Option<String>>,
    /// New code package (the blob is already stored).
    pub code: Option<CodeRef>,
    pub ephemeral_storage: Option<i64>,
    /// `Some(None)` removes the dead-letter queue; `Some(Some(arn))` sets it.
    pub dead_letter_arn: Option<Option<String>>,
}

impl FunctionPatch {
    fn apply(self, row: &mut FunctionRow) {
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut row.description, self.description);
        set(&mut row.runtime, self.runtime);
        set(&mut row.role, self.role);
        set(&mut row.handler, self.handler);
        set(&mut row.memory_size, self.memory_size);
        set(&mut row.timeout, self.timeout);
        set(&mut row.environment, self.environment);
        set(&mut row.vpc_config, self.vpc_config);
        set(&mut row.ephemeral_storage, self.ephemeral_storage);
        set(&mut row.dead_letter_arn, self.dead_letter_arn);
        if let Some(code) = self.code {
            row.code_sha256 = code.sha256_hex;
            row.code_size = code.size;
        }
    }
}

/// The outcome of [`Metadata::update_latest`].
#[derive(Debug, Clone)]
pub struct LatestUpdate {
    /// `$LATEST` as stored now.
    pub row: FunctionRow,
    /// The digest `$LATEST` referred to before, when the update replaced it and nothing refers to
    /// it any more (code storage may delete its blob).
    pub replaced_code_sha256: Option<String>,
}

macro_rules! columns {
    () => {
        "account_id, function_name, version, description, runtime, role, handler, memory_size, timeout, \
         environment, vpc_config, code_sha256, code_size, revision_id, last_modified, ephemeral_storage, \
         dead_letter_arn"
    };
}
pub(crate) const LATEST: &str = "$LATEST";

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn storage_exceeded() -> ApiError {
    ApiError::CodeStorageExceeded("Code storage limit exceeded.".into())
}

/// The message of a stale `RevisionId` on a function or alias.
pub(crate) fn revision_mismatch() -> ApiError {
    ApiError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
         retrieve the latest Revision Id"
            .into(),
    )
}

/// The ARN of a function (or one qualifier of it) without the region, which only the frontend knows:
/// `arn:aws:lambda::<account>:function:<name>[:<qualifier>]`. The frontend fills the region in.
pub fn regionless_arn(account_id: &str, name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => qualified_arn("", account_id, name, q),
        None => function_arn("", account_id, name),
    }
}

/// `ResourceNotFound` for a function or one of its qualifiers, with a [`regionless_arn`].
pub(crate) fn not_found(account_id: &str, name: &str, qualifier: Option<&str>) -> ApiError {
    ApiError::function_not_found(&regionless_arn(account_id, name, qualifier))
}

/// Inside [`in_tx!`]: fails with `CodeStorageExceededException` unless `$extra` more bytes fit the
/// account's quota. The account row is locked first (Postgres), so concurrent writes that grow
/// storage are counted one after the other and cannot together overshoot the quota.
macro_rules! ensure_storage {
    ($tx:ident, $locks:ident, $account_id:expr, $extra:expr) => {{
        let limit: Option<i64> = sqlx::query_scalar($crate::store::locked(
            "select code_storage_bytes from accounts where account_id = $1",
            $locks.no_key_update,
        ))
        .bind($account_id)
        .fetch_optional(&mut *$tx)
        .await
        .context("lock account")?;
        let limit = limit.ok_or_else(|| ApiError::ResourceNotFound(format!("Account not found: {}", $account_id)))?;
        let used: i64 = sqlx::query_scalar(
            "select cast(coalesce(sum(code_size), 0) as bigint) from function_versions where account_id = $1",
        )
        .bind($account_id)
        .fetch_one(&mut *$tx)
        .await
        .context("sum code size")?;
        if used + $extra > limit {
            return Err($crate::functions::storage_exceeded());
        }
    }};
}
pub(crate) use ensure_storage;

/// The digests of `shas` that no version of any function refers to any more, read inside the
/// transaction that removed the references, so code storage deletes exactly those.
macro_rules! unreferenced {
    ($tx:ident, $shas:expr) => {{
        let mut shas: Vec<String> = $shas;
        shas.sort_unstable();
        shas.dedup();
        let mut gone = Vec::new();
        for sha in shas {
            let n: i64 = sqlx::query_scalar("select count(*) from function_versions where code_sha256 = $1")
                .bind(&sha)
                .fetch_one(&mut *$tx)
                .await
                .context("count code references")?;
            if n == 0 {
                gone.push(sha);
            }
        }
        gone
    }};
}

impl Metadata {
    /// Total CodeSize over every stored version of the account, and its number of functions.
    pub async fn usage(&self, account_id: &str) -> ApiResult<(i64, i64)> {
        let sql = "select cast(coalesce(sum(code_size), 0) as bigint), count(distinct function_name) from function_versions where account_id = $1";
        let (size, count): (i64, i64) =
            on_pool!(&self.store, pool => sqlx::query_as(sql).bind(account_id).fetch_one(pool).await)
                .context("sum code size")?;
        Ok((size, count))
    }

    /// Creates `$LATEST` (and version 1 when `publish`); returns the row to report.
    pub async fn create_function(&self, account_id: &str, new: NewFunction, publish: bool) -> ApiResult<FunctionRow> {
        let _invalidates = self.cache.writing();
        let extra = if publish { new.code_size * 2 } else { new.code_size };
        let now = now_ms();
        let row = FunctionRow {
            account_id: account_id.to_owned(),
            function_name: new.function_name,
            version: LATEST.to_owned(),
            description: new.description,
            runtime: new.runtime,
            role: new.role,
            handler: new.handler,
            memory_size: new.memory_size,
            timeout: new.timeout,
            environment: new.environment,
            vpc_config: new.vpc_config,
            code_sha256: new.code_sha256,
            code_size: new.code_size,
            revision_id: new_revision(),
            last_modified: now,
            ephemeral_storage: new.ephemeral_storage,
            dead_letter_arn: new.dead_letter_arn,
        };
        let insert = concat!(
            "insert into function_versions (",
            columns!(),
            ", created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $15, $15) on conflict do nothing"
        );
        let stored = self.sealed_row(&row)?;
        in_tx!(&self.store, tx, locks => {
            ensure_storage!(tx, locks, account_id, extra);
            let n = bind_row(sqlx::query(insert), &stored).execute(&mut *tx).await.context("insert function")?.rows_affected();
            if n == 0 {
                return Err(ApiError::ResourceConflict(format!("Function already exist: {}", row.function_name)));
            }
            if publish {
                let number: i64 = sqlx::query_scalar(
                    "insert into version_counters (account_id, function_name, last_version, created_at, updated_at) \
                     values ($1, $2, 1, $3, $3) on conflict (account_id, function_name) \
                     do update set last_version = version_counters.last_version + 1, updated_at = $3 returning last_version",
                )
                .bind(account_id).bind(&row.function_name).bind(now)
                .fetch_one(&mut *tx).await.context("bump version counter")?;
                let mut published = stored.clone();
                published.version = number.to_string();
                bind_row(sqlx::query(insert), &published).execute(&mut *tx).await.context("insert version")?;
                Ok(FunctionRow { version: published.version, ..row })
            } else {
                Ok(row)
            }
        })
    }

    /// One version of a function (`$LATEST` or a number).
    pub async fn get_version(&self, account_id: &str, name: &str, version: &str) -> ApiResult<Option<FunctionRow>> {
        let sql = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and function_name = $2 and version = $3"
        );
        let row = on_pool!(&self.store, pool => sqlx::query_as::<_, FunctionRow>(sql)
            .bind(account_id).bind(name).bind(version).fetch_optional(pool).await)
        .context("load function version")?;
        row.map(|r| self.open_row(r)).transpose()
    }

    /// `$LATEST` of each function, by name, after `after`, at most `limit`.
    pub async fn list_latest(&self, account_id: &str, after: Option<&str>, limit: i64) -> ApiResult<Vec<FunctionRow>> {
        let sql = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and version = '$LATEST' \
             and function_name > $2 order by function_name limit $3"
        );
        let rows = on_pool!(&self.store, pool => sqlx::query_as::<_, FunctionRow>(sql)
            .bind(account_id).bind(after.unwrap_or("")).bind(limit).fetch_all(pool).await)
        .context("list functions")?;
        rows.into_iter().map(|r| self.open_row(r)).collect()
    }

    /// Applies `patch` to `$LATEST` under a new revision, in one transaction that also checks
    /// `expected_revision` (`PreconditionFailedException`) and, when the code grows, the account's
    /// code storage quota.
    pub async fn update_latest(
        &self,
        account_id: &str,
        name: &str,
        patch: FunctionPatch,
        expected_revision: Option<&str>,
    ) -> ApiResult<LatestUpdate> {
        let _invalidates = self.cache.writing();
        let select = concat!(
            "select ",
            columns!(),
            " from function_versions where account_id = $1 and function_name = $2 and version = '$LATEST'"
        );
        let update = "update function_versions set description = $4, runtime = $5, role = $6, handler = $7, \
                      memory_size = $8, timeout = $9, environment = $10, vpc_config = $11, code_sha256 = $12, \
                      code_size = $13, revision_id = $14, last_modified = $15, updated_at = $15, ephemeral_storage = $16, \
                      dead_letter_arn = $17 where account_id = $1 and function_name = $2 and version = $3";
        let updated = in_tx!(&self.store, tx, locks => {
            let current: Option<FunctionRow> = sqlx::query_as(locked(select, locks.update))
                .bind(account_id).bind(name).fetch_optional(&mut *tx).await.context("lock function")?;
            let current = self.open_row(current.ok_or_else(|| not_found(account_id, name, None))?)?;
            if expected_revision.is_some_and(|rev| rev != current.revision_id) {
                return Err(revision_mismatch());
            }
            let mut next = current.clone();
            patch.apply(&mut next);
            if next.code_size > current.code_size {
                ensure_storage!(tx, locks, account_id, next.code_size - current.code_size);
            }
            next.revision_id = new_revision();
            next.last_modified = now_ms();
            bind_row(sqlx::query(update), &self.sealed_row(&next)?).execute(&mut *tx).await.context("update function")?;
            let replaced = if next.code_sha256 != current.code_sha256 { vec![current.code_sha256] } else { Vec::new() };
            let replaced_code_sha256 = unreferenced!(tx, replaced).pop();
            LatestUpdate { row: next, replaced_code_sha256 }
        });
        Ok(updated)
    }

    /// Deletes a function with all its versions; returns the code digests nothing refers to any more.
    pub async fn delete_function(&self, account_id: &str, name: &str) -> ApiResult<Vec<String>> {
        let _invalidates = self.cache.writing();
        let shas: Vec<String> = in_tx!(&self.store, tx, locks => {
            // `$LATEST` is locked first, as every other transaction on the function locks it first;
            // deleting the rows in scan order could lock a version a policy change holds `$LATEST`
            // to reach, and deadlock.
            let latest = "select version from function_versions where account_id = $1 and function_name = $2 \
                          and version = '$LATEST'";
            let found: Option<String> = sqlx::query_scalar(locked(latest, locks.update))
                .bind(account_id).bind(name).fetch_optional(&mut *tx).await.context("lock function")?;
            if found.is_none() {
                return Err(not_found(account_id, name, None));
            }
            let shas: Vec<String> = sqlx::query_scalar(
                "delete from function_versions where account_id = $1 and function_name = $2 returning code_sha256",
            )
            .bind(account_id).bind(name).fetch_all(&mut *tx).await.context("delete function")?;
            for table in ["delete from aliases where account_id = $1 and function_name = $2",
                          "delete from policies where account_id = $1 and function_name = $2",
                          "delete from function_concurrency where account_id = $1 and function_name = $2",
                          // Event-sources' table (migration 0009): AWS deletes a function's async
                          // settings with it, and a function created again under the name starts without.
                          "delete from function_event_invoke_configs where account_id = $1 and function_name = $2"] {
                sqlx::query(table).bind(account_id).bind(name).execute(&mut *tx).await.context("delete function children")?;
            }
            unreferenced!(tx, shas)
        });
        Ok(shas)
    }

    /// Deletes one published version and its policy, in one transaction, unless an alias points
    /// to it (as its primary version or in its routing weights); returns its code digest when
    /// nothing refers to it any more.
    pub async fn delete_version(&self, account_id: &str, name: &str, version: &str) -> ApiResult<Vec<String>> {
        if version == LATEST {
            return Err(ApiError::InvalidParameterValue(
                "$LATEST version cannot be deleted without deleting the function.".into(),
            ));
        }
        let _invalidates = self.cache.writing();
        let select =
            "select code_sha256 from function_versions where account_id = $1 and function_name = $2 and version = $3";
        let sha = in_tx!(&self.store, tx, locks => {
            // Locked first: an alias created concurrently either commits before the check below
            // reads the aliases, or waits for this delete and then finds the version gone.
            let sha: Option<String> = sqlx::query_scalar(locked(select, locks.update))
                .bind(account_id).bind(name).bind(version).fetch_optional(&mut *tx).await.context("lock version")?;
            let sha = sha.ok_or_else(|| not_found(account_id, name, Some(version)))?;
            let aliases: Vec<AliasRow> = sqlx::query_as(crate::aliases::SELECT_BY_FUNCTION)
                .bind(account_id).bind(name).fetch_all(&mut *tx).await.context("list aliases")?;
            let mut referencing = Vec::new();
            for alias in &aliases {
                if alias.function_version == version || alias.routing()?.weights.contains_key(version) {
                    referencing.push(alias.alias_name.as_str());
                }
            }
            if !referencing.is_empty() {
                return Err(ApiError::ResourceConflict(format!(
                    "Unable to delete version because the following aliases reference it: [{}]",
                    referencing.join(", ")
                )));
            }
            sqlx::query("delete from function_versions where account_id = $1 and function_name = $2 and version = $3")
                .bind(account_id).bind(name).bind(version).execute(&mut *tx).await.context("delete version")?;
            sqlx::query("delete from policies where account_id = $1 and function_name = $2 and qualifier = $3")
                .bind(account_id).bind(name).bind(version).execute(&mut *tx).await.context("delete version policy")?;
            sqlx::query("delete from function_event_invoke_configs where account_id = $1 and function_name = $2 and qualifier = $3")
                .bind(account_id).bind(name).bind(version).execute(&mut *tx).await.context("delete version invoke config")?;
            unreferenced!(tx, vec![sha])
        });
        Ok(sha)
    }

    /// Whether any version of any function still refers to this code digest.
    pub async fn code_referenced(&self, code_sha256: &str) -> ApiResult<bool> {
        let sql = "select count(*) from function_versions where code_sha256 = $1";
        let n: i64 = on_pool!(&self.store, pool => sqlx::query_scalar(sql).bind(code_sha256).fetch_one(pool).await)
            .context("count code references")?;
        Ok(n > 0)
    }
}

fn bind_row<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    r: &'q FunctionRow,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(r.account_id.as_str())
        .bind(r.function_name.as_str())
        .bind(r.version.as_str())
        .bind(r.description.as_str())
        .bind(r.runtime.as_str())
        .bind(r.role.as_str())
        .bind(r.handler.as_str())
        .bind(r.memory_size)
        .bind(r.timeout)
        .bind(r.environment.as_deref())
        .bind(r.vpc_config.as_deref())
        .bind(r.code_sha256.as_str())
        .bind(r.code_size)
        .bind(r.revision_id.as_str())
        .bind(r.last_modified)
        .bind(r.ephemeral_storage)
        .bind(r.dead_letter_arn.as_deref())
}
