//! Aliases: named, mutable pointers to one version (plus an optional weighted second one).

use std::collections::BTreeMap;

use anyhow::Context as _;
use lamina_common::{ApiError, ApiResult, time::now_ms};
use serde::{Deserialize, Serialize};

use crate::functions::{LATEST, not_found, regionless_arn, revision_mismatch};
use crate::store::{in_tx, locked};
use crate::{Metadata, on_pool};

/// One alias as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AliasRow {
    pub account_id: String,
    pub function_name: String,
    pub alias_name: String,
    pub function_version: String,
    pub description: String,
    /// JSON `{"AdditionalVersionWeights": {"<version>": <weight>}}`, if any.
    pub routing_config: Option<String>,
    pub revision_id: String,
}

impl AliasRow {
    /// The parsed routing configuration (empty when there is none).
    pub fn routing(&self) -> ApiResult<RoutingConfig> {
        match self.routing_config.as_deref() {
            None => Ok(RoutingConfig::default()),
            Some(text) => Ok(serde_json::from_str(text).context("parse stored alias routing config")?),
        }
    }
}

/// An alias's RoutingConfig, as stored and as the API spells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingConfig {
    /// Additional version -> share of invocations it receives (0.0 to 1.0).
    #[serde(rename = "AdditionalVersionWeights", default)]
    pub weights: BTreeMap<String, f64>,
}

/// What CreateAlias asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewAlias {
    pub alias_name: String,
    pub function_version: String,
    pub description: String,
    pub routing_config: Option<RoutingConfig>,
}

/// What UpdateAlias changes; `None` keeps a field. `Some` routing with no weights removes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasPatch {
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingConfig>,
}

pub(crate) const SELECT_BY_FUNCTION: &str = concat!(
    "select account_id, function_name, alias_name, function_version, description, routing_config, revision_id ",
    "from aliases where account_id = $1 and function_name = $2 order by alias_name"
);
const SELECT_ONE: &str = concat!(
    "select account_id, function_name, alias_name, function_version, description, routing_config, revision_id ",
    "from aliases where account_id = $1 and function_name = $2 and alias_name = $3"
);

/// The checks of a routing config that need no lookup; returns the routing JSON to store and the
/// additional version (which must then exist).
fn check_routing(version: &str, routing: Option<&RoutingConfig>) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(routing) = routing.filter(|r| !r.weights.is_empty()) else { return Ok((None, None)) };
    if routing.weights.len() > 1 {
        return Err(ApiError::InvalidParameterValue("Only one additional version can be specified.".into()));
    }
    if version == LATEST {
        return Err(ApiError::InvalidParameterValue(
            "$LATEST is not supported for an alias pointing to more than 1 version".into(),
        ));
    }
    let mut extra = None;
    for (other, weight) in &routing.weights {
        if !other.bytes().all(|b| b.is_ascii_digit()) || other == version {
            return Err(ApiError::InvalidParameterValue(format!(
                "Invalid function version {other}. Function version {other} is already included in primary version \
                 or is not a published version."
            )));
        }
        if !(0.0..=1.0).contains(weight) {
            return Err(ApiError::InvalidParameterValue(format!(
                "Invalid weight {weight}: must be between 0.0 and 1.0"
            )));
        }
        extra = Some(other.clone());
    }
    let text = serde_json::to_string(routing).context("serialise routing config")?;
    Ok((Some(text), extra))
}

/// Inside [`in_tx!`]: checks that the versions an alias will point to exist, share-locking them so
/// a concurrent DeleteFunction of one of them waits (and then sees the alias); returns the routing
/// JSON to store.
macro_rules! check_targets {
    ($tx:ident, $locks:ident, $account_id:expr, $name:expr, $version:expr, $routing:expr) => {{
        let select =
            "select version from function_versions where account_id = $1 and function_name = $2 and version = $3";
        let found: Option<String> = sqlx::query_scalar(locked(select, $locks.share))
            .bind($account_id)
            .bind($name)
            .bind($version)
            .fetch_optional(&mut *$tx)
            .await
            .context("lock version")?;
        if found.is_none() {
            return Err(not_found($account_id, $name, Some($version)));
        }
        let (text, extra) = check_routing($version, $routing)?;
        if let Some(extra) = extra {
            let found: Option<String> = sqlx::query_scalar(locked(select, $locks.share))
                .bind($account_id)
                .bind($name)
                .bind(&extra)
                .fetch_optional(&mut *$tx)
                .await
                .context("lock version")?;
            if found.is_none() {
                return Err(not_found($account_id, $name, Some(&extra)));
            }
        }
        text
    }};
}

/// Inside [`in_tx!`]: fails unless the function exists; share-locks its `$LATEST`.
macro_rules! function_must_exist {
    ($tx:ident, $locks:ident, $account_id:expr, $name:expr) => {{
        let select = "select version from function_versions where account_id = $1 and function_name = $2 and version = '$LATEST'";
        let found: Option<String> = sqlx::query_scalar(locked(select, $locks.share))
            .bind($account_id).bind($name).fetch_optional(&mut *$tx).await.context("lock function")?;
        if found.is_none() {
            return Err(not_found($account_id, $name, None));
        }
    }};
}

impl Metadata {
    /// Every alias of a function, by name.
    pub async fn list_aliases(&self, account_id: &str, name: &str) -> ApiResult<Vec<AliasRow>> {
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, AliasRow>(SELECT_BY_FUNCTION).bind(account_id).bind(name).fetch_all(pool).await)
            .context("list aliases")?)
    }

    /// One alias (cached: see `read_cache`).
    pub async fn get_alias(&self, account_id: &str, name: &str, alias: &str) -> ApiResult<Option<AliasRow>> {
        let load = async {
            on_pool!(&self.store, pool => sqlx::query_as::<_, AliasRow>(SELECT_ONE)
                .bind(account_id).bind(name).bind(alias).fetch_optional(pool).await)
        };
        Ok(self.cache.alias((account_id, name, alias), load).await.context("load alias")?)
    }

    /// Creates an alias in one transaction: the function and the versions it points to must exist
    /// and the routing must be sound (`ResourceNotFoundException` / `InvalidParameterValueException`);
    /// a taken name is a `ResourceConflictException`. ARNs in messages are [`regionless_arn`]s.
    pub async fn create_alias(&self, account_id: &str, name: &str, new: NewAlias) -> ApiResult<AliasRow> {
        let _invalidates = self.cache.writing();
        let insert = "insert into aliases (account_id, function_name, alias_name, function_version, description, \
                      routing_config, revision_id, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                      on conflict do nothing";
        let row = in_tx!(&self.store, tx, locks => {
            function_must_exist!(tx, locks, account_id, name);
            let routing = check_targets!(tx, locks, account_id, name, &new.function_version, new.routing_config.as_ref());
            let row = AliasRow {
                account_id: account_id.to_owned(),
                function_name: name.to_owned(),
                alias_name: new.alias_name,
                function_version: new.function_version,
                description: new.description,
                routing_config: routing,
                revision_id: uuid::Uuid::new_v4().to_string(),
            };
            let n = sqlx::query(insert)
                .bind(&row.account_id).bind(&row.function_name).bind(&row.alias_name).bind(&row.function_version)
                .bind(&row.description).bind(&row.routing_config).bind(&row.revision_id).bind(now_ms())
                .execute(&mut *tx).await.context("insert alias")?.rows_affected();
            if n == 0 {
                return Err(ApiError::ResourceConflict(format!(
                    "Alias already exists: {}",
                    regionless_arn(account_id, name, Some(&row.alias_name))
                )));
            }
            row
        });
        Ok(row)
    }

    /// Changes an alias in one transaction: the function and alias must exist, `expected_revision`
    /// must match (`PreconditionFailedException`), and the versions and routing it ends up with are
    /// checked as [`create_alias`](Self::create_alias) checks them.
    pub async fn update_alias(
        &self,
        account_id: &str,
        name: &str,
        alias: &str,
        patch: AliasPatch,
        expected_revision: Option<&str>,
    ) -> ApiResult<AliasRow> {
        let _invalidates = self.cache.writing();
        let update = "update aliases set function_version = $4, description = $5, routing_config = $6, revision_id = $7, \
                      updated_at = $8 where account_id = $1 and function_name = $2 and alias_name = $3";
        let row = in_tx!(&self.store, tx, locks => {
            function_must_exist!(tx, locks, account_id, name);
            let current: Option<AliasRow> = sqlx::query_as(locked(SELECT_ONE, locks.update))
                .bind(account_id).bind(name).bind(alias).fetch_optional(&mut *tx).await.context("lock alias")?;
            let Some(current) = current else {
                return Err(ApiError::ResourceNotFound(format!(
                    "Alias not found: {}",
                    regionless_arn(account_id, name, Some(alias))
                )));
            };
            if expected_revision.is_some_and(|rev| rev != current.revision_id) {
                return Err(revision_mismatch());
            }
            let version = patch.function_version.unwrap_or_else(|| current.function_version.clone());
            // A kept routing config is checked again: it must still fit a changed primary version.
            let routing = match patch.routing_config {
                Some(routing) => routing,
                None => current.routing()?,
            };
            let routing = check_targets!(tx, locks, account_id, name, &version, Some(&routing));
            let row = AliasRow {
                function_version: version,
                description: patch.description.unwrap_or_else(|| current.description.clone()),
                routing_config: routing,
                revision_id: uuid::Uuid::new_v4().to_string(),
                ..current
            };
            sqlx::query(update)
                .bind(&row.account_id).bind(&row.function_name).bind(&row.alias_name).bind(&row.function_version)
                .bind(&row.description).bind(&row.routing_config).bind(&row.revision_id).bind(now_ms())
                .execute(&mut *tx).await.context("update alias")?;
            row
        });
        Ok(row)
    }

    /// Deletes an alias (and its policy); false when it did not exist.
    pub async fn delete_alias(&self, account_id: &str, name: &str, alias: &str) -> ApiResult<bool> {
        let _invalidates = self.cache.writing();
        let n = in_tx!(&self.store, tx => {
            let n = sqlx::query("delete from aliases where account_id = $1 and function_name = $2 and alias_name = $3")
                .bind(account_id).bind(name).bind(alias).execute(&mut *tx).await.context("delete alias")?.rows_affected();
            sqlx::query("delete from policies where account_id = $1 and function_name = $2 and qualifier = $3")
                .bind(account_id).bind(name).bind(alias).execute(&mut *tx).await.context("delete alias policy")?;
            // Event-sources' table (migration 0009): an alias created again starts without settings.
            sqlx::query("delete from function_event_invoke_configs where account_id = $1 and function_name = $2 and qualifier = $3")
                .bind(account_id).bind(name).bind(alias).execute(&mut *tx).await.context("delete alias invoke config")?;
            n
        });
        Ok(n > 0)
    }
}

/// What a qualifier names: the version row, and the alias when it was one.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub row: crate::FunctionRow,
    pub alias: Option<AliasRow>,
}

impl Metadata {
    /// Resolves no qualifier / `$LATEST` / a number / an alias name to a stored version.
    pub async fn resolve_version(
        &self,
        account_id: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<Option<Resolved>> {
        let q = qualifier.unwrap_or("$LATEST");
        if q == "$LATEST" || q.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(self.get_version(account_id, name, q).await?.map(|row| Resolved { row, alias: None }));
        }
        let Some(alias) = self.get_alias(account_id, name, q).await? else { return Ok(None) };
        let row = self.get_version(account_id, name, &alias.function_version).await?;
        Ok(row.map(|row| Resolved { row, alias: Some(alias) }))
    }
}
