//! Metadata as the frontend and the router call it: in process, or over gRPC. Both variants have
//! the in-process [`Metadata`]'s method names and signatures.
//!
//! Over gRPC, the two reads every Invoke makes (`invoke_target`, `get_alias`) go through a read
//! cache on this side too (see `read_cache`), so a warm invocation costs no hop to the metadata
//! service; [`MetadataClient::invalidate_cache`] drops it when another process announces a write.

use std::future::Future;
use std::sync::Arc;

use lamina_common::ApiResult;
use lamina_common::policy::Statement;
use lamina_rpc::metadata::metadata_client::MetadataClient as Api;
use lamina_rpc::metadata::{self as proto, Empty};
use lamina_rpc::replicas::Replicas;
use lamina_rpc::transport::TracedChannel as Channel;
use lamina_rpc::{from_status, transport};
use tonic::{Response, Status};

use crate::accounts::NewKey;
use crate::convert::statement_json;
use crate::read_cache::ReadCache;
use crate::{
    Account, AccountLimits, AliasPatch, AliasRow, FunctionPatch, FunctionRow, InvokeTarget, LatestUpdate, Metadata,
    NewAccount, NewAlias, NewFunction, Policy, Resolved,
};

const PEER: &str = "metadata";

/// A handle on the metadata service. Cheap to clone.
#[derive(Clone)]
pub enum MetadataClient {
    Local(Metadata),
    Grpc(Arc<Remote>),
}

/// Metadata services behind one address or several.
pub struct Remote {
    replicas: Replicas<Api<Channel>>,
    cache: ReadCache,
}

impl From<Metadata> for MetadataClient {
    fn from(metadata: Metadata) -> Self {
        Self::Local(metadata)
    }
}

impl Remote {
    /// One call, to the next service round-robin (the next one when a service cannot be reached).
    async fn call<T, F, Fut>(&self, call: F) -> ApiResult<T>
    where
        F: Fn(Api<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.replicas.call(call).await.map(Response::into_inner).map_err(|status| from_status(status, PEER))
    }
}

/// `rpc!(remote, method, request)`: a read; `rpc!(write remote, ...)`: a write, which makes this
/// side's cached reads stale once it is done (as in process).
macro_rules! rpc {
    (write $remote:expr, $method:ident, $request:expr) => {{
        let _invalidates = $remote.cache.writing();
        rpc!($remote, $method, $request)
    }};
    ($remote:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $remote
            .call(|mut client| {
                let request = request.clone();
                async move { client.$method(request).await }
            })
            .await
    }};
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

fn function(account_id: &str, name: &str) -> proto::FunctionRequest {
    proto::FunctionRequest { account_id: account_id.to_owned(), function_name: name.to_owned() }
}

fn version(account_id: &str, name: &str, version: &str) -> proto::VersionRequest {
    proto::VersionRequest {
        account_id: account_id.to_owned(),
        function_name: name.to_owned(),
        version: version.to_owned(),
    }
}

fn alias(account_id: &str, name: &str, alias: &str) -> proto::AliasRequest {
    proto::AliasRequest {
        account_id: account_id.to_owned(),
        function_name: name.to_owned(),
        alias_name: alias.to_owned(),
    }
}

fn account(account_id: &str) -> proto::AccountRequest {
    proto::AccountRequest { account_id: account_id.to_owned() }
}

fn rows(list: proto::FunctionRowList) -> ApiResult<Vec<FunctionRow>> {
    Ok(list.rows.into_iter().map(FunctionRow::try_from).collect::<Result<_, _>>()?)
}

impl MetadataClient {
    /// A client of the metadata services at `addrs` (calls go round-robin).
    pub fn connect(addrs: &[String]) -> anyhow::Result<Self> {
        let replicas = Replicas::connect(addrs, |a| {
            Ok(Api::new(transport::traced_channel(a)?)
                .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(transport::MAX_MESSAGE_BYTES))
        })?;
        Ok(Self::Grpc(Arc::new(Remote { replicas, cache: ReadCache::new() })))
    }

    /// The storage engine in use (`sqlite` or `postgres`), or `remote` over gRPC.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Local(m) => m.engine(),
            Self::Grpc(_) => "remote",
        }
    }

    /// Drops every cached read (another process wrote to the shared database).
    pub fn invalidate_cache(&self) {
        match self {
            Self::Local(m) => m.invalidate_cache(),
            Self::Grpc(r) => drop(r.cache.writing()),
        }
    }

    /// The in-process handle, when this is one.
    pub fn local(&self) -> Option<&Metadata> {
        match self {
            Self::Local(m) => Some(m),
            Self::Grpc(_) => None,
        }
    }

    /// Readiness of the service behind this handle: `{"engine": ...}`.
    pub async fn health(&self) -> ApiResult<serde_json::Value> {
        match self {
            Self::Local(m) => Ok(serde_json::json!({ "engine": m.engine() })),
            Self::Grpc(r) => {
                let reply = rpc!(r, health, lamina_rpc::common::HealthRequest {})?;
                serde_json::from_str(&reply.detail_json)
                    .map_err(|e| anyhow::anyhow!("{PEER}: health detail: {e}").into())
            }
        }
    }

    // ---- Accounts and access keys ----

    /// Creates an account with one access key.
    pub async fn create_account(&self, new: NewAccount) -> ApiResult<NewKey> {
        match self {
            Self::Local(m) => m.create_account(new).await,
            Self::Grpc(r) => Ok(rpc!(write r, create_account, proto::NewAccount::from(new))?.into()),
        }
    }

    /// The account with that name, if any.
    pub async fn account_by_name(&self, name: &str) -> ApiResult<Option<Account>> {
        match self {
            Self::Local(m) => m.account_by_name(name).await,
            Self::Grpc(r) => {
                let reply = rpc!(r, account_by_name, proto::AccountByNameRequest { name: name.to_owned() })?;
                Ok(reply.account.map(Account::try_from).transpose()?)
            }
        }
    }

    /// One account by id.
    pub async fn account(&self, account_id: &str) -> ApiResult<Account> {
        match self {
            Self::Local(m) => m.account(account_id).await,
            Self::Grpc(r) => Ok(rpc!(r, get_account, account(account_id))?.try_into()?),
        }
    }

    /// Every account, by name.
    pub async fn list_accounts(&self) -> ApiResult<Vec<Account>> {
        match self {
            Self::Local(m) => m.list_accounts().await,
            Self::Grpc(r) => {
                let reply = rpc!(r, list_accounts, Empty {})?;
                Ok(reply.accounts.into_iter().map(Account::try_from).collect::<Result<_, _>>()?)
            }
        }
    }

    /// Changes an account's limits; absent fields keep their value.
    pub async fn set_limits(&self, account_id: &str, limits: AccountLimits) -> ApiResult<Account> {
        match self {
            Self::Local(m) => m.set_limits(account_id, limits).await,
            Self::Grpc(r) => {
                let request =
                    proto::SetLimitsRequest { account_id: account_id.to_owned(), limits: Some(limits.into()) };
                Ok(rpc!(write r, set_limits, request)?.try_into()?)
            }
        }
    }

    /// Mints a new access key for an account.
    pub async fn create_access_key(&self, account_id: &str) -> ApiResult<NewKey> {
        match self {
            Self::Local(m) => m.create_access_key(account_id).await,
            Self::Grpc(r) => Ok(rpc!(write r, create_access_key, account(account_id))?.into()),
        }
    }

    /// Revokes one access key of an account.
    pub async fn delete_access_key(&self, account_id: &str, access_key_id: &str) -> ApiResult<()> {
        match self {
            Self::Local(m) => m.delete_access_key(account_id, access_key_id).await,
            Self::Grpc(r) => {
                let request = proto::DeleteAccessKeyRequest {
                    account_id: account_id.to_owned(),
                    access_key_id: access_key_id.to_owned(),
                };
                rpc!(write r, delete_access_key, request).map(|Empty {}| ())
            }
        }
    }

    /// Access key ids of an account.
    pub async fn list_access_keys(&self, account_id: &str) -> ApiResult<Vec<String>> {
        match self {
            Self::Local(m) => m.list_access_keys(account_id).await,
            Self::Grpc(r) => Ok(rpc!(r, list_access_keys, account(account_id))?.access_key_ids),
        }
    }

    /// `(account_id, secret)` for an access key, for SigV4 verification.
    pub async fn lookup_secret(&self, access_key_id: &str) -> ApiResult<Option<(String, String)>> {
        match self {
            Self::Local(m) => m.lookup_secret(access_key_id).await,
            Self::Grpc(r) => {
                let request = proto::LookupSecretRequest { access_key_id: access_key_id.to_owned() };
                let reply = rpc!(r, lookup_secret, request)?;
                Ok(reply.key.map(|k| (k.account_id, k.secret_access_key)))
            }
        }
    }

    // ---- Functions and versions ----

    /// Total CodeSize over every stored version of the account, and its number of functions.
    pub async fn usage(&self, account_id: &str) -> ApiResult<(i64, i64)> {
        match self {
            Self::Local(m) => m.usage(account_id).await,
            Self::Grpc(r) => {
                let reply = rpc!(r, usage, account(account_id))?;
                Ok((reply.code_size, reply.function_count))
            }
        }
    }

    /// Creates `$LATEST` (and version 1 when `publish`); returns the row to report.
    pub async fn create_function(&self, account_id: &str, new: NewFunction, publish: bool) -> ApiResult<FunctionRow> {
        match self {
            Self::Local(m) => m.create_function(account_id, new, publish).await,
            Self::Grpc(r) => {
                let request = proto::CreateFunctionRequest {
                    account_id: account_id.to_owned(),
                    function: Some(new.into()),
                    publish,
                };
                Ok(rpc!(write r, create_function, request)?.try_into()?)
            }
        }
    }

    /// One version (`$LATEST` or a number), if it exists.
    pub async fn get_version(&self, account_id: &str, name: &str, v: &str) -> ApiResult<Option<FunctionRow>> {
        match self {
            Self::Local(m) => m.get_version(account_id, name, v).await,
            Self::Grpc(r) => {
                let reply = rpc!(r, get_version, version(account_id, name, v))?;
                Ok(reply.row.map(FunctionRow::try_from).transpose()?)
            }
        }
    }

    /// `$LATEST` of the account's functions by name, after `after`, at most `limit`.
    pub async fn list_latest(&self, account_id: &str, after: Option<&str>, limit: i64) -> ApiResult<Vec<FunctionRow>> {
        match self {
            Self::Local(m) => m.list_latest(account_id, after, limit).await,
            Self::Grpc(r) => {
                let request =
                    proto::ListLatestRequest { account_id: account_id.to_owned(), after: owned(after), limit };
                rows(rpc!(r, list_latest, request)?)
            }
        }
    }

    /// Applies `patch` to `$LATEST` under a new revision (see [`Metadata::update_latest`]).
    pub async fn update_latest(
        &self,
        account_id: &str,
        name: &str,
        patch: FunctionPatch,
        expected_revision: Option<&str>,
    ) -> ApiResult<LatestUpdate> {
        match self {
            Self::Local(m) => m.update_latest(account_id, name, patch, expected_revision).await,
            Self::Grpc(r) => {
                let request = proto::UpdateLatestRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    patch: Some(patch.into()),
                    expected_revision: owned(expected_revision),
                };
                Ok(rpc!(write r, update_latest, request)?.try_into()?)
            }
        }
    }

    /// Deletes a function with all its versions; returns the code digests it referenced.
    pub async fn delete_function(&self, account_id: &str, name: &str) -> ApiResult<Vec<String>> {
        match self {
            Self::Local(m) => m.delete_function(account_id, name).await,
            Self::Grpc(r) => Ok(rpc!(write r, delete_function, function(account_id, name))?.code_sha256),
        }
    }

    /// Deletes one published version and its policy; returns its code digest.
    pub async fn delete_version(&self, account_id: &str, name: &str, v: &str) -> ApiResult<Vec<String>> {
        match self {
            Self::Local(m) => m.delete_version(account_id, name, v).await,
            Self::Grpc(r) => Ok(rpc!(write r, delete_version, version(account_id, name, v))?.code_sha256),
        }
    }

    /// Whether any stored version refers to the code digest.
    pub async fn code_referenced(&self, code_sha256: &str) -> ApiResult<bool> {
        match self {
            Self::Local(m) => m.code_referenced(code_sha256).await,
            Self::Grpc(r) => {
                let request = proto::CodeDigest { code_sha256: code_sha256.to_owned() };
                Ok(rpc!(r, code_referenced, request)?.value)
            }
        }
    }

    /// Every version of a function: `$LATEST` first, then ascending numbers.
    pub async fn list_versions(&self, account_id: &str, name: &str) -> ApiResult<Vec<FunctionRow>> {
        match self {
            Self::Local(m) => m.list_versions(account_id, name).await,
            Self::Grpc(r) => rows(rpc!(r, list_versions, function(account_id, name))?),
        }
    }

    /// Snapshots `$LATEST` as a new version (see [`Metadata::publish_version`]).
    pub async fn publish_version(
        &self,
        account_id: &str,
        name: &str,
        expected_sha256_hex: Option<&str>,
        description: Option<&str>,
        expected_revision: Option<&str>,
    ) -> ApiResult<FunctionRow> {
        match self {
            Self::Local(m) => {
                m.publish_version(account_id, name, expected_sha256_hex, description, expected_revision).await
            }
            Self::Grpc(r) => {
                let request = proto::PublishVersionRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    expected_sha256_hex: owned(expected_sha256_hex),
                    description: owned(description),
                    expected_revision: owned(expected_revision),
                };
                Ok(rpc!(write r, publish_version, request)?.try_into()?)
            }
        }
    }

    // ---- Aliases ----

    /// Every alias of a function, by name.
    pub async fn list_aliases(&self, account_id: &str, name: &str) -> ApiResult<Vec<AliasRow>> {
        match self {
            Self::Local(m) => m.list_aliases(account_id, name).await,
            Self::Grpc(r) => {
                let reply = rpc!(r, list_aliases, function(account_id, name))?;
                Ok(reply.aliases.into_iter().map(AliasRow::try_from).collect::<Result<_, _>>()?)
            }
        }
    }

    /// One alias (cached on this side too).
    pub async fn get_alias(&self, account_id: &str, name: &str, alias_name: &str) -> ApiResult<Option<AliasRow>> {
        match self {
            Self::Local(m) => m.get_alias(account_id, name, alias_name).await,
            Self::Grpc(r) => {
                let load = async {
                    let reply = rpc!(r, get_alias, alias(account_id, name, alias_name))?;
                    ApiResult::Ok(reply.alias.map(AliasRow::try_from).transpose()?)
                };
                r.cache.alias((account_id, name, alias_name), load).await
            }
        }
    }

    /// Creates an alias (see [`Metadata::create_alias`]).
    pub async fn create_alias(&self, account_id: &str, name: &str, new: NewAlias) -> ApiResult<AliasRow> {
        match self {
            Self::Local(m) => m.create_alias(account_id, name, new).await,
            Self::Grpc(r) => {
                let request = proto::CreateAliasRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    alias: Some(new.into()),
                };
                Ok(rpc!(write r, create_alias, request)?.try_into()?)
            }
        }
    }

    /// Changes an alias (see [`Metadata::update_alias`]).
    pub async fn update_alias(
        &self,
        account_id: &str,
        name: &str,
        alias_name: &str,
        patch: AliasPatch,
        expected_revision: Option<&str>,
    ) -> ApiResult<AliasRow> {
        match self {
            Self::Local(m) => m.update_alias(account_id, name, alias_name, patch, expected_revision).await,
            Self::Grpc(r) => {
                let request = proto::UpdateAliasRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    alias_name: alias_name.to_owned(),
                    patch: Some(patch.into()),
                    expected_revision: owned(expected_revision),
                };
                Ok(rpc!(write r, update_alias, request)?.try_into()?)
            }
        }
    }

    /// Deletes an alias (and its policy); false when it did not exist.
    pub async fn delete_alias(&self, account_id: &str, name: &str, alias_name: &str) -> ApiResult<bool> {
        match self {
            Self::Local(m) => m.delete_alias(account_id, name, alias_name).await,
            Self::Grpc(r) => Ok(rpc!(write r, delete_alias, alias(account_id, name, alias_name))?.value),
        }
    }

    /// Resolves no qualifier / `$LATEST` / a number / an alias name to a stored version.
    pub async fn resolve_version(
        &self,
        account_id: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> ApiResult<Option<Resolved>> {
        match self {
            Self::Local(m) => m.resolve_version(account_id, name, qualifier).await,
            Self::Grpc(r) => {
                let request = proto::ResolveVersionRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    qualifier: owned(qualifier),
                };
                let reply = rpc!(r, resolve_version, request)?;
                Ok(reply.resolved.map(Resolved::try_from).transpose()?)
            }
        }
    }

    // ---- Reserved concurrency and Invoke ----

    /// The function's reservation, if any.
    pub async fn reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<Option<i64>> {
        match self {
            Self::Local(m) => m.reserved_concurrency(account_id, name).await,
            Self::Grpc(r) => Ok(rpc!(r, reserved_concurrency, function(account_id, name))?.value),
        }
    }

    /// Sum of the reservations of the account's functions other than `except`.
    pub async fn reserved_total(&self, account_id: &str, except: Option<&str>) -> ApiResult<i64> {
        match self {
            Self::Local(m) => m.reserved_total(account_id, except).await,
            Self::Grpc(r) => {
                let request = proto::ReservedTotalRequest { account_id: account_id.to_owned(), except: owned(except) };
                Ok(rpc!(r, reserved_total, request)?.value)
            }
        }
    }

    /// Sets a reservation.
    pub async fn put_reserved_concurrency(&self, account_id: &str, name: &str, reserved: i64) -> ApiResult<()> {
        match self {
            Self::Local(m) => m.put_reserved_concurrency(account_id, name, reserved).await,
            Self::Grpc(r) => {
                let request = proto::PutReservedConcurrencyRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    reserved,
                };
                rpc!(write r, put_reserved_concurrency, request).map(|Empty {}| ())
            }
        }
    }

    /// Removes a reservation.
    pub async fn delete_reserved_concurrency(&self, account_id: &str, name: &str) -> ApiResult<()> {
        match self {
            Self::Local(m) => m.delete_reserved_concurrency(account_id, name).await,
            Self::Grpc(r) => rpc!(write r, delete_reserved_concurrency, function(account_id, name)).map(|Empty {}| ()),
        }
    }

    /// One version with the account's concurrency limits (cached on this side too).
    pub async fn invoke_target(&self, account_id: &str, name: &str, v: &str) -> ApiResult<Option<InvokeTarget>> {
        match self {
            Self::Local(m) => m.invoke_target(account_id, name, v).await,
            Self::Grpc(r) => {
                let load = async {
                    let reply = rpc!(r, invoke_target, version(account_id, name, v))?;
                    ApiResult::Ok(reply.target.map(InvokeTarget::try_from).transpose()?)
                };
                r.cache.target((account_id, name, v), load).await
            }
        }
    }

    // ---- Resource policies ----

    /// The policy of `qualifier` (`""` = unqualified ARN), if it has statements.
    pub async fn get_policy(&self, account_id: &str, name: &str, qualifier: &str) -> ApiResult<Option<Policy>> {
        match self {
            Self::Local(m) => m.get_policy(account_id, name, qualifier).await,
            Self::Grpc(r) => {
                let request = proto::PolicyRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    qualifier: qualifier.to_owned(),
                };
                let reply = rpc!(r, get_policy, request)?;
                Ok(reply.policy.map(Policy::try_from).transpose()?)
            }
        }
    }

    /// AddPermission (see [`Metadata::add_permission`]).
    pub async fn add_permission(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        statement: Statement,
        expected_revision: Option<&str>,
    ) -> ApiResult<Policy> {
        match self {
            Self::Local(m) => m.add_permission(account_id, name, qualifier, statement, expected_revision).await,
            Self::Grpc(r) => {
                let request = proto::AddPermissionRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    qualifier: qualifier.to_owned(),
                    statement_json: statement_json(&statement)?,
                    expected_revision: owned(expected_revision),
                };
                Ok(rpc!(write r, add_permission, request)?.try_into()?)
            }
        }
    }

    /// RemovePermission (see [`Metadata::remove_permission`]).
    pub async fn remove_permission(
        &self,
        account_id: &str,
        name: &str,
        qualifier: &str,
        sid: &str,
        expected_revision: Option<&str>,
    ) -> ApiResult<Policy> {
        match self {
            Self::Local(m) => m.remove_permission(account_id, name, qualifier, sid, expected_revision).await,
            Self::Grpc(r) => {
                let request = proto::RemovePermissionRequest {
                    account_id: account_id.to_owned(),
                    function_name: name.to_owned(),
                    qualifier: qualifier.to_owned(),
                    sid: sid.to_owned(),
                    expected_revision: owned(expected_revision),
                };
                Ok(rpc!(write r, remove_permission, request)?.try_into()?)
            }
        }
    }
}
