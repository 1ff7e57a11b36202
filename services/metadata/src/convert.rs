//! Conversions between the domain types and their `lamina.metadata.v1` messages. Messages that can
//! be invalid (a required message missing, unparsable JSON) convert with `TryFrom`.

use lamina_common::ApiError;
use lamina_common::policy::Statement;
use lamina_rpc::metadata as proto;

use crate::{
    Account, AccountLimits, AliasPatch, AliasRow, FunctionPatch, FunctionRow, InvokeTarget, LatestUpdate, NewAccount,
    NewAlias, NewFunction, Policy, Resolved, RoutingConfig, accounts::NewKey, functions::CodeRef,
};

/// A message that does not describe a valid value.
#[derive(Debug, thiserror::Error)]
#[error("invalid {0}")]
pub struct Invalid(pub(crate) String);

impl Invalid {
    pub(crate) fn missing(what: &str) -> Self {
        Self(format!("message: {what} is required"))
    }
}

/// A request the server cannot read is the caller's fault.
impl From<Invalid> for tonic::Status {
    fn from(e: Invalid) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// A reply the client cannot read is the peer's fault.
impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::Internal(anyhow::anyhow!("metadata: {e}"))
    }
}

/// The required message `field`, converted.
pub(crate) fn required<P, T>(field: Option<P>, what: &str) -> Result<T, Invalid>
where
    T: TryFrom<P, Error = Invalid>,
{
    field.ok_or_else(|| Invalid::missing(what))?.try_into()
}

impl From<Account> for proto::Account {
    fn from(a: Account) -> Self {
        Self {
            account_id: a.account_id,
            name: a.name,
            concurrent_executions: a.concurrent_executions,
            code_storage_bytes: a.code_storage_bytes,
            host_share_percent: a.host_share_percent,
        }
    }
}

impl TryFrom<proto::Account> for Account {
    type Error = Invalid;
    fn try_from(a: proto::Account) -> Result<Self, Invalid> {
        Ok(Self {
            account_id: a.account_id,
            name: a.name,
            concurrent_executions: a.concurrent_executions,
            code_storage_bytes: a.code_storage_bytes,
            host_share_percent: a.host_share_percent,
        })
    }
}

impl From<NewAccount> for proto::NewAccount {
    fn from(a: NewAccount) -> Self {
        Self { name: a.name, concurrent_executions: a.concurrent_executions, code_storage_bytes: a.code_storage_bytes }
    }
}

impl From<proto::NewAccount> for NewAccount {
    fn from(a: proto::NewAccount) -> Self {
        Self { name: a.name, concurrent_executions: a.concurrent_executions, code_storage_bytes: a.code_storage_bytes }
    }
}

impl From<AccountLimits> for proto::AccountLimits {
    fn from(l: AccountLimits) -> Self {
        Self {
            concurrent_executions: l.concurrent_executions,
            code_storage_bytes: l.code_storage_bytes,
            host_share_percent: l.host_share_percent,
        }
    }
}

impl TryFrom<proto::AccountLimits> for AccountLimits {
    type Error = Invalid;
    fn try_from(l: proto::AccountLimits) -> Result<Self, Invalid> {
        Ok(Self {
            concurrent_executions: l.concurrent_executions,
            code_storage_bytes: l.code_storage_bytes,
            host_share_percent: l.host_share_percent,
        })
    }
}

impl From<NewKey> for proto::NewKey {
    fn from(k: NewKey) -> Self {
        Self { account_id: k.account_id, access_key_id: k.access_key_id, secret_access_key: k.secret_access_key }
    }
}

impl From<proto::NewKey> for NewKey {
    fn from(k: proto::NewKey) -> Self {
        Self { account_id: k.account_id, access_key_id: k.access_key_id, secret_access_key: k.secret_access_key }
    }
}

impl From<FunctionRow> for proto::FunctionRow {
    fn from(r: FunctionRow) -> Self {
        Self {
            account_id: r.account_id,
            function_name: r.function_name,
            version: r.version,
            description: r.description,
            runtime: r.runtime,
            role: r.role,
            handler: r.handler,
            memory_size: r.memory_size,
            timeout: r.timeout,
            environment: r.environment,
            vpc_config: r.vpc_config,
            code_sha256: r.code_sha256,
            code_size: r.code_size,
            revision_id: r.revision_id,
            last_modified: r.last_modified,
            ephemeral_storage: r.ephemeral_storage,
            dead_letter_arn: r.dead_letter_arn,
        }
    }
}

impl TryFrom<proto::FunctionRow> for FunctionRow {
    type Error = Invalid;
    fn try_from(r: proto::FunctionRow) -> Result<Self, Invalid> {
        Ok(Self {
            account_id: r.account_id,
            function_name: r.function_name,
            version: r.version,
            description: r.description,
            runtime: r.runtime,
            role: r.role,
            handler: r.handler,
            memory_size: r.memory_size,
            timeout: r.timeout,
            environment: r.environment,
            vpc_config: r.vpc_config,
            code_sha256: r.code_sha256,
            code_size: r.code_size,
            revision_id: r.revision_id,
            last_modified: r.last_modified,
            ephemeral_storage: default_ephemeral(r.ephemeral_storage),
            dead_letter_arn: r.dead_letter_arn,
        })
    }
}

/// A peer built before `ephemeral_storage` existed sends 0: Lambda's default.
fn default_ephemeral(mb: i64) -> i64 {
    if mb == 0 { 512 } else { mb }
}

impl From<NewFunction> for proto::NewFunction {
    fn from(f: NewFunction) -> Self {
        Self {
            function_name: f.function_name,
            description: f.description,
            runtime: f.runtime,
            role: f.role,
            handler: f.handler,
            memory_size: f.memory_size,
            timeout: f.timeout,
            environment: f.environment,
            vpc_config: f.vpc_config,
            code_sha256: f.code_sha256,
            code_size: f.code_size,
            ephemeral_storage: f.ephemeral_storage,
            dead_letter_arn: f.dead_letter_arn,
        }
    }
}

impl TryFrom<proto::NewFunction> for NewFunction {
    type Error = Invalid;
    fn try_from(f: proto::NewFunction) -> Result<Self, Invalid> {
        Ok(Self {
            function_name: f.function_name,
            description: f.description,
            runtime: f.runtime,
            role: f.role,
            handler: f.handler,
            memory_size: f.memory_size,
            timeout: f.timeout,
            environment: f.environment,
            vpc_config: f.vpc_config,
            code_sha256: f.code_sha256,
            code_size: f.code_size,
            ephemeral_storage: default_ephemeral(f.ephemeral_storage),
            dead_letter_arn: f.dead_letter_arn,
        })
    }
}

impl From<FunctionPatch> for proto::FunctionPatch {
    fn from(p: FunctionPatch) -> Self {
        Self {
            description: p.description,
            runtime: p.runtime,
            role: p.role,
            handler: p.handler,
            memory_size: p.memory_size,
            timeout: p.timeout,
            environment: p.environment.map(|value| proto::StringChange { value }),
            vpc_config: p.vpc_config.map(|value| proto::StringChange { value }),
            code: p.code.map(|c| proto::CodeRef { sha256_hex: c.sha256_hex, size: c.size }),
            ephemeral_storage: p.ephemeral_storage,
            dead_letter_arn: p.dead_letter_arn.map(|value| proto::StringChange { value }),
        }
    }
}

impl TryFrom<proto::FunctionPatch> for FunctionPatch {
    type Error = Invalid;
    fn try_from(p: proto::FunctionPatch) -> Result<Self, Invalid> {
        Ok(Self {
            description: p.description,
            runtime: p.runtime,
            role: p.role,
            handler: p.handler,
            memory_size: p.memory_size,
            timeout: p.timeout,
            environment: p.environment.map(|c| c.value),
            vpc_config: p.vpc_config.map(|c| c.value),
            code: p.code.map(|c| CodeRef { sha256_hex: c.sha256_hex, size: c.size }),
            ephemeral_storage: p.ephemeral_storage,
            dead_letter_arn: p.dead_letter_arn.map(|c| c.value),
        })
    }
}

impl From<LatestUpdate> for proto::LatestUpdate {
    fn from(u: LatestUpdate) -> Self {
        Self { row: Some(u.row.into()), replaced_code_sha256: u.replaced_code_sha256 }
    }
}

impl TryFrom<proto::LatestUpdate> for LatestUpdate {
    type Error = Invalid;
    fn try_from(u: proto::LatestUpdate) -> Result<Self, Invalid> {
        Ok(Self { row: required(u.row, "LatestUpdate.row")?, replaced_code_sha256: u.replaced_code_sha256 })
    }
}

impl From<AliasRow> for proto::AliasRow {
    fn from(a: AliasRow) -> Self {
        Self {
            account_id: a.account_id,
            function_name: a.function_name,
            alias_name: a.alias_name,
            function_version: a.function_version,
            description: a.description,
            routing_config: a.routing_config,
            revision_id: a.revision_id,
        }
    }
}

impl TryFrom<proto::AliasRow> for AliasRow {
    type Error = Invalid;
    fn try_from(a: proto::AliasRow) -> Result<Self, Invalid> {
        Ok(Self {
            account_id: a.account_id,
            function_name: a.function_name,
            alias_name: a.alias_name,
            function_version: a.function_version,
            description: a.description,
            routing_config: a.routing_config,
            revision_id: a.revision_id,
        })
    }
}

impl From<RoutingConfig> for proto::RoutingConfig {
    fn from(r: RoutingConfig) -> Self {
        Self { weights: r.weights.into_iter().collect() }
    }
}

impl TryFrom<proto::RoutingConfig> for RoutingConfig {
    type Error = Invalid;
    fn try_from(r: proto::RoutingConfig) -> Result<Self, Invalid> {
        Ok(Self { weights: r.weights.into_iter().collect() })
    }
}

impl From<NewAlias> for proto::NewAlias {
    fn from(a: NewAlias) -> Self {
        Self {
            alias_name: a.alias_name,
            function_version: a.function_version,
            description: a.description,
            routing_config: a.routing_config.map(Into::into),
        }
    }
}

impl TryFrom<proto::NewAlias> for NewAlias {
    type Error = Invalid;
    fn try_from(a: proto::NewAlias) -> Result<Self, Invalid> {
        Ok(Self {
            alias_name: a.alias_name,
            function_version: a.function_version,
            description: a.description,
            routing_config: a.routing_config.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<AliasPatch> for proto::AliasPatch {
    fn from(p: AliasPatch) -> Self {
        Self {
            function_version: p.function_version,
            description: p.description,
            routing_config: p.routing_config.map(Into::into),
        }
    }
}

impl TryFrom<proto::AliasPatch> for AliasPatch {
    type Error = Invalid;
    fn try_from(p: proto::AliasPatch) -> Result<Self, Invalid> {
        Ok(Self {
            function_version: p.function_version,
            description: p.description,
            routing_config: p.routing_config.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<Resolved> for proto::Resolved {
    fn from(r: Resolved) -> Self {
        Self { row: Some(r.row.into()), alias: r.alias.map(Into::into) }
    }
}

impl TryFrom<proto::Resolved> for Resolved {
    type Error = Invalid;
    fn try_from(r: proto::Resolved) -> Result<Self, Invalid> {
        Ok(Self { row: required(r.row, "Resolved.row")?, alias: r.alias.map(TryInto::try_into).transpose()? })
    }
}

impl From<InvokeTarget> for proto::InvokeTarget {
    fn from(t: InvokeTarget) -> Self {
        Self {
            row: Some(t.row.into()),
            account_limit: t.account_limit,
            reserved: t.reserved,
            reserved_total: t.reserved_total,
            host_share_percent: t.host_share_percent,
        }
    }
}

impl TryFrom<proto::InvokeTarget> for InvokeTarget {
    type Error = Invalid;
    fn try_from(t: proto::InvokeTarget) -> Result<Self, Invalid> {
        Ok(Self {
            row: required(t.row, "InvokeTarget.row")?,
            account_limit: t.account_limit,
            reserved: t.reserved,
            reserved_total: t.reserved_total,
            host_share_percent: t.host_share_percent,
        })
    }
}

impl TryFrom<Policy> for proto::Policy {
    type Error = ApiError;
    fn try_from(p: Policy) -> Result<Self, ApiError> {
        let statements_json = serde_json::to_string(&p.statements)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("serialise policy statements")))?;
        Ok(Self { statements_json, revision_id: p.revision_id })
    }
}

impl TryFrom<proto::Policy> for Policy {
    type Error = Invalid;
    fn try_from(p: proto::Policy) -> Result<Self, Invalid> {
        let statements =
            serde_json::from_str(&p.statements_json).map_err(|e| Invalid(format!("Policy.statements_json: {e}")))?;
        Ok(Self { statements, revision_id: p.revision_id })
    }
}

/// One statement as AddPermission sends it.
pub(crate) fn statement_json(statement: &Statement) -> Result<String, ApiError> {
    serde_json::to_string(statement)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("serialise policy statement")))
}

/// The statement an AddPermission request carries.
pub(crate) fn statement_of(json: &str) -> Result<Statement, Invalid> {
    serde_json::from_str(json).map_err(|e| Invalid(format!("statement_json: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use super::*;

    /// `value` → message → value, compared through `Debug` (not every domain type is `PartialEq`).
    fn round_trip<T, P>(value: T)
    where
        T: Debug + Clone + Into<P> + TryFrom<P>,
        <T as TryFrom<P>>::Error: Debug,
    {
        let before = format!("{value:?}");
        let message: P = value.into();
        let back = T::try_from(message).expect("converts back");
        assert_eq!(format!("{back:?}"), before);
    }

    fn row(version: &str) -> FunctionRow {
        FunctionRow {
            account_id: "123456789012".into(),
            function_name: "f".into(),
            version: version.into(),
            description: "d".into(),
            runtime: "python3.12".into(),
            role: "arn:aws:iam::123456789012:role/r".into(),
            handler: "app.handler".into(),
            memory_size: 256,
            timeout: 30,
            environment: Some(r#"{"A":"1"}"#.into()),
            vpc_config: None,
            code_sha256: "ab".repeat(32),
            code_size: 1234,
            revision_id: "rev".into(),
            last_modified: 1_700_000_000_000,
            ephemeral_storage: 2048,
            dead_letter_arn: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
        }
    }

    fn alias(routing: Option<&str>) -> AliasRow {
        AliasRow {
            account_id: "123456789012".into(),
            function_name: "f".into(),
            alias_name: "live".into(),
            function_version: "1".into(),
            description: String::new(),
            routing_config: routing.map(str::to_owned),
            revision_id: "r".into(),
        }
    }

    fn routing() -> RoutingConfig {
        RoutingConfig { weights: BTreeMap::from([("2".to_owned(), 0.25)]) }
    }

    #[test]
    fn every_domain_type_survives_a_round_trip() {
        let account = Account {
            account_id: "123456789012".into(),
            name: "default".into(),
            concurrent_executions: 100,
            code_storage_bytes: 1 << 30,
            host_share_percent: Some(25),
        };
        round_trip::<_, proto::Account>(account);
        round_trip::<_, proto::NewAccount>(NewAccount {
            name: "n".into(),
            concurrent_executions: Some(5),
            code_storage_bytes: None,
        });
        round_trip::<_, proto::AccountLimits>(AccountLimits {
            concurrent_executions: None,
            code_storage_bytes: Some(7),
            host_share_percent: Some(0),
        });
        round_trip::<_, proto::NewKey>(NewKey {
            account_id: "1".into(),
            access_key_id: "AKLM".into(),
            secret_access_key: "s".into(),
        });
        round_trip::<_, proto::FunctionRow>(row("$LATEST"));
        round_trip::<_, proto::FunctionRow>(FunctionRow {
            environment: None,
            vpc_config: Some("{}".into()),
            dead_letter_arn: None,
            ..row("3")
        });
        round_trip::<_, proto::NewFunction>(NewFunction {
            function_name: "f".into(),
            description: String::new(),
            runtime: "nodejs22.x".into(),
            role: "r".into(),
            handler: "h".into(),
            memory_size: 128,
            timeout: 3,
            environment: None,
            vpc_config: Some("{}".into()),
            code_sha256: "cd".repeat(32),
            code_size: 9,
            ephemeral_storage: 512,
            dead_letter_arn: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
        });
        round_trip::<_, proto::FunctionPatch>(FunctionPatch::default());
        round_trip::<_, proto::FunctionPatch>(FunctionPatch {
            description: Some(String::new()),
            memory_size: Some(512),
            environment: Some(None),
            vpc_config: Some(Some("{}".into())),
            code: Some(CodeRef { sha256_hex: "ef".repeat(32), size: 10 }),
            ephemeral_storage: Some(10240),
            dead_letter_arn: Some(None),
            ..FunctionPatch::default()
        });
        round_trip::<_, proto::LatestUpdate>(LatestUpdate {
            row: row("$LATEST"),
            replaced_code_sha256: Some("x".into()),
        });
        round_trip::<_, proto::LatestUpdate>(LatestUpdate { row: row("$LATEST"), replaced_code_sha256: None });
        round_trip::<_, proto::AliasRow>(alias(None));
        round_trip::<_, proto::AliasRow>(alias(Some(r#"{"AdditionalVersionWeights":{"2":0.5}}"#)));
        round_trip::<_, proto::RoutingConfig>(routing());
        round_trip::<_, proto::RoutingConfig>(RoutingConfig::default());
        round_trip::<_, proto::NewAlias>(NewAlias {
            alias_name: "live".into(),
            function_version: "1".into(),
            description: "d".into(),
            routing_config: Some(routing()),
        });
        round_trip::<_, proto::NewAlias>(NewAlias::default());
        round_trip::<_, proto::AliasPatch>(AliasPatch::default());
        round_trip::<_, proto::AliasPatch>(AliasPatch {
            function_version: Some("2".into()),
            description: None,
            routing_config: Some(RoutingConfig::default()),
        });
        round_trip::<_, proto::Resolved>(Resolved { row: row("1"), alias: None });
        round_trip::<_, proto::Resolved>(Resolved { row: row("1"), alias: Some(alias(None)) });
        round_trip::<_, proto::InvokeTarget>(InvokeTarget {
            row: row("1"),
            account_limit: 100,
            reserved: Some(10),
            reserved_total: 30,
            host_share_percent: Some(80),
        });
        round_trip::<_, proto::InvokeTarget>(InvokeTarget {
            row: row("1"),
            account_limit: 100,
            reserved: None,
            reserved_total: 0,
            host_share_percent: None,
        });
    }

    #[test]
    fn policies_and_statements_survive_a_round_trip() {
        let statement: Statement = serde_json::from_value(serde_json::json!({
            "Sid": "s1",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"}},
        }))
        .expect("statement");
        let policy = Policy { statements: vec![statement.clone()], revision_id: "r".into() };
        let message = proto::Policy::try_from(policy.clone()).expect("serialises");
        let back = Policy::try_from(message).expect("parses");
        assert_eq!((back.statements, back.revision_id), (policy.statements, policy.revision_id));
        let json = statement_json(&statement).expect("serialises");
        assert_eq!(statement_of(&json).expect("parses"), statement);
    }

    #[test]
    fn invalid_messages_are_errors_not_panics() {
        let no_row = proto::InvokeTarget {
            row: None,
            account_limit: 1,
            reserved: None,
            reserved_total: 0,
            host_share_percent: None,
        };
        assert!(InvokeTarget::try_from(no_row).is_err());
        assert!(LatestUpdate::try_from(proto::LatestUpdate { row: None, replaced_code_sha256: None }).is_err());
        assert!(Resolved::try_from(proto::Resolved { row: None, alias: None }).is_err());
        let bad = proto::Policy { statements_json: "{not json".into(), revision_id: String::new() };
        assert!(Policy::try_from(bad).is_err());
        assert!(statement_of("[]").is_err());
        let status: tonic::Status = Invalid::missing("x").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
