//! The gRPC server: proto in, the in-process `Metadata` call, proto out. Nothing else.

use lamina_rpc::common::{HealthReply, HealthRequest};
use lamina_rpc::metadata::metadata_server::{Metadata as Api, MetadataServer};
use lamina_rpc::metadata::{self as proto, Empty, Flag};
use lamina_rpc::{to_status, transport};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::Metadata;
use crate::convert::{required, statement_of};

/// The tonic service's implementation (see [`service`]).
pub struct Server {
    metadata: Metadata,
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(message: T) -> Reply<T> {
    Ok(Response::new(message))
}

fn rows(rows: Vec<crate::FunctionRow>) -> proto::FunctionRowList {
    proto::FunctionRowList { rows: rows.into_iter().map(Into::into).collect() }
}

#[tonic::async_trait]
impl Api for Server {
    async fn create_account(&self, r: Request<proto::NewAccount>) -> Reply<proto::NewKey> {
        let key = self.metadata.create_account(r.into_inner().into()).await.map_err(to_status)?;
        ok(key.into())
    }

    async fn account_by_name(&self, r: Request<proto::AccountByNameRequest>) -> Reply<proto::MaybeAccount> {
        let account = self.metadata.account_by_name(&r.into_inner().name).await.map_err(to_status)?;
        ok(proto::MaybeAccount { account: account.map(Into::into) })
    }

    async fn get_account(&self, r: Request<proto::AccountRequest>) -> Reply<proto::Account> {
        ok(self.metadata.account(&r.into_inner().account_id).await.map_err(to_status)?.into())
    }

    async fn list_accounts(&self, _: Request<Empty>) -> Reply<proto::AccountList> {
        let accounts = self.metadata.list_accounts().await.map_err(to_status)?;
        ok(proto::AccountList { accounts: accounts.into_iter().map(Into::into).collect() })
    }

    async fn set_limits(&self, r: Request<proto::SetLimitsRequest>) -> Reply<proto::Account> {
        let r = r.into_inner();
        let limits = required(r.limits, "limits")?;
        ok(self.metadata.set_limits(&r.account_id, limits).await.map_err(to_status)?.into())
    }

    async fn create_access_key(&self, r: Request<proto::AccountRequest>) -> Reply<proto::NewKey> {
        ok(self.metadata.create_access_key(&r.into_inner().account_id).await.map_err(to_status)?.into())
    }

    async fn delete_access_key(&self, r: Request<proto::DeleteAccessKeyRequest>) -> Reply<Empty> {
        let r = r.into_inner();
        self.metadata.delete_access_key(&r.account_id, &r.access_key_id).await.map_err(to_status)?;
        ok(Empty {})
    }

    async fn list_access_keys(&self, r: Request<proto::AccountRequest>) -> Reply<proto::AccessKeyList> {
        let ids = self.metadata.list_access_keys(&r.into_inner().account_id).await.map_err(to_status)?;
        ok(proto::AccessKeyList { access_key_ids: ids })
    }

    async fn lookup_secret(&self, r: Request<proto::LookupSecretRequest>) -> Reply<proto::LookupSecretReply> {
        let found = self.metadata.lookup_secret(&r.into_inner().access_key_id).await.map_err(to_status)?;
        let key = found.map(|(account_id, secret_access_key)| proto::KeySecret { account_id, secret_access_key });
        ok(proto::LookupSecretReply { key })
    }

    async fn usage(&self, r: Request<proto::AccountRequest>) -> Reply<proto::UsageReply> {
        let (code_size, function_count) = self.metadata.usage(&r.into_inner().account_id).await.map_err(to_status)?;
        ok(proto::UsageReply { code_size, function_count })
    }

    async fn create_function(&self, r: Request<proto::CreateFunctionRequest>) -> Reply<proto::FunctionRow> {
        let r = r.into_inner();
        let new = required(r.function, "function")?;
        ok(self.metadata.create_function(&r.account_id, new, r.publish).await.map_err(to_status)?.into())
    }

    async fn get_version(&self, r: Request<proto::VersionRequest>) -> Reply<proto::MaybeFunctionRow> {
        let r = r.into_inner();
        let row = self.metadata.get_version(&r.account_id, &r.function_name, &r.version).await.map_err(to_status)?;
        ok(proto::MaybeFunctionRow { row: row.map(Into::into) })
    }

    async fn list_latest(&self, r: Request<proto::ListLatestRequest>) -> Reply<proto::FunctionRowList> {
        let r = r.into_inner();
        let found = self.metadata.list_latest(&r.account_id, r.after.as_deref(), r.limit).await.map_err(to_status)?;
        ok(rows(found))
    }

    async fn update_latest(&self, r: Request<proto::UpdateLatestRequest>) -> Reply<proto::LatestUpdate> {
        let r = r.into_inner();
        let patch = required(r.patch, "patch")?;
        let updated = self
            .metadata
            .update_latest(&r.account_id, &r.function_name, patch, r.expected_revision.as_deref())
            .await
            .map_err(to_status)?;
        ok(updated.into())
    }

    async fn delete_function(&self, r: Request<proto::FunctionRequest>) -> Reply<proto::CodeDigests> {
        let r = r.into_inner();
        let code_sha256 = self.metadata.delete_function(&r.account_id, &r.function_name).await.map_err(to_status)?;
        ok(proto::CodeDigests { code_sha256 })
    }

    async fn delete_version(&self, r: Request<proto::VersionRequest>) -> Reply<proto::CodeDigests> {
        let r = r.into_inner();
        let code_sha256 =
            self.metadata.delete_version(&r.account_id, &r.function_name, &r.version).await.map_err(to_status)?;
        ok(proto::CodeDigests { code_sha256 })
    }

    async fn code_referenced(&self, r: Request<proto::CodeDigest>) -> Reply<Flag> {
        let value = self.metadata.code_referenced(&r.into_inner().code_sha256).await.map_err(to_status)?;
        ok(Flag { value })
    }

    async fn list_versions(&self, r: Request<proto::FunctionRequest>) -> Reply<proto::FunctionRowList> {
        let r = r.into_inner();
        ok(rows(self.metadata.list_versions(&r.account_id, &r.function_name).await.map_err(to_status)?))
    }

    async fn publish_version(&self, r: Request<proto::PublishVersionRequest>) -> Reply<proto::FunctionRow> {
        let r = r.into_inner();
        let row = self
            .metadata
            .publish_version(
                &r.account_id,
                &r.function_name,
                r.expected_sha256_hex.as_deref(),
                r.description.as_deref(),
                r.expected_revision.as_deref(),
            )
            .await
            .map_err(to_status)?;
        ok(row.into())
    }

    async fn list_aliases(&self, r: Request<proto::FunctionRequest>) -> Reply<proto::AliasRowList> {
        let r = r.into_inner();
        let aliases = self.metadata.list_aliases(&r.account_id, &r.function_name).await.map_err(to_status)?;
        ok(proto::AliasRowList { aliases: aliases.into_iter().map(Into::into).collect() })
    }

    async fn get_alias(&self, r: Request<proto::AliasRequest>) -> Reply<proto::MaybeAliasRow> {
        let r = r.into_inner();
        let alias = self.metadata.get_alias(&r.account_id, &r.function_name, &r.alias_name).await.map_err(to_status)?;
        ok(proto::MaybeAliasRow { alias: alias.map(Into::into) })
    }

    async fn create_alias(&self, r: Request<proto::CreateAliasRequest>) -> Reply<proto::AliasRow> {
        let r = r.into_inner();
        let new = required(r.alias, "alias")?;
        ok(self.metadata.create_alias(&r.account_id, &r.function_name, new).await.map_err(to_status)?.into())
    }

    async fn update_alias(&self, r: Request<proto::UpdateAliasRequest>) -> Reply<proto::AliasRow> {
        let r = r.into_inner();
        let patch = required(r.patch, "patch")?;
        let alias = self
            .metadata
            .update_alias(&r.account_id, &r.function_name, &r.alias_name, patch, r.expected_revision.as_deref())
            .await
            .map_err(to_status)?;
        ok(alias.into())
    }

    async fn delete_alias(&self, r: Request<proto::AliasRequest>) -> Reply<Flag> {
        let r = r.into_inner();
        let value =
            self.metadata.delete_alias(&r.account_id, &r.function_name, &r.alias_name).await.map_err(to_status)?;
        ok(Flag { value })
    }

    async fn resolve_version(&self, r: Request<proto::ResolveVersionRequest>) -> Reply<proto::MaybeResolved> {
        let r = r.into_inner();
        let resolved = self
            .metadata
            .resolve_version(&r.account_id, &r.function_name, r.qualifier.as_deref())
            .await
            .map_err(to_status)?;
        ok(proto::MaybeResolved { resolved: resolved.map(Into::into) })
    }

    async fn reserved_concurrency(&self, r: Request<proto::FunctionRequest>) -> Reply<proto::MaybeCount> {
        let r = r.into_inner();
        let value = self.metadata.reserved_concurrency(&r.account_id, &r.function_name).await.map_err(to_status)?;
        ok(proto::MaybeCount { value })
    }

    async fn reserved_total(&self, r: Request<proto::ReservedTotalRequest>) -> Reply<proto::Count> {
        let r = r.into_inner();
        let value = self.metadata.reserved_total(&r.account_id, r.except.as_deref()).await.map_err(to_status)?;
        ok(proto::Count { value })
    }

    async fn put_reserved_concurrency(&self, r: Request<proto::PutReservedConcurrencyRequest>) -> Reply<Empty> {
        let r = r.into_inner();
        self.metadata.put_reserved_concurrency(&r.account_id, &r.function_name, r.reserved).await.map_err(to_status)?;
        ok(Empty {})
    }

    async fn delete_reserved_concurrency(&self, r: Request<proto::FunctionRequest>) -> Reply<Empty> {
        let r = r.into_inner();
        self.metadata.delete_reserved_concurrency(&r.account_id, &r.function_name).await.map_err(to_status)?;
        ok(Empty {})
    }

    async fn invoke_target(&self, r: Request<proto::VersionRequest>) -> Reply<proto::MaybeInvokeTarget> {
        let r = r.into_inner();
        let target =
            self.metadata.invoke_target(&r.account_id, &r.function_name, &r.version).await.map_err(to_status)?;
        ok(proto::MaybeInvokeTarget { target: target.map(Into::into) })
    }

    async fn get_policy(&self, r: Request<proto::PolicyRequest>) -> Reply<proto::MaybePolicy> {
        let r = r.into_inner();
        let policy =
            self.metadata.get_policy(&r.account_id, &r.function_name, &r.qualifier).await.map_err(to_status)?;
        let policy = policy.map(proto::Policy::try_from).transpose().map_err(to_status)?;
        ok(proto::MaybePolicy { policy })
    }

    async fn add_permission(&self, r: Request<proto::AddPermissionRequest>) -> Reply<proto::Policy> {
        let r = r.into_inner();
        let statement = statement_of(&r.statement_json)?;
        let policy = self
            .metadata
            .add_permission(&r.account_id, &r.function_name, &r.qualifier, statement, r.expected_revision.as_deref())
            .await
            .map_err(to_status)?;
        ok(policy.try_into().map_err(to_status)?)
    }

    async fn remove_permission(&self, r: Request<proto::RemovePermissionRequest>) -> Reply<proto::Policy> {
        let r = r.into_inner();
        let policy = self
            .metadata
            .remove_permission(&r.account_id, &r.function_name, &r.qualifier, &r.sid, r.expected_revision.as_deref())
            .await
            .map_err(to_status)?;
        ok(policy.try_into().map_err(to_status)?)
    }

    async fn health(&self, _: Request<HealthRequest>) -> Reply<HealthReply> {
        let detail = serde_json::json!({ "engine": self.metadata.engine() });
        ok(HealthReply { ready: true, detail_json: detail.to_string() })
    }
}

/// The metadata tonic service, for a process serving it beside others on one listener.
pub fn service(metadata: Metadata) -> MetadataServer<Server> {
    MetadataServer::new(Server { metadata })
        .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(transport::MAX_MESSAGE_BYTES)
}

/// Serves metadata over gRPC on `listener` until `shutdown`.
pub async fn serve(
    metadata: Metadata,
    listener: lamina_rpc::transport::Incoming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    transport::serve(service(metadata), listener, shutdown).await
}
